"""Resampling a :class:`~medbench.image.volume.Volume` onto another grid, role-aware.

Labels are resampled with nearest neighbour (class ids are never blended),
images linearly (or with B-splines on request), vector fields component by
component. The transform, when given, is a SimpleITK transform mapping points
of the reference (fixed) grid to points of the volume being resampled
(moving), which is what SimpleITK registration returns.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from medbench.errors import ConfigError, GeometryError
from medbench.image.volume import Volume

INTERPOLATORS = ("nearest", "linear", "bspline")


def default_interpolator(vol: Volume) -> str:
    """Nearest neighbour for labels, linear for everything else."""
    return "nearest" if vol.is_label else "linear"


def _sitk_interpolator(name: str) -> int:
    import SimpleITK as sitk

    table = {"nearest": sitk.sitkNearestNeighbor, "linear": sitk.sitkLinear, "bspline": sitk.sitkBSpline}
    if name not in table:
        raise ConfigError(f"unknown interpolator {name!r}; choose one of {', '.join(INTERPOLATORS)}")
    return int(table[name])


def resample_to(
    vol: Volume,
    reference: Volume,
    transform: Any = None,
    *,
    interpolator: str | None = None,
    default: float = 0.0,
) -> Volume:
    """``vol`` sampled on ``reference``'s grid through ``transform`` (identity when None)."""
    import SimpleITK as sitk

    interp = interpolator or default_interpolator(vol)
    if vol.is_label and interp != "nearest":
        raise ConfigError(f"a label map must be resampled with nearest neighbour, not {interp!r}")
    if vol.role == "vector" and transform is not None:
        raise GeometryError(
            "resampling a vector field through a transform would also need its vectors rotated; "
            "compose transforms instead (medbench.image.transforms)"
        )
    tx = transform if transform is not None else sitk.Transform()
    ref_img = reference.to_sitk() if reference.array.ndim == 3 else reference.channel(0).to_sitk()
    src = vol.array
    dtype = src.dtype
    work = vol if np.issubdtype(dtype, np.floating) or vol.is_label else vol.with_array(src.astype(np.float32))
    img = sitk.Resample(work.to_sitk(), ref_img, tx, _sitk_interpolator(interp), float(default))
    out = Volume.from_sitk(img, role=vol.role).array
    if vol.is_label:
        out = out.astype(dtype)
    meta = {k: v for k, v in vol.meta.items() if k != "source"}
    return Volume(out, reference.affine, {**meta, "resampled_with": interp}, role=vol.role)


def pooled_grid(grid: Volume, factor: int) -> Volume:
    """The grid of ``grid`` average-pooled by ``factor`` (each axis; the remainder dropped): voxel ``c`` is the
    centre of the block of full voxels ``factor*c .. factor*c + factor - 1``. The array is zeros (a geometry only)."""
    if factor < 1:
        raise ConfigError(f"pooled_grid: the factor must be >= 1, got {factor}")
    if factor == 1:
        return grid.with_array(np.zeros(grid.shape, np.float32))
    shape = tuple(s // factor for s in grid.shape)
    if min(shape) < 1:
        raise GeometryError(f"pooled_grid: a {grid.shape} grid cannot be pooled by {factor}")
    a = np.asarray(grid.affine, dtype=np.float64).copy()
    a[:3, 3] = a[:3, 3] + a[:3, :3] @ np.full(3, (factor - 1) / 2.0)
    a[:3, :3] = a[:3, :3] * factor
    return Volume(np.zeros(shape, np.float32), a, {"name": f"pooled_x{factor}"})


def pool_image(array: np.ndarray, factor: int) -> np.ndarray:
    """The block mean (float32) of an ``(i, j, k)`` array over ``factor``-sized blocks, the remainder dropped:
    the image on :func:`pooled_grid`."""
    arr = np.asarray(array, dtype=np.float32)
    if factor == 1:
        return arr
    s = tuple(n // factor for n in arr.shape)
    if factor < 1 or min(s) < 1:
        raise GeometryError(f"pool_image: a {arr.shape} array cannot be pooled by {factor}")
    blocks = arr[:s[0] * factor, :s[1] * factor, :s[2] * factor].reshape(s[0], factor, s[1], factor, s[2], factor)
    return blocks.mean(axis=(1, 3, 5), dtype=np.float64).astype(np.float32)
