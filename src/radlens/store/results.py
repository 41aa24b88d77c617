"""What the reading room keeps of an analysis besides the findings document.

- Every finding gets a stable id (:func:`radlens.domain.findings.finding_id`): the same
  model's same label on the same image frame keeps its id when the study is analyzed
  again, so a reader's decision still points at it.
- Heatmaps are stored as 8-bit grayscale PNG files under ``<storage>/results/``, named by
  hashes, never by dataset values (:func:`heatmap_path`).
"""

from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image as PILImage

from radlens.domain.findings import StudyResult, finding_id
from radlens.errors import NotFoundError
from radlens.explain.overlay import heatmap_rgba
from radlens.privacy.crypto import KeyRing
from radlens.store.files import read_stored, validate_uid, write_stored

_FINDING_ID = re.compile(r"^[0-9a-f]{16}$")


def annotate(document: dict[str, Any], result: StudyResult) -> dict[str, Any]:
    """Add ``id`` and ``has_heatmap`` to each finding of ``document`` (``to_json(result)``)."""
    for series_doc, series in zip(document["series"], result.series, strict=True):
        for finding_doc, finding in zip(series_doc["findings"], series.findings, strict=True):
            finding_doc["id"] = finding_id(series.series_instance_uid, finding)
            finding_doc["has_heatmap"] = finding.heatmap is not None
    return document


def save_heatmaps(storage_dir: Path, result: StudyResult, keys: KeyRing | None = None) -> int:
    """Write the heatmap of every finding that has one (sealed under ``keys``); return how
    many."""
    written = 0
    for series in result.series:
        for finding in series.findings:
            if finding.heatmap is None:
                continue
            path = heatmap_path(
                storage_dir,
                result.study_instance_uid,
                finding_id(series.series_instance_uid, finding),
            )
            gray = np.clip(np.rint(finding.heatmap * 255), 0, 255).astype(np.uint8)
            buffer = io.BytesIO()
            PILImage.fromarray(gray, mode="L").save(buffer, format="PNG")
            write_stored(storage_dir, path, buffer.getvalue(), keys)
            written += 1
    return written


def heatmap_path(storage_dir: Path, study_uid: str, fid: str) -> Path:
    """Where a finding's heatmap is stored.

    Raises:
        NotFoundError: ``fid`` is not a finding id (it never reaches the file system).
    """
    if not _FINDING_ID.match(fid):
        raise NotFoundError("no finding with this id")
    digest = hashlib.sha256(validate_uid(study_uid, "Study Instance UID").encode()).hexdigest()
    return storage_dir / "results" / digest[:2] / digest / f"{fid}.png"


def heatmap_png(storage_dir: Path, study_uid: str, fid: str, keys: KeyRing | None = None) -> bytes:
    """The stored heatmap as a colour RGBA PNG (transparent where the map is low).

    Raises:
        NotFoundError: no heatmap is stored for this finding.
    """
    path = heatmap_path(storage_dir, study_uid, fid)
    try:
        stored = read_stored(storage_dir, path, keys)
    except FileNotFoundError:
        raise NotFoundError("no heatmap for this finding") from None
    with PILImage.open(io.BytesIO(stored)) as image:
        gray = np.asarray(image.convert("L"), np.float32) / 255.0
    buffer = io.BytesIO()
    PILImage.fromarray(heatmap_rgba(gray), mode="RGBA").save(buffer, format="PNG")
    return buffer.getvalue()
