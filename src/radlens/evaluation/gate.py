"""The evaluation gate: when a learned model version may replace the current one.

**The locked evaluation set.** One per model, built once from the recipe's ``val`` split
(all of it, or a patient-grouped share of it) and recorded in the site model store
(``<store>/<name>/locked.json``): the file list and labels with their sha256, each item's
pixel hash and, where the data name patients (a ``patient_id`` column in ``labels.csv``),
each patient's keyed hash. It is never trained on: ``radlens learn`` reads it only to
measure. Because the shipped model chose its epoch and fitted its calibration on the same
``val`` split, the current version's figures there are in-sample and the comparison leans
against the candidate: the gate is conservative. Every later use checks the data still hash
to the record (:func:`select_locked`) and that no feedback case shares a patient or an
image with it (:func:`check_disjoint`).

**The decision** (:func:`decide`), on figures measured through ONNX Runtime:

* locked-set AUC of the candidate >= the current version's - ``margins.auc`` (0.005);
* locked-set ECE of the candidate <= the current version's + ``margins.ece`` (0.01: about
  the noise floor's spread for a few hundred items, see ``docs/model-card.md``);
* on the held-back feedback cases (a share of the cases, split by ``patient_key``, never
  trained on) the candidate improves: higher AUC by more than ``margins.heldback_gain``
  (0), or, when they hold one class only, lower log loss;
* the feedback does not contradict the current version: its AUC against the readers'
  labels on all the cases is at least ``margins.feedback_auc`` (0.5, chance). The held-back
  cases carry the same labels as the rest, so labels inverted wholesale (a class-index
  mix-up in an export, say) would make the candidate "improve" there; and a candidate can
  learn such labels for the site's images alone and keep the locked set intact. Feedback
  that a validated model ranks the wrong way round needs a person to look (an admin may
  still promote with ``--force --reason``).

The report (:func:`report_markdown`, :func:`report_dict`) is stored beside the version.

Example:
    >>> margins = GateMargins()
    >>> (margins.auc, margins.ece)
    (0.005, 0.01)
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from radlens.errors import ConfigError, InputError
from radlens.evaluation.evaluate import Evaluation
from radlens.io.datasets import LabelledImages, read_labelled
from radlens.models.card import ModelCard, Task
from radlens.models.versions import model_dir, write_atomic

LOCKED_FILE = "locked.json"
KeyOf = Callable[[str], str | None]


@dataclass(frozen=True)
class GateMargins:
    """How much worse than the current version a candidate may be on the locked set, and
    how far the feedback may contradict the current version.

    Attributes:
        auc: locked-set AUC the candidate may lose.
        ece: locked-set ECE the candidate may gain.
        heldback_gain: held-back AUC the candidate must gain (more than).
        feedback_auc: the current version's AUC against the readers' labels on all the
            feedback cases must reach this (0.5: chance).
    """

    auc: float = 0.005
    ece: float = 0.01
    heldback_gain: float = 0.0
    feedback_auc: float = 0.5

    def __post_init__(self) -> None:
        if not (0 <= self.auc <= 0.1 and 0 <= self.ece <= 0.1 and self.heldback_gain >= 0):
            raise ValueError("gate margins: auc and ece in [0, 0.1], heldback_gain >= 0")
        if not 0 <= self.feedback_auc < 1:
            raise ValueError("gate margins: feedback_auc in [0, 1)")


@dataclass(frozen=True)
class LockedSet:
    """A model's locked evaluation set, as recorded (see the module docstring).

    Attributes:
        model: the model's name.
        data: the data it was drawn from, as the recipe names it.
        split: the split of ``data`` (``val``).
        fraction, seed: the share of the split's patients kept (1.0 = all) and the seed.
        files, labels: the items (ids as the data name them) and their class indices.
        patient_keys: keyed hash of each item's patient ("" where the data name none).
        image_sha256: sha256 of each item's pixels.
        sha256: of the file list and labels (:func:`items_sha256`).
    """

    model: str
    data: str
    split: str
    fraction: float
    seed: int
    files: tuple[str, ...]
    labels: tuple[int, ...]
    patient_keys: tuple[str, ...] = field(repr=False)
    image_sha256: tuple[str, ...] = field(repr=False)
    sha256: str = ""

    def __post_init__(self) -> None:
        n = len(self.files)
        if not n or not (len(self.labels) == len(self.patient_keys) == len(self.image_sha256) == n):
            raise ValueError("a locked set needs items, each with a label, patient and hash")
        if not 0 < self.fraction <= 1:
            raise ValueError("locked set fraction must lie in (0, 1]")
        expected = items_sha256(self.files, self.labels)
        if self.sha256 and self.sha256 != expected:
            raise ValueError("locked set sha256 does not match its items")
        object.__setattr__(self, "sha256", expected)


def items_sha256(files: Sequence[str], labels: Sequence[int]) -> str:
    """sha256 of ``file<TAB>label`` lines in order: what identifies a locked set.

    Example:
        >>> items_sha256(["a.png"], [1])[:12]
        'c810c4da0184'
    """
    text = "".join(f"{f}\t{int(y)}\n" for f, y in zip(files, labels, strict=True))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def image_sha256(image: np.ndarray) -> str:
    """sha256 of an image's pixels (shape, dtype and bytes), to find the same image again."""
    array = np.ascontiguousarray(image)
    digest = hashlib.sha256(f"{array.shape}{array.dtype}".encode())
    digest.update(array.tobytes())
    return digest.hexdigest()


