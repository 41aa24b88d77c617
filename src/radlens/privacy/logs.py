"""PHI-safe logging: keep values out of the records of libraries that quote them.

pydicom logs an invalid value with the value itself (``Invalid value for VR DA:
'<the birth date>'``) through its ``pydicom`` logger, besides the warning radlens
catches, so a patient's name or birth date could reach a site's log files.
:class:`RedactQuotedValues` replaces every quoted string of such a record with
``'<withheld>'``; :func:`install_log_filters` puts it on those loggers, once. radlens's
own records need no filter: they never carry patient data (errors name files and
reasons; studies are logged by UID at most). ``tests/test_phi_logging.py`` checks both.
"""

from __future__ import annotations

import logging
import re

QUOTING_LOGGERS = ("pydicom",)
"""Loggers of libraries that quote data element values in their messages."""

_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


class RedactQuotedValues(logging.Filter):
    """Replace every quoted string of a record's message with ``'<withheld>'``.

    Example:
        >>> record = logging.makeLogRecord({"msg": "Invalid value for VR DA: '%s'.",
        ...                                 "args": ("19371113x",)})
        >>> RedactQuotedValues().filter(record), record.getMessage()
        (True, "Invalid value for VR DA: '<withheld>'.")
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = _QUOTED.sub("'<withheld>'", message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def install_log_filters(loggers: tuple[str, ...] = QUOTING_LOGGERS) -> None:
    """Put :class:`RedactQuotedValues` on each logger (idempotent)."""
    for name in loggers:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactQuotedValues) for f in logger.filters):
            logger.addFilter(RedactQuotedValues())
