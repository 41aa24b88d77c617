"""``to_dicom_results``: every DICOM result object of one analyzed study.

- ``sr.dcm``: one TID 1500 Measurement Report of every finding made on a DICOM image
  (:mod:`radlens.report.sr`);
- ``pm_<n>.dcm``: one Parametric Map per finding with a heatmap on a 2D image with plane
  geometry: one in a frame of reference, or a single-frame image (CR, DX, ultrasound) whose
  Patient Orientation names its axes (:mod:`radlens.report.pm`); others keep their heatmap
  in the overlay;
- ``seg_<n>.dcm``: one Segmentation per finding with a mask (:mod:`radlens.report.seg`).

Objects of one kind share one new series of the source study, except Parametric Maps:
one series per frame of reference, as a series has one (PS3.3 C.7.4.1.1.1), so maps of
two projection images, each in a frame of its own, are two series. What cannot be made
(a NIfTI or PNG input, an ultrasound heatmap without Patient Orientation, a mask that
does not fit) is skipped with its reason,
so one unsuitable finding never costs the others their objects. ``analyze --dicom-results``
writes these files; ``net.pacs.push_results`` STOW-RSes them into the PACS.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from radlens.domain.coding import finding_concept
from radlens.domain.findings import Finding, StudyResult
from radlens.domain.imaging import Instance, Study
from radlens.errors import InputError
from radlens.io.dicom import read_dataset
from radlens.report.pm import frame_of_reference, to_parametric_map
from radlens.report.seg import to_dicom_seg
from radlens.report.sr import to_dicom_sr


@dataclass(frozen=True, eq=False)
class DicomResult:
    """One object to write or send: its file name and data set."""

    name: str
    dataset: Dataset


@dataclass(frozen=True, eq=False)
class DicomResults:
    """The objects made for a study, and why the others were not."""

    objects: tuple[DicomResult, ...]
    skipped: tuple[str, ...] = ()


def to_dicom_results(study: Study, result: StudyResult) -> DicomResults:
    """SR, Parametric Maps and SEGs for the findings of ``result`` in ``study``.

    Example:
        >>> made = to_dicom_results(study, analysis.result)  # doctest: +SKIP
        >>> [o.name for o in made.objects]  # doctest: +SKIP
        ['sr.dcm']
    """
    instances = {i.sop_instance_uid: i for s in study.series for i in s.instances}
    sources: dict[str, Dataset] = {}
    skipped: list[str] = []
    usable: list[Finding] = []
    for finding in result.findings:
        source = _source(finding, instances, sources, skipped)
        if source is not None:
            usable.append(finding)
    objects: list[DicomResult] = []
    if usable:
        try:
            images = dict.fromkeys(f.sop_instance_uid for f in usable)
            sr = to_dicom_sr([sources[uid] for uid in images], usable)
            objects.append(DicomResult("sr.dcm", sr))
        except InputError as exc:
            skipped.append(f"no SR: {exc.reason}")
    pm_series: dict[str, str] = {}  # Frame of Reference UID -> series
    seg_series = generate_uid()
    for finding in (f for f in usable if f.heatmap is not None):
        number = sum(o.name.startswith("pm_") for o in objects) + 1
        source = sources[finding.sop_instance_uid]
        series = pm_series.setdefault(frame_of_reference(source), generate_uid())
        try:
            pm = to_parametric_map(source, finding, series, number)
            objects.append(DicomResult(f"pm_{number}.dcm", pm))
        except InputError as exc:
            skipped.append(f"no Parametric Map: {exc.reason}")
    for finding in (f for f in usable if f.mask is not None):
        assert finding.mask is not None  # for mypy: filtered above
        number = sum(o.name.startswith("seg_") for o in objects) + 1
        try:
            seg = to_dicom_seg(
                [sources[finding.sop_instance_uid]],
                finding.mask,
                finding_concept(finding.code, finding.label),
                finding.model_name,
                finding.model_version,
                label=finding.label,
                series_uid=seg_series,
                instance_number=number,
            )
            objects.append(DicomResult(f"seg_{number}.dcm", seg))
        except InputError as exc:
            skipped.append(f"no SEG of {finding.label} ({finding.model_name}): {exc.reason}")
    return DicomResults(tuple(objects), tuple(dict.fromkeys(skipped)))


def _source(
    finding: Finding,
    instances: dict[str, Instance],
    sources: dict[str, Dataset],
    skipped: list[str],
) -> Dataset | None:
    """The data set of the image a finding was made on (read once), or None with a reason."""
    uid = finding.sop_instance_uid
    if uid in sources:
        return sources[uid]
    instance = instances.get(uid)
    if instance is None:
        skipped.append(f"no DICOM objects for {finding.label}: its image is not in the study")
        return None
    if not instance.sop_class_uid:  # NIfTI, PNG, JPEG: no study to join
        skipped.append("no DICOM objects for findings on non-DICOM images (no study to join)")
        return None
    try:
        dataset = read_dataset(instance)
    except InputError as exc:
        skipped.append(f"no DICOM objects for {finding.label}: {exc.reason}")
        return None
    sources[uid] = dataset
    return dataset
