"""`Run`: one execution of a notebook — its folder, run.json, metrics.json, artifacts and checkpoints.

A notebook starts a run right after validating its parameters::

    cfg = tour.Params.from_namespace(globals())
    run = report.start_run(cfg)               # seeds, deterministic mode, run.json
    ...
    run.add_data("phantom", cohort_hash)       # hashes of the data used
    run.save_figure(fig, "overlay")            # figures/overlay.png (atomic)
    run.save_checkpoint(model.state_dict(), "best")   # sha256 recorded in run.json
    run.finish(metrics)                        # metrics.json (byte-stable) + run.json

This module is the **only writer of run.json**: the notebook writes it through
:class:`Run`, and ``medbench run`` adds the final status through
:func:`finalise` (same code), never by patching the file.

Where a run goes: ``medbench run`` assembles each run in a temporary folder
and tells the kernel through the environment (``MEDBENCH_RUN_DIR``,
``MEDBENCH_RUN_PROFILE``, ``MEDBENCH_RUN_OVERRIDES``); an interactive session
writes into ``reports/<notebook>/interactive``. Nothing in run.json names the
folder itself, and every path in it is relative to the run folder, so the
record stays right after the folder is renamed into place.

``metrics.json`` holds only the metrics (sorted keys, fixed rounding), so two
runs with the same seed write byte-identical files; everything volatile (time,
host, durations) lives in ``run.json``.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from medbench import repro
from medbench.atomic import atomic_path, write_text
from medbench.config import Params, diff
from medbench.errors import DataError
from medbench.hashing import hash_path, sha256_file

#: Decimal places kept for floats in metrics.json (tight enough for pytest
#: tolerances, loose enough to be identical across reruns on one platform).
METRIC_DECIMALS = 6

#: Environment variables through which ``medbench run`` places a notebook's run.
ENV_RUN_DIR = "MEDBENCH_RUN_DIR"
ENV_PROFILE = "MEDBENCH_RUN_PROFILE"
ENV_OVERRIDES = "MEDBENCH_RUN_OVERRIDES"
#: Set for kernels that run headless (``medbench run`` / ``medbench notebooks``): no progress bars.
ENV_HEADLESS = "MEDBENCH_HEADLESS"

RUN_RECORD = "run.json"
METRICS_FILE = "metrics.json"


def reports_root() -> Path:
    """Where run folders go: ``$MEDBENCH_REPORTS``, else ``reports/`` of the checkout, else ./reports."""
    env = os.environ.get("MEDBENCH_REPORTS")
    if env:
        return Path(env)
    for parent in [Path.cwd(), *Path.cwd().parents]:
        if (parent / "pyproject.toml").is_file() and (parent / "medbench").is_dir():
            return parent / "reports"
    return Path.cwd() / "reports"


# -- canonical metrics ------------------------------------------------------------------
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


def jsonable(obj: Any) -> Any:
    """Plain JSON types for dataclasses, pydantic models, paths and numpy scalars."""
    if isinstance(obj, Params) or hasattr(obj, "model_dump"):
        return jsonable(obj.model_dump(mode="json"))
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {k: jsonable(v) for k, v in dataclasses.asdict(obj).items()}
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (np.integer, np.floating, np.bool_)):
        return obj.item()
    return obj


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def _write_record(run_dir: Path, record: Mapping[str, Any]) -> Path:
    """The single place run.json is written (atomically, sorted keys)."""
    return write_text(Path(run_dir) / RUN_RECORD, json.dumps(jsonable(record), indent=2, sort_keys=True) + "\n")


def read_record(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The parsed run.json of a run folder ({} when absent); an unreadable one is a DataError."""
    path = Path(run_dir) / RUN_RECORD
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"run record {path} is unreadable: {exc}") from None
    return data if isinstance(data, dict) else {}


