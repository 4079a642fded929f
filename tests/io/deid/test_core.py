"""Tests for medbench.io.deid: the pinned table, one dataset, a folder batch, the leak scanner, the diff.

The inputs are small series written with the project's DICOM writer into
``tmp_path``, with identifiers planted everywhere the profile has to reach:
top level, nested sequences, a private block, overlay and curve groups, a
person name outside the table, and references between files.
"""

from __future__ import annotations

import copy
import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import UID

from medbench.errors import ConfigError, DeidError
from medbench.image.volume import Volume
from medbench.io import deid
from medbench.io.deid.core import IMPLEMENTATION_CLASS_UID, shift_date
from medbench.io.deid.table import parse_table
from medbench.io.dicom.write import uid_from, write_series

KEY = b"medbench-test-key-0123456789abcdef"
CT_CLASS = "1.2.840.10008.5.1.4.1.1.2"

PATIENT_A = {
    "PatientName": "DOE^JOHN^QUINCY",
    "PatientID": "MRN-4471923",
    "PatientBirthDate": "19610213",
    "PatientSex": "M",
    "StudyDate": "20250314",
    "StudyTime": "093012",
    "AccessionNumber": "ACC-88123",
    "StudyID": "STUDY-5521",
    "ReferringPhysicianName": "HOUSE^GREGORY",
    "InstitutionName": "Saint Elsewhere General Hospital",
}
PATIENT_A_MR = {**PATIENT_A, "StudyDate": "20250401", "StudyTime": "141516", "AccessionNumber": "ACC-99001"}
PATIENT_B = {
    **PATIENT_A,
    "PatientName": "ROE^RICHARD",
    "PatientID": "MRN-0000777",
    "PatientBirthDate": "19720707",
    "StudyDate": "20240202",
    "AccessionNumber": "ACC-12777",
}


def _volume(n: int, offset: float) -> Volume:
    array = np.arange(8 * 8 * n, dtype=float).reshape(8, 8, n) + offset
    return Volume.from_spacing(array, (0.9, 0.8, 2.0))


def _plant(paths: list[Path]) -> None:
    """Add identifiers in nested sequences, private, overlay and curve groups; link each file to the next."""
    uids = [pydicom.dcmread(p).SOPInstanceUID for p in paths]
    for k, path in enumerate(paths):
        ds = pydicom.dcmread(path)
        ref = Dataset()
        ref.ReferencedSOPClassUID = ds.SOPClassUID
        ref.ReferencedSOPInstanceUID = uids[(k + 1) % len(uids)]
        ref.PerformingPhysicianName = "CUDDY^LISA"
        ref.ContentDate = "20250311"
        ds.ReferencedImageSequence = Sequence([ref])
        inst = Dataset()
        inst.ReferencedSOPClassUID = ds.SOPClassUID
        inst.ReferencedSOPInstanceUID = uids[0]
        series = Dataset()
        series.SeriesInstanceUID = ds.SeriesInstanceUID
        series.ReferencedInstanceSequence = Sequence([inst])
        ds.ReferencedSeriesSequence = Sequence([series])
        other = Dataset()
        other.PatientID = "ALT-55512"
        other.IssuerOfPatientID = "Elsewhere Registry"
        ds.OtherPatientIDsSequence = Sequence([other])
        ds.OtherPatientIDs = "ALT-55512"
        request = Dataset()
        request.RequestedProcedureID = "RP-31337"
        request.ScheduledProcedureStepID = "SPS-77123"
        ds.RequestAttributesSequence = Sequence([request])
        ds.OperatorsName = "NURSE^JACKIE"
        ds.StationName = "ELSEWHERE-CT7"
        ds.DeviceSerialNumber = "SN-9981234"
        ds.StudyDescription = "Chest CT for John Doe"
        ds.ImageComments = "call Dr House on 555-0199"
        ds.AcquisitionDateTime = "20250314093512.123456+0100"
        ds.EvaluatorName = "WILSON^JAMES"
        ds.BurnedInAnnotation = "NO"
        block = ds.private_block(0x0011, "ACME_PRIVATE", create=True)
        block.add_new(0x10, "LO", "MRN-4471923 private note")
        ds.add_new(0x60000010, "US", 8)
        ds.add_new(0x60000011, "US", 8)
        ds.add_new(0x60000040, "CS", "G")
        ds.add_new(0x60000050, "SS", [1, 1])
        ds.add_new(0x60000100, "US", 1)
        ds.add_new(0x60000102, "US", 0)
        ds.add_new(0x60003000, "OW", bytes(8))
        ds.add_new(0x60004000, "LT", "overlay drawn by Nurse Peyton")
        ds.add_new(0x50002500, "LO", "curve of Greg Houses ward")
        ds.save_as(path, enforce_file_format=True)


