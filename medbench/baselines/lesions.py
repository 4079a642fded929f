"""Malignant-lesion segmentation without learning: CT-only, PET-only and CT + PET rules.

All return a label :class:`~medbench.image.volume.Volume` on the CT grid with
:data:`~medbench.data.phantom.MALIGNANT` where the rule fires.

* :func:`ct_lesion_rule`: smoothed CT inside an HU band, within an organ
  mask. :func:`oracle_ct_lesion` picks band and smoothing *on the case
  itself* to maximise its Dice — an upper bound no CT-only threshold can
  beat; on this phantom it stays low because a share of the malignant
  lesions is CT-occult and cysts, vessels and organ edges share their HU.
* :func:`pet_lesion_rule`: PET (resampled to the CT grid) above an SUV
  threshold fitted on training cases (:func:`fit_pet_lesion_rule`); it also
  fires on urine in the renal pelvis, hot bowel and stomach wall.
* :func:`ct_pet_lesion_rule`: PET finds (``ratio`` x the organ's median
  SUV, inside the organs the CT shows), each hot spot is delineated at
  ``fraction`` of its contrast above the organ background, and where the CT
  shows it hypodense the CT boundary replaces the blurrier PET one.

``organ_mask`` defaults to the case's liver and spleen including their
lesions: the anatomical localisation a CT provides (ground truth here, the
upper bound of that step; pass a predicted mask to chain real steps).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import ndimage

from medbench.data.phantom import LESION_LABELS, LIVER, MALIGNANT, SPLEEN, PhantomCase
from medbench.errors import ConfigError
from medbench.image.volume import Volume
from medbench.metrics import dice

_MAL = {MALIGNANT: "lesion_malignant"}


def _ball(radius_mm: float, spacing: tuple[float, ...]) -> np.ndarray:
    """Voxel ball of ``radius_mm``; never smaller than the 6-neighbourhood (one voxel along the finest axis)."""
    r = np.maximum(np.round(radius_mm / np.asarray(spacing)).astype(int), 0)
    r[np.argmin(spacing)] = max(int(r[np.argmin(spacing)]), 1)
    grids = np.ogrid[tuple(slice(-n, n + 1) for n in r)]
    dist = sum((g * sp / max(radius_mm, float(min(spacing)))) ** 2 for g, sp in zip(grids, spacing))
    return np.asarray(dist <= 1.0 + 1e-6)


def organ_mask(case: PhantomCase, organs: Sequence[int] = (LIVER, SPLEEN)) -> np.ndarray:
    """The organs with the lesions inside them (CT grid, bool)."""
    lab = case.labels.array
    mask = np.isin(lab, organs)
    inside = np.isin(lab, LESION_LABELS) & ndimage.binary_dilation(mask, iterations=2)
    return np.asarray(ndimage.binary_fill_holes(mask | inside))


def pet_on_ct_grid(case: PhantomCase) -> Volume:
    """The PET resampled (linearly) onto the CT grid: PET and CT share the world frame (a PET/CT)."""
    return case.pet.resample_to(case.ct)


def _smooth(arr: np.ndarray, sigma_mm: float, spacing: tuple[float, ...]) -> np.ndarray:
    if sigma_mm <= 0:
        return arr.astype(np.float32)
    return ndimage.gaussian_filter(arr.astype(np.float32), sigma_mm / np.asarray(spacing), mode="nearest")


def _as_label(case: PhantomCase, mask: np.ndarray, name: str) -> Volume:
    return case.ct.with_array(np.where(mask, MALIGNANT, 0).astype(np.uint8), role="label", name=name)


def ct_lesion_rule(case: PhantomCase, band: tuple[float, float], *, sigma_mm: float = 2.0,
                   mask: np.ndarray | None = None) -> Volume:
    """Malignant where the smoothed CT (HU) lies in ``band`` inside ``mask`` (default: :func:`organ_mask`)."""
    m = organ_mask(case) if mask is None else np.asarray(mask, bool)
    sm = _smooth(case.ct.array, sigma_mm, case.ct.spacing)
    return _as_label(case, m & (sm >= band[0]) & (sm <= band[1]), "CT-only rule")


def oracle_ct_lesion(case: PhantomCase, *, sigmas_mm: Sequence[float] = (1.0, 2.0, 3.0),
                     erosions_mm: Sequence[float] = (0.0, 4.0, 8.0),
                     step_hu: float = 2.0) -> tuple[Volume, tuple[float, float], float, float]:
    """The CT-only rule with band, smoothing and organ-edge margin chosen on the case's own truth (an upper bound).

    Every band ``[lo, hi]`` on a ``step_hu`` grid, every smoothing and every
    erosion of the organ mask (edges blur into the neighbours' HU) is tried
    (cumulative histograms); the best is applied and scored with
    :func:`medbench.metrics.dice`. Returns ``(prediction, band, sigma_mm, dice)``;
    a case without malignant lesions returns Dice nan.
    """
    full = organ_mask(case)
    truth = case.labels.array == MALIGNANT
    if not truth.any():
        pred = _as_label(case, np.zeros(case.ct.shape, bool), "CT-only rule (oracle)")
        return pred, (0.0, 0.0), float(sigmas_mm[0]), float("nan")
    best = (-1.0, (0.0, 0.0), float(sigmas_mm[0]))
    best_mask = full
    n_true = float(truth.sum())
    masks = {e: full if e <= 0 else ndimage.binary_erosion(full, _ball(e, case.ct.spacing)) for e in erosions_mm}
    for m, s in ((em, s) for em in masks.values() for s in sigmas_mm):
        if not m.any():
            continue
        sm = _smooth(case.ct.array, s, case.ct.spacing)
        v, t = sm[m], truth[m]
        edges = np.arange(np.floor(v.min()), np.ceil(v.max()) + step_hu, step_hu)
        all_h, _ = np.histogram(v, edges)
        pos_h, _ = np.histogram(v[t], edges)
        ca, cp = np.concatenate([[0], np.cumsum(all_h)]), np.concatenate([[0], np.cumsum(pos_h)])
        # band = bins lo..hi-1: predicted = ca[hi] - ca[lo], true positives = cp[hi] - cp[lo]
        pred_n = ca[None, :] - ca[:, None]
        tp = cp[None, :] - cp[:, None]
        score = np.where(pred_n > 0, 2.0 * tp / np.maximum(pred_n + n_true, 1), 0.0)
        score = np.triu(score, 1)
        lo, hi = np.unravel_index(int(np.argmax(score)), score.shape)
        if score[lo, hi] > best[0]:
            best = (float(score[lo, hi]), (float(edges[lo]), float(edges[hi])), float(s))
            best_mask = m
    _, band, sigma = best
    pred = ct_lesion_rule(case, (band[0], band[1] - 1e-3), sigma_mm=sigma, mask=best_mask)
    return pred, band, sigma, dice(pred, case.labels, _MAL)["lesion_malignant"]


def pet_lesion_rule(case: PhantomCase, threshold_suv: float, *, mask: np.ndarray | None = None) -> Volume:
    """Malignant where the PET (on the CT grid) exceeds ``threshold_suv`` (inside ``mask``, default the body)."""
    pet = pet_on_ct_grid(case).array
    m = (case.ct.array > -500) if mask is None else np.asarray(mask, bool)
    return _as_label(case, m & (pet > threshold_suv), "PET-only rule")


def fit_pet_lesion_rule(cases: Sequence[PhantomCase], thresholds: Sequence[float] | None = None) -> float:
    """The SUV threshold with the best mean malignant Dice over training cases that have malignant lesions."""
    with_lesions = [c for c in cases if (c.labels.array == MALIGNANT).any()]
    if not with_lesions:
        raise ConfigError("fit_pet_lesion_rule needs a training case with a malignant lesion")
    grid = list(thresholds) if thresholds is not None else list(np.arange(2.0, 12.01, 0.5))
    pets = [(pet_on_ct_grid(c).array, c.labels.array == MALIGNANT, c.ct.array > -500) for c in with_lesions]
    best, best_t = -1.0, grid[0]
    for t in grid:
        scores = []
        for pet, truth, body in pets:
            pred = body & (pet > t)
            scores.append(2.0 * np.count_nonzero(pred & truth) / max(np.count_nonzero(pred) + truth.sum(), 1))
        if np.mean(scores) > best:
            best, best_t = float(np.mean(scores)), float(t)
    return best_t


def _outline(mask: np.ndarray, seed: tuple[Any, ...]) -> np.ndarray:
    """The connected part of ``mask`` that contains ``seed``."""
    comp, _ = ndimage.label(mask)
    return np.asarray(comp == comp[seed])


def ct_pet_lesion_rule(case: PhantomCase, *, ratio: float = 2.0, fraction: float = 0.5, ct_margin_hu: float = 8.0,
                       ct_sigma_mm: float = 1.5, mask: np.ndarray | None = None) -> Volume:
    """PET finds, CT localises and refines (see the module doc); a label Volume on the CT grid.

    Hot spots: PET above ``ratio`` x the organs' median SUV. Each is
    delineated where the PET exceeds its local background (median SUV of the
    organ around it) plus ``fraction`` of its contrast; the spot's peak is the
    mean of its hottest voxels (a tenth of the spot, at least 3), not its
    single noisiest voxel. Where the CT inside (median) is darker than the
    organ around it (median) by more than ``ct_margin_hu`` (a hypodense
    lesion), the CT region (smoothed by ``ct_sigma_mm``) below half that
    contrast, inside the spot's loose PET hull (a fifth of its contrast),
    replaces the PET outline.
    """
    m = organ_mask(case) if mask is None else np.asarray(mask, bool)
    if not m.any():
        return _as_label(case, np.zeros(case.ct.shape, bool), "CT+PET rule")
    pet = pet_on_ct_grid(case).array
    ct = _smooth(case.ct.array, ct_sigma_mm, case.ct.spacing)
    ref = float(np.median(pet[m]))
    hot, _ = ndimage.label(m & (pet > ratio * ref))
    out = np.zeros(case.ct.shape, bool)
    reach = np.maximum(np.round(20.0 / np.asarray(case.ct.spacing)).astype(int), 2)
    ring_ball, near_ball = _ball(6.0, case.ct.spacing), _ball(2.0, case.ct.spacing)
    for k, sl in enumerate(ndimage.find_objects(hot), start=1):
        if sl is None:
            continue
        box = tuple(slice(max(s.start - r, 0), s.stop + r) for s, r in zip(sl, reach))
        p, org, c, spot = pet[box], m[box], ct[box], hot[box] == k
        seed = np.unravel_index(int(np.argmax(np.where(spot, p, -np.inf))), p.shape)
        around = org & ~ndimage.binary_dilation(spot, ring_ball)
        bg = float(np.median(p[around])) if around.any() else ref
        values = np.sort(p[spot])
        peak = float(values[-max(3, len(values) // 10):].mean())
        region = _outline(org & (p >= bg + fraction * (peak - bg)), seed)
        ring = org & ~ndimage.binary_dilation(region, ring_ball)
        host = float(np.median(c[ring])) if ring.any() else float(np.median(c[org]))
        core = float(np.median(c[region]))
        if host - core > ct_margin_hu:  # CT-visible (hypodense): the CT outline is the sharper one
            hull = ndimage.binary_dilation(_outline(org & (p >= bg + 0.2 * (peak - bg)), seed), near_ball) & org
            dark = hull & (c < host - 0.5 * (host - core))
            comp, n = ndimage.label(dark)
            inside = comp[region & dark]
            if n and inside.size and inside.any():
                region = ndimage.binary_fill_holes(comp == int(np.bincount(inside[inside > 0]).argmax()))
        out[box] |= region
    return _as_label(case, out, "CT+PET rule")


#: Parameter grid of the CT+PET rule tried on training cases.
CT_PET_GRID: tuple[dict[str, Any], ...] = tuple({"ratio": 2.0, "fraction": f} for f in (0.4, 0.5, 0.6))


def fit_ct_pet_lesion_rule(cases: Sequence[PhantomCase],
                           grid: Sequence[dict[str, Any]] = CT_PET_GRID) -> dict[str, Any]:
    """The CT+PET rule's parameters with the best mean malignant Dice over training cases with malignant lesions."""
    with_lesions = [c for c in cases if (c.labels.array == MALIGNANT).any()]
    if not with_lesions:
        raise ConfigError("fit_ct_pet_lesion_rule needs a training case with a malignant lesion")
    best, best_params = -1.0, dict(grid[0])
    for params in grid:
        scores = [dice(ct_pet_lesion_rule(c, **params), c.labels, _MAL)["lesion_malignant"] for c in with_lesions]
        if float(np.mean(scores)) > best:
            best, best_params = float(np.mean(scores)), dict(params)
    return best_params
