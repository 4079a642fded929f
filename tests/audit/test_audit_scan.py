"""scan_headers: one row per file, failures with reasons, integrity checks without decoding pixels."""

from __future__ import annotations

import os
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.uid import RLELossless

from medbench.audit.scan import COLUMNS, PHI_KEYWORDS, scan_file, scan_headers
from medbench.io.dicom import headers
from tests.audit.audit_helpers import N_SLICES, PYDICOM_TEST_FILES, SIZE, SPACING, truncate, write


def _row(df, name: str):
    rows = df[df["path"].str.endswith(name)]
    assert len(rows) == 1, f"expected one row for {name}, got {len(rows)}"
    return rows.iloc[0]


def test_mixed_folder_one_row_per_file_with_reasons(mixed_tree: Path) -> None:
    df = scan_headers(mixed_tree)
    assert list(df.columns) == list(COLUMNS)
    assert len(df) == 26  # every regular file; the folder named scan.dcm is descended, not a row
    assert not any(p.endswith("scan.dcm") for p in df["path"])
    assert _row(df, "scan.dcm/slice")["readable"]

    trunc = _row(df, "broken/IM0003.dcm")
    assert not trunc["readable"] and trunc["error_kind"] == "truncated"
    assert trunc["error"].startswith("truncated: pixel data declares 512 bytes but only 412 remain")
    assert trunc["series_uid"] == _row(df, "broken/IM0001.dcm")["series_uid"]  # header columns still filled

    text = _row(df, "notes.txt")
    assert (text["readable"], text["error_kind"], text["error"]) == (False, "not_dicom", "not a DICOM file")
    empty = _row(df, "empty.dcm")
    assert (empty["readable"], empty["error_kind"], empty["size_bytes"]) == (False, "empty", 0)
    assert df["readable"].sum() == 23
    assert df.loc[~df["readable"], "error"].str.len().gt(0).all()


def test_header_columns_of_a_good_slice(mixed_tree: Path) -> None:
    row = _row(scan_headers(mixed_tree / "good"), "IM0003.dcm")
    assert row["sop_class_uid"] == "1.2.840.10008.5.1.4.1.1.2"
    assert row["sop_class_name"] == "CT Image Storage"
    assert (row["modality"], row["manufacturer"], row["model"]) == ("CT", "medbench", "phantom")
    assert row["transfer_syntax_name"] == "Explicit VR Little Endian" and not row["is_compressed"]
    assert (row["rows"], row["columns"], row["frames"]) == (SIZE, SIZE, 1)
    assert (row["bits_allocated"], row["bits_stored"], row["photometric"]) == (16, 16, "MONOCHROME2")
    assert (row["pixel_spacing_row"], row["pixel_spacing_col"]) == pytest.approx(SPACING[1::-1])
    assert row["slice_thickness"] == pytest.approx(SPACING[2])
    assert row["image_position_z"] == pytest.approx(2 * SPACING[2])
    assert row["image_orientation"] == pytest.approx((1, 0, 0, 0, 1, 0))
    assert row["instance_number"] == 3
    assert row["series_description"] == "CT phantom"


def test_phi_present_lists_non_blank_identifying_attributes(tmp_path: Path) -> None:
    write(tmp_path / "named", "named", extra={"OtherPatientIDs": "OLD-1", "OperatorsName": "Tech^A"})
    blank = {k: "" for k in ("PatientName", "PatientID", "PatientBirthDate", "AccessionNumber", "InstitutionName")}
    write(tmp_path / "blank", "blank", patient=blank)
    named = set(_row(scan_headers(tmp_path / "named"), "IM0001.dcm")["phi_present"].split(";"))
    assert named == {
        "PatientName", "PatientID", "PatientBirthDate", "AccessionNumber",
        "InstitutionName", "OtherPatientIDs", "OperatorsName",
    }  # fmt: skip
    assert "ReferringPhysicianName" not in named  # present in the file but empty
    assert _row(scan_headers(tmp_path / "blank"), "IM0001.dcm")["phi_present"] == ""
    assert named <= set(PHI_KEYWORDS)


def test_truncation_anywhere_is_found_without_decoding(tmp_path: Path) -> None:
    src = write(tmp_path / "s", "s")[0]
    data = src.read_bytes()
    pixel_start = len(data) - SIZE * SIZE * 2 - 12  # tag + VR + reserved + 4-byte length
    cuts = tmp_path / "cuts"
    cuts.mkdir()
    for cut in range(1, len(data), 5):
        (cuts / f"cut{cut:05d}").write_bytes(data[:cut])
    (cuts / "whole").write_bytes(data)
    df = scan_headers(cuts)
    assert df.loc[df["readable"], "path"].tolist() == [str(cuts / "whole")]
    assert _row(df, "cut00001")["error_kind"] == "not_dicom"
    at_pixels = next(c for c in range(1, len(data), 5) if c >= pixel_start)
    assert _row(df, f"cut{at_pixels:05d}")["error"].startswith(("truncated", "no pixel data"))


