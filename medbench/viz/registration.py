"""Figures and widgets for registration: metric curves, checkerboard / blend / edge overlays, fade slider, maps.

Every picture has a numeric companion in the notebook (TRE tables, dense
error tables, Jacobian statistics), because nbval never compares images.
Images are shown through :func:`~medbench.viz.slicing.display_slice` (LPS+
arrays, radiological display), on the fixed image's grid: pass moving images
already resampled (``result.resample(moving)``).

:class:`LiveMetricPlot` is the iteration callback for
:func:`medbench.registration.register`: in JupyterLab it redraws a metric
curve every few iterations; headless (``MEDBENCH_HEADLESS`` set, as in
``medbench run`` / papermill through medbench, or no IPython kernel) it only
records, and shows nothing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from medbench.image.volume import Volume
from medbench.viz.figures import new_figure
from medbench.viz.slicing import display_slice, slice_aspect

HEADLESS_ENV = "MEDBENCH_HEADLESS"


def _norm(vol: Volume, window: tuple[float, float] | None) -> np.ndarray:
    a = np.asarray(vol.array, dtype=float)
    lo, hi = window if window is not None else (float(np.percentile(a, 1)), float(np.percentile(a, 99)))
    return np.clip((a - lo) / max(hi - lo, 1e-6), 0.0, 1.0)


def _slice(arr: np.ndarray, axis: int, index: int | None) -> np.ndarray:
    idx = arr.shape[axis] // 2 if index is None else int(index)
    return display_slice(arr, axis, idx)


def metric_curves(results: Mapping[str, Any], title: str = "metric per iteration") -> Figure:
    """The optimised metric against the iteration count (levels concatenated; dashed lines: next level).

    One panel per result: the metrics differ in kind and scale (MI is negative, mean squares in squared units).
    """
    items = [(k, v) for k, v in results.items() if len(v.history)]
    fig = new_figure((max(3.0 * len(items), 4.0), 2.8))
    axes = np.atleast_1d(fig.subplots(1, max(len(items), 1)))
    for ax, (name, res) in zip(axes, items):
        h = res.history
        ax.plot(np.arange(len(h)), h["metric"].to_numpy(), lw=1.0)
        for start in np.flatnonzero(h["level"].diff().fillna(0).to_numpy() != 0):
            ax.axvline(int(start), color="0.7", lw=0.8, ls="--")
        ax.set_title(f"{name}\n{res.engine} {res.metric}: {res.status}", fontsize=8)
        ax.set_xlabel("iteration", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].set_ylabel("metric (lower is better)", fontsize=8)
    fig.suptitle(title, fontsize=9)
    return fig


class LiveMetricPlot:
    """An ``on_iteration`` callback: records (level, iteration, metric); redraws in a live notebook only."""

    def __init__(self, title: str = "metric", every: int = 10) -> None:
        self.title, self.every = title, max(1, int(every))
        self.values: list[float] = []
        self._handle: Any = None
        self.live = _live()

    def __call__(self, level: int, iteration: int, value: float) -> None:
        self.values.append(float(value))
        if self.live and len(self.values) % self.every == 0:
            self._draw()

    def _draw(self) -> None:
        from IPython.display import display

        fig = new_figure((5.0, 2.4))
        ax = fig.subplots()
        ax.plot(self.values)
        ax.set(xlabel="iteration", ylabel="metric", title=self.title)
        if self._handle is None:
            self._handle = display(fig, display_id=True)
        else:
            self._handle.update(fig)


def _live() -> bool:
    if os.environ.get(HEADLESS_ENV):
        return False
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except ImportError:
        return False
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def checkerboard(fixed: Volume, moved: Mapping[str, Volume], *, axis: int = 1, index: int | None = None,
                 squares: int = 8, windows: Sequence[tuple[float, float] | None] = (None, None)) -> Figure:
    """Fixed and each moved image interleaved in a checkerboard (misalignment breaks edges at square borders)."""
    f = _slice(_norm(fixed, windows[0]), axis, index)
    fig = new_figure((3.2 * len(moved), 3.4))
    axes = np.atleast_1d(fig.subplots(1, len(moved)))
    yy, xx = np.indices(f.shape)
    board = ((yy * squares // f.shape[0]) + (xx * squares // f.shape[1])) % 2 == 0
    for ax, (name, vol) in zip(axes, moved.items()):
        m = _slice(_norm(vol, windows[1]), axis, index)
        ax.imshow(np.where(board, f, m), cmap="gray", aspect=slice_aspect(fixed, axis), interpolation="nearest")
        ax.set_title(name, fontsize=9)
        ax.set_axis_off()
    return fig


def blend(fixed: Volume, moved: Mapping[str, Volume], *, axis: int = 1, index: int | None = None,
          windows: Sequence[tuple[float, float] | None] = (None, None), edges: bool = True) -> Figure:
    """Fixed in magenta, moved in green (grey where they agree); with ``edges`` the fixed image's edges in yellow."""
    from skimage.feature import canny

    f = _slice(_norm(fixed, windows[0]), axis, index)
    edge = canny(f, sigma=1.0) if edges else np.zeros(f.shape, bool)
    fig = new_figure((3.2 * len(moved), 3.4))
    axes = np.atleast_1d(fig.subplots(1, len(moved)))
    for ax, (name, vol) in zip(axes, moved.items()):
        m = _slice(_norm(vol, windows[1]), axis, index)
        rgb = np.stack([f, m, f], axis=-1)
        rgb[edge] = (1.0, 1.0, 0.0)
        ax.imshow(rgb, aspect=slice_aspect(fixed, axis), interpolation="nearest")
        ax.set_title(name, fontsize=9)
        ax.set_axis_off()
    return fig