@dataclasses.dataclass
class Run:
    """One execution of a notebook: its folder, parameters, seeds, data hashes, artifacts and checkpoints."""

    notebook: str
    params: dict[str, Any]
    seed: int
    run_dir: Path
    deterministic: dict[str, Any]
    started: _dt.datetime
    profile: str | None = None
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
    data: dict[str, str] = dataclasses.field(default_factory=dict)
    artifacts: dict[str, str] = dataclasses.field(default_factory=dict)
    checkpoints: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    threads: int | None = None

    # -- folders ------------------------------------------------------------------
    @property
    def figures_dir(self) -> Path:
        d = self.run_dir / "figures"
        d.mkdir(parents=True, exist_ok=True)
        return d

    def path(self, name: str) -> Path:
        """A path inside the run folder (parents created)."""
        p = self.run_dir / name
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def scratch(self, name: str) -> Path:
        """A path for a new folder ``name`` in the run folder; a previous run's folder of that name is removed.

        For data a notebook builds (a DICOM tree, a de-identified copy) with the
        atomic writers, which refuse to replace an existing folder.
        """
        path = self.run_dir / name
        if path.exists():
            shutil.rmtree(path)
        return path

    def _rel(self, path: str | os.PathLike[str]) -> str:
        p = Path(path)
        try:
            return p.resolve().relative_to(self.run_dir.resolve()).as_posix()
        except ValueError:
            return os.fspath(p)

    # -- recording ------------------------------------------------------------------
    def add_data(self, name: str, digest_or_path: str | os.PathLike[str]) -> str:
        """Record the data a run used: a digest, or a path that is hashed now."""
        value = os.fspath(digest_or_path)
        digest = hash_path(value) if Path(value).exists() else value
        self.data[name] = digest
        self.write_record()
        return digest

    def add_artifact(self, name: str, path: str | os.PathLike[str]) -> Path:
        """Record a file or folder the run produced (stored relative to the run folder)."""
        self.artifacts[name] = self._rel(path)
        self.write_record()
        return Path(path)

    def save_figure(self, fig: Any, name: str, dpi: int = 110) -> Path:
        """Save a matplotlib figure as ``figures/<name>.png`` (atomically) and record it."""
        path = self.figures_dir / f"{name}.png"
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=dpi, bbox_inches="tight", metadata={"Software": None})
        self.artifacts[f"figure:{name}"] = self._rel(path)
        self.write_record()
        return path

    def save_artifact(self, name: str, write: Callable[[Path], Any], suffix: str = "") -> Path:
        """Write an artifact atomically: ``write(tmp_path)`` fills a temporary file moved to ``name``."""
        path = self.path(name)
        with atomic_path(path, suffix=suffix or "".join(Path(name).suffixes)) as tmp:
            write(tmp)
        self.artifacts[name] = self._rel(path)
        self.write_record()
        return path

    # -- checkpoints ------------------------------------------------------------------
    def register_checkpoint(self, name: str, path: str | os.PathLike[str], **info: Any) -> str:
        """Record a checkpoint file with its sha256; returns the digest."""
        digest = sha256_file(path)
        self.checkpoints[name] = {"file": self._rel(path), "sha256": digest, **jsonable(info)}
        self.write_record()
        return digest

    def save_checkpoint(self, state: Mapping[str, Any], name: str, **info: Any) -> Path:
        """``torch.save`` a state dict as ``checkpoints/<name>.pt`` (atomically) and record its sha256."""
        import torch

        path = self.path(f"checkpoints/{name}.pt")
        with atomic_path(path, suffix=".pt") as tmp:
            torch.save(dict(state), tmp)
        self.register_checkpoint(name, path, **info)
        return path

    def load_checkpoint(self, name: str) -> dict[str, Any]:
        """Load a recorded checkpoint with ``weights_only=True`` after checking its sha256."""
        from medbench.errors import DataError

        if name not in self.checkpoints:
            raise DataError(f"run {self.run_dir}: no checkpoint {name!r}; recorded: {sorted(self.checkpoints)}")
        entry = self.checkpoints[name]
        path = self.run_dir / entry["file"]
        return load_checkpoint(path, expected_sha256=entry["sha256"])

    # -- run.json ------------------------------------------------------------------------
    def record(self, status: str = "running", metrics: Mapping[str, Any] | None = None) -> dict[str, Any]:
        now = _now()
        env = repro.environment()
        rec: dict[str, Any] = {
            "notebook": self.notebook,
            "status": status,
            "profile": self.profile,
            "overrides": self.overrides,
            "started": self.started.isoformat(timespec="seconds"),
            "updated": now.isoformat(timespec="seconds"),
            "duration_s": round((now - self.started).total_seconds(), 3),
            "seeds": {"seed": self.seed},
            "threads": self.threads,
            "determinism": self.deterministic,
            "params": self.params,
            "data": dict(sorted(self.data.items())),
            "artifacts": dict(sorted(self.artifacts.items())),
            "checkpoints": dict(sorted(self.checkpoints.items())),
            **env,
        }
        if metrics is not None:
            rec["metrics_file"] = METRICS_FILE
        return rec

    def write_record(self, status: str = "running", metrics: Mapping[str, Any] | None = None) -> Path:
        return _write_record(self.run_dir, self.record(status, metrics))

    def finish(self, metrics: Mapping[str, Any]) -> Path:
        """Write metrics.json (canonical) and the final run.json; return the metrics path."""
        path = write_text(self.run_dir / METRICS_FILE, metrics_json(metrics))
        self.write_record("completed", metrics)
        return path