def test_short_pixel_data_and_compressed_files(tmp_path: Path) -> None:
    src = write(tmp_path / "s", "s")[0]
    ds = pydicom.dcmread(src)
    ds.PixelData = ds.PixelData[:100]
    ds.save_as(tmp_path / "short.dcm")
    short = scan_file(tmp_path / "short.dcm")
    assert short["error"] == (
        "truncated: pixel data holds 100 bytes but Rows x Columns x Frames x Samples x BitsAllocated needs 512"
    )

    ds = pydicom.dcmread(src)
    ds.compress(RLELossless)
    ds.save_as(tmp_path / "rle.dcm")
    rle = scan_file(tmp_path / "rle.dcm")
    assert rle["readable"] and rle["is_compressed"] and rle["transfer_syntax_name"] == "RLE Lossless"
    truncate(tmp_path / "rle.dcm", 20)
    cut = scan_file(tmp_path / "rle.dcm")
    assert cut["error_kind"] == "truncated" and "pixel data item" in cut["error"]


def test_files_without_preamble_are_read_when_they_look_like_dicom(tmp_path: Path) -> None:
    src = write(tmp_path / "s", "s")[0]
    ds = pydicom.dcmread(src)
    ds.preamble = None
    ds.file_meta = FileMetaDataset()
    ds.save_as(tmp_path / "raw_dataset", enforce_file_format=False, implicit_vr=False, little_endian=True)
    row = scan_file(tmp_path / "raw_dataset")
    assert row["readable"] and row["rows"] == SIZE and row["transfer_syntax_name"] == "Explicit VR Little Endian"
    (tmp_path / "binary.bin").write_bytes(bytes(range(256)) * 4)
    assert scan_file(tmp_path / "binary.bin")["error"] == "not a DICOM file"


def test_special_files_are_rows_not_crashes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    os.mkfifo(tmp_path / "pipe")  # opening it would block: it must not be opened
    df = scan_headers(tmp_path)
    assert _row(df, "dangling")["error_kind"] == "broken_link"
    assert _row(df, "pipe")["error_kind"] == "not_regular"

    target = write(tmp_path / "s", "s")[0]

    def denied(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(headers, "open", denied, raising=False)  # shadows the builtin inside the reader only
    row = scan_file(target)
    assert (row["readable"], row["error_kind"], row["error"]) == (False, "permission_denied", "permission denied")


def test_pydicom_bundled_files_one_row_each_every_failure_explained() -> None:
    files = sorted(p for p in PYDICOM_TEST_FILES.rglob("*") if p.is_file())
    df = scan_headers(PYDICOM_TEST_FILES)
    assert sorted(df["path"]) == sorted(str(p) for p in files)
    failed = df[~df["readable"]]
    assert failed["error_kind"].notna().all() and failed["error"].str.len().gt(0).all()
    assert _row(df, "/MR_truncated.dcm")["error_kind"] == "truncated"
    assert _row(df, "/rtplan_truncated.dcm")["error_kind"] == "truncated"
    assert _row(df, "test_files/README.txt")["error"] == "not a DICOM file"
    for name in ("/CT_small.dcm", "/MR_small_implicit.dcm", "/MR_small_bigendian.dcm", "/MR_small_RLE.dcm"):
        assert _row(df, name)["readable"], name
    assert _row(df, "/ExplVR_BigEndNoMeta.dcm")["transfer_syntax_name"] == "Explicit VR Big Endian"
    assert _row(df, "/JPEG2000.dcm")["is_compressed"]


def test_fast_path_agrees_with_pydicom_dcmread(monkeypatch: pytest.MonkeyPatch) -> None:
    """The element-generator fast path gives exactly the rows the dcmread path gives."""
    fast = scan_headers(PYDICOM_TEST_FILES)
    monkeypatch.setattr(headers, "_fast", lambda mm, size, limit: None)
    slow = scan_headers(PYDICOM_TEST_FILES)
    normalise = lambda df: df.astype(object).where(df.notna(), None).to_dict("records")  # noqa: E731
    assert normalise(fast) == normalise(slow)


def test_scan_accepts_a_list_of_files_and_folders(mixed_tree: Path) -> None:
    df = scan_headers([mixed_tree / "good", mixed_tree / "notes.txt"])
    assert len(df) == N_SLICES + 1
    assert df["readable"].sum() == N_SLICES
