"""``medbench train``: the notebook's training code path from the command line, in one process and under torchrun."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.orthanc import free_port

ROOT = Path(__file__).resolve().parents[2]
TINY = ["-p", "models=[unet]", "-p", "epochs_by_model={}", "-p", "train.epochs=2", "-p", "data.n_cases=5",
        "-p", "data.image_size=[32, 32, 16]", "-p", "data.spacing=[12.5, 12.5, 16.0]", "-p", "data.patch=[32, 32, 16]"]


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "MEDBENCH_HEADLESS": "1"}


@pytest.mark.slow
def test_train_writes_a_run_with_checkpoints(tmp_path: Path) -> None:
    out = tmp_path / "run"
    res = subprocess.run([sys.executable, "-m", "medbench.cli", "train", "04_segmentation", *TINY, "--out", str(out),
                          "--threads", "1"], capture_output=True, text=True, env=_env(tmp_path), cwd=tmp_path,
                         timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    rec = json.loads((out / "run.json").read_text())
    assert rec["status"] == "completed" and rec["profile"] == "smoke" and rec["overrides"]["train.epochs"] == 2
    assert {"unet-best", "unet-last"} <= set(rec["checkpoints"]) and rec["threads"] == 1
    # `-p epochs_by_model={}` clears the smoke per-model epochs, so the UNet trains train.epochs (2), not 40
    assert rec["params"]["epochs_by_model"] == {} and rec["checkpoints"]["unet-last"]["epoch"] == 1
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"unet_val_dice", "unet_train_s"} and 0.0 <= metrics["unet_val_dice"] <= 1.0


@pytest.mark.slow
def test_every_trainable_notebook_other_than_04_trains_from_the_command_line(tmp_path: Path) -> None:
    """03, 05 and 06 train through the same CLI (their ``train`` needs loaded data: ``cli_train`` loads it)."""
    runs = {
        "03_restoration": ["-p", "models=[red_cnn]", "-p", "epochs_by_model={}", "-p", "train.epochs=1",
                           "-p", "data.n_cases=5", "-p", "data.image_size=[32, 32, 16]",
                           "-p", "data.spacing=[12.5, 12.5, 16.0]", "-p", "data.val_slices=4", "-p", "crop=16"],
        "06_explainability": ["-p", "data.n_cases=6", "-p", "data.image_size=[32, 32, 16]",
                              "-p", "data.spacing=[12.5, 12.5, 16.0]", "-p", "data.downsample=1",
                              "-p", "train.epochs=1", "-p", "explain.label_randomisation=false"],
        "05_fusion": ["-p", "data.n_cases=5", "-p", "data.image_size=[32, 32, 16]",
                      "-p", "data.spacing=[12.5, 12.5, 16.0]", "-p", "data.patch=[32, 32, 16]",
                      "-p", "train.epochs=1", "-p", "epochs_by_model={}", "-p", "fusion.single=false",
                      "-p", "fusion.dropout_levels=[early]", "-p", "synthesis.enabled=false"],
    }
    for notebook, params in runs.items():
        out = tmp_path / notebook
        res = subprocess.run([sys.executable, "-m", "medbench.cli", "train", notebook, *params, "--out", str(out),
                              "--threads", "1"], capture_output=True, text=True, env=_env(tmp_path), cwd=tmp_path,
                             timeout=600)
        assert res.returncode == 0, res.stderr[-3000:]
        metrics = json.loads((out / "metrics.json").read_text())
        models = {"03_restoration": ["red_cnn"], "06_explainability": ["clean", "spurious"],
                  "05_fusion": ["early", "late", "intermediate", "early+dropout"]}[notebook]
        keys = ("val_dice", "train_s") if notebook == "05_fusion" else ("best_val", "train_s")
        assert set(metrics) == {f"{m}_{k}" for m in models for k in keys}, metrics
        assert all(metrics[f"{m}_train_s"] > 0 for m in models)


def test_train_refuses_a_notebook_that_trains_nothing(tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, "-m", "medbench.cli", "train", "00_tour"], capture_output=True, text=True,
                         env=_env(tmp_path), cwd=tmp_path, timeout=120)
    assert res.returncode == 2 and "00_tour trains nothing; notebooks that train: " in res.stderr
    trainable = res.stderr.split("notebooks that train: ")[1].strip().split(", ")
    assert "04_segmentation" in trainable and "00_tour" not in trainable


@pytest.mark.slow
def test_train_runs_unchanged_under_torchrun(tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    res = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
         "--master_port", str(free_port()), "-m", "medbench.cli", "train", "04_segmentation", *TINY,
         "--out", str(out), "--threads", "1"],
        capture_output=True, text=True, env=_env(tmp_path), cwd=tmp_path, timeout=600,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    rec = json.loads((out / "run.json").read_text())
    assert rec["status"] == "completed" and "unet-best" in rec["checkpoints"]
    assert not list(tmp_path.glob("**/.run.json*")), "one writer: no second process wrote a run record"
