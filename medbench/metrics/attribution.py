"""Scores of attribution maps against a known cause (localisation) and of two maps against each other.

Conventions: a *relevance* map is a non-negative array ``(i, j, k)`` on the
image grid (:class:`medbench.explain.Attribution.relevance`); a *mask* is a
boolean array of the same shape (the causal lesion, a planted cue). Every
score is scale-invariant in the map.

* :func:`relevance_mass` — the fraction of the total relevance inside the mask
  (Arras et al. 2022, "relevance mass accuracy"): 1 = everything inside,
  chance = the mask's volume fraction (:func:`mask_fraction`);
* :func:`relevance_rank` — the fraction of the mask's voxels among the
  ``|mask|`` most relevant voxels (Arras et al. "rank accuracy"); chance = the mask fraction;
* :func:`pointing_game` — whether the most relevant voxel lies in the mask,
  dilated by ``tolerance`` voxels (Zhang et al. 2018); chance = the dilated mask fraction;
* :func:`curve_auc` — normalised area under a deletion / insertion curve (Petsiuk et al. 2018);
* :func:`rank_correlation` and :func:`map_ssim` — similarity of two maps (Spearman's rho of the
  values; SSIM of the maps scaled to [0, 1]) for the randomisation sanity checks (Adebayo et al. 2018).
"""

from __future__ import annotations

import numpy as np


def _pair(relevance: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r = np.asarray(relevance, dtype=np.float64)
    m = np.asarray(mask).astype(bool)
    if r.shape != m.shape:
        raise ValueError(f"relevance {r.shape} and mask {m.shape} differ in shape")
    if (r < 0).any():
        raise ValueError("relevance must be non-negative (clip or take the absolute value first)")
    return r, m


def mask_fraction(mask: np.ndarray) -> float:
    """The mask's share of the grid: what a uniformly random map scores by :func:`relevance_mass`."""
    m = np.asarray(mask).astype(bool)
    return float(m.mean()) if m.size else float("nan")


def relevance_mass(relevance: np.ndarray, mask: np.ndarray) -> float:
    """Fraction of the total relevance inside ``mask`` (nan when the map is all zero or the mask empty)."""
    r, m = _pair(relevance, mask)
    total = r.sum()
    if total <= 0 or not m.any():
        return float("nan")
    return float(r[m].sum() / total)


def relevance_rank(relevance: np.ndarray, mask: np.ndarray) -> float:
    """Fraction of the ``k = |mask|`` highest-relevance voxels that lie in ``mask`` (ties broken by position)."""
    r, m = _pair(relevance, mask)
    k = int(m.sum())
    if k == 0 or r.sum() <= 0:
        return float("nan")
    top = np.argsort(-r.reshape(-1), kind="stable")[:k]
    return float(m.reshape(-1)[top].mean())


def dilate(mask: np.ndarray, tolerance: int) -> np.ndarray:
    """``mask`` grown by ``tolerance`` voxels (a cube of side ``2 * tolerance + 1``)."""
    from scipy import ndimage

    m = np.asarray(mask).astype(bool)
    if tolerance <= 0:
        return m
    return np.asarray(ndimage.binary_dilation(m, np.ones((3,) * m.ndim, bool), iterations=int(tolerance)))


def pointing_game(relevance: np.ndarray, mask: np.ndarray, tolerance: int = 1) -> float:
    """1.0 when the most relevant voxel lies in ``mask`` grown by ``tolerance`` voxels, else 0.0.

    nan when the map is all zero or the mask is empty (no point to score).
    Ties: the first maximum in C order.
    """
    r, m = _pair(relevance, mask)
    if r.max(initial=0.0) <= 0 or not m.any():
        return float("nan")
    hit = dilate(m, tolerance).reshape(-1)[int(np.argmax(r))]
    return 1.0 if hit else 0.0


def curve_auc(values: np.ndarray, fractions: np.ndarray | None = None) -> float:
    """Trapezoidal area under ``values`` over ``fractions`` (default: evenly spaced on [0, 1]).

    For a deletion curve (the model's score as the most relevant voxels are
    removed) lower is better; for an insertion curve higher is better. The
    area is in the units of ``values`` (probabilities: 0-1).
    """
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    f = np.linspace(0.0, 1.0, len(v)) if fractions is None else np.asarray(fractions, dtype=np.float64).reshape(-1)
    if len(v) < 2 or f.shape != v.shape:
        raise ValueError("a curve needs at least two points and as many fractions as values")
    span = f[-1] - f[0]
    if span <= 0:
        raise ValueError("fractions must increase")
    return float(np.sum((v[1:] + v[:-1]) * np.diff(f)) / 2.0 / span)


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation of two maps' values (nan when either is constant)."""
    from scipy.stats import spearmanr

    x, y = np.asarray(a, dtype=np.float64).reshape(-1), np.asarray(b, dtype=np.float64).reshape(-1)
    if x.shape != y.shape:
        raise ValueError(f"maps differ in size: {x.size} vs {y.size}")
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(spearmanr(x, y).statistic)


def _unit(a: np.ndarray) -> np.ndarray:
    x = np.asarray(a, dtype=np.float64)
    span = np.ptp(x)
    return (x - x.min()) / span if span > 0 else np.zeros_like(x)


def map_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Structural similarity of two maps after scaling each to [0, 1] (scikit-image, 7-voxel windows or smaller)."""
    from skimage.metrics import structural_similarity

    x, y = _unit(a), _unit(b)
    if x.shape != y.shape:
        raise ValueError(f"maps differ in shape: {x.shape} vs {y.shape}")
    win = min(7, *[s if s % 2 else s - 1 for s in x.shape])
    return float(structural_similarity(x, y, data_range=1.0, win_size=max(win, 3)))
