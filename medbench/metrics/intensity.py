"""Intensity metrics: window coverage and contrast-to-noise ratio."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from medbench.errors import DataError
from medbench.image.windowing import WINDOW_PRESETS, WindowSpec, WindowStats, resolve_window, window_label, window_stats


def window_coverage(array: np.ndarray, window: WindowSpec) -> WindowStats:
    """Fractions of finite voxels below / inside / above a window (preset name or ``(center, width)``)."""
    center, width = resolve_window(window)
    return window_stats(array, center, width)


def window_coverage_table(array: np.ndarray, windows: Iterable[WindowSpec] = tuple(WINDOW_PRESETS)) -> pd.DataFrame:
    """One row per window: center, width and :func:`window_coverage` (the companion of a window figure)."""
    rows = []
    for spec in windows:
        center, width = resolve_window(spec)
        rows.append({"window": window_label(spec), "center": center, "width": width,
                     **window_stats(array, center, width)._asdict()})
    return pd.DataFrame(rows).set_index("window")


def contrast_to_noise(image: np.ndarray, region_a: np.ndarray, region_b: np.ndarray) -> float:
    """CNR = |mean_a - mean_b| / sqrt((var_a + var_b) / 2) between two regions of one image.

    How well a modality separates two tissues: CNR near 0 means a threshold
    cannot tell them apart. Raises :class:`DataError` for an empty region.
    """
    img = np.asarray(image, dtype=np.float64)
    a, b = img[np.asarray(region_a, bool)], img[np.asarray(region_b, bool)]
    if a.size < 2 or b.size < 2:
        raise DataError(f"contrast_to_noise: regions need at least 2 voxels each, got {a.size} and {b.size}")
    noise = np.sqrt((a.var() + b.var()) / 2.0)
    diff = abs(a.mean() - b.mean())
    if noise == 0:
        return float("inf") if diff > 0 else 0.0
    return float(diff / noise)
