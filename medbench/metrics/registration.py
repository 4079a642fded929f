"""Registration accuracy against known ground truth: landmark and dense TRE, Jacobians, intensity agreement.

Convention (ITK's, as everywhere in medbench): a transform maps **fixed**
points to **moving** points (LPS mm). A transform may be a SimpleITK
transform, a :class:`~medbench.image.transforms.RigidTransform` or a
:class:`~medbench.image.transforms.DisplacementField` (u on a grid, T(x) = x + u(x)).

* :func:`transform_points`: apply any of them to (N, 3) points;
* :func:`landmark_tre`: mean / median / max distance (mm) between T(fixed landmarks) and the true moving landmarks;
* :func:`dense_error_map`: |T_est(x) - T_true(x)| (mm) at every voxel of a grid: the dense TRE;
* :func:`region_errors`: summary of an error map over the body and per labelled region (median, mean, p95, max);
* :func:`jacobian_determinant` / :func:`jacobian_summary`: local volume change of a displacement field; a
  determinant <= 0 means the map folds (is not invertible there);
* :func:`intensity_agreement`: MAE, RMSE, normalised cross-correlation and normalised mutual information
  between two images on one grid (before vs after registration).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from medbench.errors import GeometryError
from medbench.image.transforms import DisplacementField, RigidTransform
from medbench.image.volume import Volume
from medbench.metrics._grid import paired_arrays
from medbench.metrics.geometry import tre_summary


def transform_points(transform: Any, points: np.ndarray) -> np.ndarray:
    """T(points) for a SimpleITK transform, a RigidTransform or a DisplacementField; (N, 3) LPS mm."""
    pts = np.atleast_2d(np.asarray(points, dtype=float))
    if pts.shape[-1] != 3:
        raise GeometryError(f"points must be (N, 3) in mm, got {pts.shape}")
    if isinstance(transform, (RigidTransform, DisplacementField)):
        return np.asarray(transform.apply(pts))
    return np.array([transform.TransformPoint(tuple(float(v) for v in p)) for p in pts]).reshape(-1, 3)


def landmark_tre(transform: Any, fixed_points: np.ndarray, moving_points: np.ndarray) -> dict[str, float]:
    """TRE (mm) of a fixed -> moving transform: distances between T(fixed_points) and the true moving_points."""
    return tre_summary(transform_points(transform, fixed_points), moving_points)


def _as_field(transform: Any, grid: Volume) -> np.ndarray:
    """u(x) = T(x) - x on ``grid`` as [i, j, k, 3] (mm)."""
    if transform is None:
        return np.zeros((*grid.shape, 3))
    if isinstance(transform, DisplacementField):
        if transform.field.same_grid(grid):
            return np.asarray(transform.array, dtype=float)
        pts = grid.grid_points()
        return transform.displacement(pts).reshape(*grid.shape, 3)
    return np.asarray(DisplacementField.from_transform(transform, grid).array, dtype=float)


def dense_error_map(estimated: Any, truth: Any, grid: Volume) -> Volume:
    """The dense TRE |T_est(x) - T_true(x)| (mm) at every voxel x of ``grid`` (an image Volume).

    ``estimated=None`` is the identity (the error before registration is |u_true(x)|).
    """
    err = np.linalg.norm(_as_field(estimated, grid) - _as_field(truth, grid), axis=-1)
    return Volume(err.astype(np.float32), grid.affine, {"name": "dense_tre_mm", "units": "mm"})


def region_errors(error: Volume | np.ndarray, labels: Volume | np.ndarray | None = None,
                  names: Mapping[int, str] | None = None, *, body: bool = True) -> pd.DataFrame:
    """Median, mean, 95th percentile and max of an error map (mm) per region.

    Rows: ``body`` (every labelled voxel, label > 0; or the whole grid without labels) and
    one per entry of ``names`` present in ``labels``. Columns: n_voxels, median_mm,
    mean_mm, p95_mm, max_mm.
    """
    e = error.array if isinstance(error, Volume) else np.asarray(error, dtype=float)
    lab = None if labels is None else (labels.array if isinstance(labels, Volume) else np.asarray(labels))
    if lab is not None and lab.shape != e.shape:
        raise GeometryError(f"region_errors: labels {lab.shape} and error map {e.shape} differ")
    regions: dict[str, np.ndarray] = {}
    if body:
        regions["body"] = lab > 0 if lab is not None else np.ones(e.shape, bool)
    for value, name in (names or {}).items():
        if lab is None:
            raise GeometryError("region_errors: names given without labels")
        regions[name] = lab == value
    rows = []
    for name, m in regions.items():
        v = e[m]
        if v.size == 0:
            rows.append({"region": name, "n_voxels": 0, "median_mm": np.nan, "mean_mm": np.nan,
                         "p95_mm": np.nan, "max_mm": np.nan})
            continue
        rows.append({"region": name, "n_voxels": int(v.size), "median_mm": float(np.median(v)),
                     "mean_mm": float(v.mean()), "p95_mm": float(np.percentile(v, 95)), "max_mm": float(v.max())})
    return pd.DataFrame(rows).set_index("region")


def jacobian_determinant(transform: Any, grid: Volume | None = None) -> Volume:
    """det(I + grad u) at every voxel (dimensionless; 1 = no volume change, <= 0 = folding).

    ``transform``: a DisplacementField (its own grid unless ``grid`` is given) or any
    transform sampled on ``grid``. Computed by ITK's DisplacementFieldJacobianDeterminantFilter
    (central differences in physical units; on the grid's outer voxels ITK's zero-flux boundary
    halves the derivative, so border values are biased towards 1 — mask them out where it matters).
    """
    import SimpleITK as sitk

    if isinstance(transform, DisplacementField) and grid is None:
        field = transform
    else:
        if grid is None:
            raise GeometryError("jacobian_determinant: give a grid for a transform that is not a DisplacementField")
        field = DisplacementField.from_array(_as_field(transform, grid), grid)
    img = sitk.Cast(field.field.to_sitk(), sitk.sitkVectorFloat64)
    jac = sitk.DisplacementFieldJacobianDeterminant(img, True)
    out = Volume.from_sitk(jac, {"name": "jacobian_determinant"})
    return out


def jacobian_summary(jacobian: Volume | np.ndarray, mask: Volume | np.ndarray | None = None) -> dict[str, float]:
    """min, max, mean, std of a Jacobian determinant map and ``folding_percent`` (% of voxels with det <= 0)."""
    j = jacobian.array if isinstance(jacobian, Volume) else np.asarray(jacobian, dtype=float)
    if mask is not None:
        m = (mask.array if isinstance(mask, Volume) else np.asarray(mask)) > 0
        if m.shape != j.shape:
            raise GeometryError(f"jacobian_summary: mask {m.shape} and Jacobian {j.shape} differ")
        j = j[m]
    j = np.asarray(j, dtype=float).ravel()
    if j.size == 0:
        raise GeometryError("jacobian_summary: no voxels")
    return {"min": float(j.min()), "max": float(j.max()), "mean": float(j.mean()), "std": float(j.std()),
            "folding_percent": float(100.0 * np.mean(j <= 0))}


def intensity_agreement(a: Volume | np.ndarray, b: Volume | np.ndarray, mask: Volume | np.ndarray | None = None,
                        *, bins: int = 32) -> dict[str, float]:
    """How alike two images on one grid are: ``mae`` and ``rmse`` (image units; same modality only),
    ``ncc`` (Pearson correlation, -1..1) and ``nmi`` (normalised mutual information, 1..2; any modalities)."""
    from skimage.metrics import normalized_mutual_information

    x, y = paired_arrays(a, b, context="intensity_agreement", other_name="second image")
    if mask is not None:
        m = (mask.array if isinstance(mask, Volume) else np.asarray(mask)) > 0
        x, y = x[m], y[m]
    x, y = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
    if x.size < 2:
        raise GeometryError("intensity_agreement: fewer than two voxels")
    d = x - y
    sx, sy = x.std(), y.std()
    ncc = float(np.mean((x - x.mean()) * (y - y.mean())) / (sx * sy)) if sx > 0 and sy > 0 else float("nan")
    return {"mae": float(np.abs(d).mean()), "rmse": float(np.sqrt(np.mean(d * d))), "ncc": ncc,
            "nmi": float(normalized_mutual_information(x, y, bins=bins))}
