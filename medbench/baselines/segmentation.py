"""Organ segmentation without learning: an HU threshold rule and an image-free atlas.

* :func:`segment_threshold`: per organ (largest first), smooth the CT
  (Gaussian, ``sigma_mm``), keep the HU band the organ had in the training
  cases, erode it (``erosion_mm``, a diamond in-plane and a segment along z:
  separates touching neighbours of similar HU), label connected components, keep the component of plausible size whose
  centroid is nearest the organ's mean training centroid, grow it back (by the
  erosion radius plus two smoothing widths) inside a band twice as wide
  (hysteresis: the organ's edge is blurred towards its neighbours), fill holes,
  and dilate by one smoothing width (the smoothing moved the edge inwards). Voxels taken by an
  earlier organ are not offered to the next. The rule's numbers come from
  :func:`fit_threshold_rule` (training cases only).
* :func:`atlas_vote`: the per-voxel majority label of the training label
  maps — it never looks at the target image.
* :func:`best_segmentation_baseline`: fits both on the training cases,
  scores them (:func:`medbench.metrics.dice`) on the validation cases (the
  training cases when there are none), and returns the better one's
  predictions for the test cases.

Inputs are :class:`~medbench.data.phantom.PhantomCase` objects or CT
:class:`~medbench.image.volume.Volume` objects (HU); outputs are label
Volumes on the CT grid holding the requested class ids (0 elsewhere).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from medbench.data.phantom import BENCHMARK_ORGANS, LABELS, PhantomCase
from medbench.errors import ConfigError
from medbench.image.volume import Volume
from medbench.metrics import dice

SEGMENTATION_BASELINES = ("threshold", "atlas")


def _ct(case_or_ct: PhantomCase | Volume) -> Volume:
    """The CT of a case (anything with ``.ct``) or the Volume itself."""
    return case_or_ct if isinstance(case_or_ct, Volume) else case_or_ct.ct


def _labels(case_or_labels: PhantomCase | Volume) -> Volume:
    """The label map of a case (anything with ``.labels``) or the Volume itself."""
    return case_or_labels if isinstance(case_or_labels, Volume) else case_or_labels.labels


def _smooth(ct: Volume, sigma_mm: float) -> np.ndarray:
    sigma = sigma_mm / np.asarray(ct.spacing)
    return ndimage.gaussian_filter(ct.array.astype(np.float32), sigma, mode="nearest")


@dataclass(frozen=True)
class ThresholdRule:
    """What the threshold rule learned from training cases, per class id.

    ``bands``: HU range (percentiles of the smoothed CT inside the organ);
    ``centroids``: mean organ centroid (LPS mm); ``volumes_ml``: mean volume;
    ``sigma_mm``: smoothing; ``erosion_mm``: radius of the erosion / regrowth.
    """

    bands: dict[int, tuple[float, float]]
    centroids: dict[int, np.ndarray]
    volumes_ml: dict[int, float]
    sigma_mm: float = 2.0
    erosion_mm: float = 6.0

    @property
    def classes(self) -> tuple[int, ...]:
        return tuple(sorted(self.bands, key=lambda c: -self.volumes_ml[c]))


def fit_threshold_rule(
    cases: Sequence[PhantomCase],
    classes: Sequence[int] = BENCHMARK_ORGANS,
    *,
    sigma_mm: float = 2.0,
    percentiles: tuple[float, float] = (5.0, 95.0),
    erosion_mm: float = 6.0,
) -> ThresholdRule:
    """Learn each class's HU band (its interior voxels), mean centroid and volume from training cases."""
    if not cases:
        raise ConfigError("fit_threshold_rule needs at least one training case")
    values: dict[int, list[np.ndarray]] = {c: [] for c in classes}
    cents: dict[int, list[np.ndarray]] = {c: [] for c in classes}
    vols: dict[int, list[float]] = {c: [] for c in classes}
    rng = np.random.default_rng(0)
    for case in cases:
        sm = _smooth(case.ct, sigma_mm)
        lab = case.labels.array
        for c in classes:
            mask = lab == c
            idx = np.argwhere(mask)
            if not len(idx):
                continue
            # the band comes from the interior: within two smoothing widths of the edge the neighbours mix in
            inner = _morph(mask, max(2.0 * sigma_mm, min(case.ct.spacing)), case.ct.spacing, erode=True)
            if inner.sum() < 0.2 * len(idx):  # a small organ: one voxel in from the edge, or all of it
                inner = ndimage.binary_erosion(mask)
                inner = inner if inner.sum() >= 0.05 * len(idx) else mask
            v = sm[inner]
            values[c].append(v if len(v) <= 20000 else rng.choice(v, 20000, replace=False))
            cents[c].append(case.labels.world(idx.mean(axis=0))[0])
            vols[c].append(len(idx) * case.labels.voxel_volume_ml)
    missing = [LABELS.get(c, str(c)) for c in classes if not values[c]]
    if missing:
        raise ConfigError(f"fit_threshold_rule: no training voxels of {', '.join(missing)}")
    bands = {c: (float(np.percentile(np.concatenate(values[c]), percentiles[0])),
                 float(np.percentile(np.concatenate(values[c]), percentiles[1]))) for c in classes}
    return ThresholdRule(bands, {c: np.mean(cents[c], axis=0) for c in classes},
                         {c: float(np.mean(vols[c])) for c in classes}, sigma_mm, erosion_mm)