def _variant(src: Path, dst: Path, seed: str, **changes: object) -> Path:
    """A copy of ``src`` with a new SOP Instance UID and the given attribute changes."""
    ds = pydicom.dcmread(src)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = uid_from(seed)
    for keyword, value in changes.items():
        setattr(ds, keyword, value)
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    dst.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(dst, enforce_file_format=True)
    return dst


@dataclass
class Tree:
    """The planted input folder, its source hashes, and the two batch runs made from it."""

    src: Path
    ct_a: list[Path]
    mr_a: list[Path]
    ct_b: list[Path]
    hashes: dict[Path, str]
    report: deid.DeidReport
    shifted: deid.DeidReport


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Tree:
    """An input folder with two patients (three series) plus quarantine, failure and non-DICOM cases."""
    root = tmp_path_factory.mktemp("deid")
    src = root / "in"
    ct_a = write_series(_volume(4, -900), src / "DOE_JOHN" / "ct", uid_seed="a-ct", patient=PATIENT_A)
    mr_a = write_series(_volume(2, 10), src / "DOE_JOHN" / "mr", modality="MR", uid_seed="a-mr", patient=PATIENT_A_MR)
    ct_b = write_series(_volume(2, -500), src / "ROE_RICHARD" / "ct", uid_seed="b-ct", patient=PATIENT_B)
    for paths in (ct_a, mr_a, ct_b):
        _plant(paths)
    odd = src / "misc"
    _variant(ct_b[0], odd / "us.dcm", "q-us", Modality="US", SOPClassUID="1.2.840.10008.5.1.4.1.1.6.1")
    _variant(ct_b[0], odd / "sc.dcm", "q-sc", SOPClassUID="1.2.840.10008.5.1.4.1.1.7")
    _variant(ct_b[0], odd / "burned.dcm", "q-burned", BurnedInAnnotation="YES")
    _variant(ct_b[0], odd / "year_only_dt.dcm", "year-only", AcquisitionDateTime="2025")
    data = ct_b[1].read_bytes()
    (odd / "truncated.dcm").write_bytes(data[:-40])
    (odd / "notes.txt").write_text("patient DOE^JOHN MRN-4471923\n")
    hashes = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in src.rglob("*") if p.is_file()}
    report = deid.deidentify_folder(src, root / "out", KEY)
    shifted = deid.deidentify_folder(src, root / "out_shift", KEY, date_shift=True)
    return Tree(src, ct_a, mr_a, ct_b, hashes, report, shifted)


def _status(report: deid.DeidReport, name: str) -> pd.Series:
    rows = report.rows[report.rows["source"].str.endswith(name)]
    assert len(rows) == 1, f"{name}: {len(rows)} rows"
    return rows.iloc[0]


def _ctx(**kwargs: object) -> deid.DeidContext:
    return deid.DeidContext(KEY, **kwargs)


# --- the pinned table ---------------------------------------------------------------------------


