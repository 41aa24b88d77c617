"""The radlens exception tree.

Every error radlens raises on purpose is a ``RadlensError``. Each also subclasses the
matching builtin, so ``except ValueError`` in a caller still works::

    RadlensError(Exception)
    ├── InputError(ValueError)                  bad input; the CLI exits 2, the server answers 4xx
    │   ├── NotDicomError                       not a DICOM file (no preamble, no parsable elements)
    │   ├── TruncatedFileError                  the file ends before its data set does
    │   ├── MissingFileMetaError                no file meta (only raised when reading strictly)
    │   ├── UnsupportedTransferSyntaxError      no installed decoder handles the syntax
    │   ├── PixelDataError                      pixel data missing, too short or undecodable
    │   ├── NotAnImageError                     a valid object without pixels (SR, RT plan, ECG)
    │   ├── UnsupportedFormatError              a file that is none of DICOM, NIfTI, PNG, JPEG
    │   ├── EmptyInputError                     a folder or zip with nothing readable in it
    │   ├── UnreadableArchiveError              a zip that cannot be opened (or a zip bomb)
    │   ├── TooLargeError                       over a configured size cap (the server answers 413)
    │   ├── IncompatibleInputError              an image that does not fit the model's input spec
    │   ├── BurnedInAnnotationError             pixels that may show patient data: quarantined
    │   └── DeidentificationError               a file that cannot be de-identified safely
    ├── ModelError
    │   ├── ModelNotFoundError(LookupError)     no model with that name is installed
    │   ├── ModelIntegrityError                 weights whose sha256 differs from the card
    │   ├── InvalidModelCardError(ValueError)   a card.json that does not follow the schema
    │   └── UnsupportedTaskError(ValueError)    an operation that does not apply to the model's task
    ├── InferenceError(RuntimeError)            the backend failed on a valid input
    ├── ConfigError(ValueError)                 settings that cannot work
    ├── NotFoundError(LookupError)              no stored study, finding or file by that id (404)
    ├── AuthError(PermissionError)              not logged in, or a wrong name or password (401)
    ├── ForbiddenError(PermissionError)         logged in, but the role or owner rule says no (403)
    ├── TooManyRequestsError                    too many failed logins; retry later (429)
    ├── ConflictError                           the request clashes with the state (409)
    ├── DicomWebError(ConnectionError)          a DICOMweb server unreachable or refusing (502)
    ├── DicomNetworkError(ConnectionError)      a DICOM peer unreachable, refusing, or failing TLS
    └── BundleError(RuntimeError)               an offline bundle that cannot be built or verified

Input errors carry the offending ``path`` and a one-line ``reason``; ``str(error)`` is
``"<path>: <reason>"``, the line the CLI prints. Messages never contain patient data.
"""

from __future__ import annotations

from pathlib import Path


class RadlensError(Exception):
    """Base of every error radlens raises on purpose."""


class InputError(RadlensError, ValueError):
    """An input that radlens cannot use. Names the file and says why."""

    def __init__(self, path: str | Path | None, reason: str) -> None:
        self.path = str(path) if path is not None else None
        self.reason = reason
        super().__init__(f"{self.path}: {reason}" if self.path else reason)

    @property
    def kind(self) -> str:
        """Short machine-readable name of the error, e.g. ``"truncated_file"``."""
        return _snake(type(self).__name__.removesuffix("Error"))


class NotDicomError(InputError):
    """The file is not DICOM."""


class TruncatedFileError(InputError):
    """The file ends before its data set does."""


class MissingFileMetaError(InputError):
    """The file has no file meta information group (strict reading only)."""


class UnsupportedTransferSyntaxError(InputError):
    """No installed decoder handles the transfer syntax."""


class PixelDataError(InputError):
    """Pixel data are missing, too short, or cannot be decoded."""


class NotAnImageError(InputError):
    """A valid DICOM object that holds no image (SR, RT plan, waveform)."""


class UnsupportedFormatError(InputError):
    """A file that is none of the formats radlens reads."""


class EmptyInputError(InputError):
    """A folder or archive with no readable file in it."""


class UnreadableArchiveError(InputError):
    """An archive that cannot be opened."""


class TooLargeError(InputError):
    """An input over a configured size cap (an upload, a received instance)."""


class IncompatibleInputError(InputError):
    """An image that does not fit the model's input specification."""


class BurnedInAnnotationError(InputError):
    """An image whose pixels may show patient data (burned-in annotation, PS3.15 E.1.1).

    De-identification quarantines it: not written, listed with the rule that caught it.
    """


class DeidentificationError(InputError):
    """A file that cannot be de-identified safely (an element that cannot be interpreted,
    a structured report whose text tree is not cleaned, pixels that cannot be decoded)."""


class ModelError(RadlensError):
    """A model that cannot be used."""


class ModelNotFoundError(ModelError, LookupError):
    """No model with that name is installed."""


class ModelIntegrityError(ModelError):
    """The weights' sha256 differs from the one in the card."""


class InvalidModelCardError(ModelError, ValueError):
    """A card that does not follow the schema."""


class UnsupportedTaskError(ModelError, ValueError):
    """An operation that does not apply to the model's task (calibrating a segmenter)."""


class InferenceError(RadlensError, RuntimeError):
    """The inference backend failed on an input it accepted."""


class ConfigError(RadlensError, ValueError):
    """Settings that cannot work."""


class NotFoundError(RadlensError, LookupError):
    """Nothing stored under that identifier (a study, finding, instance)."""


class AuthError(RadlensError, PermissionError):
    """Not logged in, or the name or password is wrong (never says which)."""


class ForbiddenError(RadlensError, PermissionError):
    """Logged in, but the account's role (or the object's owner rule) does not allow it."""


class TooManyRequestsError(RadlensError):
    """Too many failed logins for a name or a client address; ``retry_after_s`` says when."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(message)


class ConflictError(RadlensError):
    """The request clashes with the current state, e.g. editing a signed report."""


class DicomWebError(RadlensError, ConnectionError):
    """The DICOMweb server could not be reached or refused a request.

    The message names the server without credentials and the HTTP status, if any.
    """


class DicomNetworkError(RadlensError, ConnectionError):
    """A DICOM peer (C-ECHO, C-STORE SCU) could not be reached, refused the association,
    or failed the TLS handshake (its certificate or host name did not verify)."""


class BundleError(RadlensError, RuntimeError):
    """An offline bundle (``radlens bundle``) that cannot be built, or whose files do not
    match its manifest. The message names the step or the file and says what to do."""


def _snake(name: str) -> str:
    out = [name[0].lower()]
    for ch in name[1:]:
        out.append(f"_{ch.lower()}" if ch.isupper() else ch)
    return "".join(out)
