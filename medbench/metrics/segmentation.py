"""Segmentation overlap and boundary metrics, per class, over MONAI's implementations.

All functions take integer label maps (numpy arrays or label :class:`Volume`
objects) of one grid and a ``{label id: name}`` mapping, and return
``{name: value}``. Distances are in **millimetres**: the voxel spacing is
passed to MONAI, so anisotropic voxels are measured correctly.

Empty-structure convention (stated once, used everywhere):

* truth and prediction both empty -> ``nan`` (nothing to measure; excluded
  from means, as nnU-Net does);
* truth empty, prediction not (a false positive structure) -> Dice 0,
  surface Dice 0, HD95 ``inf``;
* truth present, prediction empty -> Dice 0, surface Dice 0, HD95 ``inf``.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from medbench.image.volume import Volume
from medbench.metrics._grid import paired_arrays


def _arrays(pred: Volume | np.ndarray, truth: Volume | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t, p = paired_arrays(truth, pred, context="segmentation metric", other_name="prediction")
    return p, t


def _spacing(truth: Volume | np.ndarray, spacing: Sequence[float] | None) -> tuple[float, ...]:
    if spacing is not None:
        return tuple(float(s) for s in spacing)
    if isinstance(truth, Volume):
        return truth.spacing
    return (1.0,) * np.asarray(truth).ndim


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """MONAI 1.6 warns about a deprecated argument inside its own surface-distance helper; not ours to act on."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*always_return_as_numpy.*", category=FutureWarning)
        yield


def _masks(p: np.ndarray, t: np.ndarray, value: int) -> tuple[Any, Any]:
    import torch

    pm = torch.as_tensor(p == value)[None, None].float()
    tm = torch.as_tensor(t == value)[None, None].float()
    return pm, tm


def _edge_case(p_any: bool, t_any: bool, *, worst: float) -> float | None:
    if not t_any and not p_any:
        return float("nan")
    if not t_any or not p_any:
        return worst
    return None


def dice(pred: Volume | np.ndarray, truth: Volume | np.ndarray, labels: Mapping[int, str]) -> dict[str, float]:
    """Dice = 2|P ∩ T| / (|P| + |T|) per class (MONAI ``compute_dice``)."""
    from monai.metrics import compute_dice

    p, t = _arrays(pred, truth)
    out = {}
    for value, name in labels.items():
        pm, tm = _masks(p, t, value)
        edge = _edge_case(bool(pm.any()), bool(tm.any()), worst=0.0)
        out[name] = edge if edge is not None else float(compute_dice(pm, tm, include_background=True)[0, 0])
    return out


def pooled_dice(pred: Volume | np.ndarray, truth: Volume | np.ndarray, labels: Mapping[int, str]) -> float:
    """Dice pooled over the classes in ``labels``: 2 sum_c |P_c ∩ T_c| / sum_c (|P_c| + |T_c|) (micro-average).

    One number for how well two multi-class label maps agree, weighted by
    voxels, so a one-voxel class cannot swing it (used to compare an inference
    backend's argmax with the reference's). Both maps empty in every class ->
    ``nan`` (the empty-structure convention above).
    """
    p, t = _arrays(pred, truth)
    overlap = 0
    total = 0
    for value in labels:
        pm = p == value
        tm = t == value
        overlap += int(np.count_nonzero(pm & tm))
        total += int(np.count_nonzero(pm)) + int(np.count_nonzero(tm))
    return float("nan") if total == 0 else 2.0 * overlap / total


def hd95(
    pred: Volume | np.ndarray,
    truth: Volume | np.ndarray,
    labels: Mapping[int, str],
    spacing: Sequence[float] | None = None,
) -> dict[str, float]:
    """95th-percentile symmetric Hausdorff distance (mm) per class (MONAI ``compute_hausdorff_distance``)."""
    from monai.metrics import compute_hausdorff_distance

    p, t = _arrays(pred, truth)
    sp = _spacing(truth, spacing)
    out = {}
    for value, name in labels.items():
        pm, tm = _masks(p, t, value)
        edge = _edge_case(bool(pm.any()), bool(tm.any()), worst=float("inf"))
        if edge is not None:
            out[name] = edge
            continue
        with _quiet():
            out[name] = float(compute_hausdorff_distance(pm, tm, include_background=True, percentile=95,
                                                         spacing=list(sp))[0, 0])
    return out


def surface_dice(
    pred: Volume | np.ndarray,
    truth: Volume | np.ndarray,
    labels: Mapping[int, str],
    tolerance_mm: float,
    spacing: Sequence[float] | None = None,
) -> dict[str, float]:
    """Normalised surface Dice at ``tolerance_mm`` per class (MONAI ``compute_surface_dice``).

    The fraction of both boundaries that lies within ``tolerance_mm`` of the
    other boundary (Nikolov et al. 2021).
    """
    from monai.metrics import compute_surface_dice

    p, t = _arrays(pred, truth)
    sp = _spacing(truth, spacing)
    out = {}
    for value, name in labels.items():
        pm, tm = _masks(p, t, value)
        edge = _edge_case(bool(pm.any()), bool(tm.any()), worst=0.0)
        if edge is not None:
            out[name] = edge
            continue
        with _quiet():
            out[name] = float(compute_surface_dice(pm, tm, class_thresholds=[float(tolerance_mm)],
                                                   include_background=True, spacing=list(sp))[0, 0])
    return out
