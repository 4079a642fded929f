"""load_series(): correct volumes (checked against SimpleITK), refusals that say why, honest resampling."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from medbench.data.samples import pydicom_sample, pydicom_test_dir
from medbench.errors import DicomError, GeometryError
from medbench.image.volume import Volume
from medbench.io.dicom import ResampledWarning, discover, group_series, load_series
from medbench.io.dicom.write import write_series

Z0 = 30.0


def _sitk_series(folder: Path) -> Volume:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    return Volume.from_sitk(reader.Execute())


def _assert_same_grid(a: Volume, b: Volume, atol: float = 1e-4) -> None:
    assert a.shape == b.shape
    np.testing.assert_allclose(a.spacing, b.spacing, atol=atol)
    np.testing.assert_allclose(a.origin, b.origin, atol=atol)
    np.testing.assert_allclose(a.direction, b.direction, atol=atol)


def test_phantom_round_trip_and_simpleitk_agree(dicom_series_dir: Path, dicom_volume: Volume) -> None:
    (series,) = group_series(discover(dicom_series_dir).files)
    volume = load_series(series)
    assert volume.array.dtype == np.float32
    _assert_same_grid(volume, dicom_volume)
    np.testing.assert_array_equal(volume.array, dicom_volume.array)
    reference = _sitk_series(dicom_series_dir)
    _assert_same_grid(volume, reference)
    np.testing.assert_array_equal(volume.array, reference.array)
    meta = volume.meta
    assert meta["modality"] == "CT" and meta["units"] == "HU" and meta["window"] == (40.0, 400.0)
    assert meta["n_slices"] == 10 and meta["series_uid"] == series.series_uid
    assert meta["description"] == "phantom CT" and meta["resampled"] is None
    assert [Path(p).name for p in meta["source_paths"]] == [f"IM{k:04d}.dcm" for k in range(1, 11)]


def test_real_ct_series_matches_simpleitk(dicom_tree_hash) -> None:
    folder = pydicom_test_dir() / "dicomdirtests" / "98892001" / "CT5N"
    before = dicom_tree_hash(folder)
    volume = load_series(folder)
    reference = _sitk_series(folder)
    assert dicom_tree_hash(folder) == before  # sources are only read
    _assert_same_grid(volume, reference)
    np.testing.assert_array_equal(volume.array, reference.array)  # HU (slope 1, intercept -1024)
    assert volume.shape == (16, 16, 5) and volume.spacing[2] == pytest.approx(2.5)
    assert volume.meta["units"] == "HU"


def test_real_rt_dose_grid_matches_simpleitk_geometry() -> None:
    path = pydicom_sample("rtdose.dcm")
    volume = load_series(path)
    reference = Volume.from_sitk(sitk.ReadImage(str(path)))  # raw stored values
    _assert_same_grid(volume, reference)
    scaling = float(pydicom.dcmread(path, stop_before_pixels=True).DoseGridScaling)
    np.testing.assert_allclose(volume.array, reference.array * scaling, rtol=1e-6)
    assert volume.meta["units"] == "RELATIVE"  # DoseUnits of this sample


def test_single_slice_real_samples() -> None:
    for name in ("CT_small.dcm", "MR_small.dcm"):
        path = pydicom_sample(name)
        volume = load_series(path)
        reference = Volume.from_sitk(sitk.ReadImage(str(path)))
        assert volume.shape[2] == 1
        np.testing.assert_allclose(volume.origin, reference.origin, atol=1e-4)
        np.testing.assert_allclose(volume.spacing[:2], reference.spacing[:2], atol=1e-6)
        np.testing.assert_allclose(volume.direction[:, :2], reference.direction[:, :2], atol=1e-5)
    ct = pydicom.dcmread(pydicom_sample("CT_small.dcm"))
    expected = ct.pixel_array * float(ct.RescaleSlope) + float(ct.RescaleIntercept)
    np.testing.assert_array_equal(load_series(pydicom_sample("CT_small.dcm")).array[:, :, 0], expected.T)


def test_datasets_in_memory_load_like_files(dicom_series_dir: Path) -> None:
    paths = sorted(dicom_series_dir.iterdir())
    from_files = load_series(paths)
    datasets = [pydicom.dcmread(p) for p in reversed(paths)]
    for ds in datasets:
        ds.filename = None  # as a DICOMweb retrieve hands them over
    from_memory = load_series(datasets)
    np.testing.assert_array_equal(from_memory.affine, from_files.affine)
    np.testing.assert_array_equal(from_memory.array, from_files.array)
    assert from_memory.meta["source_paths"][0].startswith("data set")


def test_enhanced_multiframe_matches_the_single_frame_series(
    tmp_path: Path, dicom_series_dir: Path, dicom_volume: Volume, dicom_enhanced
) -> None:
    path = dicom_enhanced(dicom_volume, tmp_path / "enhanced.dcm", slopes=[1.0, 2.0] * 5,
                          frame_order=[9, 8, 7, 6, 5, 4, 3, 2, 1, 0])
    enhanced = load_series(path)
    classic = load_series(dicom_series_dir)
    np.testing.assert_allclose(enhanced.affine, classic.affine, atol=1e-4)
    even = np.arange(0, 10, 2)
    np.testing.assert_array_equal(enhanced.array[:, :, even], classic.array[:, :, even])  # slope 1 frames exact
    np.testing.assert_allclose(enhanced.array, classic.array, atol=1.0)  # slope 2 frames round to 2 HU
    assert enhanced.meta["units"] == "HU" and enhanced.meta["source_paths"] == [str(path)]


def test_missing_slice_refused_then_resampled(tmp_path: Path, dicom_positions, dicom_field) -> None:
    positions = [[-12.0, 4.0, Z0 + 2.5 * k] for k in range(10)]
    paths = dicom_positions(tmp_path / "s", positions)
    paths[4].unlink()
    with pytest.raises(GeometryError) as err:
        load_series(tmp_path / "s")
    message = str(err.value)
    assert "series " in message and "(CT phantom)" in message
    assert "missing slices" in message and "1 slice missing" in message and "resample=True" in message
    with pytest.warns(ResampledWarning, match="missing slices corrected"):
        volume = load_series(tmp_path / "s", resample=True)
    assert volume.shape == (32, 32, 10) and volume.spacing[2] == pytest.approx(2.5)
    assert "9 slices linearly interpolated onto 10" in volume.meta["resampled"]
    ijk = np.stack(np.meshgrid(*(np.arange(n) for n in volume.shape), indexing="ij"), -1).reshape(-1, 3)
    truth = dicom_field(volume.world(ijk)).reshape(volume.shape)
    np.testing.assert_allclose(volume.array, truth, atol=0.01)  # the field is linear: interpolation is exact


def test_uneven_spacing_resampled_onto_the_typical_spacing(tmp_path: Path, dicom_positions, dicom_field) -> None:
    positions = [[-12.0, 4.0, Z0 + 2.5 * k] for k in range(10)]
    positions[6][2] += 1.0
    dicom_positions(tmp_path / "s", positions)
    with pytest.raises(GeometryError, match="uneven spacing"):
        load_series(tmp_path / "s")
    with pytest.warns(ResampledWarning):
        volume = load_series(tmp_path / "s", resample=True)
    assert volume.shape[2] == 10
    ijk = np.stack(np.meshgrid(*(np.arange(n) for n in volume.shape), indexing="ij"), -1).reshape(-1, 3)
    np.testing.assert_allclose(volume.array, dicom_field(volume.world(ijk)).reshape(volume.shape), atol=0.01)


def test_gantry_tilt_refused_then_resampled(tmp_path: Path, dicom_positions, dicom_field) -> None:
    positions = [[-12.0, 4.0 + 0.35 * k, Z0 + 2.5 * k] for k in range(10)]  # 0.5 pixel sideways per slice
    dicom_positions(tmp_path / "s", positions)
    with pytest.raises(GeometryError, match="gantry tilt"):
        load_series(tmp_path / "s")
    with pytest.warns(ResampledWarning, match="gantry tilt corrected"):
        volume = load_series(tmp_path / "s", resample=True)
    assert volume.shape == (32, 32, 10)
    np.testing.assert_allclose(volume.origin, positions[0])
    np.testing.assert_allclose(volume.direction, np.eye(3), atol=1e-6)  # a regular grid along the normal
    ijk = np.stack(np.meshgrid(*(np.arange(n) for n in volume.shape), indexing="ij"), -1).reshape(-1, 3)
    truth = dicom_field(volume.world(ijk)).reshape(volume.shape)
    inside = np.s_[:, 5:, :]  # rows every shifted slice still covers (shift <= 4.5 pixels)
    np.testing.assert_allclose(volume.array[inside], truth[inside], atol=0.01)
    assert "outside the shifted slices" in volume.meta["resampled"]


def test_duplicates_are_never_dropped(tmp_path: Path, dicom_positions, dicom_edit) -> None:
    paths = dicom_positions(tmp_path / "s", [[0.0, 0.0, 2.5 * k] for k in range(6)])
    shutil.copy(paths[2], tmp_path / "s" / "again.dcm")
    dicom_edit(tmp_path / "s" / "again.dcm", SOPInstanceUID="1.2.3.4.5.6")
    for resample in (False, True):
        with pytest.raises(GeometryError, match="duplicate positions.*never dropped automatically"):
            load_series(tmp_path / "s", resample=resample)
    volume = load_series([p for p in paths])  # the caller chooses which files to keep
    assert volume.shape[2] == 6


def test_inconsistent_orientation_refused_even_with_resample(tmp_path: Path, dicom_positions, dicom_edit) -> None:
    paths = dicom_positions(tmp_path / "s", [[0.0, 0.0, 2.5 * k] for k in range(5)])
    dicom_edit(paths[1], ImageOrientationPatient=["1", "0", "0", "0", "0.9950042", "-0.0998334"])
    with pytest.raises(GeometryError, match="inconsistent orientation.*IM0002.dcm"):
        load_series(paths, resample=True)


def test_folder_with_two_series_asks_which(tmp_path: Path, dicom_volume: Volume) -> None:
    write_series(dicom_volume, tmp_path / "a", uid_seed="one")
    write_series(dicom_volume, tmp_path / "b", uid_seed="two", series_number=2)
    with pytest.raises(DicomError, match="holds 2 image series"):
        load_series(tmp_path)


def test_colour_images_are_not_volumes() -> None:
    with pytest.raises(DicomError, match="colour images.*RGB"):
        load_series(pydicom_sample("SC_rgb_rle_2frame.dcm"))