def test_table_parses_with_unique_valid_tags_and_allowed_actions() -> None:
    table = deid.load_profile_table()
    frame = table.frame
    assert table.edition == "DICOM PS3.15 2024b"
    assert len(frame) >= 600
    assert frame["tag"].is_unique
    assert frame["tag"].str.fullmatch(r"\([0-9A-Fx]{4},[0-9A-Fx]{4}\)").all()
    assert set(frame["basic_profile"]) <= deid.ALLOWED_ACTIONS
    for tag, keyword in zip(frame["tag"], frame["keyword"]):
        if "x" not in tag:
            assert pydicom.datadict.keyword_for_tag(int(tag[1:5] + tag[6:10], 16)) == keyword


@pytest.mark.parametrize(
    ("keyword", "code"),
    [
        ("PatientName", "Z"),
        # 2024b lists Patient ID as Z/D (earlier editions: Z); medbench applies a keyed pseudonym (D).
        ("PatientID", "Z/D"),
        ("StudyInstanceUID", "U"),
        ("SeriesInstanceUID", "U"),
        ("SOPInstanceUID", "U"),
        ("FrameOfReferenceUID", "U"),
        ("ReferencedSOPInstanceUID", "U"),
        ("InstitutionName", "X/Z/D"),
        ("PatientBirthDate", "Z"),
        ("StudyDate", "Z"),
        ("AccessionNumber", "Z"),
        ("ReferringPhysicianName", "Z"),
        ("OtherPatientIDs", "X"),
        ("StudyDescription", "X"),
        ("SeriesDate", "X/D"),
        ("ReferencedImageSequence", "X/Z/U*"),
        ("DeviceSerialNumber", "X/Z/D"),
        ("OperatorsName", "X/Z/D"),
        ("ContentDate", "Z/D"),
    ],
)
def test_table_known_rows(keyword: str, code: str) -> None:
    assert deid.load_profile_table().action_for(pydicom.datadict.tag_for_keyword(keyword)) == code


def test_table_repeating_groups() -> None:
    table = deid.load_profile_table()
    assert table.action_for(0x60003000) == "X" and table.action_for(0x601E4000) == "X"
    assert table.action_for(0x50000010) == "X"
    assert table.action_for(0x60010010) is None  # odd group: private, not an overlay
    assert table.action_for(0x00080060) is None  # Modality: not in the table


