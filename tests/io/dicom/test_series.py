"""group_series(): one Series per volume, split (with a reason) where a series cannot be one volume."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from medbench.data.samples import pydicom_test_dir
from medbench.image.volume import Volume
from medbench.io.dicom import check_geometry, discover, group_series, load_series, series_table
from medbench.io.dicom.write import uid_from, write_series


def _volume(shape=(32, 32, 10), direction=None) -> Volume:
    return Volume.from_spacing(np.zeros(shape, np.float32), (0.8, 0.7, 2.5), (0.0, 0.0, 0.0), direction)


def _write_part(folder: Path, seed: str, series_uid: str, volume: Volume | None = None, **extra) -> None:
    """A series part sharing ``series_uid`` (and study) with others but with its own instance UIDs."""
    write_series(
        volume or _volume(), folder, uid_seed=seed, study_uid=uid_from("study"), extra={"SeriesInstanceUID": series_uid, **extra}
    )


def test_two_series_in_one_folder(tmp_path: Path, dicom_volume: Volume) -> None:
    write_series(dicom_volume, tmp_path / "mixed", uid_seed="a", series_number=1, series_description="first")
    write_series(
        dicom_volume, tmp_path / "other", uid_seed="a", series_number=2, series_description="second",
        filename_pattern="X{index:02d}",
    )
    for f in (tmp_path / "other").iterdir():
        f.rename(tmp_path / "mixed" / f.name)
    series = group_series(discover(tmp_path / "mixed").files)
    assert [(s.description, s.n_files, s.split_reason) for s in series] == [("first", 10, None), ("second", 10, None)]
    assert series[0].series_uid != series[1].series_uid
    assert series[0].study_uid == series[1].study_uid
    assert series[0].key == series[0].series_uid
    table = series_table(series)
    assert list(table["n_files"]) == [10, 10]


def test_files_are_ordered_along_the_normal_not_by_name(tmp_path: Path, dicom_volume: Volume, dicom_edit) -> None:
    paths = write_series(dicom_volume, tmp_path / "s")
    shuffled = list(range(10))
    random.Random(0).shuffle(shuffled)
    for path, number in zip(paths, shuffled, strict=True):
        dicom_edit(path, InstanceNumber=number + 1)
        path.rename(path.with_name(f"zz{number:02d}"))
    (series,) = group_series(discover(tmp_path / "s").files)
    normal = dicom_volume.direction[:, 2]
    along = [float(np.dot(np.array(f.dataset.ImagePositionPatient, float), normal)) for f in series.files]
    assert along == sorted(along)
    assert np.allclose(np.diff(along), 2.5, atol=1e-3)


def test_mixed_sizes_in_one_series_uid_are_split(tmp_path: Path) -> None:
    uid = uid_from("shared-series")
    _write_part(tmp_path / "a", "big", uid)
    _write_part(tmp_path / "b", "small", uid, _volume((16, 16, 4)))
    series = group_series(discover(tmp_path).files)
    assert [(s.n_files, s.series_uid) for s in series] == [(4, uid), (10, uid)]  # keys sort "16x16" before "32x32"
    assert all("image size" in s.split_reason for s in series)
    assert "16x16" in series[0].key and "32x32" in series[1].key
    assert series[0].key != series[1].key


def test_orientation_split(tmp_path: Path) -> None:
    uid = uid_from("two-planes")
    sagittal = np.array([[0, 0, 1], [1, 0, 0], [0, 1, 0]], float)  # i along y, j along z, k along x
    _write_part(tmp_path / "ax", "ax", uid)
    _write_part(tmp_path / "sag", "sag", uid, _volume(direction=sagittal))
    series = group_series(discover(tmp_path).files)
    assert len(series) == 2
    assert {s.key.split("[")[1] for s in series} == {"axial orientation]", "sagittal orientation]"}
    assert all("ImageOrientationPatient" in s.split_reason for s in series)


def test_echo_time_point_and_modality_splits(tmp_path: Path) -> None:
    uid = uid_from("multi")
    _write_part(tmp_path / "e1", "e1", uid, EchoNumbers=1)
    _write_part(tmp_path / "e2", "e2", uid, EchoNumbers=2)
    by_echo = group_series(discover(tmp_path).files)
    assert [s.n_files for s in by_echo] == [10, 10]
    assert all("EchoNumbers" in s.split_reason for s in by_echo)
    assert {f.dataset.EchoNumbers for f in by_echo[1].files} == {2}

    uid_t = uid_from("dynamic")
    for t in (1, 2, 3):
        _write_part(tmp_path / "dyn" / str(t), f"t{t}", uid_t, TemporalPositionIdentifier=t)
    dynamic = group_series(discover(tmp_path / "dyn").files)
    assert [s.n_files for s in dynamic] == [10, 10, 10]
    assert "TemporalPositionIdentifier" in dynamic[0].split_reason

    uid_m = uid_from("modalities")
    _write_part(tmp_path / "mod" / "ct", "ct", uid_m)
    _write_part(tmp_path / "mod" / "mr", "mr", uid_m, Modality="MR")
    modalities = group_series(discover(tmp_path / "mod").files)
    assert sorted(s.modality for s in modalities) == ["CT", "MR"]
    assert all("Modality" in s.split_reason for s in modalities)


def test_acquisition_number_splits_only_when_positions_repeat(tmp_path: Path, dicom_edit) -> None:
    uid = uid_from("acq")
    _write_part(tmp_path / "rep" / "a1", "a1", uid, AcquisitionNumber=1)
    _write_part(tmp_path / "rep" / "a2", "a2", uid, AcquisitionNumber=2)
    repeated = group_series(discover(tmp_path / "rep").files)
    assert [s.n_files for s in repeated] == [10, 10]
    assert all("AcquisitionNumber" in s.split_reason for s in repeated)

    paths = write_series(_volume(), tmp_path / "helical", uid_seed="helical")
    for k, path in enumerate(paths):
        dicom_edit(path, AcquisitionNumber=1 + k // 4)  # increments along one contiguous volume
    (single,) = group_series(discover(tmp_path / "helical").files)
    assert single.n_files == 10 and single.split_reason is None


def test_real_ct_with_changing_acquisition_number_stays_one_series() -> None:
    folder = pydicom_test_dir() / "dicomdirtests" / "98892001" / "CT5N"
    (series,) = group_series(discover(folder).files)
    assert series.n_files == 5 and series.split_reason is None
    assert {f.dataset.AcquisitionNumber for f in series.files} == {1, 2}


def test_real_projection_series_split_by_orientation() -> None:
    folder = pydicom_test_dir() / "dicomdirtests" / "98892003" / "MR700"
    series = group_series(discover(folder).files)
    assert len(series) == 7  # seven MIP projections at different angles
    assert len({s.key for s in series}) == 7
    assert all(s.n_files == 1 and "ImageOrientationPatient" in s.split_reason for s in series)


@pytest.mark.parametrize(
    ("keyword", "values", "criterion"),
    [
        ("SeriesNumber", (3, 4), "SeriesNumber"),
        ("SeriesDescription", ("soft tissue", "bone"), "SeriesDescription"),
        ("ImageType", (["ORIGINAL", "PRIMARY", "AXIAL"], ["DERIVED", "SECONDARY", "AXIAL"]), "ImageType"),
        ("ConvolutionKernel", ("B30f", "B70f"), "ConvolutionKernel"),
        ("AcquisitionNumber", (1, 2), "AcquisitionNumber"),
    ],
)
def test_reconstructions_sharing_a_series_uid_with_interleaved_slices_are_split(
    tmp_path: Path, keyword: str, values: tuple[object, object], criterion: str
) -> None:
    """Two reconstructions under one SeriesInstanceUID, slices 2.5 mm apart interleaved: two series, not one."""
    uid = uid_from(f"shared/{keyword}")
    step = (0.8, 0.7, 5.0)
    for name, value, z0 in (("a", values[0], 0.0), ("b", values[1], 2.5)):
        volume = Volume.from_spacing(np.full((8, 8, 4), 10.0 if name == "a" else 900.0, np.float32), step, (0.0, 0.0, z0))
        _write_part(tmp_path / name, f"shared/{keyword}/{name}", uid, volume, **{keyword: value})
    series = group_series(discover(tmp_path).files)
    assert [s.n_files for s in series] == [4, 4], [s.key for s in series]
    assert all(criterion in (s.split_reason or "") for s in series)
    for s in series:
        report = check_geometry(s)
        assert report.ok and report.slice_spacing == pytest.approx(5.0)  # each a volume of its own, 5 mm apart
        assert np.unique(load_series(s).array).size == 1  # one reconstruction, not alternating ones


def test_contiguous_acquisition_blocks_are_not_interleaved(tmp_path: Path) -> None:
    uid = uid_from("blocks")
    for name, acquisition, z0 in (("a", 1, 0.0), ("b", 2, 25.0)):  # two table positions of one helical volume
        volume = Volume.from_spacing(np.zeros((8, 8, 10), np.float32), (0.8, 0.7, 2.5), (0.0, 0.0, z0))
        _write_part(tmp_path / name, f"blocks/{name}", uid, volume, AcquisitionNumber=acquisition)
    (series,) = group_series(discover(tmp_path).files)
    assert series.n_files == 20 and series.split_reason is None and check_geometry(series).ok
