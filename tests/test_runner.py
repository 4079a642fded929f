"""``medbench run``: run folders, failure isolation, index.html, bad input.

These use tiny stand-in notebooks (via MEDBENCH_NOTEBOOKS) so they take seconds;
tests/notebooks/ runs the real series.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from medbench import recipes, runner


def _notebook(cells: list[str], path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in cells]
    nb.cells[0].metadata["tags"] = ["parameters"]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


GOOD = [
    "seed = 0\ndata_n_cases = 2",
    "from medbench import report\nfrom medbench.recipes import data_audit\n"
    "cfg = data_audit.Params.from_namespace(globals())\nrun = report.start_run(cfg, deterministic=False)",
    "run.finish({'answer': cfg.seed + 0.5, 'cases': cfg.data.n_cases})",
]
BAD = ["seed = 0", "x = 1", "raise ValueError('planted failure')"]


@pytest.fixture()
def stand_ins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    _notebook(BAD, nbs / "00_tour.ipynb")
    _notebook(GOOD, nbs / "01_data_audit.ipynb")
    monkeypatch.setenv("MEDBENCH_NOTEBOOKS", str(nbs))
    return tmp_path


@pytest.mark.slow
def test_failure_is_isolated_reported_and_indexed(stand_ins: Path) -> None:
    reports = stand_ins / "reports"
    messages: list[str] = []
    results = runner.run_many([], reports=reports, progress=False, echo=messages.append,
                              overrides={"seed": 3})
    by_name = {r.notebook: r for r in results}
    assert by_name["00_tour"].status == "failed"
    assert "00_tour failed in cell 3" in by_name["00_tour"].error
    assert "ValueError: planted failure" in by_name["00_tour"].error
    ok = by_name["01_data_audit"]
    assert ok.status == "completed"
    smoke_cases = recipes.defaults("01_data_audit")["data_n_cases"]  # the smoke profile is injected
    assert json.loads((ok.run_dir / "metrics.json").read_text()) == {"answer": 3.5, "cases": smoke_cases}
    for name in ("executed.ipynb", "executed.html", "params.yaml", "run.json"):
        assert (ok.run_dir / name).is_file(), name
    record = json.loads((ok.run_dir / "run.json").read_text())
    assert record["status"] == "completed" and record["profile"] == "smoke" and record["overrides"] == {"seed": 3}
    assert record["params"]["seed"] == 3 and record["seeds"] == {"seed": 3} and "output_dir" not in record["params"]
    assert "wall_time_s" in record and str(ok.run_dir.parent) not in (ok.run_dir / "run.json").read_text()
    failed = json.loads((by_name["00_tour"].run_dir / "run.json").read_text())
    assert failed["status"] == "failed" and "planted failure" in failed["error"]
    assert not [p for p in reports.rglob(".*") if p.name != ".write-test-"], "temporary folders left behind"
    index = (reports / "index.html").read_text()
    assert index.count("<tr class=") == 2 and "planted failure" in index and "answer" in index
    assert any("report:" in m for m in messages)


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "medbench.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "02_nope"], "unknown notebook '02_nope'"),
        (["run", "00_tour", "--profile", "huge"], "unknown profile 'huge'"),
        (["run", "00_tour", "-p", "seed"], "malformed parameter 'seed'"),
        (["run", "00_tour", "-p", "seeed=1"], "unknown parameter 'seeed'"),
        (["run", "00_tour", "-p", "data.n_cases=two"], "parameter 'data.n_cases' (data_n_cases in the parameters cell)"),
        (["run", "00_tour", "-p", "data_n_cases=0"], "greater than or equal to 1"),
    ],
)
def test_bad_input_is_one_clear_line_and_writes_nothing(tmp_path: Path, args: list[str], message: str) -> None:
    reports = tmp_path / "reports"
    res = _cli(*args, "--reports", str(reports))
    assert res.returncode == 2
    assert message in res.stderr and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert not reports.exists()


@pytest.mark.parametrize("kind", ["file", "read-only file system"])
def test_unwritable_reports_folder(stand_ins: Path, kind: str) -> None:
    if kind == "file":
        reports = stand_ins / "reports"
        reports.write_text("not a folder")
    else:  # sysfs refuses new folders even to root, unlike chmod
        reports = Path("/sys/medbench-reports")
    res = _cli("run", "00_tour", "--reports", str(reports))
    assert res.returncode == 2 and "is not writable" in res.stderr and "Traceback" not in res.stderr
    if kind == "file":
        assert reports.read_text() == "not a folder"


def test_normalise_notebook_strips_volatile_metadata(tmp_path: Path) -> None:
    path = tmp_path / "n.ipynb"
    _notebook(["a = 1", "a"], path)
    nb = nbformat.read(path, as_version=4)
    nb.metadata["papermill"] = {"duration": 1.0}
    nb.cells[1].metadata["papermill"] = {"start_time": "x"}
    nb.cells[1].execution_count = 17
    nbformat.write(nb, path)
    runner.normalise_notebook(path)
    nb = nbformat.read(path, as_version=4)
    assert "papermill" not in nb.metadata and "papermill" not in nb.cells[1].metadata
    assert [c.execution_count for c in nb.cells] == [1, 2]
    assert nb.metadata["kernelspec"]["name"] == "medbench"