HEADER = "# edition: T\ntag,keyword,attribute_name,basic_profile\n"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('tag,keyword,attribute_name,basic_profile\n"(0010,0010)",PatientName,Patient\'s Name,Z\n', "edition"),
        (HEADER + '"(0010,0010)",a,b,Q\n', "unknown action"),
        (HEADER + '"(0010,001)",a,b,Z\n', "not of the form"),
        (HEADER + '"(0010,0010)",a,b,Z\n"(0010,0010)",a,b,X\n', "twice"),
        ("# edition: T\ntag,name,action\n\"(0010,0010)\",a,Z\n", "columns"),
    ],
)
def test_parse_table_rejects_bad_tables(body: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_table(body)


def test_resolve_action_documents_compound_and_extra_rules() -> None:
    table = deid.load_profile_table()
    tag = pydicom.datadict.tag_for_keyword
    assert deid.resolve_action(table, tag("InstitutionName"), "LO") == deid.Resolution("X", "X/Z/D")
    assert deid.resolve_action(table, tag("ContentDate"), "DA") == deid.Resolution("Z", "Z/D")
    assert deid.resolve_action(table, tag("PatientID"), "LO").action == "P"
    assert deid.resolve_action(table, tag("SourceImageSequence"), "SQ").action == "U*"
    assert deid.resolve_action(table, tag("EvaluatorName"), "PN") == deid.Resolution("Z", "person name not in table")
    assert deid.resolve_action(table, 0x00111010, "LO") == deid.Resolution("X", "private")
    assert deid.resolve_action(table, 0x00111010, "LO", private_kept=True).action == "K"
    assert deid.resolve_action(table, 0x60000010, "US").action == "X"
    assert deid.resolve_action(table, 0x00080000, "UL").rule == "group length"
    assert deid.resolve_action(table, 0x00081234, None).rule == "unknown public tag"
    assert deid.resolve_action(table, 0x00081234, "LO").action == "X"  # an explicit VR does not make it known
    assert deid.resolve_action(table, tag("Modality"), "CS") == deid.Resolution("K", "")


# --- one dataset --------------------------------------------------------------------------------


@pytest.fixture
def planted(tree: Tree) -> pydicom.FileDataset:
    return pydicom.dcmread(tree.ct_a[0])


def test_deidentify_dataset_applies_the_profile_everywhere(planted: pydicom.FileDataset) -> None:
    before = copy.deepcopy(planted)
    ctx = _ctx()
    out = deid.deidentify_dataset(planted, ctx)
    assert planted == before, "the input dataset must not be modified"
    assert out.PatientName == "" and out.PatientBirthDate == "" and out.AccessionNumber == ""
    assert out.StudyDate == "" and out.StudyTime == "" and out.ReferringPhysicianName == ""
    assert out.PatientID == ctx.pseudonym("MRN-4471923") and out.PatientID.startswith("ANON-")
    for keyword in ("InstitutionName", "OtherPatientIDs", "OtherPatientIDsSequence", "RequestAttributesSequence",
                    "OperatorsName", "StationName", "DeviceSerialNumber", "StudyDescription", "SeriesDescription",
                    "ImageComments", "SeriesDate", "AcquisitionDateTime"):
        assert keyword not in out, keyword
    assert out.EvaluatorName == ""  # person name outside the table
    assert out.SOPInstanceUID == ctx.new_uid(planted.SOPInstanceUID)
    assert out.StudyInstanceUID == ctx.new_uid(planted.StudyInstanceUID)
    assert out.FrameOfReferenceUID == ctx.new_uid(planted.FrameOfReferenceUID)
    item = out.ReferencedImageSequence[0]
    assert item.ReferencedSOPInstanceUID == ctx.new_uid(planted.ReferencedImageSequence[0].ReferencedSOPInstanceUID)
    assert item.ReferencedSOPClassUID == CT_CLASS  # not in the table: kept
    assert "PerformingPhysicianName" not in item and item.ContentDate == ""
    nested = out.ReferencedSeriesSequence[0]
    assert nested.SeriesInstanceUID == ctx.new_uid(planted.SeriesInstanceUID)
    first = planted.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].ReferencedSOPInstanceUID
    assert nested.ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == ctx.new_uid(first)
    assert not any(tag.group % 2 for tag in out.keys()), "private attributes must be removed"
    assert not any(0x5000 <= tag.group <= 0x60FF for tag in out.keys()), "curve and overlay groups must be removed"
    assert out.PixelData == planted.PixelData and out.Rows == planted.Rows
    assert out.PatientIdentityRemoved == "YES"
    assert out.LongitudinalTemporalInformationModified == "REMOVED"
    assert "DICOM PS3.15 2024b" in out.DeidentificationMethod[0]
    assert all(len(v) <= 64 for v in out.DeidentificationMethod)
    codes = [(c.CodeValue, c.CodingSchemeDesignator, c.CodeMeaning) for c in out.DeidentificationMethodCodeSequence]
    assert codes == [("113100", "DCM", "Basic Application Confidentiality Profile")]
    assert out.preamble == b"\0" * 128
    assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID
    assert out.file_meta.ImplementationClassUID == IMPLEMENTATION_CLASS_UID


def test_dummy_values_keep_the_vr_and_sequences_lose_their_content() -> None:
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = CT_CLASS, "1.2.3.4"
    ds.ClinicalTrialSponsorName = "ACME Pharma Secret"  # D, LO
    ds.VerificationDateTime = "20250101101010"  # D, DT
    ds.ContentSequence = Sequence([Dataset()])
    ds.ContentSequence[0].TextValue = "Patient John Doe has ..."
    ds.AnnotationGroupUID = "1.2.3.99"  # D on a UID: a keyed replacement
    out = deid.deidentify_dataset(ds, _ctx())
    assert out.ClinicalTrialSponsorName == "DEIDENTIFIED"
    assert out.VerificationDateTime == "19000101000000.000000"
    assert len(out.ContentSequence) == 1 and len(out.ContentSequence[0]) == 0
    assert out.AnnotationGroupUID == _ctx().new_uid("1.2.3.99")


