"""The site model store: every version of every model, the active one, and who changed it.

A model that learns from a site's radiologists (``radlens learn``) gets new versions; none
is ever overwritten or deleted, and none takes over until an admin promotes it (or the
site's policy promotes a version that passed the evaluation gate). The store is a folder,
``<home>/models`` by default (``Settings.model_store_dir``)::

    <store>/<name>/
        active          the active version number (written atomically)
        history.jsonl   one line per promotion or rollback: when, who, from, to, why
        locked.json     the model's locked evaluation set (``radlens.evaluation.gate``)
        1/              the model as installed (shipped zoo or an extra folder), copied
                        the first time the site locks or learns: version 1, the fallback
        2/              a learned version: model.onnx + card.json (+ ood*.npz,
                        state_dict.pt, learn.log) + version.json + gate.json + gate.md

``version.json`` says where a version came from (``installed`` or ``learned``, its parent,
the cases it learned from); ``gate.json`` is the gate's verdict. The registry's
:func:`~radlens.models.registry.discover` serves the active version of a model that has
one and the installed folder otherwise.

Rollback walks back the promotions: each promotion pushes a version and each rollback pops
one, so two rollbacks after promoting 2 and then 3 bring back 1.

Example:
    >>> add_installed(store, load_model(zoo_folder() / "cxr_pneumonia"))  # doctest: +SKIP
    >>> promote(store, "cxr_pneumonia", 2, by="admin").to_version  # doctest: +SKIP
    2
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from radlens.errors import ConflictError, InvalidModelCardError, NotFoundError
from radlens.models.registry import InstalledModel, load_model

ACTIVE_FILE = "active"
HISTORY_FILE = "history.jsonl"
VERSION_FILE = "version.json"
GATE_FILE = "gate.json"
BASELINE = 1
"""The version number of the model as installed."""

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


@dataclass(frozen=True)
class ModelVersion:
    """One stored version of a model.

    Attributes:
        name: the model's name.
        number: the store's version number (1 = as installed).
        folder: the version's model folder.
        card_version: the ``version`` its card states (what findings record).
        origin: ``installed`` or ``learned``.
        parent: the version it was fine-tuned from (None for the installed one).
        created_at: ISO 8601 time it entered the store (UTC).
        gate_passed: the gate's verdict; None when it was never gated (version 1).
        active: whether it is the active version.
    """

    name: str
    number: int
    folder: Path
    card_version: str
    origin: str
    parent: int | None
    created_at: str
    gate_passed: bool | None
    active: bool


@dataclass(frozen=True)
class Promotion:
    """One change of the active version, as recorded in ``history.jsonl``.

    Attributes:
        action: ``promote``, ``auto-promote`` (site policy, gate passed) or ``rollback``.
        from_version: the version active before (None: the installed folder, no pointer).
        forced_reason: why a version that failed (or skipped) the gate was promoted.
    """

    name: str
    action: str
    from_version: int | None
    to_version: int
    by: str
    at: str
    gate_passed: bool | None
    forced_reason: str = ""
    reason: str = ""

    def describe(self) -> str:
        """One line for logs and the audit trail.

        Example:
            >>> Promotion("m", "promote", 1, 2, "ana", "t", True).describe()
            'm: version 1 -> 2 (promote by ana; gate passed)'
        """
        gate = {True: "gate passed", False: "gate FAILED", None: "not gated"}[self.gate_passed]
        text = (
            f"{self.name}: version {self.from_version or BASELINE} -> {self.to_version} "
            f"({self.action} by {self.by}; {gate}"
        )
        if self.forced_reason:
            text += f"; forced: {self.forced_reason}"
        if self.reason:
            text += f"; {self.reason}"
        return text + ")"


OnChange = Callable[[Promotion], None]


def model_dir(store: Path, name: str) -> Path:
    """``<store>/<name>``, after checking ``name`` is a plain model name."""
    if not _NAME.match(name):
        raise NotFoundError(f"{name!r} is not a model name")
    return store / name


def active_version(store: Path, name: str) -> int | None:
    """The active version number, or None when the site never changed it (installed)."""
    path = model_dir(store, name) / ACTIVE_FILE
    try:
        text = path.read_text("ascii").strip()
    except FileNotFoundError:
        return None
    if not text.isdigit():
        raise ConflictError(f"{path}: damaged active pointer {text[:20]!r}; restore it")
    return int(text)


def active_folders(store: Path | None) -> dict[str, Path]:
    """Model name -> folder of its active version, for every model with a pointer.

    Example:
        >>> active_folders(Path("/nonexistent"))
        {}
    """
    if store is None or not store.is_dir():
        return {}
    found = {}
    for folder in sorted(p for p in store.iterdir() if (p / ACTIVE_FILE).is_file()):
        number = active_version(store, folder.name)
        if number is not None:
            found[folder.name] = folder / str(number)
    return found


def version_folder(store: Path, name: str, number: int) -> Path:
    """The folder of one version.

    Raises:
        NotFoundError: the store has no such version.
    """
    folder = model_dir(store, name) / str(number)
    if not (folder / "card.json").is_file():
        have = [v.number for v in list_versions(store, name)]
        raise NotFoundError(f"{name}: no version {number} in {store}; versions: {have or 'none'}")
    return folder


def list_versions(store: Path, name: str) -> list[ModelVersion]:
    """Every stored version of ``name``, oldest first."""
    root = model_dir(store, name)
    if not root.is_dir():
        return []
    current = active_version(store, name)
    found = []
    numbers = sorted(int(p.name) for p in root.iterdir() if p.name.isdigit() and p.is_dir())
    for number in numbers:
        folder = root / str(number)
        meta = _read_json(folder / VERSION_FILE)
        gate = _read_json(folder / GATE_FILE) if (folder / GATE_FILE).exists() else None
        card = _read_json(folder / "card.json")
        found.append(
            ModelVersion(
                name=name,
                number=number,
                folder=folder,
                card_version=str(card.get("version", "")),
                origin=str(meta.get("origin", "")),
                parent=meta.get("parent"),
                created_at=str(meta.get("created_at", "")),
                gate_passed=None if gate is None else bool(gate.get("passed")),
                active=number == (current or BASELINE),
            )
        )
    return found


def read_lineage(folder: Path) -> dict[str, Any]:
    """``version.json`` of a version folder (origin, parent, cases, ...)."""
    return _read_json(folder / VERSION_FILE)


def add_installed(store: Path, model: InstalledModel) -> ModelVersion:
    """Copy the installed model in as version 1, once; later calls return it unchanged.

    Version 1 is a copy so that every version stays even when an upgrade of radlens ships
    other weights under the same name.
    """
    name = model.card.name
    with _locked(store, name):
        if not (model_dir(store, name) / str(BASELINE) / "card.json").exists():
            lineage = {"origin": "installed", "parent": None, "source": str(model.folder)}
            _copy_in(model.folder, model_dir(store, name), BASELINE, lineage)
    return _version(store, name, BASELINE)


def active_model(store: Path, installed: InstalledModel) -> InstalledModel:
    """The version of ``installed``'s model active at this site, with the installed model
    copied in as version 1 first (see :func:`add_installed`).

    Example:
        >>> active_model(store, installed).folder.name  # doctest: +SKIP
        '1'
    """
    name = installed.card.name
    add_installed(store, installed)
    number = active_version(store, name) or BASELINE
    return load_model(version_folder(store, name, number))


def next_version(store: Path, name: str) -> int:
    """The number a new version of ``name`` would get."""
    return max((v.number for v in list_versions(store, name)), default=BASELINE) + 1


def add_version(store: Path, folder: Path, lineage: dict[str, Any]) -> ModelVersion:
    """Copy a learned model folder into the store as its next version.

    The card's version must not be in the store yet; ``lineage`` goes to ``version.json``
    (with ``origin`` = ``learned``). The copy is verified by the registry before it is kept.

    Raises:
        ConflictError: another version took that number meanwhile.
    """
    model = load_model(folder)
    name = model.card.name
    with _locked(store, name):
        number = int(lineage.get("number") or next_version(store, name))
        if (model_dir(store, name) / str(number)).exists():
            raise ConflictError(f"{name}: version {number} exists already; learn again")
        _copy_in(folder, model_dir(store, name), number, {"origin": "learned", **lineage})
    return _version(store, name, number)


def write_gate(folder: Path, verdict: dict[str, Any]) -> None:
    """Store the gate's verdict (``passed`` and its figures) beside a version's card."""
    write_atomic(folder / GATE_FILE, json.dumps(verdict, indent=2, sort_keys=True) + "\n")


def history(store: Path, name: str) -> list[Promotion]:
    """Every promotion and rollback of ``name``, oldest first."""
    path = model_dir(store, name) / HISTORY_FILE
    if not path.exists():
        return []
    lines = path.read_text("utf-8").splitlines()
    return [Promotion(**json.loads(line)) for line in lines if line.strip()]


def promote(
    store: Path,
    name: str,
    number: int,
    *,
    by: str,
    force: bool = False,
    forced_reason: str = "",
    automatic: bool = False,
    on_change: OnChange | None = None,
) -> Promotion:
    """Make version ``number`` the active one.

    A learned version must have passed the evaluation gate; ``force`` overrides a failed
    (or missing) verdict and needs ``forced_reason``, which is recorded. ``automatic``
    marks a promotion made by the site's policy (only for a version that passed).

    Raises:
        NotFoundError: no such version.
        ConflictError: the version failed the gate (without ``force``), or is active already.
    """
    if force and not forced_reason.strip():
        raise ConflictError("--force needs --reason: say why the gate is overridden")
    with _locked(store, name):
        target = _version(store, name, number)
        if target.active:
            raise ConflictError(f"{name}: version {number} is active already")
        if target.origin == "learned" and target.gate_passed is not True:
            verdict = "failed" if target.gate_passed is False else "has no verdict of"
            if not force or automatic:
                raise ConflictError(
                    f"{name}: version {number} {verdict} the evaluation gate "
                    f"(see {target.folder / 'gate.md'}); an admin may override it with "
                    "--force --reason TEXT, which is recorded"
                )
        change = Promotion(
            name=name,
            action="auto-promote" if automatic else "promote",
            from_version=active_version(store, name),
            to_version=number,
            by=by,
            at=_now(),
            gate_passed=target.gate_passed,
            forced_reason=forced_reason.strip() if force else "",
        )
        _switch(store, change)
    if on_change is not None:
        on_change(change)
    return change


def rollback(
    store: Path, name: str, *, by: str, reason: str = "", on_change: OnChange | None = None
) -> Promotion:
    """Restore the version that was active before the current one.

    Raises:
        ConflictError: nothing to roll back to (the installed version is active).
    """
    with _locked(store, name):
        stack = _active_stack(history(store, name))
        current = active_version(store, name) or BASELINE
        if len(stack) < 2 or stack[-1] != current:
            raise ConflictError(
                f"{name}: version {current} is active and no earlier promotion is on record; "
                "nothing to roll back to (promote a version by number instead)"
            )
        previous = stack[-2]
        target = _version(store, name, previous)
        change = Promotion(
            name=name,
            action="rollback",
            from_version=current,
            to_version=previous,
            by=by,
            at=_now(),
            gate_passed=target.gate_passed,
            reason=reason.strip(),
        )
        _switch(store, change)
    if on_change is not None:
        on_change(change)
    return change


def _active_stack(changes: list[Promotion]) -> list[int]:
    """The versions made active, in order, with each rollback taking the last one off."""
    stack = [BASELINE]
    for change in changes:
        if change.action == "rollback":
            if len(stack) > 1:
                stack.pop()
        else:
            stack.append(change.to_version)
    return stack


def _switch(store: Path, change: Promotion) -> None:
    root = model_dir(store, change.name)
    with (root / HISTORY_FILE).open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(asdict(change), sort_keys=True) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    write_atomic(root / ACTIVE_FILE, f"{change.to_version}\n")


def _version(store: Path, name: str, number: int) -> ModelVersion:
    version_folder(store, name, number)
    return next(v for v in list_versions(store, name) if v.number == number)


def _copy_in(source: Path, root: Path, number: int, lineage: dict[str, Any]) -> None:
    """Copy ``source`` to ``root/number`` through a temporary folder, then rename."""
    root.mkdir(parents=True, exist_ok=True)
    temp = root / f".{number}-{uuid.uuid4().hex}.tmp"
    shutil.copytree(source, temp, ignore=shutil.ignore_patterns("*.tmp", "__pycache__"))
    meta = {"created_at": _now(), "number": number, **lineage}
    (temp / VERSION_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", "utf-8")
    try:
        load_model(temp)  # hash-verified before it becomes a version
        temp.rename(root / str(number))
    finally:
        if temp.exists():
            shutil.rmtree(temp)
    _fsync_dir(root)


@contextmanager
def _locked(store: Path, name: str) -> Iterator[None]:
    """One writer per model at a time (an advisory lock on ``<store>/<name>/.lock``)."""
    root = model_dir(store, name)
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".lock").open("a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` so a reader sees the old or the new file, never a part (temporary file,
    fsync, rename, fsync of the folder)."""
    temp = path.with_name(f".{path.name}-{uuid.uuid4().hex}.tmp")
    with temp.open("w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    temp.replace(path)
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, json.JSONDecodeError) as exc:
        raise InvalidModelCardError(f"{path}: cannot read: {exc}") from exc
    return data if isinstance(data, dict) else {}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
