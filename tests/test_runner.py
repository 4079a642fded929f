"""``medbench run``: run folders, failure isolation, index.html, bad input.

These use tiny stand-in notebooks (via MEDBENCH_NOTEBOOKS) so they take seconds;
tests/notebooks/ runs the real series.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from html.parser import HTMLParser
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


def _good(stem: str) -> list[str]:
    """A stand-in that builds its notebook's own schema from the injected smoke parameters."""
    return [
        "seed = 0\ndata_n_cases = 2",
        f"from medbench import recipes, report\ncfg = recipes.schema_for({stem!r}).from_namespace(globals())\n"
        "run = report.start_run(cfg, deterministic=False)",
        "data = getattr(cfg, 'data', None)\n"
        "run.finish({'answer': cfg.seed + 0.5, 'cases': getattr(data, 'n_cases', None)})",
    ]


BAD = ["seed = 0", "x = 1", "raise ValueError('planted failure')"]


@pytest.fixture()
def stand_ins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in for every registered notebook: ``00_tour`` fails, the others complete."""
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    for stem in recipes.NOTEBOOKS:
        _notebook(BAD if stem == "00_tour" else _good(stem), nbs / f"{stem}.ipynb")
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
    assert all(r.status == "completed" for r in results if r.notebook != "00_tour")
    assert [r.notebook for r in results] == list(recipes.NOTEBOOKS)
    index = (reports / "index.html").read_text()
    assert index.count("<tr class=") == len(recipes.NOTEBOOKS) and "planted failure" in index and "answer" in index
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


WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
PNG_1x1 = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")


def _widget_notebook(path: Path) -> None:
    """An executed-looking notebook: a widget output with a PNG picture, widget state, math in markdown."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Title\n\nWindow $c \\pm w/2$."), nbformat.v4.new_code_cell("viewer")]
    nb.cells[1].outputs = [nbformat.v4.new_output("display_data", data={
        WIDGET_VIEW: {"version_major": 2, "version_minor": 0, "model_id": "abc"},
        "image/png": PNG_1x1, "text/plain": "SliceViewer of ct"})]
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {
        "state": {"abc": {"model_name": "VBoxModel", "model_module": "@jupyter-widgets/controls",
                          "model_module_version": "2.0.0", "state": {}}},
        "version_major": 2, "version_minor": 0}}
    nbformat.write(nb, path)


def test_html_export_is_self_contained_and_shows_the_widget_picture(tmp_path: Path) -> None:
    src = tmp_path / "executed.ipynb"
    _widget_notebook(src)
    runner.export_html(src, tmp_path / "executed.html")
    page = (tmp_path / "executed.html").read_text()

    class Refs(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.refs: list[str] = []

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            self.refs += [f"{tag} {v}" for k, v in attrs if k in ("src", "href") and v and tag in ("script", "link", "img")]

    parser = Refs()
    parser.feed(page)
    remote = [r for r in parser.refs if "://" in r or r.split(" ", 1)[1].startswith("//")]
    assert remote == [], remote
    for cdn in ("cdnjs", "unpkg", "jsdelivr", "require.js", "MathJax"):
        assert cdn not in page, cdn
    assert f"data:image/png;base64,{PNG_1x1}" in page
    assert "widget-state" not in page and "widget-view" not in page


def test_stored_notebooks_drop_widget_state_and_dead_views(tmp_path: Path) -> None:
    path = tmp_path / "n.ipynb"
    _widget_notebook(path)
    nb = nbformat.read(path, as_version=4)
    assert runner.drop_widget_views(nb) == 1
    assert "widgets" not in nb.metadata
    assert sorted(nb.cells[1].outputs[0]["data"]) == ["image/png", "text/plain"]
    runner.normalise_notebook(path)
    assert WIDGET_VIEW not in path.read_text() and "widget-state" not in path.read_text()


@pytest.mark.slow
def test_progress_output_is_free_of_kernel_warnings(stand_ins: Path) -> None:
    reports = stand_ins / "reports"
    res = _cli("run", "01_data_audit", "--reports", str(reports))
    assert res.returncode == 0, res.stderr
    assert "[IPKernelApp]" not in res.stderr and "without encryption" not in res.stderr, res.stderr
    (run_dir,) = (reports / "01_data_audit").iterdir()
    assert (run_dir / "kernel.log").is_file()
    assert "without encryption" not in (run_dir / "kernel.log").read_text()  # CurveZMQ is on where supported


def test_refresh_scratch_is_held_exclusively(tmp_path: Path) -> None:
    """Two checkouts refreshing notebooks at once share the fixed scratch path: the second waits for the lock."""
    import fcntl

    lock = tmp_path / "scratch.lock"
    with runner._exclusive(lock), open(lock, "a") as other:
        with pytest.raises(BlockingIOError):
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    with open(lock, "a") as other:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released afterwards