def dataset_patient_ids(path: Path, ids: Sequence[str]) -> list[str]:
    """The ``patient_id`` of each item of a folder dataset's ``labels.csv`` ("" if none)."""
    table = path / "labels.csv"
    if not table.is_file():
        return [""] * len(ids)
    with table.open(newline="", encoding="utf-8") as fh:
        rows = {row["file"]: row.get("patient_id") or "" for row in csv.DictReader(fh)}
    return [rows.get(i, "") for i in ids]


def group_share(key: str, seed: int) -> float:
    """A number in [0, 1) fixed by ``key`` and ``seed``: groups are split by comparing it.

    Example:
        >>> 0 <= group_share("patient-1", 0) < 1
        True
    """
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def build_locked_set(
    model: str,
    data: LabelledImages,
    data_name: str,
    patient_ids: Sequence[str],
    key_of: KeyOf,
    fraction: float = 1.0,
    seed: int = 0,
) -> LockedSet:
    """The locked set of ``model`` from a split: every item, or whole patients kept with
    probability ``fraction`` (items without a patient count as their own patient)."""
    keep = [
        i
        for i, pid in enumerate(patient_ids)
        if fraction >= 1 or group_share(pid or f"item:{data.ids[i]}", seed) < fraction
    ]
    if not keep:
        raise InputError(data.source, f"no item kept at fraction {fraction}; raise it")
    return LockedSet(
        model=model,
        data=data_name,
        split=data.split,
        fraction=fraction,
        seed=seed,
        files=tuple(data.ids[i] for i in keep),
        labels=tuple(int(data.labels[i]) for i in keep),
        patient_keys=tuple(key_of(patient_ids[i]) or "" if patient_ids[i] else "" for i in keep),
        image_sha256=tuple(image_sha256(data.images[i]) for i in keep),
    )


def write_locked(locked: LockedSet, path: Path) -> None:
    """Write ``locked.json`` (refusing to replace a different one: a locked set stays)."""
    if path.exists() and read_locked(path).sha256 != locked.sha256:
        raise InputError(path, "a different locked set is recorded; it cannot be replaced")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(asdict(locked), indent=1, sort_keys=True) + "\n")


def read_locked(path: Path) -> LockedSet:
    """Read ``locked.json``.

    Raises:
        InputError: missing, unreadable, or its hash does not match its items.
    """
    try:
        raw: dict[str, Any] = json.loads(path.read_text("utf-8"))
        fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
        return LockedSet(**fields)
    except (OSError, json.JSONDecodeError, TypeError, ValueError) as exc:
        raise InputError(path, f"cannot read the locked evaluation set: {exc}") from exc


def select_locked(locked: LockedSet, data: LabelledImages) -> LabelledImages:
    """The locked items of ``data`` (the split they were drawn from), checked against the
    record: same files, same labels, same pixels.

    Raises:
        InputError: an item is missing, relabelled or its pixels changed.
    """
    index = {name: i for i, name in enumerate(data.ids)}
    missing = [f for f in locked.files if f not in index]
    if missing:
        raise InputError(
            data.source,
            f"{len(missing)} item(s) of the locked set of {locked.model} are gone "
            f"(first: {missing[0]}); the locked set must stay as recorded",
        )
    rows = [index[f] for f in locked.files]
    labels = [int(data.labels[i]) for i in rows]
    changed = [
        locked.files[k]
        for k, i in enumerate(rows)
        if labels[k] != locked.labels[k] or image_sha256(data.images[i]) != locked.image_sha256[k]
    ]
    if changed:
        raise InputError(
            data.source,
            f"{len(changed)} item(s) of the locked set of {locked.model} changed label or "
            f"pixels (first: {changed[0]}); the locked set must stay as recorded",
        )
    return replace(
        data,
        images=[data.images[i] for i in rows],
        labels=data.labels[rows],
        ids=tuple(locked.files),
        split=f"locked ({data.split})",
    )


