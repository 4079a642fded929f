"""De-identification fails closed beyond the pinned table, with dicognito as a second oracle.

Each test is one rule of :mod:`medbench.io.deid.core` that goes beyond (or
around) Table E.1-1: the effective SOP class decides burned-in quarantine,
camera pictures are quarantined, images with missing or broken Pixel Data are
never written, alternative-calendar dates and unlisted dates go, and a date
shift does not keep the UTC offset.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset

from medbench.io import deid
from medbench.io.dicom.write import uid_from, write_series
from tests.io.hostile import small_volume

KEY = b"fail-closed-test-key-0123456789"
ALT_CALENDAR = {0x00100033: ("LO", "1381-11-24"), 0x00100034: ("LO", "1445-01-02"), 0x00100035: ("CS", "ISLAMIC")}


@pytest.fixture
def slice_path(tmp_path: Path) -> Path:
    patient = {"PatientName": "DOE^JANE", "PatientID": "MRN-5550123", "PatientBirthDate": "19700101"}
    return write_series(small_volume(1), tmp_path / "src", uid_seed="fail-closed", patient=patient)[0]


def _batch(tmp_path: Path, *datasets: tuple[str, Dataset], **options: bool) -> deid.DeidReport:
    src = tmp_path / "in"
    src.mkdir(parents=True)
    for name, ds in datasets:
        ds.save_as(src / name)
    return deid.deidentify_folder(src, tmp_path / "out", KEY, **options)


def _status(report: deid.DeidReport, name: str) -> tuple[str, str]:
    row = report.rows[report.rows["source"].str.endswith(name)].iloc[0]
    return str(row["status"]), str(row["reason"])


def test_burned_in_quarantine_uses_the_file_meta_when_the_data_set_has_no_sop_class(
    tmp_path: Path, slice_path: Path
) -> None:
    ds = pydicom.dcmread(slice_path)
    del ds.SOPClassUID  # only the file meta says what this is: a secondary capture
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    report = _batch(tmp_path, ("sc.dcm", ds))
    status, reason = _status(report, "sc.dcm")
    assert status == "quarantined" and "secondary capture" in reason
    assert not list((tmp_path / "out").rglob("*.dcm"))


@pytest.mark.parametrize(
    "sop_class",
    [
        "1.2.840.10008.5.1.4.1.1.77.1.4",  # VL Photographic Image Storage
        "1.2.840.10008.5.1.4.1.1.77.1.4.1",  # Video Photographic Image Storage
        "1.2.840.10008.5.1.4.1.1.77.1.1.1",  # Video Endoscopic Image Storage
        "1.2.840.10008.5.1.4.1.1.77.1.5.1",  # Ophthalmic Photography 8 Bit Image Storage
        "1.2.840.10008.5.1.4.1.1.77.1.6",  # VL Whole Slide Microscopy Image Storage
    ],
)
def test_camera_pictures_are_quarantined_by_default(tmp_path: Path, slice_path: Path, sop_class: str) -> None:
    ds = pydicom.dcmread(slice_path)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.Modality, ds.BurnedInAnnotation = "OT", "NO"
    status, reason = _status(_batch(tmp_path, ("photo.dcm", ds)), "photo.dcm")
    assert status == "quarantined" and "visible-light" in reason
    accepted = deid.deidentify_folder(tmp_path / "in", tmp_path / "accepted", KEY, allow_burned_in=True)
    assert _status(accepted, "photo.dcm")[0] == "written"


def test_camera_modalities_and_documents_are_quarantined() -> None:
    for modality in ("XC", "ES", "GM", "SM", "OP", "DOC"):
        ds = Dataset()
        ds.Modality, ds.SOPClassUID = modality, "1.2.840.10008.5.1.4.1.1.7.4"
        ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"  # a CT class: the modality alone decides
        assert f"modality {modality}" in (deid.burned_in_reason(ds) or ""), modality
    pdf = Dataset()
    pdf.Modality, pdf.SOPClassUID = "OT", "1.2.840.10008.5.1.4.1.1.104.1"  # Encapsulated PDF
    assert "encapsulated document" in (deid.burned_in_reason(pdf) or "")


def test_images_with_missing_or_broken_pixel_data_are_not_written(tmp_path: Path, slice_path: Path) -> None:
    whole = pydicom.dcmread(slice_path)
    missing = copy.deepcopy(whole)
    del missing.PixelData
    short = copy.deepcopy(whole)
    short.PixelData = whole.PixelData[:64]  # a consistent element, half the pixels the header describes
    long = copy.deepcopy(whole)
    long.PixelData = whole.PixelData * 2
    for i, ds in enumerate((missing, short, long)):
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = uid_from(f"broken-pixels/{i}")
    report = _batch(tmp_path, ("whole.dcm", whole), ("missing.dcm", missing), ("short.dcm", short), ("long.dcm", long))
    assert _status(report, "whole.dcm")[0] == "written"
    for name, words in (("missing.dcm", "no pixel data"), ("short.dcm", "128"), ("long.dcm", "256 bytes")):
        status, reason = _status(report, name)
        assert status == "failed" and words in reason, (name, reason)
    assert len(list((tmp_path / "out").rglob("*.dcm"))) == 1


def test_pixel_data_problem_directly() -> None:
    ds = Dataset()
    ds.SOPClassUID, ds.Rows, ds.Columns, ds.BitsAllocated = "1.2.840.10008.5.1.4.1.1.2", 4, 4, 16
    assert "without Pixel Data" in (deid.pixel_data_problem(ds) or "")
    ds.PixelData = bytes(32)
    assert deid.pixel_data_problem(ds) is None
    ds.PixelData = bytes(30)
    assert "30 of the 32 bytes" in (deid.pixel_data_problem(ds) or "")
    report = Dataset()
    report.SOPClassUID = "1.2.840.10008.5.1.4.1.1.88.11"  # Basic Text SR: no image, no pixels needed
    assert deid.pixel_data_problem(report) is None


@pytest.mark.parametrize("date_shift", [False, True])
def test_alternative_calendar_dates_do_not_survive(tmp_path: Path, slice_path: Path, date_shift: bool) -> None:
    ds = pydicom.dcmread(slice_path)
    for tag, (vr, value) in ALT_CALENDAR.items():
        ds.add_new(tag, vr, value)
    report = _batch(tmp_path, ("alt.dcm", ds), date_shift=date_shift)
    out = pydicom.dcmread(report.written[0])
    assert not any(tag in out for tag in ALT_CALENDAR)
    data = report.written[0].read_bytes()
    assert b"1381-11-24" not in data and b"1445-01-02" not in data and b"ISLAMIC" not in data
    found = {value for _, value in deid.identifying_values(ds, date_shift=date_shift)}
    assert {"1381-11-24", "1445-01-02"} <= found  # the leak scanner looks for the dates too (CS terms it skips)


def test_unlisted_dates_and_times_are_removed_or_shifted(tmp_path: Path, slice_path: Path) -> None:
    ds = pydicom.dcmread(slice_path)
    ds.add_new(0x0008041F, "DT", "20250314093512")  # Study Update DateTime: not in the 2024b table
    ds.add_new(0x00143076, "DA", "20250301")  # Date of Gain Calibration
    ds.add_new(0x00143077, "TM", "101500")  # Time of Gain Calibration
    plain = pydicom.dcmread(_batch(tmp_path / "a", ("d.dcm", ds)).written[0])
    assert not any(tag in plain for tag in (0x0008041F, 0x00143076, 0x00143077))
    shifted_report = _batch(tmp_path / "b", ("d.dcm", ds), date_shift=True)
    shifted = pydicom.dcmread(shifted_report.written[0])
    days = deid.DeidContext(KEY).shift_days("MRN-5550123")
    assert shifted[0x0008041F].value == deid.core.shift_date("20250314093512", "DT", days) != "20250314093512"
    assert shifted[0x00143076].value == deid.core.shift_date("20250301", "DA", days)
    assert shifted[0x00143077].value == "101500"  # times are kept under a whole-day shift, as for the table's


def test_utc_offset_does_not_survive_a_date_shift(tmp_path: Path, slice_path: Path) -> None:
    ds = pydicom.dcmread(slice_path)
    ds.AcquisitionDateTime = "20250314093512.123456+0530"
    ds.add_new(0x0008041F, "DT", "20250314101010-0800")
    report = _batch(tmp_path, ("tz.dcm", ds), date_shift=True)
    out = pydicom.dcmread(report.written[0])
    assert "+" not in out.AcquisitionDateTime and "-" not in str(out[0x0008041F].value)
    assert out.AcquisitionDateTime.endswith("093512.123456")
    data = report.written[0].read_bytes()
    assert b"+0530" not in data and b"-0800" not in data and b"0800" not in data


# -- dicognito, a maintained de-identifier, as a second oracle -----------------------------------

PLANTED = {
    "PatientName": "DOE^JOHN^QUINCY",
    "PatientID": "MRN-4471923",
    "PatientBirthDate": "19610213",
    "OtherPatientNames": "ROE^JANE",
    "PatientAddress": "12 Elm Street Springfield",
    "PatientTelephoneNumbers": "555-0199",
    "InstitutionName": "Saint Elsewhere General",
    "InstitutionAddress": "1 Hospital Road Boston",
    "ReferringPhysicianName": "HOUSE^GREGORY",
    "PerformingPhysicianName": "CUDDY^LISA",
    "OperatorsName": "NURSE^JACKIE",
    "AccessionNumber": "ACC-88123",
    "StudyID": "STUDY-5521",
    "StationName": "ELSEWHERE-CT7",
    "StudyDate": "20250314",
    "StudyTime": "093012",
}


def test_no_planted_value_survives_medbench_or_dicognito(tmp_path: Path, slice_path: Path) -> None:
    from dicognito.anonymizer import Anonymizer

    ds = pydicom.dcmread(slice_path)
    for keyword, value in PLANTED.items():
        setattr(ds, keyword, value)
    ds.DeviceSerialNumber = "SN-9981234"  # dicognito (0.19) keeps it; Table E.1-1 removes it
    for tag, (vr, value) in ALT_CALENDAR.items():
        ds.add_new(tag, vr, value)
    ds.AcquisitionDateTime = "20250314093512+0530"
    original = copy.deepcopy(ds)

    report = _batch(tmp_path, ("planted.dcm", ds))
    ours = pydicom.dcmread(report.written[0])
    ours_bytes = report.written[0].read_bytes()
    theirs = copy.deepcopy(original)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        Anonymizer(seed="medbench-oracle").anonymize(theirs)

    def values(d: Dataset) -> set[str]:
        return {str(el.value) for el in d.iterall() if el.VR not in ("SQ", "OB", "OW") and el.value not in (None, "")}

    planted = set(PLANTED.values())
    assert not planted & values(theirs), f"dicognito kept {planted & values(theirs)}: the oracle itself is off"
    assert not planted & values(ours)
    assert not [v for v in planted if v.encode() in ours_bytes]
    # Every public attribute dicognito changes or removes, medbench changes or removes too.
    for el in original:
        if el.tag.group % 2 or el.VR == "SQ" or el.tag == 0x7FE00010:
            continue
        theirs_el, ours_el = theirs.get(el.tag), ours.get(el.tag)
        dicognito_touched = theirs_el is None or theirs_el.value != el.value
        medbench_touched = ours_el is None or ours_el.value != el.value
        assert medbench_touched or not dicognito_touched, f"{el.tag} {el.keyword}: dicognito changed it, medbench kept it"
    # Beyond dicognito: the serial number, the alternative-calendar dates, the UTC offset.
    assert "DeviceSerialNumber" not in ours and b"SN-9981234" not in ours_bytes
    assert not any(tag in ours for tag in ALT_CALENDAR) and b"+0530" not in ours_bytes


def test_pixels_survive_intact(tmp_path: Path, slice_path: Path) -> None:
    report = _batch(tmp_path, ("p.dcm", pydicom.dcmread(slice_path)))
    np.testing.assert_array_equal(pydicom.dcmread(report.written[0]).pixel_array, pydicom.dcmread(slice_path).pixel_array)


def test_a_folder_that_cannot_be_listed_is_a_failure(
    tmp_path: Path, slice_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os
    import shutil

    src = tmp_path / "in"
    (src / "locked").mkdir(parents=True)
    shutil.copy(slice_path, src / "locked" / "hidden.dcm")
    shutil.copy(slice_path, src / "visible.dcm")
    real_scandir = os.scandir

    def scandir(path: object = ".") -> object:  # root cannot lock itself out of a folder: refuse by hand
        if Path(os.fspath(path)).name == "locked":  # type: ignore[arg-type]
            raise PermissionError(13, "Permission denied", os.fspath(path))  # type: ignore[arg-type]
        return real_scandir(path)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "scandir", scandir)
    report = deid.deidentify_folder(src, tmp_path / "out", KEY)
    assert not report.ok and report.counts["written"] == 1
    status, reason = _status(report, "locked")
    assert status == "failed" and "cannot list this folder" in reason and "Permission denied" in reason
