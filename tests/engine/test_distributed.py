"""Two CPU processes over gloo (torchrun + DistributedDataParallel) train like one process on the same data order."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from medbench.engine import TrainParams, fit
from tests.engine.ddp_common import data, model, sgd_task
from tests.orthanc import free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_two_gloo_processes_match_one_process(tmp_path: Path) -> None:
    out = tmp_path / "ddp.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    res = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
         "--master_port", str(free_port()), str(ROOT / "tests" / "engine" / "ddp_worker.py"), str(out)],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=300,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    ddp_state = torch.load(out, weights_only=True)

    # one process, global batch = 2 processes x 2: rank r took samples r, r+2, ... of each global batch
    single = model()
    fit(single, sgd_task(), data(), None, TrainParams(epochs=2, batch_size=4, lr=0.05, shuffle=False), progress=False)
    diffs = {k: float((v - ddp_state[k]).abs().max()) for k, v in single.state_dict().items()}
    assert max(diffs.values()) < 1e-5, diffs

    # and the check can fail: one process with the per-process batch alone is a different optimisation
    small = model()
    fit(small, sgd_task(), data(), None, TrainParams(epochs=2, batch_size=2, lr=0.05, shuffle=False), progress=False)
    assert max(float((v - ddp_state[k]).abs().max()) for k, v in small.state_dict().items()) > 1e-4
