"""Exception hierarchy for medbench.

Every error raised on purpose by medbench is a :class:`MedbenchError`; its
message is a complete sentence naming the thing (file, parameter, notebook)
and the reason, so command-line entry points can print ``str(err)`` alone,
without a traceback.
"""

from __future__ import annotations


class MedbenchError(Exception):
    """Base class of every deliberate medbench error."""


class ConfigError(MedbenchError, ValueError):
    """A parameter, profile or notebook name is unknown or has a bad value."""


class DataError(MedbenchError):
    """Input data cannot be used as asked (unreadable, inconsistent, missing)."""


class DicomError(DataError):
    """A DICOM file or series cannot be read or assembled correctly."""


class GeometryError(DicomError):
    """A series' geometry (slice positions, spacing, orientation) is not a valid volume."""


class DecodeError(DicomError):
    """Pixel data uses a transfer syntax that cannot be decoded here."""


class DeidError(MedbenchError):
    """A file cannot be fully de-identified; it is not written."""


class FetchError(DataError):
    """A dataset cannot be fetched (offline, checksum mismatch, unsafe archive)."""


class RunError(MedbenchError):
    """A notebook run failed; the message names the notebook, the cell and the error."""
