"""``radlens models``: installed models, and the versions a site keeps of each.

* ``radlens models`` lists the models analysis uses (hash-verified): the active site
  version of a model where the site has one, the installed folder otherwise;
* ``radlens models versions NAME`` lists every stored version and the promotions;
* ``radlens models promote NAME VERSION`` makes a version active (an admin's act; a version
  that failed the evaluation gate only with ``--force --reason``, which is recorded);
* ``radlens models rollback NAME`` restores the version active before;
* ``radlens models lock NAME`` records the model's locked evaluation set.

Promotions and rollbacks are written to the model's ``history.jsonl`` and, when the site
has a database, to the audit trail (``model-promoted``). See ``docs/learning.md``.
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from radlens.cli.analyze import Json, ModelsDir
from radlens.cli.render import out
from radlens.errors import ForbiddenError
from radlens.models.card import card_to_dict
from radlens.models.registry import InstalledModel, discover, get_model
from radlens.models.versions import (
    OnChange,
    Promotion,
    active_model,
    history,
    list_versions,
    promote,
    rollback,
)

if TYPE_CHECKING:
    from radlens.config import Settings

models_app = typer.Typer(
    help="Installed models and the versions this site keeps of them.", no_args_is_help=False
)

HomeOption = Annotated[Path | None, typer.Option(help="data folder (default ~/.radlens)")]
DbOption = Annotated[str | None, typer.Option(help="database URL (default: SQLite in home)")]
ConfigOption = Annotated[Path | None, typer.Option(help="TOML settings file")]
ByOption = Annotated[
    str | None,
    typer.Option("--by", help="who does it (an admin account when the site has a database)"),
]


def models_command(
    ctx: typer.Context,
    as_json: Json = False,
    models_dir: ModelsDir = None,
    enabled_only: Annotated[
        bool, typer.Option("--enabled", help="only models that analyze studies by default")
    ] = False,
    home: HomeOption = None,
    config: ConfigOption = None,
) -> None:
    """List installed models (hash-verified), also those disabled by default."""
    if ctx.invoked_subcommand is not None:
        return
    settings = _settings(home, None, config)
    models = discover(models_dir, include_disabled=not enabled_only, store=settings.model_store_dir)
    if as_json:
        out.print_json(
            json.dumps([card_to_dict(m.card) | {"folder": str(m.folder)} for m in models])
        )
        return
    table = Table(title="installed models (--json for cards: licence, population, thresholds)")
    for col in ("name", "version", "task", "applies to", "val AUC / ACC / ECE (n)", "enabled"):
        table.add_column(col, overflow="fold", no_wrap=col in ("name", "version"))
    for m in models:
        a = m.card.applies_to
        # A learned version is measured on its locked set (part or all of the val split).
        val = m.card.metrics.get("val") or m.card.metrics.get("locked", {})
        figures = " / ".join(f"{val[k]:.3f}" if k in val else "-" for k in ("auc", "acc", "ece"))
        if "map50" in val:  # a detector: VOC mAP instead
            figures = f"mAP@0.5 {val['map50']:.3f}"
        table.add_row(
            m.card.name,
            m.card.version,
            m.card.task.value,
            f"{'/'.join(a.modalities)} {'/'.join(a.body_parts) or 'any'} "
            f"{'/'.join(a.views)} {a.dims}D".replace("  ", " "),
            f"{figures} ({int(val.get('n', 0))})",
            "yes" if m.card.enabled_by_default else "no",
        )
    out.print(table)


def _site_model(
    settings: Settings, name: str, models_dir: list[Path] | None
) -> tuple[Path, InstalledModel]:
    """The site's model store and the active version of ``name`` in it (adding the
    installed model as version 1 the first time)."""
    store = settings.model_store_dir
    return store, active_model(store, get_model(name, discover(models_dir, include_disabled=True)))


def versions_command(
    name: Annotated[str, typer.Argument(help="model name")],
    as_json: Json = False,
    models_dir: ModelsDir = None,
    home: HomeOption = None,
    config: ConfigOption = None,
) -> None:
    """List the stored versions of a model and its promotions."""
    settings = _settings(home, None, config)
    store, _ = _site_model(settings, name, models_dir)
    versions = list_versions(store, name)
    changes = history(store, name)
    if as_json:
        doc = {
            "versions": [v.__dict__ | {"folder": str(v.folder)} for v in versions],
            "history": [c.__dict__ for c in changes],
        }
        out.print_json(json.dumps(doc))
        return
    table = Table(title=f"{name}: versions at this site ({store / name})")
    for col in ("version", "card version", "origin", "parent", "created", "gate", "active"):
        table.add_column(col, overflow="fold")
    gate = {True: "passed", False: "FAILED", None: "-"}
    for v in versions:
        table.add_row(
            str(v.number),
            v.card_version,
            v.origin,
            str(v.parent or "-"),
            v.created_at,
            gate[v.gate_passed],
            "*" if v.active else "",
        )
    out.print(table)
    for change in changes:
        out.print(f"{change.at} {change.describe()}", highlight=False, soft_wrap=True)


def promote_command(
    name: Annotated[str, typer.Argument(help="model name")],
    version: Annotated[int, typer.Argument(help="version number (radlens models versions)")],
    force: Annotated[
        bool, typer.Option("--force", help="promote although the gate failed (needs --reason)")
    ] = False,
    reason: Annotated[str, typer.Option(help="why; required with --force, recorded")] = "",
    by: ByOption = None,
    models_dir: ModelsDir = None,
    home: HomeOption = None,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Make a stored version the active one (an admin's act; audited)."""
    settings = _settings(home, db, config)
    who = _admin(settings, by)
    store, _ = _site_model(settings, name, models_dir)
    change = promote(
        store,
        name,
        version,
        by=who,
        force=force,
        forced_reason=reason,
        on_change=audit_hook(settings),
    )
    out.print(change.describe(), highlight=False, soft_wrap=True)


