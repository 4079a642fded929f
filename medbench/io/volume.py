"""`Volume`: a voxel array with the geometry that places it in the patient.

Conventions (stated once, used everywhere in medbench):

* ``array`` is indexed ``[i, j, k]`` = (column, row, slice) like nibabel, so
  ``affine @ [i, j, k, 1]`` is the world position of a voxel centre in mm.
* ``affine`` is in the **LPS** patient frame of DICOM (x to the patient's
  left, y posterior, z superior). :attr:`Volume.affine_ras` gives the RAS
  affine that NIfTI files and nibabel use; :meth:`Volume.to_nifti` writes it.
* SimpleITK images are LPS too; :meth:`to_sitk` / :meth:`from_sitk` convert
  without touching the geometry.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from medbench.errors import GeometryError
from medbench.io.atomic import atomic_path

#: Flip between the DICOM LPS frame and the NIfTI RAS frame (its own inverse).
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass(frozen=True)
class Volume:
    """A 3D image: ``array[i, j, k]`` with a 4x4 LPS ``affine`` (mm)."""

    array: np.ndarray
    affine: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)
    frame: str = "LPS"

    def __post_init__(self) -> None:
        aff = np.asarray(self.affine, dtype=float)
        if aff.shape != (4, 4) or not np.allclose(aff[3], [0, 0, 0, 1]):
            raise GeometryError(f"affine must be a 4x4 homogeneous matrix, got {aff.tolist()}")
        if self.array.ndim != 3:
            raise GeometryError(f"Volume needs a 3D array, got shape {self.array.shape}")
        if abs(np.linalg.det(aff[:3, :3])) < 1e-9:
            raise GeometryError("affine is singular (zero spacing or collinear axes)")
        if self.frame != "LPS":
            raise GeometryError(f"Volume stores LPS geometry; got frame {self.frame!r}")
        object.__setattr__(self, "affine", aff)

    # -- geometry -----------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.array.shape)  # type: ignore[return-value]

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along i, j, k."""
        return tuple(float(s) for s in np.linalg.norm(self.affine[:3, :3], axis=0))  # type: ignore[return-value]

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
        """The same geometry in the RAS frame (what NIfTI stores)."""
        return LPS_TO_RAS @ self.affine

    def world(self, ijk: np.ndarray) -> np.ndarray:
        """LPS positions (N, 3) of voxel indices (N, 3)."""
        ijk = np.atleast_2d(np.asarray(ijk, dtype=float))
        return ijk @ self.affine[:3, :3].T + self.affine[:3, 3]

    def with_array(self, array: np.ndarray, **meta: Any) -> Volume:
        """A new Volume on the same grid (e.g. a label map or a filtered image)."""
        if array.shape != self.array.shape:
            raise GeometryError(f"array shape {array.shape} does not match the grid {self.array.shape}")
        return replace(self, array=array, meta={**self.meta, **meta})

    # -- constructors -------------------------------------------------------
    @classmethod
    def from_spacing(
        cls,
        array: np.ndarray,
        spacing: tuple[float, float, float],
        origin: tuple[float, float, float] = (0.0, 0.0, 0.0),
        direction: np.ndarray | None = None,
        meta: dict[str, Any] | None = None,
    ) -> Volume:
        """Build from spacing/origin/direction (LPS), like a SimpleITK image."""
        d = np.eye(3) if direction is None else np.asarray(direction, dtype=float).reshape(3, 3)
        aff = np.eye(4)
        aff[:3, :3] = d * np.asarray(spacing, dtype=float)
        aff[:3, 3] = origin
        return cls(np.asarray(array), aff, dict(meta or {}))

    @classmethod
    def from_sitk(cls, image: Any, meta: dict[str, Any] | None = None) -> Volume:
        """From a 3D SimpleITK image (array axes reordered to [i, j, k])."""
        import SimpleITK as sitk

        arr = sitk.GetArrayFromImage(image).transpose(2, 1, 0)
        return cls.from_spacing(arr, image.GetSpacing(), image.GetOrigin(), np.array(image.GetDirection()), meta)

    def to_sitk(self) -> Any:
        import SimpleITK as sitk

        img = sitk.GetImageFromArray(np.ascontiguousarray(self.array.transpose(2, 1, 0)))
        img.SetSpacing(self.spacing)
        img.SetOrigin(self.origin)
        img.SetDirection(tuple(float(v) for v in self.direction.ravel()))
        return img

    @classmethod
    def from_nifti(cls, path: str | os.PathLike[str], meta: dict[str, Any] | None = None) -> Volume:
        """Read a NIfTI file (RAS on disk) into an LPS Volume."""
        import nibabel as nib

        img = nib.load(os.fspath(path))
        arr = np.asanyarray(img.dataobj)
        if arr.ndim != 3:
            raise GeometryError(f"{path}: expected a 3D image, got shape {arr.shape}")
        return cls(arr, LPS_TO_RAS @ img.affine, {"source": os.fspath(path), **(meta or {})})

    def to_nifti(self, path: str | os.PathLike[str]) -> Path:
        """Write as NIfTI-1 (RAS affine in both sform and qform), atomically."""
        import nibabel as nib

        path = Path(path)
        img = nib.Nifti1Image(np.asarray(self.array), self.affine_ras)
        img.set_sform(self.affine_ras, code=1)
        img.set_qform(self.affine_ras, code=1)
        unit = self.meta.get("units")
        if unit:
            img.header["descrip"] = str(unit)[:79].encode()
        with atomic_path(path, suffix=".nii.gz" if path.name.endswith(".gz") else ".nii") as tmp:
            nib.save(img, os.fspath(tmp))
        return path
