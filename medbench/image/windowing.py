"""Intensity windowing: named CT presets, the window function and its numbers.

A *window* is a pair ``(center, width)`` in the image's units (Hounsfield units
for CT). Display maps ``center - width/2`` to black, ``center + width/2`` to
white and everything in between linearly, which is the DICOM **LINEAR_EXACT**
VOI LUT function (PS3.3 C.11.2.1.3.2)::

    y = clip((x - center) / width + 0.5, 0, 1)

We use LINEAR_EXACT rather than the older LINEAR function (C.11.2.1.2.1, which
offsets by half a stored-value step for integer data) because medbench images
are often floats (resampled, filtered, PET): with LINEAR_EXACT the window edges
map exactly to 0 and 1 and the centre exactly to 0.5 for any dtype.

:func:`window_stats` is the numeric companion of a windowed figure: the
fraction of voxels clipped to black, shown in grey and clipped to white. nbval
never compares images, so notebooks print these numbers next to each figure
(:func:`medbench.metrics.window_coverage_table`). The presets live here, below
every other room, so display and preprocessing for learning share one table.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from medbench.errors import ConfigError, DataError

#: Common CT display windows as (center, width) in HU.
WINDOW_PRESETS: dict[str, tuple[float, float]] = {
    "soft_tissue": (40.0, 400.0),
    "lung": (-600.0, 1500.0),
    "bone": (400.0, 1800.0),
    "brain": (40.0, 80.0),
    "liver": (60.0, 160.0),
    "mediastinum": (50.0, 350.0),
}

#: A window given by preset name or as an explicit ``(center, width)`` pair.
WindowSpec = str | Sequence[float]

#: Above this many voxels, :func:`percentile_window` estimates on a regular subsample.
_PERCENTILE_SAMPLE = 2_000_000


class WindowStats(NamedTuple):
    """Fractions of (finite) voxels below, inside and above a window; they sum to 1."""

    below: float
    inside: float
    above: float


def resolve_window(spec: WindowSpec) -> tuple[float, float]:
    """``(center, width)`` from a preset name (e.g. ``"lung"``) or a ``(center, width)`` pair.

    Raises :class:`ConfigError` naming the valid presets for an unknown name,
    and for pairs that are malformed or have a width that is not positive.
    """
    if isinstance(spec, str):
        key = spec.strip().lower()
        if key not in WINDOW_PRESETS:
            raise ConfigError(
                f"unknown window preset {spec!r}; valid presets are {', '.join(sorted(WINDOW_PRESETS))} "
                "or a (center, width) pair"
            )
        return WINDOW_PRESETS[key]
    try:
        center, width = (float(v) for v in spec)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"window must be a preset name ({', '.join(sorted(WINDOW_PRESETS))}) "
            f"or a (center, width) pair of numbers, got {spec!r}"
        ) from exc
    _check_window(center, width)
    return center, width


def apply_window(array: np.ndarray, center: float, width: float) -> np.ndarray:
    """Map intensities to display values in [0, 1] (float32) with DICOM LINEAR_EXACT.

    ``center - width/2`` maps to 0, ``center`` to 0.5, ``center + width/2`` to 1;
    values beyond are clipped. NaN stays NaN (matplotlib draws it as "bad").
    """
    _check_window(center, width)
    out = (np.asarray(array, dtype=np.float32) - np.float32(center)) / np.float32(width) + np.float32(0.5)
    return np.clip(out, 0.0, 1.0, out=out)


def window_stats(array: np.ndarray, center: float, width: float) -> WindowStats:
    """Fractions of finite voxels below, inside (edges included) and above the window.

    Consistent with :func:`apply_window`: "below" voxels display as pure black,
    "above" voxels as pure white. Raises :class:`DataError` if no voxel is finite.
    """
    _check_window(center, width)
    values = np.asarray(array, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        raise DataError("window_stats: the array has no finite values to count")
    lo, hi = center - width / 2.0, center + width / 2.0
    below = np.count_nonzero(values < lo) / values.size
    above = np.count_nonzero(values > hi) / values.size
    return WindowStats(float(below), float(1.0 - below - above), float(above))


def percentile_window(array: np.ndarray, low: float = 1.0, high: float = 99.0) -> tuple[float, float]:
    """A ``(center, width)`` window spanning the ``low``..``high`` percentiles of finite values.

    The default display window for images without calibrated units (PET, MR).
    Large arrays are estimated on a regular subsample (deterministic). A
    constant image gets width 1 so the window stays valid.
    """
    if not 0.0 <= low < high <= 100.0:
        raise ConfigError(f"percentile_window needs 0 <= low < high <= 100, got low={low}, high={high}")
    flat = np.asarray(array).ravel()
    if flat.size > _PERCENTILE_SAMPLE:
        flat = flat[:: flat.size // _PERCENTILE_SAMPLE + 1]
    flat = flat[np.isfinite(flat)]
    if flat.size == 0:
        raise DataError("percentile_window: the array has no finite values")
    lo, hi = (float(v) for v in np.percentile(flat, [low, high]))
    if hi <= lo:
        return lo, 1.0
    return (lo + hi) / 2.0, hi - lo


def window_label(spec: WindowSpec) -> str:
    """A short display name: the preset name, or ``"C40 W400"`` for an explicit pair."""
    if isinstance(spec, str):
        return spec.strip().lower()
    center, width = resolve_window(spec)
    return f"C{center:g} W{width:g}"


def _check_window(center: float, width: float) -> None:
    if not (np.isfinite(center) and np.isfinite(width)) or width <= 0:
        raise ConfigError(f"window needs a finite center and a width > 0, got center={center}, width={width}")
