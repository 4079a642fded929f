"""medbench.image.convert: every converter is a lossless round trip of values and geometry."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
import torch
from monai.transforms import LoadImage, Orientation

from medbench.errors import GeometryError
from medbench.image import Volume
from medbench.image.convert import from_metatensor, to_metatensor, to_tensor
from medbench.image.transforms import euler_zxy


def _vol(role: str = "image", channels: int = 0) -> Volume:
    rng = np.random.default_rng(0)
    shape = (7, 6, 5) + ((channels,) if channels else ())
    if role == "label":
        arr = rng.integers(0, 4, shape).astype(np.uint8)
    else:
        arr = rng.normal(size=shape).astype(np.float32)
    return Volume.from_spacing(arr, (0.7, 1.1, 2.0), (5.0, -3.0, 12.0), euler_zxy((0.0, 8.0, -20.0)),
                               {"name": "x"}, role=role)  # type: ignore[arg-type]


def _same(a: Volume, b: Volume) -> None:
    assert a.role == b.role and a.shape == b.shape and a.n_channels == b.n_channels
    np.testing.assert_allclose(a.affine, b.affine, atol=1e-5)
    np.testing.assert_array_equal(a.array, b.array)


@pytest.mark.parametrize(("role", "channels"), [("image", 0), ("label", 0), ("image", 2), ("vector", 3)])
def test_sitk_round_trip(role: str, channels: int) -> None:
    v = _vol(role, channels)
    img = v.to_sitk()
    assert img.GetNumberOfComponentsPerPixel() == max(1, channels)
    _same(v, Volume.from_sitk(img, role=role))  # type: ignore[arg-type]
    # SimpleITK's own index -> point agrees with the affine
    idx = (3, 2, 1)
    np.testing.assert_allclose(img.TransformIndexToPhysicalPoint(idx), v.world([idx])[0], atol=1e-6)
    if channels == 0:
        assert img[idx] == pytest.approx(float(v.array[idx]))


@pytest.mark.parametrize(("role", "channels"), [("image", 0), ("label", 0), ("vector", 3)])
def test_nifti_round_trip_stores_ras(tmp_path: Path, role: str, channels: int) -> None:
    v = _vol(role, channels)
    path = v.to_nifti(tmp_path / "v.nii.gz")
    img = nib.load(path)
    np.testing.assert_allclose(img.affine, np.diag([-1, -1, 1, 1]) @ v.affine, atol=1e-5)
    _same(v, Volume.from_nifti(path, role=role))  # type: ignore[arg-type]
    if role == "vector":
        assert img.shape == (*v.shape, 1, 3) and Volume.from_nifti(path).role == "vector"
        itk = sitk.ReadImage(str(path))  # ITK reads the vectors as LPS components
        np.testing.assert_allclose(sitk.GetArrayFromImage(itk).transpose(2, 1, 0, 3), v.array, atol=1e-6)


def test_nifti_refuses_unreadable_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(b"not a nifti")
    with pytest.raises(GeometryError, match="not a readable NIfTI"):
        Volume.from_nifti(bad)


def test_tensor_is_channel_first() -> None:
    v = _vol("image", 2)
    t = to_tensor(v)
    assert t.shape == (2, 7, 6, 5) and t.dtype == torch.float32
    np.testing.assert_array_equal(t[1].numpy(), v.array[..., 1])
    assert to_tensor(_vol("label")).dtype == torch.int64


@pytest.mark.parametrize(("role", "channels"), [("image", 0), ("label", 0), ("image", 3)])
def test_metatensor_round_trip(role: str, channels: int) -> None:
    v = _vol(role, channels)
    mt = to_metatensor(v)
    np.testing.assert_allclose(mt.affine.numpy(), v.affine_ras)
    back = from_metatensor(mt)
    assert back.meta["name"] == "x"
    _same(v, back if role != "label" else back.with_array(back.array.astype(np.uint8)))


def test_metatensor_matches_what_monai_loads_from_the_nifti(tmp_path: Path) -> None:
    """Our MetaTensor equals MONAI's LoadImage of the same file, so MONAI transforms see the same geometry."""
    v = _vol()
    path = v.to_nifti(tmp_path / "v.nii.gz")
    loaded = LoadImage(image_only=True, ensure_channel_first=True)(str(path))
    ours = to_metatensor(v)
    np.testing.assert_allclose(ours.affine.numpy(), loaded.affine.numpy(), atol=1e-5)
    np.testing.assert_allclose(ours.numpy(), loaded.numpy())
    # and a MONAI spatial transform keeps it consistent with our world coordinates
    ras = Orientation(axcodes="RAS", labels=(("L", "R"), ("P", "A"), ("I", "S")))(ours)
    back = from_metatensor(ras)
    ijk = np.array([[1, 2, 3]])
    world = back.world(ijk)[0]
    src_ijk = np.rint(v.index([world])[0]).astype(int)
    assert back.array[tuple(ijk[0])] == pytest.approx(v.array[tuple(src_ijk)])


def test_from_metatensor_needs_an_affine() -> None:
    with pytest.raises(GeometryError, match="carries no affine"):
        from_metatensor(torch.zeros(1, 2, 2, 2))
