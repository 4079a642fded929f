"""Run by ``torchrun`` in tests/engine/test_distributed.py: the engine, unchanged, in several processes.

Usage: ``torchrun --nproc_per_node N tests/engine/ddp_worker.py OUT.pt``; rank 0 writes the trained
weights to OUT.pt.
"""

from __future__ import annotations

import sys

import torch

from medbench.engine import TrainParams, distributed, fit
from tests.engine.ddp_common import data, model, sgd_task


def main(out: str) -> int:
    torch.set_num_threads(1)
    distributed.init()
    try:
        net = model()
        fit(net, sgd_task(), data(), None, TrainParams(epochs=2, batch_size=2, lr=0.05, shuffle=False),
            seed=0, progress=False)
        if distributed.is_main():
            torch.save(net.state_dict(), out)
        distributed.barrier()
    finally:
        distributed.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