def test_uids_are_keyed_valid_and_deterministic() -> None:
    a, b = _ctx(), deid.DeidContext(b"another-secret-key-16+")
    old = "1.2.840.113619.2.55.3.604688119.971.1045.5"
    new = a.new_uid(old)
    assert new == _ctx().new_uid(old) != b.new_uid(old)
    assert new.startswith("2.25.") and len(new) <= 64 and UID(new).is_valid
    assert a.new_uid(old + "\0") == new and a.new_uid("") == ""
    assert KEY.decode() not in repr(a) and "key=" not in repr(a)


def test_short_key_is_refused() -> None:
    with pytest.raises(ConfigError, match="at least 16"):
        deid.DeidContext(b"short")


def test_date_shift_values() -> None:
    assert shift_date("20250314", "DA", -14) == "20250228"
    assert shift_date("2025.03.14", "DA", -1) == "20250313"
    # the UTC offset says where the patient was scanned: it does not survive a shift
    assert shift_date("20250314093512.123456+0100", "DT", -14) == "20250228093512.123456"
    assert shift_date("20250314093512-0500", "DT", -14) == "20250228093512"
    assert shift_date("202503140935", "DT", -14) == "202502280935"
    for bad, vr in (("2025", "DT"), ("20251399", "DA"), ("yesterday", "DA")):
        with pytest.raises(DeidError):
            shift_date(bad, vr, -1)
    shifts = {_ctx().shift_days(f"patient-{i}") for i in range(200)}
    assert all(-3650 <= s <= -1 for s in shifts) and len(shifts) > 150


def test_deidentify_dataset_with_date_shift(planted: pydicom.FileDataset) -> None:
    ctx = _ctx(date_shift=True)
    out = deid.deidentify_dataset(planted, ctx)
    days = ctx.shift_days("MRN-4471923")
    assert out.StudyDate == shift_date("20250314", "DA", days)
    assert out.SeriesDate == out.StudyDate and out.ContentDate == out.StudyDate
    assert out.ReferencedImageSequence[0].ContentDate == shift_date("20250311", "DA", days)
    assert out.AcquisitionDateTime == shift_date("20250314093512.123456+0100", "DT", days)
    assert out.StudyTime == "093012"  # times are kept: whole-day shifts keep the time of day
    assert out.PatientBirthDate == ""  # the birth date is never shifted, always emptied
    assert out.LongitudinalTemporalInformationModified == "MODIFIED"
    assert [c.CodeValue for c in out.DeidentificationMethodCodeSequence] == ["113100", "113107"]


def test_keep_private_allowlist(planted: pydicom.FileDataset) -> None:
    planted.private_block(0x0013, "OTHER_VENDOR", create=True).add_new(0x01, "LO", "dropped")
    ctx = _ctx(keep_private=[(0x0011, "ACME_PRIVATE", 0x10)])
    out = deid.deidentify_dataset(planted, ctx)
    assert out.private_block(0x0011, "ACME_PRIVATE")[0x10].value == "MRN-4471923 private note"
    assert not any(tag.group == 0x0013 for tag in out.keys())
    assert [c.CodeValue for c in out.DeidentificationMethodCodeSequence] == ["113100", "113111"]
    with pytest.raises(ConfigError, match="odd"):
        _ctx(keep_private=[(0x0010, "X", 1)])


def test_dataset_without_sop_instance_uid_fails_closed() -> None:
    ds = Dataset()
    ds.SOPClassUID = CT_CLASS
    ds.PatientName = "DOE^JOHN"
    with pytest.raises(DeidError, match="SOPInstanceUID"):
        deid.deidentify_dataset(ds, _ctx())


