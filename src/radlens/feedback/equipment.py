"""Where an image was made: site and scanner, from the DICOM General Equipment module.

Monitoring and the learning queue group images by the equipment that made them (PS3.3
C.7.5.1: Manufacturer (0008,0070), Manufacturer's Model Name (0008,1090), Station Name
(0008,1010)). The *scanner* is the make and model; the *site* is the station (a named
device at a place); the *stratum* is all three, the unit the learning queue samples fairly
across.

Example:
    >>> e = Equipment("ACME", "Scan 3000", "CT01")
    >>> e.scanner, e.site, e.stratum
    ('ACME Scan 3000', 'CT01', 'ACME Scan 3000 @ CT01')
    >>> Equipment().stratum
    'unknown scanner @ unknown station'
"""

from __future__ import annotations

from dataclasses import dataclass

UNKNOWN_SCANNER = "unknown scanner"
UNKNOWN_SITE = "unknown station"


@dataclass(frozen=True, order=True)
class Equipment:
    """Manufacturer, model name and station name of a series ("" when not recorded)."""

    manufacturer: str = ""
    manufacturer_model: str = ""
    station_name: str = ""

    @property
    def scanner(self) -> str:
        return " ".join(p for p in (self.manufacturer, self.manufacturer_model) if p) or (
            UNKNOWN_SCANNER
        )

    @property
    def site(self) -> str:
        return self.station_name or UNKNOWN_SITE

    @property
    def stratum(self) -> str:
        return f"{self.scanner} @ {self.site}"
