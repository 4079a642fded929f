"""Figures of the fusion notebook: one case in every modality, Dice over modality subsets, misregistration.

Each returns a matplotlib ``Figure``; the notebook prints the table each one draws (nbval compares numbers,
never pictures).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from medbench.errors import ConfigError
from medbench.viz.figures import new_figure

#: Contour colour per lesion class name in :func:`modality_panels`.
LESION_COLOURS = {"lesion_malignant": "red", "lesion_cyst": "cyan"}


def modality_panels(image: np.ndarray, truth: np.ndarray, modalities: Sequence[str], class_names: Mapping[int, str],
                    *, axis: int = 2, slice_index: int | None = None) -> Figure:
    """Every input channel of one case (``image`` ``(C, i, j, k)``, as the networks see it) on the slice with the
    most lesion voxels, each lesion class outlined in its colour (:data:`LESION_COLOURS`)."""
    img, lab = np.asarray(image), np.asarray(truth)
    if img.ndim != 4 or lab.shape != img.shape[1:] or len(modalities) != img.shape[0]:
        raise ConfigError(f"modality_panels needs image (C, i, j, k) with C = {len(modalities)} and a label of the "
                          f"same grid; got {img.shape} and {lab.shape}")
    ids = {name: k for k, name in class_names.items() if name in LESION_COLOURS}
    lesions = np.isin(lab, list(ids.values()))
    if slice_index is None:
        counts = lesions.sum(axis=tuple(a for a in range(3) if a != axis))
        slice_index = int(np.argmax(counts)) if counts.any() else lab.shape[axis] // 2

    def cut(a: np.ndarray) -> np.ndarray:
        return np.rot90(np.take(a, slice_index, axis=axis))  # first array axis (RAS: left-right) across

    fig = new_figure((2.7 * len(modalities) + 0.4, 3.0))
    axes = np.atleast_1d(fig.subplots(1, len(modalities)))
    for ax, name, channel in zip(axes, modalities, img):
        ax.imshow(cut(channel), cmap="gray", vmin=float(np.percentile(channel, 1)),
                  vmax=float(np.percentile(channel, 99.5)))
        for cls, k in ids.items():
            mask = cut(lab == k)
            if mask.any():
                ax.contour(mask.astype(float), levels=[0.5], colors=LESION_COLOURS[cls], linewidths=0.8)
        ax.set_title(name.upper(), fontsize="small")
        ax.set_axis_off()
    fig.suptitle(f"slice {slice_index} · outlines: " + ", ".join(
        f"{c.removeprefix('lesion_')} ({colour})" for c, colour in LESION_COLOURS.items() if c in ids),
        fontsize="small")
    return fig


def subset_heatmap(missing: pd.DataFrame, column: str = "dice_mean") -> Figure:
    """Dice (``column``) of every fusion row (lines) with every modality subset present (columns)."""
    if column not in missing.columns:
        raise ConfigError(f"{column!r} is not a column of the missing-modality table ({list(missing.columns)})")
    grid = missing[column].unstack("subset")
    order = list(dict.fromkeys(missing.index.get_level_values("subset")))
    grid = grid[order]
    fig = new_figure((0.62 * len(order) + 2.6, 0.5 * len(grid) + 1.6))
    ax = fig.subplots()
    shown = ax.imshow(grid.to_numpy(float), cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(order)), order, rotation=60, ha="right", fontsize="x-small")
    ax.set_yticks(range(len(grid)), list(grid.index), fontsize="small")
    for (r, c), v in np.ndenumerate(grid.to_numpy(float)):
        if np.isfinite(v):
            ax.text(c, r, f"{v:.2f}", ha="center", va="center", fontsize="xx-small",
                    color="black" if v > 0.6 else "white")
    ax.set_title(f"{column.replace('_', ' ')} with only these modalities present", fontsize="small")
    fig.colorbar(shown, ax=ax, fraction=0.03, pad=0.02)
    return fig


def misregistration_curves(table: pd.DataFrame, columns: Sequence[str] = ("dice_organs", "dice_lesion_malignant"),
                           tre_mm: float | None = None) -> Figure:
    """Dice against the translation (mm) of the shifted channels, one line per row, one panel per column;
    ``tre_mm`` (e.g. a registration's measured TRE) is drawn as a vertical line."""
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ConfigError(f"{missing} are not columns of the misregistration table ({list(table.columns)})")
    fig = new_figure((4.6 * len(columns), 3.3))
    axes = np.atleast_1d(fig.subplots(1, len(columns)))
    for ax, col in zip(axes, columns):
        for row in dict.fromkeys(table.index.get_level_values("row")):
            part = table.xs(row, level="row")[col]
            ax.plot(part.index.to_numpy(float), part.to_numpy(float), marker="o", markersize=3, label=row)
        if tre_mm is not None:
            ax.axvline(tre_mm, color="grey", linestyle="--", linewidth=0.8)
        ax.set(xlabel="shift of the other modalities against the CT (mm)", ylabel=col.replace("_", " "),
               title=col.removeprefix("dice_").replace("_", " "))
    axes[-1].legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.02, 1.0))
    return fig


def synthesis_panels(example: Mapping[str, np.ndarray], class_names: Mapping[int, str], *, axis: int = 2) -> Figure:
    """True and synthetic image of one case (``example``: ``true``, ``synthetic``, ``truth``) and their
    difference, on the slice with the most malignant-lesion voxels (outlined)."""
    true, fake, truth = (np.asarray(example[k]) for k in ("true", "synthetic", "truth"))
    ids = {name: k for k, name in class_names.items()}
    mal = truth == ids.get("lesion_malignant", -1)
    counts = mal.sum(axis=tuple(a for a in range(3) if a != axis))
    index = int(np.argmax(counts)) if counts.any() else truth.shape[axis] // 2

    def cut(a: np.ndarray) -> np.ndarray:
        return np.rot90(np.take(a, index, axis=axis))

    vmax = float(np.percentile(true, 99.5)) or 1.0
    fig = new_figure((9.6, 3.2))
    axes = fig.subplots(1, 3)
    for ax, img, title in zip(axes[:2], (true, fake), ("true", "synthetic")):
        ax.imshow(cut(img), cmap="gray_r", vmin=0.0, vmax=vmax)
        if cut(mal).any():
            ax.contour(cut(mal).astype(float), levels=[0.5], colors=LESION_COLOURS["lesion_malignant"], linewidths=0.8)
        ax.set_title(title, fontsize="small")
        ax.set_axis_off()
    diff = cut(fake - true)
    lim = float(np.abs(diff).max()) or 1.0
    shown = axes[2].imshow(diff, cmap="RdBu_r", vmin=-lim, vmax=lim)
    axes[2].set_title("synthetic - true", fontsize="small")
    axes[2].set_axis_off()
    fig.colorbar(shown, ax=axes[2], fraction=0.046, pad=0.02)
    fig.suptitle(f"slice {index}; malignant lesions outlined", fontsize="small")
    return fig