def test_burned_in_reasons() -> None:
    ds = Dataset()
    ds.Modality, ds.SOPClassUID = "CT", CT_CLASS
    assert deid.burned_in_reason(ds) is None
    ds.BurnedInAnnotation = "YES"
    assert "Burned In Annotation" in deid.burned_in_reason(ds)
    ds.BurnedInAnnotation, ds.Modality = "NO", "US"
    assert "US" in deid.burned_in_reason(ds)
    ds.Modality, ds.SOPClassUID = "OT", "1.2.840.10008.5.1.4.1.1.7.4"
    assert "secondary capture" in deid.burned_in_reason(ds)
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.77.1.4"  # VL Photographic: a camera picture
    assert "visible-light" in deid.burned_in_reason(ds)
    ds.SOPClassUID = CT_CLASS
    assert deid.burned_in_reason(ds) is None


# --- a folder -----------------------------------------------------------------------------------


def test_folder_statuses(tree: Tree) -> None:
    report = tree.report
    src = tree.src
    assert len(report.rows) == sum(1 for p in src.rglob("*") if p.is_file())
    assert list(report.rows.columns) == ["source", "status", "reason", "output"]
    assert report.counts == {"written": 9, "quarantined": 3, "failed": 1, "not_dicom": 1}
    assert "US" in _status(report, "us.dcm").reason
    assert "secondary capture" in _status(report, "sc.dcm").reason
    assert "Burned In Annotation" in _status(report, "burned.dcm").reason
    truncated = _status(report, "truncated.dcm")
    assert truncated.status == "failed" and "truncated" in truncated.reason and truncated.output == ""
    assert _status(report, "notes.txt").status == "not_dicom"
    assert not report.ok and "9 written" in report.summary()
    assert "<table" in report._repr_html_()
    written = report.written
    assert len(written) == 9 and all(p.is_file() for p in written)
    assert sum(1 for p in Path(report.out_dir).rglob("*") if p.is_file()) == 9, "only written files in OUT"
    assert not any("DOE" in str(p) or "ROE" in str(p) for p in written), "source names are not reused"


def test_fail_closed_on_an_element_that_cannot_be_handled(tree: Tree) -> None:
    shifted = tree.shifted
    row = _status(shifted, "year_only_dt.dcm")
    assert row.status == "failed" and "cannot be shifted" in row.reason and row.output == ""
    assert shifted.counts == {"written": 8, "quarantined": 3, "failed": 2, "not_dicom": 1}
    assert _status(tree.report, "year_only_dt.dcm").status == "written"


def test_no_leaks_on_the_phantom(tree: Tree) -> None:
    src = tree.src
    hits = deid.scan_for_leaks(src, tree.report.out_dir)
    assert hits.empty, hits.to_string()
    hits = deid.scan_for_leaks(src, tree.shifted.out_dir, date_shift=True)
    assert hits.empty, hits.to_string()


def test_scanner_reports_planted_leaks(tree: Tree, tmp_path: Path) -> None:
    report = tree.report
    leaky = tmp_path / "leaky"
    shutil.copytree(report.out_dir, leaky)
    victim = next(p for p in sorted(leaky.rglob("*.dcm")))
    ds = pydicom.dcmread(victim)
    ds.PatientName = "DOE^JOHN^QUINCY"
    original_ref = pydicom.dcmread(tree.ct_a[0]).ReferencedImageSequence[0].ReferencedSOPInstanceUID
    ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID = original_ref
    ds.save_as(victim)
    hits = deid.scan_for_leaks(tree.src, leaky)
    assert set(hits["file"]) == {str(victim)}
    found = set(zip(hits["value"], hits["found_in"]))
    assert ("DOE^JOHN^QUINCY", "(0010,0010) PatientName") in found
    assert ("DOE^JOHN^QUINCY", "bytes") in found and ("QUINCY", "bytes") in found
    assert (original_ref, "bytes") in found
    assert any(a.endswith("ReferencedSOPInstanceUID") for a in hits.loc[hits["value"] == original_ref, "attribute"])


