"""Exception hierarchy for medbench.

Every error raised on purpose by medbench is a :class:`MedbenchError`; its
message is a complete sentence naming the thing (file, parameter, notebook)
and the reason, so command-line entry points can print ``str(err)`` alone,
without a traceback.
"""

from __future__ import annotations

from typing import Any


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


def describe_parameter(path: tuple[str, ...]) -> str:
    """``'train.epochs' (train_epochs in the parameters cell)``, or ``'seed'`` for a top-level name."""
    dotted, flat = ".".join(path), "_".join(path)
    return repr(dotted) if dotted == flat else f"{dotted!r} ({flat} in the parameters cell)"


def format_validation_error(exc: Any) -> str:
    """A pydantic ``ValidationError`` as one line per problem, naming the parameter and the value received.

    Dotted and flat spellings are both given for nested parameters
    (``'train.epochs' (train_epochs in the parameters cell)``).
    """
    lines = []
    for err in exc.errors(include_url=False):
        loc = tuple(str(p) for p in err["loc"] if not isinstance(p, int))
        idx = [p for p in err["loc"] if isinstance(p, int)]
        name = describe_parameter(loc) if loc else "(parameters)"
        if idx:
            name += f" item {idx[0]}"
        msg = err["msg"]
        if err["type"] in ("value_error", "assertion_error"):
            msg = msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
        got = f", got {err['input']!r}" if "input" in err and not isinstance(err["input"], dict) else ""
        lines.append(f"parameter {name}: {msg}{got}")
    return "; ".join(lines)


class RegistrationError(MedbenchError):
    """Two images cannot be registered as asked (wrong pixel type or dimension, empty mask, no overlap)."""
