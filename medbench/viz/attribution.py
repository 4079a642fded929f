"""Figures for attribution maps: maps over the image per method, randomisation curves, the shortcut bars.

Arrays are channel-first images ``(C, i, j, k)`` and maps ``(i, j, k)`` on the
same grid (LPS index order, as the phantom stores them); axial slices are
drawn with i to the right and j downwards (the radiological convention:
patient left on the image right, anterior at the top). Each figure has a
numeric companion table in the notebook (nbval never compares pictures).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from medbench.viz.figures import new_figure


def best_slice(mask: np.ndarray) -> int:
    """The axial slice (k) with the most mask voxels (the middle slice for an empty mask)."""
    counts = np.asarray(mask).astype(bool).sum(axis=(0, 1))
    return int(np.argmax(counts)) if counts.any() else mask.shape[2] // 2


def _contour(ax: object, mask2d: np.ndarray, color: str) -> None:
    if mask2d.any():
        ax.contour(mask2d.T.astype(float), levels=[0.5], colors=color, linewidths=0.9)  # type: ignore[attr-defined]


def attribution_panels(
    image: np.ndarray,
    maps: Mapping[str, np.ndarray],
    cause: np.ndarray,
    cue: np.ndarray | None = None,
    *,
    k: int | None = None,
    channel_names: Sequence[str] = ("CT", "PET"),
    title: str = "",
) -> Figure:
    """Input channels, then each method's relevance (hot colours) over the first channel on one axial slice.

    The lesion (cause) is outlined in cyan and the cue in magenta; maps are
    scaled per method to their own maximum on the whole volume.
    """
    k = best_slice(cause) if k is None else k
    n = image.shape[0] + len(maps)
    cols = min(n, 5)
    rows = int(np.ceil(n / cols))
    fig = new_figure((2.3 * cols, 2.4 * rows))
    axes = np.atleast_1d(fig.subplots(rows, cols)).reshape(-1)
    for c in range(image.shape[0]):
        axes[c].imshow(image[c, :, :, k].T, cmap="gray", vmin=0, vmax=1)
        axes[c].set_title(channel_names[c] if c < len(channel_names) else f"channel {c}", fontsize=9)
    for n_m, (name, rel) in enumerate(maps.items()):
        ax = axes[image.shape[0] + n_m]
        ax.imshow(image[0, :, :, k].T, cmap="gray", vmin=0, vmax=1)
        top = float(np.max(rel)) or 1.0
        shown = np.ma.masked_less_equal(rel[:, :, k].T / top, 0.02)
        ax.imshow(shown, cmap="hot", vmin=0, vmax=1, alpha=0.75)
        ax.set_title(name.replace("_", " "), fontsize=9)
    for c in range(n):
        _contour(axes[c], np.asarray(cause)[:, :, k], "cyan")
        if cue is not None:
            _contour(axes[c], np.asarray(cue)[:, :, k], "magenta")
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes[n:]:
        ax.set_visible(False)
    if title:
        fig.suptitle(f"{title} (slice k={k}; cyan: lesion, magenta: cue)", fontsize=10)
    return fig


def randomisation_curves(cascading: pd.DataFrame, threshold: float, label: pd.DataFrame | None = None) -> Figure:
    """Spearman and SSIM to the original map vs the fraction of layers randomised, one line per method.

    The dashed line is the pass threshold; crosses at fraction 1.05 are the label-randomisation results.
    """
    fig = new_figure((10.0, 3.4))
    axes = fig.subplots(1, 2)
    for (name, part), colour in zip(cascading.groupby("method", sort=False), _colours(cascading["method"].nunique())):
        for ax, col in zip(axes, ("spearman", "ssim")):
            ax.plot(part["fraction"], part[col], marker="o", markersize=3, color=colour, label=name)
            if label is not None and len(label) and name in set(label["method"]):
                ax.plot([1.05], [float(label.loc[label["method"] == name, col].iloc[0])], marker="x",
                        color=colour, linestyle="none")
    axes[0].axhline(threshold, color="k", linestyle="--", linewidth=0.8)
    axes[0].axhline(-threshold, color="k", linestyle="--", linewidth=0.8)
    axes[0].set(xlabel="fraction of layers randomised (output first)", ylabel="Spearman rho to original",
                title="cascading randomisation")
    axes[1].set(xlabel="fraction of layers randomised (output first)", ylabel="SSIM to original", title="SSIM")
    axes[0].legend(fontsize="x-small")
    return fig


def shortcut_bars(table: pd.DataFrame) -> Figure:
    """Mean relevance mass on the cue and on the lesion per method, for each model (rows of ``table``)."""
    models = list(dict.fromkeys(table.index.get_level_values(0)))
    fig = new_figure((4.8 * len(models), 3.2))
    axes = np.atleast_1d(fig.subplots(1, len(models))).reshape(-1)
    for ax, model in zip(axes, models):
        part = table.loc[model]
        idx = np.arange(len(part))
        ax.bar(idx - 0.2, part["lesion_mass"], 0.4, label="lesion", color="tab:cyan")
        ax.bar(idx + 0.2, part["cue_mass"], 0.4, label="cue", color="tab:pink")
        ax.set_xticks(idx, [str(m).replace("_", "\n") for m in part.index], fontsize=7)
        ax.set(ylabel="relevance mass", title=f"{model} model", ylim=(0, 1))
        ax.legend(fontsize="small")
    return fig


def _colours(n: int) -> list[tuple[float, float, float, float]]:
    import matplotlib

    cmap = matplotlib.colormaps["tab10"]
    return [cmap(i % 10) for i in range(n)]
