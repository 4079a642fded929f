"""Display geometry: which 2D array is shown for a slice, which way up, at what aspect.

Every viz function goes through :func:`display_volume`, which reorients a
:class:`~medbench.image.volume.Volume` onto the nearest **LPS+** grid (array axes
0, 1, 2 run towards the patient's Left, Posterior and Superior; nibabel's
``io_orientation`` picks the nearest axes, so oblique volumes are shown on
their nearest axis-aligned grid, as voxel-mode viewers do). On that grid, for
axial DICOM series and medbench phantoms the stored grid itself, the
**radiological** display convention is:

========  ======  =========================  ==========================
axis      index   displayed array            screen
========  ======  =========================  ==========================
axial     2 (k)   ``a[:, :, k].T``           anterior up, patient R on left
coronal   1 (j)   ``a[:, j, :].T[::-1]``     superior up, patient R on left
sagittal  0 (i)   ``a[i, :, :].T[::-1]``     superior up, anterior on left
========  ======  =========================  ==========================

``axis`` and slice indices everywhere in :mod:`medbench.viz` refer to that
grid. Plain 3D numpy arrays are taken as already on it, with 1 mm spacing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from nibabel.orientations import apply_orientation, inv_ornt_aff, io_orientation

from medbench.errors import ConfigError, GeometryError
from medbench.image.volume import Volume
from medbench.image.windowing import WINDOW_PRESETS, WindowSpec, percentile_window, resolve_window

#: Names of the three display axes, indexed by array axis on the LPS+ grid.
AXIS_NAMES = ("sagittal", "coronal", "axial")
#: The LPS world coordinate that is constant over a slice of each axis.
_AXIS_COORD = ("x", "y", "z")
#: Screen orientation of each view, as stated in figure titles.
ORIENTATION_NOTE = {
    2: "radiological: R on left, A up",
    1: "radiological: R on left, S up",
    0: "A on left, S up",
}


def as_volume(image: Volume | np.ndarray, name: str = "image") -> Volume:
    """A :class:`Volume` from a Volume or a plain 3D array (identity LPS grid, 1 mm spacing)."""
    if isinstance(image, Volume):
        return image
    array = np.asarray(image)
    if array.ndim != 3:
        raise ConfigError(f"{name}: expected a Volume or a 3D array, got an array of shape {array.shape}")
    return Volume.from_spacing(array, (1.0, 1.0, 1.0))


def display_volume(volume: Volume) -> Volume:
    """The same image on its nearest LPS+ grid (a view of the array; no resampling)."""
    ornt = io_orientation(volume.affine)
    if np.array_equal(ornt, [[0, 1], [1, 1], [2, 1]]):
        return volume
    array = apply_orientation(volume.array, ornt)
    affine = volume.affine @ inv_ornt_aff(ornt, volume.array.shape)
    return Volume(array, affine, dict(volume.meta))


def labels_array(labels: Volume | np.ndarray, image: Volume) -> np.ndarray:
    """Integer label array on ``image``'s stored grid, checked against that grid.

    ``labels`` is a Volume (its geometry must match the image's) or an array on
    the image's stored grid. Raises :class:`GeometryError` on any mismatch
    rather than drawing labels in the wrong place, and :class:`ConfigError`
    for non-integer values.
    """
    if isinstance(labels, Volume):
        if labels.shape != image.shape or not np.allclose(labels.affine, image.affine, atol=1e-4):
            raise GeometryError(
                f"labels grid (shape {labels.shape}) does not match the image grid (shape {image.shape}) "
                "or their affines differ; resample the labels onto the image first"
            )
        array = labels.array
    else:
        array = np.asarray(labels)
        if array.shape != image.shape:
            raise GeometryError(f"labels shape {array.shape} does not match the image shape {image.shape}")
    if np.issubdtype(array.dtype, np.integer):
        return array
    if array.dtype != bool and (not np.all(np.isfinite(array)) or not np.all(np.mod(array, 1) == 0)):
        raise ConfigError("labels must hold integer values (0 = background)")
    return array.astype(np.int64)


def display_labels(labels: Volume | np.ndarray | None, image: Volume) -> np.ndarray | None:
    """:func:`labels_array` reoriented like :func:`display_volume` reorients ``image``."""
    if labels is None:
        return None
    return apply_orientation(labels_array(labels, image), io_orientation(image.affine))


def check_axis(axis: int) -> int:
    """Validate a display axis (0 sagittal, 1 coronal, 2 axial)."""
    if axis not in (0, 1, 2):
        raise ConfigError(f"axis must be 0 (sagittal), 1 (coronal) or 2 (axial), got {axis!r}")
    return int(axis)


def check_index(volume: Volume, axis: int, index: int | None) -> int:
    """A valid slice index along ``axis``; ``None`` means the middle slice."""
    n = volume.shape[axis]
    if index is None:
        return n // 2
    if not 0 <= int(index) < n:
        raise ConfigError(f"slice index {index} is outside 0..{n - 1} along the {AXIS_NAMES[axis]} axis")
    return int(index)


def display_slice(array: np.ndarray, axis: int, index: int) -> np.ndarray:
    """The 2D array shown on screen for slice ``index`` of LPS+ ``array`` along ``axis``."""
    if axis == 2:
        return array[:, :, index].T
    if axis == 1:
        return array[:, index, :].T[::-1]
    return array[index, :, :].T[::-1]


def slice_aspect(volume: Volume, axis: int) -> float:
    """Row spacing / column spacing of the displayed slice (matplotlib ``aspect``)."""
    sx, sy, sz = volume.spacing
    return {2: sy / sx, 1: sz / sx, 0: sz / sy}[axis]


def slice_extent_mm(volume: Volume, axis: int) -> tuple[float, float]:
    """Physical (width, height) in mm of a displayed slice."""
    nx, ny, nz = volume.shape
    sx, sy, sz = volume.spacing
    return {2: (nx * sx, ny * sy), 1: (nx * sx, nz * sz), 0: (ny * sy, nz * sz)}[axis]


def slice_position_mm(volume: Volume, axis: int, index: int) -> float:
    """LPS world coordinate (mm) of the slice plane: x, y or z for sagittal, coronal, axial."""
    ijk = (np.asarray(volume.shape, dtype=float) - 1.0) / 2.0
    ijk[axis] = index
    return float(volume.world(ijk)[0, axis])


def slice_title(volume: Volume, axis: int, index: int) -> str:
    """``"z = 12.5 mm"``: the slice position as a subplot title."""
    return f"{_AXIS_COORD[axis]} = {slice_position_mm(volume, axis, index):.1f} mm"


def default_window(volume: Volume, name: str = "") -> tuple[float, float]:
    """The soft-tissue preset for CT, else the 1st-99th percentile window.

    The modality is ``volume.meta["modality"]`` (or ``"Modality"``), falling
    back to ``name`` (e.g. a dict key like ``"CT"``).
    """
    if modality_of(volume, name).upper() == "CT":
        return WINDOW_PRESETS["soft_tissue"]
    return percentile_window(volume.array)


def window_for(volume: Volume, spec: WindowSpec | None, name: str = "") -> tuple[float, float]:
    """``resolve_window(spec)``, or :func:`default_window` when ``spec`` is None."""
    return default_window(volume, name) if spec is None else resolve_window(spec)


def modality_of(volume: Volume, name: str = "") -> str:
    """The modality recorded in the volume's meta, else ``name``, else ``""``."""
    return str(volume.meta.get("modality") or volume.meta.get("Modality") or name or "")


def volume_name(volume: Volume, default: str = "volume") -> str:
    """A short display name from the meta (``name``, ``series_description``, ``source``)."""
    meta: dict[str, Any] = volume.meta
    for key in ("name", "series_description", "SeriesDescription"):
        if meta.get(key):
            return str(meta[key])
    if meta.get("source"):
        return Path(str(meta["source"])).name
    return default