def ensure_locked(
    store: Path,
    card: ModelCard,
    source: Path,
    data_name: str,
    key_of: KeyOf,
    fraction: float = 1.0,
    seed: int = 0,
) -> tuple[LockedSet, LabelledImages]:
    """The model's locked set (recorded now from ``source``'s ``val`` split if none is) and
    its items, checked against the record.

    Example:
        >>> locked, items = ensure_locked(store, card, Path("../shared/data/cxr_pneumonia"),
        ...                               "cxr_pneumonia", key_of)  # doctest: +SKIP
        >>> len(items) == len(locked.files)  # doctest: +SKIP
        True

    Raises:
        ConfigError: another fraction than the one recorded is asked for.
        InputError: the data no longer hold the recorded items.
    """
    path = model_dir(store, card.name) / LOCKED_FILE
    val = read_labelled(source, "val", card.labels, card.task is Task.MULTILABEL)
    if path.exists():
        locked = read_locked(path)
        if fraction != 1.0 and fraction != locked.fraction:
            raise ConfigError(
                f"{card.name}: its locked set was recorded with fraction {locked.fraction}; "
                "a locked set is never changed"
            )
    else:
        ids = dataset_patient_ids(source, val.ids) if source.is_dir() else [""] * len(val)
        locked = build_locked_set(card.name, val, data_name, ids, key_of, fraction, seed)
        write_locked(locked, path)
    return locked, select_locked(locked, val)


def check_disjoint(
    locked: LockedSet, patient_keys: Sequence[str], image_hashes: Sequence[str], where: str
) -> None:
    """Refuse feedback cases that share a patient or an image with the locked set.

    Raises:
        InputError: naming how many cases overlap (never the keys themselves).
    """
    patients = set(locked.patient_keys) - {""}
    shared = {k for k in patient_keys if k and k in patients}
    images = set(locked.image_sha256) & set(image_hashes)
    if shared or images:
        raise InputError(
            where,
            f"{len(shared)} patient(s) and {len(images)} image(s) of these cases are in the "
            f"locked evaluation set of {locked.model}; a model is never trained on its locked "
            "set's patients: remove those cases",
        )


def split_by_patient(
    patient_keys: Sequence[str], tune: float, heldback: float, seed: int = 0
) -> np.ndarray:
    """``train``, ``tune`` or ``heldback`` per case; a patient's cases stay together.

    Example:
        >>> split_by_patient(["a", "a", "b"], 0.0, 0.0).tolist()
        ['train', 'train', 'train']
    """
    if tune < 0 or heldback < 0 or tune + heldback >= 1:
        raise ValueError("tune and heldback shares must be >= 0 and sum below 1")
    parts = []
    for key in patient_keys:
        share = group_share(key, seed)
        parts.append(
            "heldback" if share < heldback else "tune" if share < heldback + tune else "train"
        )
    return np.array(parts, dtype=object)


@dataclass(frozen=True)
class Check:
    """One condition of the gate and whether it held."""

    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class GateReport:
    """The gate's verdict on a candidate and the figures it rests on."""

    model: str
    candidate: str
    current: str
    locked_sha256: str
    margins: GateMargins
    figures: dict[str, dict[str, float]]
    checks: tuple[Check, ...]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)


def _figures(ev: Evaluation) -> dict[str, float]:
    keys = ("auc", "ece", "nll", "acc")
    return {k: round(float(ev.metrics[k]), 6) for k in keys if k in ev.metrics} | {"n": ev.n}


