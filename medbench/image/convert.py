"""Converters between :class:`~medbench.image.volume.Volume` and the field's image types.

Each pair is a lossless round trip of values and geometry (tested):

* SimpleITK (LPS, like Volume): :func:`to_sitk` / :func:`from_sitk`. Arrays
  are reordered between SimpleITK's ``[k, j, i]`` and our ``[i, j, k]``;
  multi-channel images and vector fields become vector images.
* NIfTI (RAS on disk): :func:`to_nifti` / :func:`from_nifti`. A vector field
  is stored as ``[i, j, k, 1, 3]`` with intent ``vector`` and LPS components in
  mm, the layout ITK and ANTs read as a displacement field.
* torch / MONAI: :func:`to_tensor` gives a channel-first float tensor
  ``(C, i, j, k)``; :func:`to_metatensor` the same as a MONAI ``MetaTensor``
  whose ``affine`` is the **RAS** affine MONAI's spatial transforms expect
  (what ``LoadImage`` produces from the NIfTI file); :func:`from_metatensor`
  goes back, converting the affine to LPS.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from medbench.atomic import atomic_path
from medbench.errors import GeometryError
from medbench.image.volume import LPS_TO_RAS, Role, Volume


# -- SimpleITK ----------------------------------------------------------------
def to_sitk(vol: Volume) -> Any:
    import SimpleITK as sitk

    arr = np.asarray(vol.array)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if arr.ndim == 4:
        img = sitk.GetImageFromArray(np.ascontiguousarray(arr.transpose(2, 1, 0, 3)), isVector=True)
    else:
        img = sitk.GetImageFromArray(np.ascontiguousarray(arr.transpose(2, 1, 0)))
    img.SetSpacing(vol.spacing)
    img.SetOrigin(vol.origin)
    img.SetDirection(tuple(float(v) for v in vol.direction.ravel()))
    return img


def from_sitk(image: Any, meta: dict[str, Any] | None = None, role: Role | None = None) -> Volume:
    import SimpleITK as sitk

    if image.GetDimension() != 3:
        raise GeometryError(f"expected a 3D SimpleITK image, got {image.GetDimension()}D")
    arr = sitk.GetArrayFromImage(image)
    arr = arr.transpose(2, 1, 0, 3) if image.GetNumberOfComponentsPerPixel() > 1 else arr.transpose(2, 1, 0)
    if role is None:
        role = "vector" if arr.ndim == 4 and arr.shape[3] == 3 and np.issubdtype(arr.dtype, np.floating) else "image"
    return Volume.from_spacing(arr, image.GetSpacing(), image.GetOrigin(), np.array(image.GetDirection()),
                               meta, role=role)


# -- NIfTI ----------------------------------------------------------------------
def from_nifti(path: str | os.PathLike[str], meta: dict[str, Any] | None = None, role: Role | None = None) -> Volume:
    import nibabel as nib
    from nibabel.filebasedimages import ImageFileError

    try:
        img: Any = nib.load(os.fspath(path))
        arr = np.asanyarray(img.dataobj)
    except (OSError, ValueError, EOFError, ImageFileError) as exc:
        raise GeometryError(f"{path}: not a readable NIfTI file ({exc})") from None
    is_vector = arr.ndim == 5 and arr.shape[3] == 1 and arr.shape[4] == 3
    if is_vector:
        arr = arr[:, :, :, 0, :]
        role = role or "vector"
    elif arr.ndim not in (3, 4):
        raise GeometryError(f"{path}: expected a 3D image (or 4D channels, or a vector field), got shape {arr.shape}")
    info = {"source": os.fspath(path), **(meta or {})}
    return Volume(np.asarray(arr), LPS_TO_RAS @ img.affine, info, role=role or "image")


def to_nifti(vol: Volume, path: str | os.PathLike[str]) -> Path:
    import nibabel as nib

    path = Path(path)
    arr = np.asarray(vol.array)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if vol.role == "vector":
        img = nib.Nifti1Image(arr.astype(np.float32)[:, :, :, None, :], vol.affine_ras)
        img.header.set_intent("vector")
        descrip = "displacement mm LPS"
    else:
        img = nib.Nifti1Image(arr, vol.affine_ras)
        descrip = str(vol.meta.get("units") or "")
    img.set_sform(vol.affine_ras, code=1)
    img.set_qform(vol.affine_ras, code=1)
    if descrip:
        img.header["descrip"] = descrip[:79].encode()
    with atomic_path(path, suffix=".nii.gz" if path.name.endswith(".gz") else ".nii") as tmp:
        nib.save(img, os.fspath(tmp))
    return path


# -- torch / MONAI ----------------------------------------------------------------
def _channel_first(vol: Volume) -> np.ndarray:
    arr = np.asarray(vol.array)
    return arr[None] if arr.ndim == 3 else np.moveaxis(arr, -1, 0)


def to_tensor(vol: Volume, dtype: Any = None) -> Any:
    """A channel-first torch tensor ``(C, i, j, k)`` (float32 unless ``dtype``; labels keep int64)."""
    import torch

    arr = np.ascontiguousarray(_channel_first(vol))
    if dtype is None:
        dtype = torch.int64 if vol.is_label else torch.float32
    return torch.as_tensor(arr).to(dtype)


def to_metatensor(vol: Volume, dtype: Any = None) -> Any:
    """A MONAI ``MetaTensor`` ``(C, i, j, k)`` with the RAS affine and the volume's meta."""
    from monai.data import MetaTensor

    meta = {k: v for k, v in vol.meta.items() if isinstance(v, (str, int, float, bool))}
    meta["medbench_role"] = vol.role
    import torch

    return MetaTensor(to_tensor(vol, dtype), affine=torch.as_tensor(vol.affine_ras, dtype=torch.float64), meta=meta)


def from_metatensor(tensor: Any, role: Role | None = None, meta: dict[str, Any] | None = None) -> Volume:
    """A Volume from a channel-first ``MetaTensor`` (RAS affine); a single channel becomes a scalar volume."""
    affine = getattr(tensor, "affine", None)
    if affine is None:
        raise GeometryError("from_metatensor: the tensor carries no affine (use a MONAI MetaTensor)")
    arr = tensor.detach().cpu().numpy()
    if arr.ndim != 4:
        raise GeometryError(f"from_metatensor: expected a channel-first (C, i, j, k) tensor, got shape {arr.shape}")
    if role is None:
        role = str(getattr(tensor, "meta", {}).get("medbench_role", "image"))  # type: ignore[assignment]
    arr = arr[0] if arr.shape[0] == 1 else np.moveaxis(arr, 0, -1)
    aff = np.asarray(affine.detach().cpu().numpy() if hasattr(affine, "detach") else affine, dtype=float)
    src_meta = {k: v for k, v in dict(getattr(tensor, "meta", {})).items()
                if isinstance(v, (str, int, float, bool)) and k != "medbench_role"}
    return Volume(arr, LPS_TO_RAS @ aff, {**src_meta, **(meta or {})}, role=role)  # type: ignore[arg-type]
