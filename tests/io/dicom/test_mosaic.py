"""Siemens MOSAIC: unpacked into a 3-D volume with nibabel's geometry, or refused; never one tiled slice.

Real mosaics ship with nibabel (``siemens_dwi_0.dcm.gz``: 896 x 896, 48 slices of
128 x 128; ``0.dcm`` / ``1.dcm``: the same header over a 256 x 256 image that 48
tiles cannot divide). Synthetic mosaics with a CSA header written by
:func:`tests.io.hostile.write_mosaic` cover a slice normal that points the other
way and a partly empty tile grid. nibabel's ``MosaicWrapper`` is the reference
for geometry and values.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest

from medbench.audit import run_audit
from medbench.errors import MedbenchError
from medbench.image.volume import Volume
from medbench.io.dicom import discover, group_series, load_series
from tests.io.hostile import NIBABEL_DATA, nibabel_mosaic, write_mosaic


def _nibabel(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """nibabel's data ``[row, column, slice]`` and affine (LPS) for a mosaic file."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from nibabel.nicom.dicomwrappers import MosaicWrapper

        wrapper = MosaicWrapper(pydicom.dcmread(path))
        return np.asarray(wrapper.get_data(), dtype=np.float64), np.asarray(wrapper.affine)


def _assert_same_world(volume: Volume, nib_data: np.ndarray, nib_affine: np.ndarray) -> None:
    """Every nibabel voxel lands on a voxel of ``volume`` with the same value (same geometry, same data)."""
    assert volume.array.ndim == 3 and sorted(volume.shape) == sorted(nib_data.shape)
    index_map = np.linalg.inv(volume.affine) @ nib_affine  # nibabel voxel index -> our voxel index
    linear = index_map[:3, :3]
    assert np.allclose(linear, np.round(linear), atol=1e-4), linear
    assert sorted(np.abs(np.round(linear)).sum(axis=0)) == [1, 1, 1]  # a permutation with flips
    assert np.allclose(index_map[:3, 3], np.round(index_map[:3, 3]), atol=1e-3), index_map[:3, 3]
    grid = np.stack(np.meshgrid(*(np.arange(n) for n in nib_data.shape), indexing="ij"), axis=-1).reshape(-1, 3)
    ours = np.round(grid @ linear.T + index_map[:3, 3]).astype(int)
    assert (ours >= 0).all() and (ours < np.array(volume.shape)).all()
    np.testing.assert_array_equal(volume.array[ours[:, 0], ours[:, 1], ours[:, 2]], nib_data.reshape(-1))


def test_real_mosaic_unpacks_into_nibabels_volume(tmp_path: Path) -> None:
    path = nibabel_mosaic("siemens_dwi_0.dcm.gz", tmp_path / "dwi")
    volume = load_series(path)
    assert volume.shape == (128, 128, 48)  # never (896, 896, 1): one tiled slice
    _assert_same_world(volume, *_nibabel(path))


@pytest.mark.parametrize("normal_sign", [1.0, -1.0], ids=["csa-normal-along", "csa-normal-against"])
def test_synthetic_mosaic_geometry_matches_nibabel(tmp_path: Path, normal_sign: float) -> None:
    rng = np.random.default_rng(11)
    slices = rng.integers(0, 4000, size=(10, 6, 5), dtype=np.uint16)  # 10 slices in a 4 x 4 grid (6 empty tiles)
    oblique_row = (np.cos(0.3), np.sin(0.3), 0.0)
    oblique_col = (-np.sin(0.3) * np.cos(0.2), np.cos(0.3) * np.cos(0.2), np.sin(0.2))
    path = write_mosaic(tmp_path / "m.dcm", slices, row_cosines=oblique_row, column_cosines=oblique_col,
                        normal_sign=normal_sign)
    volume = load_series(path)
    assert volume.shape == (5, 6, 10)
    nib_data, nib_affine = _nibabel(path)
    np.testing.assert_array_equal(nib_data[..., 0], slices[0])  # the reference itself reads the tiles as written
    _assert_same_world(volume, nib_data, nib_affine)


def test_two_mosaics_are_two_volumes_not_a_two_slice_series(tmp_path: Path) -> None:
    folder = tmp_path / "dwi"
    nibabel_mosaic("siemens_dwi_0.dcm.gz", folder)
    nibabel_mosaic("siemens_dwi_1000.dcm.gz", folder)  # same series, same place: b=0 and b=1000
    series = group_series(discover(folder).files)
    assert [s.n_frames for s in series] == [48, 48]
    assert all("MOSAIC" in (s.split_reason or "") for s in series)
    assert [load_series(s).shape for s in series] == [(128, 128, 48)] * 2


def test_mosaics_that_cannot_be_unpacked_are_refused_not_stacked(tmp_path: Path) -> None:
    folder = tmp_path / "small"
    folder.mkdir()
    for name in ("0.dcm", "1.dcm"):  # 256 x 256 images claiming 48 tiles: 7 x 7 tiles do not divide 256
        shutil.copy(NIBABEL_DATA / name, folder / name)
    result = run_audit(folder, tmp_path / "report", sample_pixels=False)
    rows = result.series_df
    assert len(rows) == 2 and (rows["status"] == "invalid").all()  # not one "valid" 2-slice series, 3 mm apart
    assert rows["verdict"].eq("mosaic not unpacked").all()
    assert rows["problems"].str.contains("7 x 7 grid of tiles, which does not divide the 256 x 256 image").all()
    with pytest.raises(MedbenchError, match="MOSAIC"):
        load_series(folder / "0.dcm")


def test_mosaic_without_its_csa_header_is_refused(tmp_path: Path) -> None:
    slices = np.ones((4, 3, 3), dtype=np.uint16)
    path = write_mosaic(tmp_path / "nocsa.dcm", slices, csa=False)
    with pytest.raises(MedbenchError, match="without a Siemens CSA image header"):
        load_series(path)
    wrong = write_mosaic(tmp_path / "wrong.dcm", slices, n_in_csa=10)  # 4 x 4 tiles cannot divide 6 x 6
    with pytest.raises(MedbenchError, match="does not divide"):
        load_series(wrong)
