"""`Volume`: a voxel array with the geometry that places it in the patient.

Conventions (stated once, used everywhere in medbench):

* ``array`` is indexed ``[i, j, k]`` = (column, row, slice) like nibabel, so
  ``affine @ [i, j, k, 1]`` is the world position of a voxel centre in mm.
  A multi-channel image or a vector field carries its channels **last**:
  ``array[i, j, k, c]``; :attr:`Volume.shape` is always the spatial grid.
* ``affine`` is in the **LPS** patient frame of DICOM (x to the patient's
  left, y posterior, z superior). :attr:`Volume.affine_ras` gives the RAS
  affine that NIfTI files, nibabel and MONAI use.
* ``role`` says what the values are, so code that moves voxels does the right
  thing without being told (as TorchIO's ``LabelMap`` does):

  - ``"image"``: intensities (one channel, or several stacked last);
    resampled with linear (or B-spline) interpolation;
  - ``"label"``: integer class ids; resampled with nearest neighbour, never
    blended;
  - ``"vector"``: a vector field with 3 components per voxel in LPS mm (a
    displacement field); each component is interpolated linearly.

Converters to SimpleITK, NIfTI, torch tensors and MONAI ``MetaTensor`` live in
:mod:`medbench.image.convert`; the methods here delegate to them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from medbench.errors import GeometryError

#: Flip between the DICOM LPS frame and the NIfTI RAS frame (its own inverse).
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])

Role = Literal["image", "label", "vector"]
ROLES: tuple[str, ...] = ("image", "label", "vector")


@dataclass(frozen=True)
class Volume:
    """An image on a grid: ``array[i, j, k(, c)]`` with a 4x4 LPS ``affine`` (mm) and a ``role``."""

    array: np.ndarray
    affine: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)
    frame: str = "LPS"
    role: Role = "image"

    def __post_init__(self) -> None:
        aff = np.asarray(self.affine, dtype=float)
        if aff.shape != (4, 4) or not np.all(np.isfinite(aff)) or not np.allclose(aff[3], [0, 0, 0, 1]):
            raise GeometryError(f"affine must be a finite 4x4 homogeneous matrix, got {aff.tolist()}")
        if abs(np.linalg.det(aff[:3, :3])) < 1e-9:
            raise GeometryError("affine is singular (zero spacing or collinear axes)")
        if self.frame != "LPS":
            raise GeometryError(f"Volume stores LPS geometry; got frame {self.frame!r}")
        if self.role not in ROLES:
            raise GeometryError(f"Volume role must be one of {', '.join(ROLES)}; got {self.role!r}")
        arr = np.asarray(self.array)
        if self.role == "label":
            if arr.ndim != 3:
                raise GeometryError(f"a label Volume needs a 3D array, got shape {arr.shape}")
            if arr.dtype == bool:
                arr = arr.astype(np.uint8)
            if not np.issubdtype(arr.dtype, np.integer):
                raise GeometryError(f"a label Volume needs integer class ids, got dtype {arr.dtype}")
        elif self.role == "vector":
            if arr.ndim != 4 or arr.shape[3] != 3:
                raise GeometryError(f"a vector Volume needs an array [i, j, k, 3], got shape {arr.shape}")
        elif arr.ndim not in (3, 4):
            raise GeometryError(f"Volume needs a 3D array (or 4D with channels last), got shape {arr.shape}")
        object.__setattr__(self, "array", arr)
        object.__setattr__(self, "affine", aff)

    # -- geometry -----------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int, int]:
        """The spatial grid size (i, j, k); channels are not part of it."""
        return tuple(int(s) for s in self.array.shape[:3])  # type: ignore[return-value]

    @property
    def n_channels(self) -> int:
        """1 for a scalar image or a label map, C for ``array[i, j, k, C]``."""
        return 1 if self.array.ndim == 3 else int(self.array.shape[3])

    @property
    def is_label(self) -> bool:
        return self.role == "label"

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along i, j, k."""
        return tuple(float(s) for s in np.linalg.norm(self.affine[:3, :3], axis=0))  # type: ignore[return-value]

    @property
    def voxel_volume_ml(self) -> float:
        """Volume of one voxel in mL (mm^3 / 1000)."""
        return float(abs(np.linalg.det(self.affine[:3, :3]))) / 1000.0

    @property
    def origin(self) -> tuple[float, float, float]:
        """LPS position (mm) of the centre of voxel (0, 0, 0)."""
        return tuple(float(v) for v in self.affine[:3, 3])  # type: ignore[return-value]

    @property
    def direction(self) -> np.ndarray:
        """3x3 matrix whose columns are the unit LPS directions of i, j, k."""
        return self.affine[:3, :3] / np.asarray(self.spacing)

    @property
    def affine_ras(self) -> np.ndarray:
        """The same geometry in the RAS frame (what NIfTI and MONAI store)."""
        return LPS_TO_RAS @ self.affine

    @property
    def center(self) -> np.ndarray:
        """LPS position (mm) of the grid centre."""
        return self.world((np.asarray(self.shape) - 1) / 2.0)[0]

    def world(self, ijk: np.ndarray) -> np.ndarray:
        """LPS positions (N, 3) of (fractional) voxel indices (N, 3)."""
        ijk = np.atleast_2d(np.asarray(ijk, dtype=float))
        return ijk @ self.affine[:3, :3].T + self.affine[:3, 3]

    def index(self, points: np.ndarray) -> np.ndarray:
        """Fractional voxel indices (N, 3) of LPS points (N, 3): the inverse of :meth:`world`."""
        pts = np.atleast_2d(np.asarray(points, dtype=float))
        return (pts - self.affine[:3, 3]) @ np.linalg.inv(self.affine[:3, :3]).T

    def grid_points(self) -> np.ndarray:
        """LPS positions of every voxel centre, (i*j*k, 3) in C order of ``[i, j, k]``."""
        ijk = np.stack(np.meshgrid(*(np.arange(n) for n in self.shape), indexing="ij"), axis=-1).reshape(-1, 3)
        return self.world(ijk)

    def same_grid(self, other: Volume, atol: float = 1e-4) -> bool:
        """True when ``other`` has the same spatial shape and affine (within ``atol`` mm)."""
        return self.shape == other.shape and bool(np.allclose(self.affine, other.affine, atol=atol))

    def check_same_grid(self, other: Volume, what: str = "volume", atol: float = 1e-4) -> None:
        """Raise :class:`GeometryError` naming the difference when ``other`` is on another grid."""
        if self.shape != other.shape:
            raise GeometryError(f"{what}: grid {other.shape} does not match {self.shape}")
        if not np.allclose(self.affine, other.affine, atol=atol):
            raise GeometryError(
                f"{what}: affine differs from the reference by up to "
                f"{float(np.abs(self.affine - other.affine).max()):.4g} mm"
            )

    # -- derived volumes ----------------------------------------------------
    def with_array(self, array: np.ndarray, *, role: Role | None = None, **meta: Any) -> Volume:
        """A new Volume on the same grid (a filtered image, a label map of this image, ...).

        The role is kept unless given; a label map of an image is
        ``image.with_array(mask, role="label")``.
        """
        array = np.asarray(array)
        if tuple(array.shape[:3]) != self.shape:
            raise GeometryError(f"array shape {array.shape} does not match the grid {self.shape}")
        return replace(self, array=array, meta={**self.meta, **meta}, role=role or self.role)

    def as_label(self, **meta: Any) -> Volume:
        """This volume as a label map (integer ids, nearest-neighbour resampling)."""
        arr = self.array
        if not np.issubdtype(arr.dtype, np.integer) and arr.dtype != bool:
            rounded = np.rint(arr)
            if not np.array_equal(rounded, arr):
                raise GeometryError("as_label: the array holds non-integer values; it is not a label map")
            arr = rounded.astype(np.int32 if arr.min() < 0 else (np.uint8 if arr.max() < 256 else np.uint16))
        return self.with_array(arr, role="label", **meta)

    def channel(self, c: int) -> Volume:
        """One channel of a multi-channel image (or one component of a vector field) as a scalar image."""
        if self.array.ndim == 3:
            if c != 0:
                raise GeometryError(f"channel {c}: this volume has a single channel")
            return self
        if not -self.n_channels <= c < self.n_channels:
            raise GeometryError(f"channel {c}: this volume has {self.n_channels} channels")
        return replace(self, array=self.array[..., c], role="image")

    @classmethod
    def stack(cls, volumes: list[Volume] | tuple[Volume, ...], **meta: Any) -> Volume:
        """A multi-channel image from scalar images on one grid (channels last, in the given order)."""
        if not volumes:
            raise GeometryError("stack needs at least one volume")
        ref = volumes[0]
        for n, v in enumerate(volumes[1:], start=1):
            ref.check_same_grid(v, f"stack: volume {n} ({v.meta.get('name', '?')})")
            if v.array.ndim != 3:
                raise GeometryError(f"stack: volume {n} is not a scalar image")
        arr = np.stack([np.asarray(v.array, dtype=np.float32) for v in volumes], axis=-1)
        names = [str(v.meta.get("name", f"channel{n}")) for n, v in enumerate(volumes)]
        return cls(arr, ref.affine, {"channels": names, **meta}, role="image")

    def resample_to(
        self,
        reference: Volume,
        transform: Any = None,
        *,
        interpolator: str | None = None,
        default: float = 0.0,
    ) -> Volume:
        """This volume on ``reference``'s grid (optionally through a SimpleITK transform).

        The transform maps reference (fixed) points to this volume's (moving)
        points, as SimpleITK registration returns it. Interpolation follows the
        role unless ``interpolator`` ("nearest", "linear", "bspline") is given:
        labels nearest neighbour, images and vector components linear.
        """
        from medbench.image.resample import resample_to

        return resample_to(self, reference, transform, interpolator=interpolator, default=default)

    # -- constructors and converters ------------------------------------------
    @classmethod
    def from_spacing(
        cls,
        array: np.ndarray,
        spacing: tuple[float, float, float] | list[float],
        origin: tuple[float, float, float] | list[float] = (0.0, 0.0, 0.0),
        direction: np.ndarray | None = None,
        meta: dict[str, Any] | None = None,
        role: Role = "image",
    ) -> Volume:
        """Build from spacing/origin/direction (LPS), like a SimpleITK image."""
        d = np.eye(3) if direction is None else np.asarray(direction, dtype=float).reshape(3, 3)
        aff = np.eye(4)
        aff[:3, :3] = d * np.asarray(spacing, dtype=float)
        aff[:3, 3] = origin
        return cls(np.asarray(array), aff, dict(meta or {}), role=role)

    @classmethod
    def from_sitk(cls, image: Any, meta: dict[str, Any] | None = None, role: Role | None = None) -> Volume:
        """From a 3D SimpleITK image (scalar or vector pixels); axes reordered to [i, j, k(, c)]."""
        from medbench.image.convert import from_sitk

        return from_sitk(image, meta, role)

    def to_sitk(self) -> Any:
        """A SimpleITK image (a vector image for multi-channel volumes and vector fields)."""
        from medbench.image.convert import to_sitk

        return to_sitk(self)

    @classmethod
    def from_nifti(
        cls, path: str | os.PathLike[str], meta: dict[str, Any] | None = None, role: Role | None = None
    ) -> Volume:
        """Read a NIfTI file (RAS on disk) into an LPS Volume."""
        from medbench.image.convert import from_nifti

        return from_nifti(path, meta, role)

    def to_nifti(self, path: str | os.PathLike[str]) -> Path:
        """Write as NIfTI-1 (RAS affine in both sform and qform), atomically."""
        from medbench.image.convert import to_nifti

        return to_nifti(self, path)

    def __repr__(self) -> str:
        name = self.meta.get("name", "")
        shape = "x".join(str(s) for s in self.shape)
        spacing = "x".join(f"{s:.3g}" for s in self.spacing)
        chans = f", {self.n_channels} channels" if self.array.ndim == 4 else ""
        return f"Volume({name + ': ' if name else ''}{self.role}, {shape} at {spacing} mm{chans}, {self.array.dtype})"
