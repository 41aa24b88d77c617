"""Reports: the text draft, DICOM result objects (SR, SEG, Parametric Map, SC) and FHIR.

The text draft needs nothing beyond the base install. The DICOM result objects need
highdicom and FHIR output needs fhir.resources; both come with ``radlens[reports]`` (and
with ``radlens[serve]`` and ``radlens[cluster]``), so an edge install that writes only
``findings.json`` and ``report.md`` stays small (docs/edge.md).
"""

from __future__ import annotations

from importlib.util import find_spec

from radlens.errors import ConfigError

REPORTS_EXTRA = "pip install 'radlens[reports]'"
"""What installs the libraries of the DICOM and FHIR results."""


def require_result_libraries(fhir: bool = False, dicom_results: bool = False) -> None:
    """Check, before any study is read, that the asked-for results can be written.

    Raises:
        ConfigError: FHIR or DICOM results were asked for and their library is missing.

    Example:
        >>> require_result_libraries()  # the text draft needs nothing more
    """
    wanted = [
        (option, module)
        for option, module, asked in (
            ("--fhir", "fhir.resources", fhir),
            ("--dicom-results", "highdicom", dicom_results),
        )
        if asked and not _installed(module)
    ]
    if wanted:
        options = " and ".join(option for option, _ in wanted)
        modules = ", ".join(module for _, module in wanted)
        raise ConfigError(f"{options} needs {modules}, not installed: {REPORTS_EXTRA}")


def _installed(module: str) -> bool:
    try:
        return find_spec(module) is not None
    except ModuleNotFoundError:  # the parent package (fhir) is missing
        return False