def decide(
    candidate_locked: Evaluation,
    current_locked: Evaluation,
    candidate_heldback: Evaluation,
    current_heldback: Evaluation,
    margins: GateMargins,
    locked_sha256: str,
    current_cases: Evaluation | None = None,
) -> GateReport:
    """Apply the gate (see the module docstring) to the evaluations: both versions on the
    locked set and the held-back cases, and (``current_cases``) the current version on all
    the feedback cases."""
    c, p = candidate_locked.metrics, current_locked.metrics
    auc_drop = p["auc"] - c["auc"]
    ece_rise = c["ece"] - p["ece"]
    checks = [
        Check(
            "locked AUC",
            bool(auc_drop <= margins.auc + 1e-12),
            f"{c['auc']:.4f} vs {p['auc']:.4f} (change {-auc_drop:+.4f}, "
            f"may fall by {margins.auc:.3f})",
        ),
        Check(
            "locked ECE",
            bool(ece_rise <= margins.ece + 1e-12),
            f"{c['ece']:.4f} vs {p['ece']:.4f} (change {ece_rise:+.4f}, "
            f"may rise by {margins.ece:.3f})",
        ),
        _heldback_check(candidate_heldback, current_heldback, margins),
    ]
    figures = {
        "locked_candidate": _figures(candidate_locked),
        "locked_current": _figures(current_locked),
        "heldback_candidate": _figures(candidate_heldback),
        "heldback_current": _figures(current_heldback),
    }
    if current_cases is not None:
        checks.append(_feedback_check(current_cases, margins))
        figures["cases_current"] = _figures(current_cases)
    return GateReport(
        candidate_locked.model,
        candidate_locked.version,
        current_locked.version,
        locked_sha256,
        margins,
        figures,
        tuple(checks),
    )


def _heldback_check(cand: Evaluation, curr: Evaluation, margins: GateMargins) -> Check:
    if cand.n == 0:
        return Check("held-back cases", False, "no held-back cases: give more feedback cases")
    a, b = cand.metrics["auc"], curr.metrics["auc"]
    if not (math.isnan(a) or math.isnan(b)):
        return Check(
            "held-back AUC",
            bool(a - b > margins.heldback_gain),
            f"{a:.4f} vs {b:.4f} on {cand.n} cases (change {a - b:+.4f}, "
            f"must rise by more than {margins.heldback_gain:.3f})",
        )
    a, b = cand.metrics["nll"], curr.metrics["nll"]
    return Check(
        "held-back log loss",
        bool(a < b),
        f"{a:.4f} vs {b:.4f} on {cand.n} cases of one class (AUC undefined); must fall",
    )


def _feedback_check(current: Evaluation, margins: GateMargins) -> Check:
    auc = current.metrics["auc"]
    if math.isnan(auc):
        return Check(
            "feedback vs current version", True, f"{current.n} cases of one class: not checked"
        )
    return Check(
        "feedback vs current version",
        bool(auc >= margins.feedback_auc),
        f"current version's AUC against the readers' labels {auc:.4f} on {current.n} cases "
        f"(must reach {margins.feedback_auc:.2f}; below means the labels contradict it)",
    )


def report_dict(report: GateReport) -> dict[str, Any]:
    """The JSON form of a report (``gate.json``)."""
    return {
        "model": report.model,
        "candidate": report.candidate,
        "current": report.current,
        "passed": report.passed,
        "locked_sha256": report.locked_sha256,
        "margins": asdict(report.margins),
        "figures": report.figures,
        "checks": [asdict(c) for c in report.checks],
    }


def report_markdown(report: GateReport) -> str:
    """The human-readable report (``gate.md``)."""
    verdict = "PASSED: promotable" if report.passed else "FAILED: not promotable"
    lines = [
        f"# Evaluation gate: {report.model} {report.candidate} vs {report.current}",
        "",
        f"**{verdict}**",
        "",
        f"Locked evaluation set sha256 `{report.locked_sha256}`.",
        "",
        "| check | result | detail |",
        "|---|---|---|",
        *(f"| {c.name} | {'pass' if c.passed else 'FAIL'} | {c.detail} |" for c in report.checks),
        "",
        "| set | model | n | AUC | ECE | NLL | ACC |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, figures in report.figures.items():
        where, who = key.split("_")
        version = report.candidate if who == "candidate" else report.current
        cells = [f"{figures[k]:.4f}" if k in figures else "-" for k in ("auc", "ece", "nll", "acc")]
        lines.append(f"| {where} | {version} | {int(figures['n'])} | {' | '.join(cells)} |")
    lines += [
        "",
        "Figures through ONNX Runtime with each version's own calibration. The locked set is "
        "never trained on; the held-back cases are feedback cases of patients not used for "
        "training. AI draft models require physician review.",
        "",
    ]
    return "\n".join(lines)