def test_references_resolve_across_files(tree: Tree) -> None:
    ctx = _ctx()
    report = tree.report
    outputs = {pydicom.dcmread(p).SOPInstanceUID: pydicom.dcmread(p) for p in report.written}
    for series in (tree.ct_a, tree.mr_a, tree.ct_b):
        originals = [pydicom.dcmread(p) for p in series]
        for k, original in enumerate(originals):
            out = outputs[ctx.new_uid(original.SOPInstanceUID)]
            target = out.ReferencedImageSequence[0].ReferencedSOPInstanceUID
            assert target == ctx.new_uid(originals[(k + 1) % len(originals)].SOPInstanceUID)
            assert target in outputs, "the reference must point at a written file"
            assert out.StudyInstanceUID == outputs[target].StudyInstanceUID
            assert out.FrameOfReferenceUID == outputs[target].FrameOfReferenceUID
    ct_a, mr_a = (outputs[ctx.new_uid(pydicom.dcmread(paths[0]).SOPInstanceUID)] for paths in (tree.ct_a, tree.mr_a))
    assert ct_a.StudyInstanceUID != mr_a.StudyInstanceUID and ct_a.PatientID == mr_a.PatientID


def test_date_shift_keeps_intervals_per_patient(tree: Tree) -> None:
    shifted = tree.shifted
    by_patient: dict[str, set[str]] = {}
    for path in shifted.written:
        ds = pydicom.dcmread(path)
        by_patient.setdefault(ds.PatientID, set()).add(ds.StudyDate)
    ctx = _ctx()
    dates_a = sorted(by_patient[ctx.pseudonym("MRN-4471923")])
    assert len(dates_a) == 2
    as_date = pd.to_datetime(pd.Series(dates_a), format="%Y%m%d")
    assert (as_date[1] - as_date[0]).days == (pd.Timestamp("2025-04-01") - pd.Timestamp("2025-03-14")).days
    assert dates_a[0] != "20250314"
    shift_a, shift_b = ctx.shift_days("MRN-4471923"), ctx.shift_days("MRN-0000777")
    assert shift_a != shift_b
    assert by_patient[ctx.pseudonym("MRN-0000777")] == {shift_date("20240202", "DA", shift_b)}


def test_output_is_deterministic(tree: Tree, tmp_path: Path) -> None:
    first = tree.report
    again = deid.deidentify_folder(tree.src, tmp_path / "again", KEY)
    rel = lambda report: {p.relative_to(report.out_dir): p.read_bytes() for p in report.written}  # noqa: E731
    assert rel(first) == rel(again)
    other_key = deid.deidentify_folder(tree.src, tmp_path / "other", b"a-different-secret-key")
    assert set(rel(first)).isdisjoint(rel(other_key)), "a different key gives different UIDs"


def test_outputs_have_zero_preamble_fresh_meta_and_no_key(tree: Tree, tmp_path: Path) -> None:
    report = tree.report
    csv = report.to_csv(tmp_path / "report.csv")
    for path in [*report.written, *tree.shifted.written, csv]:
        data = path.read_bytes()
        assert KEY not in data and KEY.hex().encode() not in data
    for path in report.written:
        data = path.read_bytes()
        assert data[:128] == bytes(128) and data[128:132] == b"DICM"
        ds = pydicom.dcmread(path)
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert "SourceApplicationEntityTitle" not in ds.file_meta
        assert ds.PatientIdentityRemoved == "YES"
    assert pd.read_csv(csv)["status"].tolist() == report.rows["status"].tolist()


def test_sources_are_never_modified(tree: Tree) -> None:
    hashes = tree.hashes
    now = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in tree.src.rglob("*") if p.is_file()}
    assert now == hashes