def rollback_command(
    name: Annotated[str, typer.Argument(help="model name")],
    reason: Annotated[str, typer.Option(help="why (recorded)")] = "",
    by: ByOption = None,
    models_dir: ModelsDir = None,
    home: HomeOption = None,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Restore the version that was active before the current one (audited)."""
    settings = _settings(home, db, config)
    who = _admin(settings, by)
    store, _ = _site_model(settings, name, models_dir)
    change = rollback(store, name, by=who, reason=reason, on_change=audit_hook(settings))
    out.print(change.describe(), highlight=False, soft_wrap=True)


def lock_command(
    name: Annotated[str, typer.Argument(help="model name")],
    data: Annotated[
        Path | None, typer.Option(help="the model's data (default: its card's training data)")
    ] = None,
    fraction: Annotated[
        float,
        typer.Option(min=0.01, max=1.0, help="share of the val split's patients to lock"),
    ] = 1.0,
    seed: Annotated[int, typer.Option(help="seed of the patient draw")] = 0,
    models_dir: ModelsDir = None,
    home: HomeOption = None,
    config: ConfigOption = None,
) -> None:
    """Record the model's locked evaluation set from its val split (once; never changed)."""
    from radlens.evaluation.gate import ensure_locked

    settings = _settings(home, None, config)
    store, model = _site_model(settings, name, models_dir)
    source = data or model.card.training.data_path()
    locked, items = ensure_locked(
        store, model.card, source, str(source), site_key_of(settings), fraction, seed
    )
    patients = len(set(locked.patient_keys) - {""})
    out.print(
        f"{name}: locked evaluation set of {len(items)} items"
        f"{f' from {patients} patients' if patients else ''} of {source} "
        f"({locked.split}, fraction {locked.fraction}), sha256 {locked.sha256}",
        highlight=False,
        soft_wrap=True,
    )


def site_key_of(settings: Settings) -> Callable[[str], str | None]:
    """The site's keyed patient pseudonym, as ``radlens feedback export`` writes it in
    ``cases.csv`` (``patient_key``): the research key's pseudonym of the Patient ID
    (``store.research.research_key``, ``privacy.deid``); a dataset names no issuer."""
    from radlens.privacy.deid import DeidState
    from radlens.store.research import research_key

    state = DeidState(research_key(settings.storage_dir))
    return lambda patient_id: state.pseudonym("", patient_id) if patient_id.strip() else None


def has_database(settings: Settings) -> bool:
    """Whether the site has a database: a URL is set, or the SQLite file exists in home."""
    return bool(settings.db) or (settings.home.expanduser() / "radlens.sqlite").exists()


def audit_hook(settings: Settings) -> OnChange | None:
    """Record each promotion or rollback as ``model-promoted`` in the audit trail, when the
    site has a database."""
    if not has_database(settings):
        return None

    def record(change: Promotion) -> None:
        from radlens.privacy.audit import AuditEvent, audit_trail
        from radlens.store.db import open_database

        database = open_database(settings.database_url)
        try:
            trail = audit_trail(
                database,
                settings.audit_site_id,
                settings.audit_syslog,
                settings.audit_syslog_protocol,
            )
            trail.record(
                AuditEvent.MODEL_PROMOTED, user_id=change.by, description=change.describe()
            )
        finally:
            database.close()

    return record


def _admin(settings: Settings, by: str | None) -> str:
    """Who acts: ``--by`` or the login name; with a database it must be an active admin."""
    who = by or getpass.getuser()
    if not has_database(settings):
        return who
    from radlens.privacy.roles import Role
    from radlens.store.accounts import list_users
    from radlens.store.db import open_database

    database = open_database(settings.database_url)
    try:
        admins = {a.username for a in list_users(database) if a.role is Role.ADMIN and a.active}
    finally:
        database.close()
    if who not in admins:
        raise ForbiddenError(
            f"{who!r} is not an active admin account of this site; pass --by ADMIN "
            "(radlens users list)"
        )
    return who


def _settings(home: Path | None, db: str | None, config: Path | None) -> Settings:
    from radlens.config import load_settings

    return load_settings(home=home, db=db, config_file=config)
