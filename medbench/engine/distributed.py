"""Multi-process training through PyTorch's own runtime (``torchrun``), never a home-made one.

``torchrun --nproc_per_node N -m medbench.cli train NB`` sets ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous variables; :func:`init`
joins the process group (gloo on CPU, nccl on CUDA). Without those variables
everything here is a single-process no-op, so the same code runs in a
notebook.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as tdist


def world_size() -> int:
    return tdist.get_world_size() if tdist.is_available() and tdist.is_initialized() else 1


def rank() -> int:
    return tdist.get_rank() if tdist.is_available() and tdist.is_initialized() else 0


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    return rank() == 0


def launched() -> bool:
    """True when started by torchrun (or another launcher) with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init() -> bool:
    """Join the process group when launched with several processes; True if this is a distributed run."""
    if not launched():
        return False
    if not tdist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if torch.cuda.is_available():
            torch.cuda.set_device(local_rank())
        tdist.init_process_group(backend=backend)
    return True


def shutdown() -> None:
    if tdist.is_available() and tdist.is_initialized():
        tdist.destroy_process_group()


def broadcast_float(value: float) -> float:
    """Rank 0's ``value`` on every rank (a stop decision or a monitored metric)."""
    if world_size() == 1:
        return value
    device = torch.device("cuda", local_rank()) if tdist.get_backend() == "nccl" else torch.device("cpu")
    t = torch.tensor([value], dtype=torch.float64, device=device)
    tdist.broadcast(t, src=0)
    return float(t.item())


def barrier() -> None:
    if world_size() > 1:
        tdist.barrier()