def test_allow_burned_in_writes_the_quarantined_images(tree: Tree, tmp_path: Path) -> None:
    report = deid.deidentify_folder(tree.src, tmp_path / "out", KEY, allow_burned_in=True)
    for name in ("us.dcm", "sc.dcm", "burned.dcm"):
        row = _status(report, name)
        assert row.status == "written" and row.reason.startswith("burned-in text risk accepted")
    assert report.counts["quarantined"] == 0


def test_duplicate_instances_are_written_once(tree: Tree, tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    ct_b = tree.ct_b
    shutil.copy(ct_b[0], src / "a.dcm")
    shutil.copy(ct_b[0], src / "b.dcm")
    report = deid.deidentify_folder(src, tmp_path / "out", KEY)
    assert report.rows["status"].tolist() == ["written", "quarantined"]
    assert "duplicate" in report.rows["reason"].iloc[1]


@pytest.mark.parametrize("case", ["inside", "same", "not_empty", "missing", "contains"])
def test_folder_checks(case: str, tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    out = {"inside": src / "out", "same": src, "not_empty": tmp_path / "full", "missing": tmp_path / "o",
           "contains": tmp_path}[case]
    if case == "not_empty":
        out.mkdir()
        (out / "x").write_text("x")
    if case == "missing":
        src = tmp_path / "nope"
    with pytest.raises(ConfigError):
        deid.deidentify_folder(src, out, KEY)


# --- diff ---------------------------------------------------------------------------------------


def test_deid_diff_lists_what_changed(planted: pydicom.FileDataset) -> None:
    out = deid.deidentify_dataset(planted, _ctx())
    diff = deid.deid_diff(planted, out)
    assert list(diff.columns) == ["tag", "keyword", "before", "after", "action", "change"]
    row = diff.set_index("keyword")
    assert row.loc["PatientName", "before"] == "DOE^JOHN^QUINCY" and row.loc["PatientName", "change"] == "emptied"
    assert row.loc["PatientName", "action"] == "Z"
    assert row.loc["InstitutionName", "change"] == "removed" and row.loc["InstitutionName", "action"] == "X/Z/D (X)"
    assert row.loc["PatientIdentityRemoved", "change"] == "added"
    nested = diff[diff["tag"] == "(0008,1140)[0].(0008,1155)"]
    assert len(nested) == 1 and nested["change"].iloc[0] == "replaced" and nested["action"].iloc[0] == "U"
    assert "Modality" not in set(diff["keyword"])  # unchanged attributes are not listed
    assert not diff["tag"].str.startswith("(0010,1002)[").any(), "children of a removed sequence are folded"


def test_identifying_values_reach_every_planted_place(planted: pydicom.FileDataset) -> None:
    values = {value for _, value in deid.identifying_values(planted)}
    for planted_value in ("DOE^JOHN^QUINCY", "QUINCY", "MRN-4471923", "19610213", "ACC-88123", "HOUSE^GREGORY",
                          "Saint Elsewhere General Hospital", "CUDDY^LISA", "20250311", "ALT-55512",
                          "Elsewhere Registry", "SPS-77123", "ACME_PRIVATE", "MRN-4471923 private note",
                          "WILSON^JAMES", "overlay drawn by Nurse Peyton", "curve of Greg Houses ward", "093012",
                          planted.SOPInstanceUID, planted.ReferencedImageSequence[0].ReferencedSOPInstanceUID):
        assert planted_value in values, planted_value
    assert "CT" not in values and "ORIGINAL" not in values and "medbench" not in values  # kept attributes
    shifted = {value for _, value in deid.identifying_values(planted, date_shift=True)}
    assert "093012" not in shifted and "20250314" in shifted  # times are kept by design when shifting
    kept = {v for _, v in deid.identifying_values(planted, keep_private=[(0x0011, "ACME_PRIVATE", 0x10)])}
    assert "MRN-4471923 private note" not in kept
