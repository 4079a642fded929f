"""check_geometry(): every defect that would make a volume silently wrong is found and described."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from medbench.data.samples import pydicom_sample, pydicom_test_dir
from medbench.image.volume import Volume
from medbench.io.dicom import check_geometry, discover, geometry_table, group_series
from medbench.io.dicom.write import write_series

Z0 = 30.0


def _axial(n: int = 10, dz: float = 2.5) -> list[list[float]]:
    return [[-12.0, 4.0, Z0 + k * dz] for k in range(n)]


def test_valid_oblique_series(dicom_series_dir: Path, dicom_volume: Volume) -> None:
    report = check_geometry(dicom_series_dir)
    assert report.ok and report.verdict == "valid" and report.problems == []
    assert report.n_slices == 10
    assert report.slice_spacing == pytest.approx(2.5, abs=1e-4)
    assert report.pixel_spacing == pytest.approx((0.7, 0.8))  # (row spacing, column spacing)
    assert np.allclose(report.orientation, dicom_volume.direction[:, :2].T.ravel(), atol=1e-5)
    assert report.tilt_degrees == pytest.approx(0.0, abs=0.01)
    assert "0.01" in report.tolerance


def test_missing_slices(tmp_path: Path, dicom_positions) -> None:
    paths = dicom_positions(tmp_path / "s", _axial())
    paths[4].unlink()
    report = check_geometry(tmp_path / "s")
    assert not report.ok and report.verdict == "missing slices"
    (problem,) = report.problems
    assert "1 slice missing" in problem and "IM0004.dcm" in problem and "IM0006.dcm" in problem
    paths[5].unlink()
    assert "2 slices missing" in check_geometry(tmp_path / "s").problems[0]


def test_duplicate_position(tmp_path: Path, dicom_positions, dicom_edit) -> None:
    paths = dicom_positions(tmp_path / "s", _axial())
    shutil.copy(paths[3], tmp_path / "s" / "copy.dcm")
    dicom_edit(tmp_path / "s" / "copy.dcm", SOPInstanceUID="1.2.3.4.5")
    report = check_geometry(tmp_path / "s")
    assert report.kinds == ["duplicate positions"]
    assert "IM0004.dcm" in report.problems[0] and "copy.dcm" in report.problems[0]
    assert report.n_slices == 11


@pytest.mark.parametrize(("shift", "ok"), [(0.8, False), (0.04, False), (0.02, True)])  # limit: 1% of 2.5 mm
def test_uneven_spacing_and_its_tolerance(tmp_path: Path, dicom_positions, shift: float, ok: bool) -> None:
    positions = _axial()
    positions[4][2] += shift
    dicom_positions(tmp_path / "s", positions)
    report = check_geometry(tmp_path / "s")
    assert report.ok is ok
    if not ok:
        assert set(report.kinds) == {"uneven spacing"} and len(report.problems) == 2  # the gaps either side
        assert "IM0005.dcm" in report.problems[0]
        assert check_geometry(tmp_path / "s", spacing_tolerance=0.5).ok  # a looser tolerance accepts it


def test_gantry_tilt(tmp_path: Path, dicom_positions) -> None:
    positions = [[-12.0, 4.0 + 0.35 * k, Z0 + 2.5 * k] for k in range(10)]  # shear along y
    dicom_positions(tmp_path / "s", positions)
    report = check_geometry(tmp_path / "s")
    assert report.kinds == ["gantry tilt"]
    assert report.tilt_degrees == pytest.approx(np.degrees(np.arctan(0.35 / 2.5)), abs=0.01)
    assert "sideways" in report.problems[0] and "3.150 mm" in report.problems[0]  # 9 slices x 0.35 mm
    assert report.slice_spacing == pytest.approx(2.5)


def test_inconsistent_orientation_and_missing_tags(tmp_path: Path, dicom_positions, dicom_edit) -> None:
    paths = dicom_positions(tmp_path / "s", _axial())
    dicom_edit(paths[2], ImageOrientationPatient=["1", "0", "0", "0", "0.9950042", "-0.0998334"])
    report = check_geometry(paths)  # a list of paths is checked as given (no grouping)
    assert report.kinds == ["inconsistent orientation"]
    assert "IM0003.dcm" in report.problems[0]
    dicom_edit(paths[2], ImageOrientationPatient=["1", "0", "0", "0", "1", "0"], ImagePositionPatient=None)
    dicom_edit(paths[5], PixelSpacing=None)
    report = check_geometry(paths)
    assert report.verdict == "missing geometry"
    assert any("ImagePositionPatient" in p and "IM0003.dcm" in p for p in report.problems)
    assert any("PixelSpacing" in p and "IM0006.dcm" in p for p in report.problems)


def test_mixed_sizes_given_as_paths(tmp_path: Path, dicom_positions) -> None:
    big = dicom_positions(tmp_path / "a", _axial(3))
    small = write_series(Volume.from_spacing(np.zeros((16, 16, 2)), (1, 1, 2.5), (0, 0, Z0 + 10)), tmp_path / "b")
    report = check_geometry(big + small)
    assert "inconsistent image size" in report.kinds
    assert "16x16" in report.problems[0] and "32x32" in report.problems[0]


def test_enhanced_multiframe_geometry_from_functional_groups(tmp_path: Path, dicom_volume: Volume, dicom_enhanced) -> None:
    order = [3, 0, 9, 1, 2, 8, 4, 5, 7, 6]  # frames stored out of spatial order
    path = dicom_enhanced(dicom_volume, tmp_path / "enhanced.dcm", frame_order=order)
    report = check_geometry(path)
    assert report.ok, report.problems
    assert report.n_slices == 10
    assert report.slice_spacing == pytest.approx(2.5, abs=1e-4)
    assert [f.frame for f in report.frames] == sorted(range(10), key=lambda f: order[f])


def test_real_series_with_missing_slices() -> None:
    folder = pydicom_test_dir() / "dicomdirtests" / "77654033" / "CT2"
    report = check_geometry(group_series(discover(folder).files)[0])
    assert report.verdict == "missing slices"
    assert "161 slices missing" in report.problems[0]
    assert report.slice_spacing == pytest.approx(1.25, abs=1e-4)


def test_real_rt_dose_grid_frame_offsets() -> None:
    report = check_geometry(pydicom_sample("rtdose.dcm"))
    assert report.ok and report.n_slices == 15
    assert report.slice_spacing == pytest.approx(5.0)
    assert report.pixel_spacing == (10.0, 10.0)


def test_non_image_objects_are_not_volumes() -> None:
    report = check_geometry(pydicom_sample("rtplan.dcm"))
    assert not report.ok and report.verdict.startswith("not an image")


def test_geometry_table_one_row_per_series() -> None:
    folder = pydicom_test_dir() / "dicomdirtests" / "98892001"
    table = geometry_table(discover(folder).series())
    assert len(table) == 3  # CT5N, and CT2N split into two orientations
    assert sorted(table["verdict"]) == ["valid", "valid", "valid"]
    assert list(table["n_slices"]).count(5) == 1
