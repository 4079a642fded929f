"""``medbench audit`` and ``medbench deid`` over a hostile folder, as a user runs them.

The commands run in a subprocess under a UTF-8 locale (what a terminal has):
one row per file, no traceback, sources byte-identical, the report always
written, whatever the folder holds (see :func:`tests.io.hostile.build_hostile_tree`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.io.hostile import build_hostile_tree, tree_hashes, walk_entries

KEY = "hostile-cli-secret-0123456789"


def printable(text: str) -> str:
    """How reports show a path: its bytes as UTF-8, any byte that is not UTF-8 as \\xNN."""
    return os.fsencode(text).decode("utf-8", "backslashreplace")


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    root = tmp_path_factory.mktemp("hostile") / "tree"
    return root, build_hostile_tree(root)


def _run(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONIOENCODING", "PYTHONUTF8", "LC_ALL", "LANG")}
    env.update(LC_ALL="C.UTF-8", LANG="C.UTF-8")
    return subprocess.run([sys.executable, "-m", "medbench.cli", *argv], capture_output=True, text=True,
                          encoding="utf-8", env=env, cwd=cwd, timeout=300)


def _by_path(df: pd.DataFrame, column: str, path: Path) -> pd.Series:
    rows = df[df[column] == printable(str(path))]
    assert len(rows) == 1, f"{printable(str(path))}: {len(rows)} rows"
    return rows.iloc[0]


@pytest.mark.slow
def test_audit_cli_on_a_hostile_folder(hostile: tuple[Path, dict[str, Path]], tmp_path: Path) -> None:
    root, planted = hostile
    before = tree_hashes(root)
    out = tmp_path / "audit"
    done = _run("audit", str(root), "--out", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert tree_hashes(root) == before
    files = pd.read_csv(out / "files.csv", encoding="utf-8")
    files["path"] = [printable(str(root / p)) for p in files["path"]]  # files.csv paths are relative to the folder
    entries = walk_entries(root)
    assert len(files) == len(entries) + 1  # every entry, plus the file the DICOMDIR references but lacks
    assert sorted(files["path"]) == sorted(
        [printable(str(p)) for p in entries]
        + [printable(str(p)) for p in files.loc[files["error_kind"] == "missing_reference", "path"]]
    )
    assert files.loc[~files["readable"], "error"].str.len().gt(0).all()
    expected = {
        "latin1": None, "utf8": None, "mosaic": None, "deflated": None,
        "garbage": "not_parseable", "truncated": "truncated", "latin1_truncated": "truncated", "empty": "empty",
        "text": "not_dicom", "long_pixels": "pixel_length", "loop_a": "symlink_loop", "loop_b": "symlink_loop",
        "up": "symlink_loop", "elsewhere": "link_not_followed", "broken": "broken_link", "fifo": "not_regular",
    }  # fmt: skip
    for name, kind in expected.items():
        row = _by_path(files, "path", planted[name])
        assert (None if pd.isna(row["error_kind"]) else row["error_kind"]) == kind, (name, row["error"])
    assert _by_path(files, "path", planted["mosaic"])["mosaic_slices"] == 5
    assert (files["error_kind"] == "missing_reference").sum() == 1
    series = pd.read_csv(out / "series.csv", encoding="utf-8")
    kernels = series[series["split_reason"].fillna("").str.contains("ConvolutionKernel")]
    assert len(kernels) == 2 and kernels["status"].eq("valid").all()
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "r\\xe9sum\\xe9.dcm" in page  # the failed file under a Latin-1 name is listed
    assert f"{len(files)} found" in done.stdout


@pytest.mark.slow
def test_deid_cli_on_a_hostile_folder(hostile: tuple[Path, dict[str, Path]], tmp_path: Path) -> None:
    root, planted = hostile
    before = tree_hashes(root)
    key = tmp_path / "key"
    key.write_text(KEY)
    out = tmp_path / "deid"
    done = _run("deid", str(root), str(out), "--key-file", str(key), cwd=tmp_path)
    assert done.returncode == 1, done.stderr  # some files failed: said by the exit code, not by a crash
    assert "Traceback" not in done.stdout + done.stderr
    assert tree_hashes(root) == before
    report_path = tmp_path / "deid-deid-report.csv"
    assert f"report: {report_path}" in done.stdout
    report = pd.read_csv(report_path, encoding="utf-8", keep_default_na=False)
    assert len(report) == len(walk_entries(root))
    expected = {
        "latin1": "written", "utf8": "written", "mosaic": "written", "deflated": "quarantined",  # secondary capture
        "garbage": "failed", "truncated": "failed", "latin1_truncated": "failed", "long_pixels": "failed",
        "loop_a": "failed", "loop_b": "failed", "up": "failed", "elsewhere": "failed", "broken": "failed",
        "empty": "not_dicom", "text": "not_dicom", "fifo": "not_dicom", "dicomdir": "quarantined",
    }  # fmt: skip
    for name, status in expected.items():
        row = _by_path(report, "source", planted[name])
        assert row["status"] == status, (name, row["reason"])
        assert status == "written" or row["reason"]
    assert "failed: " + printable(str(planted["latin1_truncated"])) in done.stdout  # r\xe9sum\xe9.dcm on the console
    written = sorted(str(p) for p in out.rglob("*.dcm"))
    assert written == sorted(report.loc[report["status"] == "written", "output"])
