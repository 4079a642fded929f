"""medbench.report.run: the run folder, run.json (one writer), metrics.json, artifacts, checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from medbench import report
from medbench.errors import DataError
from medbench.recipes import tour
from medbench.report import run as run_mod


def test_metrics_json_is_canonical() -> None:
    a = report.metrics_json({"b": 1.23456789012, "a": np.float32(0.5), "c": [np.int64(2)], "d": -0.0000000001})
    b = report.metrics_json({"d": 0.0, "c": [2], "a": 0.5, "b": 1.234568})
    assert a == b
    assert list(json.loads(a)) == ["a", "b", "c", "d"]


def test_format_metrics_sorted_fixed_decimals() -> None:
    assert report.format_metrics({"z": 1, "a": 0.12345}) == "a: 0.123\nz: 1"


@pytest.fixture
def run_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(run_mod.ENV_RUN_DIR, str(tmp_path / "run"))
    monkeypatch.delenv(run_mod.ENV_PROFILE, raising=False)
    monkeypatch.delenv(run_mod.ENV_OVERRIDES, raising=False)
    return tmp_path / "run"


def test_run_record_contents(run_dir: Path, tmp_path: Path) -> None:
    cfg = tour.Params.validate_values({"seed": 5, "data_n_cases": 1})
    run = report.start_run(cfg, deterministic=False, threads=1)
    assert torch.get_num_threads() == 1
    data_file = tmp_path / "d.bin"
    data_file.write_bytes(b"abc")
    digest = run.add_data("input", data_file)
    assert digest == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"  # sha256("abc")
    run.finish({"x": 1.0})
    rec = json.loads((run_dir / "run.json").read_text())
    assert rec["status"] == "completed" and rec["seeds"] == {"seed": 5} and rec["notebook"] == "00_tour"
    assert rec["params"]["data"]["n_cases"] == 1 and rec["data"]["input"] == digest
    assert rec["overrides"] == {"seed": 5, "data.n_cases": 1} and rec["profile"] is None and rec["threads"] == 1
    assert rec["versions"]["torch"] == torch.__version__ and rec["device"]["torch_threads"] == 1
    assert json.loads((run_dir / "metrics.json").read_text()) == {"x": 1.0}
    assert str(run_dir) not in (run_dir / "run.json").read_text(), "run.json must not name its own folder"


def test_runner_context_comes_from_the_environment(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(run_mod.ENV_PROFILE, "full")
    monkeypatch.setenv(run_mod.ENV_OVERRIDES, json.dumps({"seed": 1}))
    run = report.start_run(tour.Params.validate_values({"seed": 1}), deterministic=False)
    assert run.run_dir == run_dir and run.profile == "full" and run.overrides == {"seed": 1}


def test_artifacts_are_relative_and_finalise_keeps_the_notebooks_record(run_dir: Path) -> None:
    run = report.start_run(tour.Params(), deterministic=False)
    fig = Figure()
    fig.subplots().plot([0, 1])
    run.save_figure(fig, "line")
    run.save_artifact("tables/x.csv", lambda p: p.write_text("a\n1\n"))
    run.finish({"x": 2})
    report.finalise(run_dir, notebook="00_tour", status="failed", error="boom", duration_s=1.5, profile="smoke")
    rec = report.read_record(run_dir)
    assert rec["artifacts"] == {"figure:line": "figures/line.png", "tables/x.csv": "tables/x.csv"}
    assert (rec["status"], rec["error"], rec["wall_time_s"], rec["profile"]) == ("failed", "boom", 1.5, "smoke")
    assert rec["params"]["seed"] == 0, "finalise must keep what the notebook recorded"


def test_finalise_creates_a_record_when_the_notebook_wrote_none(tmp_path: Path) -> None:
    (tmp_path / "r").mkdir()
    report.finalise(tmp_path / "r", notebook="00_tour", status="failed", error="died before setup")
    rec = report.read_record(tmp_path / "r")
    assert rec["status"] == "failed" and rec["notebook"] == "00_tour" and "versions" in rec


def test_checkpoints_are_recorded_with_sha256_and_verified(run_dir: Path) -> None:
    run = report.start_run(tour.Params(), deterministic=False)
    state = {"w": torch.arange(4.0)}
    path = run.save_checkpoint(state, "best", epoch=3)
    rec = report.read_record(run_dir)
    assert rec["checkpoints"]["best"]["file"] == "checkpoints/best.pt" and rec["checkpoints"]["best"]["epoch"] == 3
    assert torch.equal(run.load_checkpoint("best")["w"], state["w"])
    path.write_bytes(path.read_bytes() + b"x")
    with pytest.raises(DataError, match="does not match the record"):
        run.load_checkpoint("best")


def test_load_checkpoint_refuses_pickled_objects(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"f": Path("/etc")}, path)  # not a tensor-only payload
    with pytest.raises(DataError, match="weights_only=True"):
        report.load_checkpoint(path)