def fade_slider(fixed: Volume, moved: Volume, *, axis: int = 1, index: int | None = None,
                windows: Sequence[tuple[float, float] | None] = (None, None)) -> Any:
    """An ipywidgets slider fading fixed (0) -> moved (1); a static 50 % blend Figure when ipywidgets is missing.

    Headless runs record the widget's first frame (alpha 0.5) like any output.
    """
    f = _slice(_norm(fixed, windows[0]), axis, index)
    m = _slice(_norm(moved, windows[1]), axis, index)
    aspect = slice_aspect(fixed, axis)

    def frame(alpha: float = 0.5) -> Figure:
        fig = new_figure((3.6, 3.6))
        ax = fig.subplots()
        ax.imshow((1 - alpha) * f + alpha * m, cmap="gray", vmin=0, vmax=1, aspect=aspect, interpolation="nearest")
        ax.set_title(f"fixed {1 - alpha:.0%} / moved {alpha:.0%}", fontsize=9)
        ax.set_axis_off()
        return fig

    try:
        import ipywidgets as widgets
        from IPython.display import display
    except ImportError:
        return frame(0.5)
    out = widgets.Output()
    slider = widgets.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.05, description="fixed → moved",
                                 continuous_update=False)

    def redraw(change: Any = None) -> None:
        out.clear_output(wait=True)
        with out:
            display(frame(slider.value))

    slider.observe(redraw, names="value")
    redraw()
    return widgets.VBox([slider, out])


def scalar_maps(background: Volume, maps: Mapping[str, Volume], *, axis: int = 1, index: int | None = None,
                cmap: str = "magma", vmin: float | None = None, vmax: float | None = None, units: str = "mm",
                center: float | None = None) -> Figure:
    """Scalar maps (dense TRE in mm, Jacobian determinant) over a grey background, one panel each, shared colours.

    ``center`` draws a diverging scale around it (1 for a Jacobian: blue = shrinking, red = growing).
    """
    bg = _slice(_norm(background, None), axis, index)
    arrays = {k: _slice(np.asarray(v.array, dtype=float), axis, index) for k, v in maps.items()}
    allv = np.concatenate([a.ravel() for a in arrays.values()])
    lo = float(np.nanmin(allv)) if vmin is None else vmin
    hi = float(np.nanmax(allv)) if vmax is None else vmax
    if center is not None:
        half = max(abs(hi - center), abs(center - lo), 1e-6)
        lo, hi, cmap = center - half, center + half, "coolwarm"
    fig = new_figure((3.2 * len(maps) + 0.6, 3.4))
    axes = np.atleast_1d(fig.subplots(1, len(maps)))
    im = None
    for ax, (name, a) in zip(axes, arrays.items()):
        ax.imshow(bg, cmap="gray", aspect=slice_aspect(background, axis), interpolation="nearest")
        im = ax.imshow(a, cmap=cmap, vmin=lo, vmax=hi, alpha=0.65, aspect=slice_aspect(background, axis),
                       interpolation="nearest")
        ax.set_title(name, fontsize=9)
        ax.set_axis_off()
    if im is not None:
        fig.colorbar(im, ax=list(axes), shrink=0.8, label=units)
    return fig