def load_checkpoint(path: str | os.PathLike[str], expected_sha256: str | None = None) -> dict[str, Any]:
    """``torch.load(path, weights_only=True)``; with ``expected_sha256`` the file is verified first."""
    import torch

    p = Path(path)
    if not p.is_file():
        raise DataError(f"checkpoint {p} does not exist")
    if expected_sha256 is not None:
        digest = sha256_file(p)
        if digest != expected_sha256:
            raise DataError(f"checkpoint {p}: sha256 {digest[:12]}… does not match the record {expected_sha256[:12]}…")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError, ...
        raise DataError(f"checkpoint {p} cannot be loaded with weights_only=True: {exc}") from None
    if not isinstance(state, dict):
        raise DataError(f"checkpoint {p} holds a {type(state).__name__}, not a state dict")
    return state


def start_run(
    params: Params,
    *,
    notebook: str | None = None,
    deterministic: bool = True,
    threads: int | None = None,
) -> Run:
    """Seed everything, set deterministic mode (and the torch thread count) and open the run folder.

    The folder is ``$MEDBENCH_RUN_DIR`` when ``medbench run`` executes the
    notebook, else ``reports/<notebook>/interactive``. ``threads`` pins
    ``torch.set_num_threads`` (training notebooks: float reductions depend on
    it) and is recorded.
    """
    notebook = notebook or type(params).notebook
    if not notebook:
        raise DataError("start_run: the parameters' schema names no notebook; pass notebook=...")
    seed = int(params.seed)
    repro.seed_everything(seed)
    det = repro.set_deterministic(deterministic)
    if threads is not None:
        import torch

        torch.set_num_threads(int(threads))
    env_dir = os.environ.get(ENV_RUN_DIR)
    out = Path(env_dir) if env_dir else reports_root() / notebook / "interactive"
    out.mkdir(parents=True, exist_ok=True)
    profile = os.environ.get(ENV_PROFILE) or None
    if os.environ.get(ENV_OVERRIDES):
        overrides = json.loads(os.environ[ENV_OVERRIDES])
    else:
        overrides = diff(params, type(params)())
    run = Run(notebook, jsonable(params), seed, out, det, _now(), profile=profile, overrides=overrides,
              threads=threads)
    run.write_record()
    return run


def finalise(
    run_dir: Path,
    *,
    notebook: str,
    status: str,
    error: str = "",
    duration_s: float | None = None,
    profile: str | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Path:
    """Add the outcome of a headless execution to a run folder's run.json (created if the notebook never wrote it)."""
    rec = read_record(run_dir) if (Path(run_dir) / RUN_RECORD).exists() else {}
    if not rec:
        rec = {"notebook": notebook, **repro.environment()}
    rec.update(status=status, error=error, profile=profile, overrides=dict(overrides or rec.get("overrides") or {}))
    if duration_s is not None:
        rec["wall_time_s"] = round(float(duration_s), 2)
    return _write_record(run_dir, rec)
