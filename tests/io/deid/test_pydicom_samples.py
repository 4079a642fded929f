"""medbench.io.deid on pydicom's bundled test files: real files, many oddities, never a crash.

The files are read in place (read-only) from the installed pydicom package;
outputs go to ``tmp_path``. Every file must get exactly one report row with a
status, and every written file must read back as a de-identified dataset.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pydicom
import pytest

from medbench.io import deid

TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
KEY = b"pydicom-corpus-secret-key"


def _corpus() -> list[Path]:
    return sorted(p for p in TEST_FILES.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def corpus_hashes() -> dict[Path, str]:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in _corpus()}


@pytest.mark.parametrize(
    "options", [{}, {"date_shift": True, "allow_burned_in": True}], ids=["default", "shift+burned"]
)
def test_every_bundled_file_gets_a_row(
    options: dict[str, bool], tmp_path: Path, corpus_hashes: dict[Path, str]
) -> None:
    report = deid.deidentify_folder(TEST_FILES, tmp_path / "out", KEY, **options)
    rows = report.rows
    assert sorted(rows["source"]) == sorted(str(p) for p in _corpus())
    assert rows["status"].isin(deid.STATUSES).all()
    assert (rows.loc[rows["status"] != "written", "reason"] != "").all(), "every non-written file says why"
    by_name = {Path(s).relative_to(TEST_FILES).as_posix(): st for s, st in zip(rows["source"], rows["status"])}
    assert by_name["CT_small.dcm"] == "written"
    assert by_name["MR_truncated.dcm"] == "failed"
    assert by_name["rtplan_truncated.dcm"] == "failed"
    assert by_name["README.txt"] == "not_dicom"
    assert by_name["dicomdirtests/DICOMDIR"] == "quarantined"
    burned_in = "written" if options.get("allow_burned_in") else "quarantined"
    assert by_name["SC_rgb_small_odd.dcm"] == burned_in and by_name["examples_palette.dcm"] == burned_in  # SC, US
    # header-only stubs (image objects without Pixel Data, e.g. dicomdirtests/TINY_ALPHA) fail: never written
    stubs = rows[rows["source"].str.contains("TINY_ALPHA/PT")]
    assert len(stubs) == 50 and (stubs["status"] == "failed").all()
    assert stubs["reason"].str.contains("no pixel data").all()
    assert by_name["MR_small_padded.dcm"] == "failed"  # pixel data longer than its header describes
    assert report.counts["written"] >= (70 if options.get("allow_burned_in") else 40)
    for path in report.written:
        ds = pydicom.dcmread(path)
        assert ds.PatientIdentityRemoved == "YES" and ds.preamble == bytes(128)
        assert "PatientName" not in ds or not str(ds.PatientName)
        assert not any(tag.group % 2 for tag in ds.keys())
    assert {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in _corpus()} == corpus_hashes
