"""Seeding, determinism switches and run records (DESIGN §6).

A notebook starts a :class:`Run` right after validating its parameters::

    run = start_run("00_tour", cfg)          # seeds, deterministic mode, run.json
    ...
    run.add_data("phantom", cohort_hash)      # hashes of the data used
    run.finish(metrics)                       # metrics.json (byte-stable) + run.json

``metrics.json`` holds only the metrics (sorted keys, fixed rounding), so two
runs with the same seed write byte-identical files; everything volatile (time,
host, durations) lives in ``run.json``.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import math
import os
import platform
import random
import subprocess
import sys
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from medbench.io.atomic import write_text

#: Packages whose versions every run record names.
RECORDED_PACKAGES = ("torch", "monai", "SimpleITK", "pydicom", "nibabel", "captum", "numpy")

#: Decimal places kept for floats in metrics.json (tight enough for pytest
#: tolerances, loose enough to be identical across reruns on one platform).
METRIC_DECIMALS = 6


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


def package_versions(names: tuple[str, ...] = RECORDED_PACKAGES) -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
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


def hash_path(path: str | os.PathLike[str]) -> str:
    """sha256 of a file, or of a folder's files (relative names and contents, sorted)."""
    p = Path(path)
    h = hashlib.sha256()
    files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file())
    for f in files:
        if p.is_dir():
            h.update(f.relative_to(p).as_posix().encode() + b"\0")
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def _round(value: Any, decimals: int) -> Any:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if math.isnan(v) or math.isinf(v):
            return str(v)
        r = round(v, decimals)
        return 0.0 if r == 0 else r
    if isinstance(value, Mapping):
        return {str(k): _round(v, decimals) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_round(v, decimals) for v in value]
    if isinstance(value, np.ndarray):
        return _round(value.tolist(), decimals)
    return value


def metrics_json(metrics: Mapping[str, Any], decimals: int = METRIC_DECIMALS) -> str:
    """Canonical, byte-stable JSON for metrics: sorted keys, fixed rounding."""
    return json.dumps(_round(metrics, decimals), sort_keys=True, indent=2) + "\n"


def format_metrics(metrics: Mapping[str, Any], decimals: int = 3) -> str:
    """Sorted ``key: value`` lines with fixed decimals (what nbval checks)."""
    lines = []
    for key in sorted(metrics):
        value = metrics[key]
        if isinstance(value, (float, np.floating)) and not isinstance(value, bool):
            lines.append(f"{key}: {float(value):.{decimals}f}")
        else:
            lines.append(f"{key}: {value}")
    return "\n".join(lines)


def _jsonable(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {k: _jsonable(v) for k, v in dataclasses.asdict(obj).items()}
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (np.integer, np.floating, np.bool_)):
        return obj.item()
    return obj


def reports_root() -> Path:
    """Where run folders go: ``$MEDBENCH_REPORTS``, else ``reports/`` of the checkout, else ./reports."""
    env = os.environ.get("MEDBENCH_REPORTS")
    if env:
        return Path(env)
    for parent in [Path.cwd(), *Path.cwd().parents]:
        if (parent / "pyproject.toml").is_file() and (parent / "medbench").is_dir():
            return parent / "reports"
    return Path.cwd() / "reports"


@dataclasses.dataclass
class Run:
    """One execution of a notebook: its folder, parameters, seeds and data hashes."""

    notebook: str
    params: dict[str, Any]
    seed: int
    run_dir: Path
    deterministic: dict[str, Any]
    started: _dt.datetime
    data: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def figures_dir(self) -> Path:
        d = self.run_dir / "figures"
        d.mkdir(parents=True, exist_ok=True)
        return d

    def scratch(self, name: str) -> Path:
        """A path for a new folder ``name`` in the run folder; a previous run's folder of that name is removed.

        For data a notebook builds (a DICOM tree, a de-identified copy) with the
        atomic writers, which refuse to replace an existing folder.
        """
        import shutil

        path = self.run_dir / name
        if path.exists():
            shutil.rmtree(path)
        return path

    def add_data(self, name: str, digest_or_path: str | os.PathLike[str]) -> str:
        """Record the data a run used: a digest, or a path that is hashed now."""
        value = os.fspath(digest_or_path)
        digest = hash_path(value) if Path(value).exists() else value
        self.data[name] = digest
        self.write_record()
        return digest

    def save_figure(self, fig: Any, name: str, dpi: int = 110) -> Path:
        """Save a matplotlib figure as ``figures/<name>.png`` (atomically)."""
        from medbench.io.atomic import atomic_path

        path = self.figures_dir / f"{name}.png"
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=dpi, bbox_inches="tight", metadata={"Software": None})
        return path

    def record(self, status: str = "running", metrics: Mapping[str, Any] | None = None) -> dict[str, Any]:
        now = _dt.datetime.now(_dt.timezone.utc)
        rec: dict[str, Any] = {
            "notebook": self.notebook,
            "status": status,
            "started": self.started.isoformat(timespec="seconds"),
            "updated": now.isoformat(timespec="seconds"),
            "duration_s": round((now - self.started).total_seconds(), 3),
            "git": git_state(),
            "versions": package_versions(),
            "device": device_info(),
            "seeds": {"seed": self.seed},
            "determinism": self.deterministic,
            "params": _jsonable(self.params),
            "data": dict(sorted(self.data.items())),
            "host": {"platform": platform.platform(), "python": sys.executable},
        }
        if metrics is not None:
            rec["metrics_file"] = "metrics.json"
        return rec

    def write_record(self, status: str = "running", metrics: Mapping[str, Any] | None = None) -> Path:
        path = self.run_dir / "run.json"
        write_text(path, json.dumps(self.record(status, metrics), indent=2, sort_keys=True) + "\n")
        return path

    def finish(self, metrics: Mapping[str, Any]) -> Path:
        """Write metrics.json (canonical) and the final run.json; return the metrics path."""
        path = write_text(self.run_dir / "metrics.json", metrics_json(metrics))
        self.write_record("completed", metrics)
        return path


def start_run(
    notebook: str,
    params: Any,
    *,
    output_dir: str | os.PathLike[str] | None = None,
    deterministic: bool = True,
) -> Run:
    """Seed everything, set deterministic mode and open the run folder.

    ``params`` is the validated schema instance (or a mapping) and must hold
    ``seed``. The folder is ``output_dir`` when given (``medbench run`` passes
    one), else ``reports/<notebook>/interactive`` for runs from JupyterLab.
    """
    values = _jsonable(params) if not isinstance(params, Mapping) else dict(params)
    seed = int(values.get("seed", 0))
    seed_everything(seed)
    det = set_deterministic(deterministic)
    out = Path(output_dir) if output_dir else reports_root() / notebook / "interactive"
    out.mkdir(parents=True, exist_ok=True)
    run = Run(notebook, values, seed, out, det, _dt.datetime.now(_dt.timezone.utc))
    run.write_record()
    return run
