"""Tests for ``medbench deid`` (medbench.io.deid.cli): arguments, summary and exit codes."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medbench.image.volume import Volume
from medbench.io.deid import cli as deid_cli
from medbench.io.dicom.write import write_series

KEY = b"cli-test-secret-0123456789\n"


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="medbench deid")
    deid_cli.configure(parser)
    return parser.parse_args(list(argv))


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(IN with a 2-slice CT series, OUT path, key file)."""
    src = tmp_path / "in"
    volume = Volume.from_spacing(np.zeros((4, 4, 2)), (1.0, 1.0, 1.0))
    write_series(volume, src / "series", patient={"PatientName": "CLI^PATIENT", "PatientID": "CLI-123"})
    key = tmp_path / "key"
    key.write_bytes(KEY)
    return src, tmp_path / "out", key


def test_configure_sets_the_handler(folders: tuple[Path, Path, Path]) -> None:
    src, out, key = folders
    args = _parse(str(src), str(out), "--key-file", str(key), "--date-shift", "--allow-burned-in")
    assert args.func is deid_cli.run
    assert args.date_shift and args.allow_burned_in and args.report is None


def test_success_writes_and_reports(folders: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    src, out, key = folders
    report = src.parent / "report.csv"
    code = deid_cli.run(_parse(str(src), str(out), "--key-file", str(key), "--report", str(report)))
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "2 files: 2 written, 0 quarantined, 0 failed" in printed.out
    assert len(list(out.rglob("*.dcm"))) == 2
    assert pd.read_csv(report)["status"].tolist() == ["written", "written"]


def test_failed_file_gives_exit_code_1(folders: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    src, out, key = folders
    first = sorted(src.rglob("*.dcm"))[0]
    (src / "cut.dcm").write_bytes(first.read_bytes()[:-20])
    (src / "readme.txt").write_text("not DICOM")
    code = deid_cli.run(_parse(str(src), str(out), "--key-file", str(key)))
    printed = capsys.readouterr()
    assert code == 1
    assert "1 failed" in printed.out and "failed: " in printed.out and "truncated" in printed.out
    assert "Traceback" not in printed.out + printed.err


def test_quarantine_and_not_dicom_are_not_failures(folders: tuple[Path, Path, Path], tmp_path: Path) -> None:
    src, out, key = folders
    (src / "readme.txt").write_text("not DICOM")
    assert deid_cli.run(_parse(str(src), str(out), "--key-file", str(key))) == 0


@pytest.mark.parametrize(
    "case", ["missing_key", "short_key", "out_inside_in", "out_not_empty", "report_in_out", "no_input"]
)
def test_usage_errors_give_exit_code_2(
    case: str, folders: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    src, out, key = folders
    argv = [str(src), str(out), "--key-file", str(key)]
    expected = {"missing_key": "cannot be read", "short_key": "at least 16", "out_inside_in": "inside the input",
                "out_not_empty": "not empty", "report_in_out": "inside OUT", "no_input": "does not exist"}[case]
    if case == "missing_key":
        argv[3] = str(key.parent / "nope")
    elif case == "short_key":
        key.write_bytes(b"tooshort\n")
    elif case == "out_inside_in":
        argv[1] = str(src / "out")
    elif case == "out_not_empty":
        out.mkdir()
        (out / "old.dcm").write_bytes(b"x")
    elif case == "report_in_out":
        argv += ["--report", str(out / "report.csv")]
    elif case == "no_input":
        argv[0] = str(src.parent / "missing")
    code = deid_cli.run(_parse(*argv))
    printed = capsys.readouterr()
    assert code == 2
    assert printed.err.startswith("medbench deid: ") and expected in printed.err
    assert "Traceback" not in printed.err and printed.err.count("\n") == 1
    if case != "out_not_empty":
        assert not out.exists(), "nothing is written after a usage error"


def test_key_file_is_required() -> None:
    with pytest.raises(SystemExit):
        _parse("in", "out")
