"""Seeding, determinism switches and the one environment fingerprint (DESIGN §6).

:func:`seed_everything` and :func:`set_deterministic` are what a run does
first (:func:`medbench.report.start_run` calls them); :func:`environment` is
the single description of the machine, packages and checkout that run
records and benchmarks store.
"""

from __future__ import annotations

import os
import platform
import random
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

#: Packages whose versions every run record names.
RECORDED_PACKAGES = ("torch", "monai", "SimpleITK", "pydicom", "nibabel", "captum", "numpy")

def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global RNG and torch (CPU and every CUDA device).

    Also sets ``PYTHONHASHSEED`` for child processes (data loader workers
    started with spawn) — the current interpreter's hash seed is fixed at start.
    DataLoader workers need nothing more: torch derives each worker's torch,
    ``random`` and NumPy seeds from a base seed drawn from the (now seeded)
    torch generator, so shuffling and per-worker augmentation repeat.
    Code that needs randomness should still prefer its own
    ``np.random.default_rng(seed)`` / MONAI ``Randomizable.set_random_state``.
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    os.environ["PYTHONHASHSEED"] = str(seed)
    import torch

    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def set_deterministic(enabled: bool = True) -> dict[str, Any]:
    """Switch torch to deterministic algorithms (and back), TF32 off when enabled.

    ``CUBLAS_WORKSPACE_CONFIG`` must be set before CUDA initialises; it is set
    here (first thing a run does) unless the user already chose a value.
    Returns the settings applied, for the run record.
    """
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    import torch

    torch.use_deterministic_algorithms(enabled)
    torch.backends.cudnn.deterministic = enabled
    torch.backends.cudnn.benchmark = not enabled
    torch.backends.cuda.matmul.allow_tf32 = not enabled
    torch.backends.cudnn.allow_tf32 = not enabled
    return {
        "deterministic_algorithms": enabled,
        "cudnn_benchmark": not enabled,
        "tf32": not enabled,
        "CUBLAS_WORKSPACE_CONFIG": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
    }


def device_info() -> dict[str, Any]:
    """The compute device a run used (CPU, or the CUDA device name)."""
    import torch

    info: dict[str, Any] = {"torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count()}
    if torch.cuda.is_available():
        info.update(device="cuda", cuda_device=torch.cuda.get_device_name(0), cuda=torch.version.cuda)
    else:
        info["device"] = "cpu"
    return info


def package_versions(names: tuple[str, ...] = RECORDED_PACKAGES) -> dict[str, str | None]:
    """Installed version of each package (None when it is not installed), plus Python's."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_state(path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Commit and dirty flag of the checkout holding ``path`` (or medbench itself)."""
    where = Path(path) if path else Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=where, capture_output=True, text=True, timeout=10, check=True,
            ).stdout.strip()
        )
        return {"commit": commit, "dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None, "note": "not a git checkout"}


def cpu_info() -> dict[str, Any]:
    """CPU model and the SIMD features that decide float speed (AVX2, AVX-512, AMX) on Linux."""
    info: dict[str, Any] = {"machine": platform.machine(), "cpu_count": os.cpu_count()}
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return info
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and "model" not in info:
            info["model"] = value.strip()
        if key.strip() == "flags":
            flags = set(value.split())
            info["simd"] = sorted(f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_tile") if f in flags)
            break
    return info


def environment(*, with_git: bool = True) -> dict[str, Any]:
    """The one environment fingerprint: packages, device, CPU, host, checkout (run records, benchmarks)."""
    env: dict[str, Any] = {
        "versions": package_versions(),
        "device": device_info(),
        "cpu": cpu_info(),
        "host": {"platform": platform.platform(), "python": sys.executable},
    }
    if with_git:
        env["git"] = git_state()
    return env
