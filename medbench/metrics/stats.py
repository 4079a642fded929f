"""Summaries over cases: mean with a confidence interval."""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import numpy as np


class MeanCI(NamedTuple):
    """Mean over cases with a two-sided confidence interval (Student t), and how many cases counted."""

    mean: float
    low: float
    high: float
    n: int


def mean_ci(values: Iterable[float], confidence: float = 0.95) -> MeanCI:
    """Mean of the finite values with a Student-t confidence interval over cases.

    NaN values (nothing to measure, e.g. a class absent from truth and
    prediction) are left out; infinite values make the mean infinite. With a
    single value the interval is that value (no spread can be estimated);
    with none, everything is NaN.
    """
    from scipy import stats

    arr = np.asarray([float(v) for v in values], dtype=float)
    arr = arr[~np.isnan(arr)]
    n = int(arr.size)
    if n == 0:
        return MeanCI(float("nan"), float("nan"), float("nan"), 0)
    mean = float(arr.mean())
    if n == 1 or not np.all(np.isfinite(arr)):
        return MeanCI(mean, mean, mean, n)
    half = float(stats.t.ppf(0.5 + confidence / 2.0, n - 1) * arr.std(ddof=1) / np.sqrt(n))
    return MeanCI(mean, mean - half, mean + half, n)
