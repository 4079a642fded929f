"""A small timing harness shared by the benchmarks (DESIGN §10).

Each benchmark measures its baseline in the same run, reports ratios, and
records the environment: :func:`time_call` times a callable (median and
minimum of ``repeat`` runs after ``warmup`` runs, :func:`time.perf_counter`),
:func:`environment` is the run records' environment fingerprint, and
:func:`write_results` writes ``results.csv``, ``results.json`` (rows +
environment) and ``results.png`` (bar chart of the ratios) atomically under
``reports/bench/<name>/`` or a given folder.
"""

from __future__ import annotations

import io
import json
import os
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from medbench import repro
from medbench.atomic import write_bytes, write_text
from medbench.errors import ConfigError
from medbench.report.run import reports_root
from medbench.viz.figures import new_figure


def environment() -> dict[str, Any]:
    """The run-record environment fingerprint (:func:`medbench.repro.environment`) plus a timestamp."""
    return {**repro.environment(), "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds")}


@dataclass(frozen=True)
class Timing:
    """Wall-clock seconds of repeated calls."""

    median_s: float
    min_s: float
    times_s: tuple[float, ...]

    @property
    def repeat(self) -> int:
        return len(self.times_s)


def time_call(fn: Callable[[], Any], *, repeat: int = 5, warmup: int = 1) -> Timing:
    """Time ``fn()``: ``warmup`` untimed calls, then ``repeat`` timed ones (perf_counter)."""
    if repeat < 1 or warmup < 0:
        raise ConfigError(f"time_call needs repeat >= 1 and warmup >= 0, got repeat={repeat}, warmup={warmup}")
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return Timing(median_s=statistics.median(times), min_s=min(times), times_s=tuple(times))


def default_dir(name: str) -> Path:
    """``reports/bench/<name>`` of this checkout (or ``$MEDBENCH_REPORTS/bench/<name>``)."""
    return reports_root() / "bench" / name


def ratio_figure(df: pd.DataFrame, *, label: str, ratio: str, title: str) -> Figure:
    """Horizontal bars of ``df[ratio]`` per ``df[label]``, with a line at 1 (the baseline)."""
    fig = new_figure((9.0, 0.8 + 0.4 * max(len(df), 1)))
    ax = fig.add_subplot()
    labels = [str(v) for v in df[label]]
    values = pd.to_numeric(df[ratio], errors="coerce").fillna(0.0).to_numpy()
    bars = ax.barh(labels, values, color=["0.6" if v == 1.0 else "tab:blue" for v in values])
    ax.bar_label(bars, labels=[f"{v:.2f}x" for v in values], padding=3, fontsize=8)
    ax.axvline(1.0, color="k", linewidth=0.8)
    ax.invert_yaxis()
    ax.set_xlabel(f"{ratio} (baseline = 1)")
    ax.set_title(title, fontsize=10)
    ax.margins(x=0.15)
    return fig


def write_results(
    name: str,
    rows: Sequence[Mapping[str, Any]],
    out_dir: str | os.PathLike[str] | None = None,
    *,
    label: str = "method",
    ratio: str = "ratio",
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``results.csv``, ``results.json`` and ``results.png`` for benchmark ``name``; return the folder.

    ``rows`` are the table rows (one per measured method); ``label`` and
    ``ratio`` name the columns the bar chart uses. ``results.json`` holds the
    benchmark name, :func:`environment`, ``extra`` (parameters such as sizes)
    and the rows. Each file is written atomically.
    """
    df = pd.DataFrame(list(rows))
    for column in (label, ratio):
        if column not in df.columns:
            raise ConfigError(f"benchmark {name!r} rows have no {column!r} column (columns: {list(df.columns)})")
    out = Path(out_dir) if out_dir is not None else default_dir(name)
    payload = {
        "benchmark": name,
        "environment": environment(),
        "parameters": dict(extra or {}),
        "rows": json.loads(df.to_json(orient="records")),
    }
    png = io.BytesIO()
    ratio_figure(df, label=label, ratio=ratio, title=f"benchmark {name}").savefig(png, format="png", dpi=100)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "results.csv", df.to_csv(index=False))
    write_text(out / "results.json", json.dumps(payload, indent=2) + "\n")
    write_bytes(out / "results.png", png.getvalue())
    return out