def _steps(radius_mm: float, spacing: tuple[float, ...]) -> tuple[int, int]:
    """Iterations (in-plane, along z) of unit steps that reach ``radius_mm``."""
    return int(round(radius_mm / min(spacing[:2]))), int(round(radius_mm / spacing[2]))


_PLANE = np.zeros((3, 3, 3), bool)
_PLANE[:, :, 1] = ndimage.generate_binary_structure(2, 1)
_AXIAL = np.zeros((3, 3, 3), bool)
_AXIAL[1, 1, :] = True


def _morph(mask: np.ndarray, radius_mm: float, spacing: tuple[float, ...], erode: bool) -> np.ndarray:
    """Erosion or dilation by ``radius_mm``: a diamond in-plane and a segment along z (fast iterated unit steps)."""
    op = ndimage.binary_erosion if erode else ndimage.binary_dilation
    k_xy, k_z = _steps(radius_mm, spacing)
    out = mask
    if k_xy:
        out = op(out, _PLANE, iterations=k_xy)
    if k_z:
        out = op(out, _AXIAL, iterations=k_z)
    return np.asarray(out)


def segment_threshold(case_or_ct: PhantomCase | Volume, rule: ThresholdRule) -> Volume:
    """The threshold + connected-component rule (module doc) applied to one CT; a label Volume."""
    ct = _ct(case_or_ct)
    sm = _smooth(ct, rule.sigma_mm)
    body_lab, n = ndimage.label(ct.array > -500)
    body = body_lab == (np.argmax(np.bincount(body_lab.ravel())[1:]) + 1) if n else np.zeros(ct.shape, bool)
    out = np.zeros(ct.shape, np.uint8)
    for c in rule.classes:
        lo, hi = rule.bands[c]
        band = (sm >= lo) & (sm <= hi) & body & (out == 0)
        band = ndimage.binary_closing(band, _PLANE) & body & (out == 0)  # close single-voxel noise holes
        core = _morph(band, rule.erosion_mm, ct.spacing, erode=True)
        comp, m = ndimage.label(core)
        if not m:
            continue
        sizes = np.bincount(comp.ravel())[1:].astype(float)
        vol = sizes * ct.voxel_volume_ml
        plausible = (vol >= 0.1 * rule.volumes_ml[c]) & (vol <= 3.0 * rule.volumes_ml[c])
        candidates = np.flatnonzero(plausible) if plausible.any() else np.argsort(sizes)[-5:]
        objects = ndimage.find_objects(comp)
        best, pick = np.inf, int(candidates[0]) + 1
        for n in candidates:
            sl = objects[n]
            assert sl is not None
            ijk = np.argwhere(comp[sl] == n + 1).mean(axis=0) + [s.start for s in sl]
            dist = float(np.linalg.norm(ct.world(ijk)[0] - rule.centroids[c]))
            if dist < best:
                best, pick = dist, int(n) + 1
        # grow back as far as it was eroded plus the smoothing's reach, into a band twice as wide: the organ's
        # edge is blurred towards its neighbours' HU (hysteresis thresholding)
        relaxed = (sm >= lo - 0.5 * (hi - lo)) & (sm <= hi + 0.5 * (hi - lo)) & body & (out == 0)
        organ = _morph(comp == pick, rule.erosion_mm + 2.0 * rule.sigma_mm, ct.spacing, erode=False) & relaxed
        organ = ndimage.binary_fill_holes(organ)
        # the smoothing pulled the edge inwards where the neighbour differs most: give it back
        organ = _morph(organ, rule.sigma_mm, ct.spacing, erode=False) & body & (out == 0)
        out[organ & (out == 0)] = c
    return ct.with_array(out, role="label", name="threshold rule")


