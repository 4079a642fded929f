"""run_audit writes a complete, self-contained report; the CLI's exit codes; sources stay untouched."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from medbench.audit import REPORT_FILES, run_audit
from medbench.audit.cli import main as audit_main
from medbench.cli import main as medbench_main
from medbench.errors import DataError
from tests.audit.audit_helpers import tree_hashes


def test_run_audit_writes_every_file_with_the_right_counts(mixed_tree: Path, tmp_path: Path) -> None:
    before = tree_hashes(mixed_tree)
    out = tmp_path / "report"
    result = run_audit(mixed_tree, out)
    assert tree_hashes(mixed_tree) == before
    assert sorted(p.name for p in out.iterdir()) == sorted(REPORT_FILES)  # no temporary leftovers

    c = result.counts
    assert (c["files_found"], c["readable"]) == (26, 23)
    assert c["failed"] == {"empty": 1, "not_dicom": 1, "truncated": 1}
    assert (c["series_valid"], c["series_invalid"], c["series_non_image"]) == (2, 2, 0)  # good + one-slice; gapped + broken
    summary = json.loads((out / "summary.json").read_text())
    assert {k: summary[k] for k in c} == json.loads(json.dumps(c))

    assert len(pd.read_csv(out / "files.csv")) == 26
    assert len(pd.read_csv(out / "series.csv")) == 4
    assert len(pd.read_csv(out / "outliers.csv")) == 4
    page = (out / "index.html").read_text()
    assert 'src="data:image/png;base64,' in page
    assert "http://" not in page and "https://" not in page  # self-contained
    assert "truncated: pixel data declares" in page and "not a DICOM file" in page
    assert str(out / "index.html") in result.summary_text()


def test_existing_report_folder_is_replaced_file_by_file(mixed_tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    out.mkdir()
    (out / "files.csv").write_text("stale\n")
    (out / "keep.txt").write_text("not ours\n")
    run_audit(mixed_tree / "good", out, sample_pixels=False)
    assert (out / "files.csv").read_text().startswith("path,size_bytes,readable")
    assert (out / "keep.txt").read_text() == "not ours\n"
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_run_audit_missing_path_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        run_audit(tmp_path / "nope", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_cli_exit_codes(mixed_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = tree_hashes(mixed_tree)
    out = tmp_path / "cli_report"
    assert audit_main([str(mixed_tree), "--out", str(out), "--no-pixels"]) == 0
    printed = capsys.readouterr().out
    assert "26 found, 23 readable, 3 failed" in printed and str(out / "index.html") in printed
    assert (pd.read_csv(out / "series.csv")["pixel_status"] == "not sampled").all()
    assert tree_hashes(mixed_tree) == before

    assert audit_main([str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    assert audit_main([str(mixed_tree), "--out", str(blocker)]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert audit_main([str(mixed_tree), "--out", str(blocker / "sub")]) == 2


def test_top_level_command_runs_the_audit(mixed_tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "via_medbench"
    assert medbench_main(["audit", str(mixed_tree / "good"), "--out", str(out), "--no-pixels"]) == 0
    assert (out / "index.html").is_file()
