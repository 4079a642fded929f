"""Figures of the inference benchmark (``notebooks/07_inference_benchmark.ipynb``, ``medbench bench inference``).

Each takes the benchmark table (one row per model and backend, columns as
written by :func:`medbench.bench.inference.benchmark_model`) and returns a
:class:`matplotlib.figure.Figure`. Rows that did not run are drawn as empty
slots labelled with their status, so a missing backend is visible.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from medbench.viz.figures import new_figure

_COLOURS = {"fp32": "tab:blue", "bf16": "tab:purple", "fp16": "tab:orange", "int8": "tab:red"}


def _models(table: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(table["model"]))


def _numeric(part: pd.DataFrame, column: str) -> np.ndarray:
    if column not in part:
        return np.full(len(part), np.nan)
    return pd.to_numeric(part[column], errors="coerce").to_numpy(dtype=float)


def latency_bars(table: pd.DataFrame) -> Figure:
    """Median network latency (ms, log scale) per backend with p5-p95 whiskers; one panel per model."""
    models = _models(table)
    fig = new_figure((11.0, 0.6 + 0.32 * max(len(table[table["model"] == m]) for m in models) * len(models)))
    axes = fig.subplots(len(models), 1, squeeze=False)[:, 0]
    for ax, model in zip(axes, models):
        part = table[table["model"] == model]
        med, lo, hi = _numeric(part, "median_ms"), _numeric(part, "p5_ms"), _numeric(part, "p95_ms")
        y = np.arange(len(part))
        ok = np.isfinite(med)
        colours = [_COLOURS.get(str(p), "0.5") for p in part["precision"]]
        ax.barh(y[ok], med[ok], color=[c for c, k in zip(colours, ok) if k], alpha=0.85,
                xerr=np.vstack([med[ok] - lo[ok], hi[ok] - med[ok]]), capsize=3, error_kw={"linewidth": 0.8})
        for yi, m, status in zip(y, med, part["status"]):
            if not np.isfinite(m):
                ax.text(0.01, yi, str(status).split(":")[0], transform=ax.get_yaxis_transform(), va="center",
                        fontsize=8, color="0.4")
        ax.set_yticks(y, [str(b) for b in part["backend"]], fontsize=8)
        ax.invert_yaxis()
        if ok.any():
            ax.set_xscale("log")
        ax.set_xlabel("network latency per call (ms, median with p5-p95)")
        ax.set_title(f"{model}", fontsize=10)
    handles = [ax.bar(0, 0, color=c, label=p) for p, c in _COLOURS.items()]
    axes[0].legend(handles=handles, fontsize=8, loc="lower right", title="precision", title_fontsize=8)
    return fig


def speedup_bars(table: pd.DataFrame, targets: Sequence[float] = (3.0,)) -> Figure:
    """Speedup over the same run's eager fp32 per backend (bars), marked where agreement failed."""
    models = _models(table)
    fig = new_figure((6.0 * len(models), 0.8 + 0.32 * max(len(table[table["model"] == m]) for m in models)))
    axes = fig.subplots(1, len(models), squeeze=False)[0]
    for ax, model in zip(axes, models):
        part = table[table["model"] == model]
        speed = _numeric(part, "speedup")
        y = np.arange(len(part))
        ok = np.isfinite(speed)
        failed = np.array([str(a) == "FAIL" for a in part.get("agreement", [""] * len(part))])
        colours = ["0.75" if f else _COLOURS.get(str(p), "0.5") for p, f in zip(part["precision"], failed)]
        bars = ax.barh(y[ok], speed[ok], color=[c for c, k in zip(colours, ok) if k],
                       hatch=None)
        labels = [f"{s:.2f}x" + (" (wrong)" if f else "") for s, f, k in zip(speed, failed, ok) if k]
        ax.bar_label(bars, labels=labels, padding=3, fontsize=7)
        ax.axvline(1.0, color="k", linewidth=0.8)
        for t in targets:
            ax.axvline(t, color="tab:green", linestyle="--", linewidth=0.8)
        ax.set_yticks(y, [str(b) for b in part["backend"]], fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("speedup over eager fp32 (same run)")
        ax.set_title(model, fontsize=10)
        ax.margins(x=0.25)
    return fig


def agreement_plot(table: pd.DataFrame, tolerances: dict[str, float] | None = None) -> Figure:
    """Speedup (x) against argmax Dice with eager fp32 (y, 1 - Dice on a log axis); tolerance lines per precision."""
    tolerances = tolerances or {"fp32": 0.999, "int8": 0.99}
    fig = new_figure((7.5, 4.5))
    ax = fig.add_subplot()
    markers = ["o", "s", "^", "D"]
    ran = table[table["status"] == "ran"]
    for n, model in enumerate(_models(ran)):
        part = ran[(ran["model"] == model) & (ran["agreement"] != "reference")]
        x = _numeric(part, "speedup")
        y = np.maximum(1.0 - _numeric(part, "dice_vs_eager"), 1e-6)
        for xi, yi, b, p in zip(x, y, part["backend"], part["precision"]):
            ax.scatter(xi, yi, color=_COLOURS.get(str(p), "0.5"), marker=markers[n % len(markers)], s=36)
            ax.annotate(f"{model}/{b}", (xi, yi), fontsize=6, xytext=(3, 3), textcoords="offset points")
    for p, tol in tolerances.items():
        ax.axhline(1.0 - tol, color=_COLOURS.get(p, "0.5"), linestyle="--", linewidth=0.8,
                   label=f"{p} tolerance: Dice >= {tol}")
    ax.axvline(1.0, color="k", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_ylim(5e-7, 1.0)
    ax.set_xlabel("speedup over eager fp32")
    ax.set_ylabel("1 - argmax Dice vs eager (lower is better; 1e-6 = identical)")
    ax.set_title("fast and right: bottom right; above a line = fails agreement", fontsize=10)
    ax.legend(fontsize=7, loc="upper left")
    return fig


def batch_sweep_plot(sweep: pd.DataFrame) -> Figure:
    """Network throughput (inputs per second) against batch size per model and backend."""
    fig = new_figure((6.0, 3.8))
    ax = fig.add_subplot()
    for (model, backend), part in sweep.groupby(["model", "backend"], sort=False):
        ax.plot(part["batch"], part["throughput_per_s"], marker="o", label=f"{model}/{backend}")
    ax.set_xlabel("batch size")
    ax.set_ylabel("inputs per second (network only)")
    ax.set_xticks(sorted(set(int(b) for b in sweep["batch"])) if len(sweep) else [])
    ax.legend(fontsize=7)
    return fig


__all__ = ["agreement_plot", "batch_sweep_plot", "latency_bars", "speedup_bars"]