def atlas_vote(train_label_maps: Sequence[Volume | PhantomCase], target_grid: Volume,
               classes: Sequence[int] = BENCHMARK_ORGANS) -> Volume:
    """Per-voxel majority vote of the training label maps on ``target_grid`` (image-free; ties go to background)."""
    if not train_label_maps:
        raise ConfigError("atlas_vote needs at least one training label map")
    counts = np.zeros((len(classes) + 1, *target_grid.shape), np.uint16)
    for item in train_label_maps:
        lab = _labels(item)
        if not lab.same_grid(target_grid):
            lab = lab.resample_to(target_grid)
        arr = lab.array
        for n, c in enumerate(classes, start=1):
            counts[n] += arr == c
    counts[0] = len(train_label_maps) - counts[1:].sum(axis=0)
    winner = np.argmax(counts, axis=0)
    lut = np.array([0, *classes], np.uint8)
    return target_grid.with_array(lut[winner], role="label", name="atlas majority vote")


def mean_dice(predictions: Mapping[str, Volume], truths: Mapping[str, Volume | PhantomCase],
              classes: Sequence[int] = BENCHMARK_ORGANS) -> dict[str, float]:
    """Mean Dice per class name over cases (nan cases excluded) and their mean (``mean``)."""
    names = {c: LABELS.get(c, str(c)) for c in classes}
    per: dict[str, list[float]] = {n: [] for n in names.values()}
    for cid, pred in predictions.items():
        scores = dice(pred, _labels(truths[cid]), names)
        for name, v in scores.items():
            if np.isfinite(v):
                per[name].append(v)
    out = {name: float(np.mean(v)) if v else float("nan") for name, v in per.items()}
    finite = [v for v in out.values() if np.isfinite(v)]
    out["mean"] = float(np.mean(finite)) if finite else float("nan")
    return out


#: The threshold-rule variants tried on the validation cases (the best one is kept).
THRESHOLD_VARIANTS: tuple[dict[str, Any], ...] = (
    {"sigma_mm": 2.0, "percentiles": (5.0, 95.0), "erosion_mm": 6.0},
    {"sigma_mm": 3.0, "percentiles": (10.0, 90.0), "erosion_mm": 10.0},
    {"sigma_mm": 3.0, "percentiles": (20.0, 80.0), "erosion_mm": 4.0},
)


def best_segmentation_baseline(
    train: Sequence[PhantomCase],
    test: Sequence[PhantomCase | Volume],
    classes: Sequence[int] = BENCHMARK_ORGANS,
    *,
    val: Sequence[PhantomCase] = (),
    variants: Sequence[dict[str, Any]] = THRESHOLD_VARIANTS,
) -> tuple[str, dict[str, Volume]]:
    """The better of the threshold rule and the atlas, chosen on ``val`` (else ``train``), applied to ``test``.

    Returns ``(name, {case_id: label Volume})``; ``name`` is ``"threshold"`` or
    ``"atlas"``. Test cases are only predicted, never scored here. ``test``
    items may be cases or CT Volumes (keyed by their ``name`` meta then).
    """
    if not train:
        raise ConfigError("best_segmentation_baseline needs training cases")
    select = list(val) or list(train)
    truths = {c.case_id: c for c in select}
    scored: list[tuple[float, str, Any]] = []
    for v in variants:
        rule = fit_threshold_rule(train, classes, **v)
        preds = {c.case_id: segment_threshold(c, rule) for c in select}
        scored.append((mean_dice(preds, truths, classes)["mean"], "threshold", rule))
    preds = {c.case_id: atlas_vote(train, c.labels, classes) for c in select}
    scored.append((mean_dice(preds, truths, classes)["mean"], "atlas", None))
    _, name, rule = max(scored, key=lambda s: (np.nan_to_num(s[0], nan=-1.0), s[1] == "atlas"))

    def key(item: PhantomCase | Volume) -> str:
        return str(item.meta.get("name", id(item))) if isinstance(item, Volume) else item.case_id

    if name == "atlas":
        return name, {key(t): atlas_vote(train, _ct(t), classes) for t in test}
    return name, {key(t): segment_threshold(t, rule) for t in test}
