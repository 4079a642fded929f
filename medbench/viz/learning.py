"""Figures for learned models: training curves, predictions against truth, uncertainty, calibration.

Each function returns a matplotlib ``Figure`` and has a numeric companion
in the notebooks (the history table, the per-case metrics, the reliability
table), because nbval never compares pictures.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from medbench.errors import ConfigError
from medbench.image.volume import Volume
from medbench.viz.figures import draw_slice, label_style, new_figure
from medbench.viz.slicing import (
    AXIS_NAMES,
    display_labels,
    display_slice,
    display_volume,
    slice_aspect,
    slice_title,
    window_for,
)


def training_curves(histories: Mapping[str, pd.DataFrame], metric: str = "val_dice_mean") -> Figure:
    """Training loss and the validation metric per epoch, one line per model."""
    fig = new_figure((10.0, 3.4))
    ax_loss, ax_val = fig.subplots(1, 2)
    for name, h in histories.items():
        if "loss" in h:
            ax_loss.plot(h["epoch"] + 1, h["loss"], label=name)
        if metric in h:
            v = h.dropna(subset=[metric])
            ax_val.plot(v["epoch"] + 1, v[metric], marker="o", markersize=3, label=name)
    ax_loss.set(xlabel="epoch", ylabel="training loss", title="loss")
    ax_val.set(xlabel="epoch", ylabel=metric.replace("_", " "), title="validation")
    ax_val.legend(fontsize="small")
    return fig


def _slice_with_most(labels: np.ndarray, axis: int) -> int:
    counts = (labels > 0).sum(axis=tuple(a for a in range(3) if a != axis))
    return int(np.argmax(counts)) if counts.any() else labels.shape[axis] // 2


def prediction_panels(
    image: Volume,
    truth: Volume,
    predictions: Mapping[str, Volume],
    label_names: Mapping[int, str],
    *,
    axis: int = 2,
    slice_index: int | None = None,
    window: str | None = "soft_tissue",
) -> Figure:
    """Truth and each prediction on one slice, with the wrong voxels outlined (error = red)."""
    disp = display_volume(image)
    truth_d = display_labels(truth, image)
    if truth_d is None:
        raise ConfigError("prediction_panels needs a truth label map")
    index = _slice_with_most(truth_d, axis) if slice_index is None else slice_index
    center, width = window_for(disp, window)
    raw = display_slice(disp.array, axis, index)
    style = label_style(truth_d, dict(label_names))
    panels = [("truth", truth_d), *((name, display_labels(p, image)) for name, p in predictions.items())]
    fig = new_figure((2.6 * len(panels) + 1.4, 3.2))
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    for ax, (name, lab) in zip(axes, panels):
        assert lab is not None
        lab2d = display_slice(lab, axis, index)
        draw_slice(ax, raw, center, width, aspect=slice_aspect(disp, axis), labels=lab2d, style=style, alpha=0.45)
        if name != "truth":
            wrong = lab2d != display_slice(truth_d, axis, index)
            ax.contour(wrong.astype(float), levels=[0.5], colors="red", linewidths=0.6)
            ax.set_title(f"{name}\n{int(wrong.sum())} wrong voxels", fontsize="small")
        else:
            ax.set_title(f"truth · {AXIS_NAMES[axis]} {slice_title(disp, axis, index)}", fontsize="small")
    if style is not None:
        axes[-1].legend(handles=style.handles(), loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="x-small")
    return fig


def uncertainty_panels(image: Volume, entropy: Volume, error: Volume, *, axis: int = 2,
                       slice_index: int | None = None, window: str | None = "soft_tissue") -> Figure:
    """The image, the predictive entropy map and the error map on one slice."""
    disp = display_volume(image)
    ent = display_volume(entropy).array
    err = display_labels(error, image)
    assert err is not None
    index = _slice_with_most(err, axis) if slice_index is None else slice_index
    center, width = window_for(disp, window)
    fig = new_figure((9.5, 3.2))
    ax_img, ax_ent, ax_err = fig.subplots(1, 3)
    aspect = slice_aspect(disp, axis)
    draw_slice(ax_img, display_slice(disp.array, axis, index), center, width, aspect=aspect)
    ax_img.set_title(f"image · {AXIS_NAMES[axis]} {slice_title(disp, axis, index)}", fontsize="small")
    shown = ax_ent.imshow(display_slice(ent, axis, index), cmap="magma", aspect=aspect, origin="upper")
    ax_ent.set_title("predictive entropy (nats)", fontsize="small")
    ax_ent.set_axis_off()
    fig.colorbar(shown, ax=ax_ent, fraction=0.046, pad=0.02)
    ax_err.imshow(display_slice(err, axis, index), cmap="Reds", vmin=0, vmax=1, aspect=aspect, origin="upper")
    ax_err.set_title("errors", fontsize="small")
    ax_err.set_axis_off()
    return fig


def reliability_diagram(table: pd.DataFrame, ece: float | None = None) -> Figure:
    """Accuracy against confidence per bin (the diagonal is perfect calibration), bin counts below."""
    used = table[table["count"] > 0]
    fig = new_figure((4.6, 4.4))
    ax, ax_n = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    centres = (used["low"] + used["high"]) / 2
    widths = used["high"] - used["low"]
    ax.bar(centres, used["accuracy"], width=widths, edgecolor="k", linewidth=0.4, alpha=0.7, label="accuracy")
    ax.plot([0, 1], [0, 1], "k--", linewidth=0.8, label="perfect calibration")
    ax.plot(used["confidence"], used["accuracy"], "o", color="C3", markersize=3, label="(confidence, accuracy)")
    ax.set(ylabel="accuracy", xlim=(0, 1), ylim=(0, 1))
    ax.set_title("reliability" + (f" · ECE {ece:.3f}" if ece is not None else ""), fontsize="medium")
    ax.legend(fontsize="x-small", loc="upper left")
    ax_n.bar(centres, used["count"], width=widths, color="0.5")
    ax_n.set(xlabel="confidence", ylabel="voxels")
    ax_n.set_yscale("log")
    return fig
