"""Who may do what: the roles of radlens accounts and the one table of their permissions.

HIPAA §164.312(a)(1) asks for access control by unique user; this module is the policy,
``server/authz.py`` enforces it on every route and ``store/review.py`` applies the rules
that depend on the object (whose draft a report is). ``docs/privacy.md`` prints the table.

| action | admin | radiologist | technologist | researcher |
|---|---|---|---|---|
| worklist, study, QIDO, WADO, heatmaps | yes | yes | yes | no |
| STOW-RS (upload) | yes | yes | yes | no |
| open a study, review findings, priority | yes | yes | no | no |
| clinical notes | yes | yes | yes | no |
| save and sign reports, export (SR, FHIR) | yes | yes | no | no |
| de-identified studies and instances | yes | no | no | yes |
| manage accounts | yes | no | no | no |
| model monitoring (aggregates per model, site, scanner) | yes | yes | yes | no |
| the active-learning queue | yes | yes | no | no |

Example:
    >>> allowed(Role.TECHNOLOGIST, Action.REPORT_WRITE)
    False
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    """An account's role; each account has exactly one."""

    ADMIN = "admin"
    RADIOLOGIST = "radiologist"
    TECHNOLOGIST = "technologist"
    RESEARCHER = "researcher"


class Action(StrEnum):
    """What a route does, as the permission table names it."""

    WORKLIST_READ = "read the worklist"
    STUDY_READ = "read studies"
    IMAGES_READ = "read images"
    IMAGES_STORE = "store images"
    STUDY_OPEN = "open studies for reading"
    FINDINGS_REVIEW = "review findings"
    PRIORITY_WRITE = "set priorities"
    NOTES_WRITE = "write clinical notes"
    REPORT_WRITE = "write reports"
    REPORT_SIGN = "sign reports"
    REPORT_EXPORT = "export reports (DICOM SR, FHIR)"
    DEIDENTIFIED_READ = "read de-identified data"
    ACCOUNTS_MANAGE = "manage accounts"
    MONITORING_READ = "read model monitoring"
    LEARNING_QUEUE_READ = "read the learning queue"
    MODELS_READ = "read model cards"


_CLINICAL_READ = frozenset(
    {
        Action.WORKLIST_READ,
        Action.STUDY_READ,
        Action.IMAGES_READ,
        Action.IMAGES_STORE,
        Action.MONITORING_READ,
        Action.MODELS_READ,
    }
)
_READING = frozenset(
    {
        Action.STUDY_OPEN,
        Action.FINDINGS_REVIEW,
        Action.PRIORITY_WRITE,
        Action.NOTES_WRITE,
        Action.REPORT_WRITE,
        Action.REPORT_SIGN,
        Action.REPORT_EXPORT,
        Action.LEARNING_QUEUE_READ,
    }
)

PERMISSIONS: dict[Role, frozenset[Action]] = {
    # An admin is also a reader: small sites have one lead radiologist who runs radlens.
    # Sites that separate the duties give their administrators no clinical work to do.
    Role.ADMIN: _CLINICAL_READ | _READING | {Action.DEIDENTIFIED_READ, Action.ACCOUNTS_MANAGE},
    Role.RADIOLOGIST: _CLINICAL_READ | _READING,
    Role.TECHNOLOGIST: _CLINICAL_READ | {Action.NOTES_WRITE},
    # Sees no patient data at all: only the de-identified views (privacy.deid).
    Role.RESEARCHER: frozenset({Action.DEIDENTIFIED_READ}),
}


@dataclass(frozen=True)
class Principal:
    """The logged-in account a request acts for."""

    username: str
    role: Role


def allowed(role: Role | str, action: Action) -> bool:
    """True when ``role`` may do ``action`` (an unknown role may do nothing)."""
    try:
        return action in PERMISSIONS[Role(role)]
    except ValueError:
        return False


def may_edit_draft(username: str, role: Role, author: str) -> bool:
    """A report draft belongs to the reader who last saved it: another radiologist may not
    overwrite it; an admin may take it over (and becomes its author). An empty draft (no
    author yet) is anyone's whose role may :attr:`Action.REPORT_WRITE`."""
    return not author or author == username or role is Role.ADMIN


def may_sign(username: str, author: str) -> bool:
    """Only the author of the saved text signs it: a signature attests one's own report,
    so not even an admin signs another reader's draft (an admin takes it over first)."""
    return bool(author) and author == username
