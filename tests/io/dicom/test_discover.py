"""discover(): every DICOM file found whatever its name; everything else reported with a reason."""

from __future__ import annotations

import shutil
from pathlib import Path

import pydicom
import pytest

from medbench.data.samples import pydicom_sample, pydicom_test_dir
from medbench.errors import DataError
from medbench.io.dicom import discover


def _reasons(result) -> dict[str, str]:
    return {p.name: why for p, why in result.skipped}


def test_finds_files_with_any_name_in_nested_folders(dicom_series_dir: Path) -> None:
    files = sorted(dicom_series_dir.iterdir())
    (dicom_series_dir / "deep" / "er").mkdir(parents=True)
    files[0].rename(dicom_series_dir / "deep" / "er" / "IM000001")  # no extension
    files[1].rename(dicom_series_dir / "slice.txt")  # misleading extension
    result = discover(dicom_series_dir)
    assert len(result.files) == 10
    assert result.skipped == []
    names = {f.path.name for f in result.files}
    assert {"IM000001", "slice.txt"} <= names
    assert all("PixelData" not in f.dataset for f in result.files)  # headers only
    assert {f.modality for f in result.files} == {"CT"}


def test_bad_files_are_rows_with_reasons_not_errors(dicom_series_dir: Path, tmp_path: Path) -> None:
    good = sorted(dicom_series_dir.iterdir())
    (dicom_series_dir / "notes.txt").write_text("patient list\nnot an image\n")
    (dicom_series_dir / "empty").write_bytes(b"")
    data = good[0].read_bytes()
    (dicom_series_dir / "cut_pixels.dcm").write_bytes(data[:-300])  # a copy that lost its last bytes
    (dicom_series_dir / "cut_header.dcm").write_bytes(data[:200])
    result = discover(dicom_series_dir)
    reasons = _reasons(result)
    assert len(result.files) == 10
    assert set(reasons) == {"notes.txt", "empty", "cut_pixels.dcm", "cut_header.dcm"}
    assert reasons["notes.txt"] == "not a DICOM file"
    assert reasons["empty"] == "empty file (0 bytes)"
    assert "truncated" in reasons["cut_pixels.dcm"] and "2048" in reasons["cut_pixels.dcm"]  # 32*32*2 bytes expected
    assert reasons["cut_header.dcm"].startswith("truncated")
    table = result.table()
    assert set(table["status"]) == {"dicom", "skipped"}
    assert (table["status"] == "skipped").sum() == 4
    assert table.loc[table["status"] == "skipped", "reason"].str.len().min() > 10


def test_truncated_real_sample_is_skipped_by_header_check(tmp_path: Path) -> None:
    shutil.copy(pydicom_sample("MR_truncated.dcm"), tmp_path / "a")
    shutil.copy(pydicom_sample("MR_small.dcm"), tmp_path / "b")
    result = discover(tmp_path)
    assert [f.path.name for f in result.files] == ["b"]
    assert _reasons(result)["a"] == "truncated: pixel data declares 8192 bytes but only 8130 remain"


def test_file_without_preamble_is_still_dicom(tmp_path: Path) -> None:
    shutil.copy(pydicom_sample("ExplVR_LitEndNoMeta.dcm"), tmp_path / "raw")
    result = discover(tmp_path)
    assert [f.path.name for f in result.files] == ["raw"]


def test_read_pixels_reports_undecodable_files(tmp_path: Path) -> None:
    shutil.copy(pydicom_sample("JPEG2000-embedded-sequence-delimiter.dcm"), tmp_path / "broken.dcm")
    shutil.copy(pydicom_sample("MR_small_jp2klossless.dcm"), tmp_path / "fine.dcm")
    header_only = discover(tmp_path)
    assert len(header_only.files) == 2  # the header of the broken file is fine
    checked = discover(tmp_path, read_pixels=True)
    assert [f.path.name for f in checked.files] == ["fine.dcm"]
    reason = _reasons(checked)["broken.dcm"]
    assert "cannot decode" in reason and "broken.dcm" in reason and "JPEG 2000" in reason


def test_dicomdir_is_an_index_and_its_references_are_found() -> None:
    dicomdir = pydicom_sample("dicomdirtests/DICOMDIR")
    result = discover(dicomdir)
    referenced = [r for r in pydicom.dcmread(dicomdir).DirectoryRecordSequence if "ReferencedFileID" in r]
    assert result.dicomdirs == [dicomdir]
    assert len(result.files) == len(referenced) == 31
    assert dicomdir not in {f.path for f in result.files}
    assert {f.sop_instance_uid for f in result.files} == {str(r.ReferencedSOPInstanceUIDInFile) for r in referenced}


def test_dicomdir_references_case_insensitive_and_missing(tmp_path: Path) -> None:
    media = tmp_path / "cd"
    shutil.copytree(pydicom_test_dir() / "dicomdirtests", media)
    for extra in media.glob("DICOMDIR-*"):
        extra.unlink()
    (media / "77654033" / "CR1").rename(media / "77654033" / "cr1")  # lower-case copy of an upper-case File ID
    (media / "98892001" / "CT5N" / "2062").unlink()
    result = discover(media / "DICOMDIR")
    assert len(result.files) == 30
    assert any(f.path.parent.name == "cr1" for f in result.files)
    reasons = _reasons(result)
    assert "referenced by DICOMDIR" in reasons["2062"] and "not on disk" in reasons["2062"]
    walked = discover(media)  # walking the folder finds the same files plus the second DICOMDIR's
    assert set(walked.dicomdirs) == {media / "DICOMDIR", media / "TINY_ALPHA" / "DICOMDIR"}
    assert len(walked.files) == 30  # TINY_ALPHA's 50 images are header-only stubs: image objects without pixels
    tiny = [why for p, why in walked.skipped if "TINY_ALPHA" in p.parts and p.name != "README"]
    assert len(tiny) == 50 and all(why.startswith("no pixel data") for why in tiny)


def test_discover_real_sample_folder_never_fails_and_leaves_it_untouched(dicom_tree_hash) -> None:
    root = pydicom_test_dir()
    before = dicom_tree_hash(root)
    result = discover(root)
    assert dicom_tree_hash(root) == before
    reasons = _reasons(result)
    assert reasons["README.txt"] == "not a DICOM file"
    assert "truncated" in reasons["MR_truncated.dcm"]
    assert len(result.files) == sum(h.ok and not h.is_dicomdir for h in result.headers) > 90
    assert len(result.files) + len(result.skipped) + len(result.dicomdirs) == len(result.headers)
    assert len(result.dicomdirs) == 8  # every DICOMDIR variant, recognised by SOP Class not name
    assert "DICOMDIR-reordered" not in {f.path.name for f in result.files}


def test_missing_root_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        discover(tmp_path / "nope")


@pytest.mark.parametrize("cut", [300, 750, 1500])
def test_header_cut_mid_element_is_reported(dicom_series_dir: Path, cut: int) -> None:
    source = sorted(dicom_series_dir.iterdir())[0]
    data = source.read_bytes()
    source.write_bytes(data[:cut])  # a copy cut inside a header element
    result = discover(dicom_series_dir)
    assert len(result.files) == 9
    assert _reasons(result)[source.name].startswith("truncated")
