"""Figures for restoration: degradations side by side, method panels with zooms and difference maps, NPS curves.

Every function takes plain arrays (HU for CT) and returns a matplotlib
``Figure``; the notebook shows a numeric companion (the dose table, the
results table, the NPS table) because nbval never compares pictures.
Display conventions: CT in the soft-tissue window (W 400 / L 40), difference
maps ``output - reference`` in a symmetric ``+-diff_hu`` range (blue = too
dark, red = too bright).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from medbench.viz.figures import new_figure

SOFT_TISSUE = (40.0, 400.0)


def _show(ax: object, img: np.ndarray, title: str, vmin: float, vmax: float, cmap: str = "gray") -> object:
    im = ax.imshow(np.asarray(img).T, cmap=cmap, vmin=vmin, vmax=vmax, origin="lower",  # type: ignore[attr-defined]
                   interpolation="nearest")
    ax.set_title(title, fontsize="small")  # type: ignore[attr-defined]
    ax.set_axis_off()  # type: ignore[attr-defined]
    return im


def image_row(images: Mapping[str, np.ndarray], *, window: tuple[float, float] | None = SOFT_TISSUE,
              size: float = 2.4) -> Figure:
    """One panel per image, side by side; CT in ``window`` (centre, width), MR (``window=None``) by percentiles."""
    fig = new_figure((size * len(images), size + 0.3))
    axes = np.atleast_1d(fig.subplots(1, len(images)))
    for ax, (name, img) in zip(axes, images.items()):
        if window is None:
            lo, hi = 0.0, float(np.percentile(next(iter(images.values())), 99.5)) or 1.0
        else:
            lo, hi = window[0] - window[1] / 2, window[0] + window[1] / 2
        _show(ax, img, name, lo, hi)
    return fig


def nps_curves(nps: pd.DataFrame, *, title: str = "noise power spectrum") -> Figure:
    """Radial NPS (HU^2 mm^2) against spatial frequency (mm^-1), one line per column after ``frequency_mm``."""
    fig = new_figure((5.0, 3.4))
    ax = fig.subplots()
    f = nps["frequency_mm"].to_numpy()
    for col in nps.columns:
        if col != "frequency_mm":
            ax.plot(f[1:], nps[col].to_numpy()[1:], label=str(col), marker="o", markersize=2)
    ax.set(xlabel="spatial frequency (mm$^{-1}$)", ylabel="NPS (HU$^2$ mm$^2$)", title=title, yscale="log")
    ax.legend(fontsize="x-small")
    return fig


def comparison_panels(
    reference: np.ndarray,
    outputs: Mapping[str, np.ndarray],
    *,
    zoom: tuple[slice, slice] | None = None,
    lesions: np.ndarray | None = None,
    diff_hu: float = 100.0,
    methods: Sequence[str] | None = None,
) -> Figure:
    """Rows: each method's slice, its zoom (``zoom`` = index slices) and ``output - reference``; first column = truth.

    ``lesions`` (a label slice) is outlined in the zoom panels, so an erased
    or invented lesion is visible against where the planted ones are.
    """
    names = list(methods or outputs)
    cols = 1 + len(names)
    fig = new_figure((2.0 * cols, 6.4))
    axes = fig.subplots(3, cols)
    lo, hi = SOFT_TISSUE[0] - SOFT_TISSUE[1] / 2, SOFT_TISSUE[0] + SOFT_TISSUE[1] / 2
    z = zoom or (slice(None), slice(None))
    panels = {"noise-free": reference, **{n: outputs[n] for n in names}}
    for c, (name, img) in enumerate(panels.items()):
        _show(axes[0, c], img, name, lo, hi)
        _show(axes[1, c], img[z], "zoom", lo, hi)
        if lesions is not None and np.any(lesions[z]):
            axes[1, c].contour(np.asarray(lesions[z] > 0).T.astype(float), levels=[0.5], colors="yellow",
                               linewidths=0.6, origin="lower")
        if c == 0:
            axes[2, c].set_axis_off()
            axes[2, c].set_title("difference:\noutput - truth", fontsize="small")
        else:
            im = _show(axes[2, c], img - reference, f"±{diff_hu:g} HU", -diff_hu, diff_hu, cmap="RdBu_r")
    if len(names):
        fig.colorbar(im, ax=axes[2, -1], fraction=0.046, pad=0.04)  # type: ignore[arg-type]
    return fig


def zoom_box(lesions: np.ndarray, body: np.ndarray, size: int = 24) -> tuple[slice, slice]:
    """A ``size`` x ``size`` window centred on the planted lesions (else on the body) of a 2D slice."""
    target = lesions > 0 if np.any(lesions) else np.asarray(body, bool)
    ci, cj = (int(round(float(v.mean()))) for v in np.nonzero(target))
    half = size // 2
    i0 = int(np.clip(ci - half, 0, max(lesions.shape[0] - size, 0)))
    j0 = int(np.clip(cj - half, 0, max(lesions.shape[1] - size, 0)))
    return slice(i0, i0 + size), slice(j0, j0 + size)
