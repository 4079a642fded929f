"""Interactive slice viewer and series browser (ipywidgets + matplotlib, works offline).

The viewer renders each slice with matplotlib (Agg, no pyplot) into PNG bytes
and puts them in an :class:`ipywidgets.Image`, with a colour legend of the
drawn labels and a caption under it. The caption names the slice by the same
0-based index the slider shows (``axial k=16 of 0–31``), as the figures'
titles do. That redraws reliably in
JupyterLab (the front end only swaps an image), needs no JavaScript beyond
ipywidgets itself, and is testable without a browser: moving a slider changes
``viewer.image.value``. Nothing here calls ``display()`` or blocks, so a
headless papermill run just records the widget. Displayed, each widget also
carries a static PNG of its current state (:mod:`medbench.viz.static`) for
renderers without a live kernel.

Orientation conventions (radiological, LPS+ grid): :mod:`medbench.viz.slicing`.
"""

from __future__ import annotations

import html
import io
from collections.abc import Mapping
from typing import Any

import ipywidgets as widgets
import numpy as np

from medbench.errors import ConfigError
from medbench.image.volume import Volume
from medbench.image.windowing import WINDOW_PRESETS, WindowSpec, apply_window
from medbench.viz.figures import HiddenLabels, LabelNames, LabelStyle, draw_slice, label_style, names_of, new_figure
from medbench.viz.slicing import (
    AXIS_NAMES,
    ORIENTATION_NOTE,
    as_volume,
    check_axis,
    display_labels,
    display_slice,
    display_volume,
    modality_of,
    slice_aspect,
    slice_extent_mm,
    slice_title,
    volume_name,
    window_for,
)
from medbench.viz.static import figure_png, with_picture

_CUSTOM = "custom"
_LAYOUT = widgets.Layout(width="420px")


class SliceViewer(widgets.VBox):
    """Scroll through a volume with window, overlay-opacity and axis controls.

    ``window`` is a preset name, a ``(center, width)`` pair, or None for the
    modality default (soft tissue for CT, 1st-99th percentile otherwise).
    ``axis``: 2 axial, 1 coronal, 0 sagittal. Labels are drawn as in
    :mod:`medbench.viz.figures` (context classes such as ``soft_tissue`` left
    out unless ``hide_labels=()``), with a legend. Public pieces for notebooks
    and tests: :meth:`render` (PNG bytes), :meth:`snapshot` (the static
    picture), :attr:`current_slice` (the displayed raw values),
    :attr:`current_image` (windowed to [0, 1]), :attr:`window`,
    :meth:`set_volume`, and the control widgets as attributes.
    """

    def __init__(
        self,
        volume: Volume | np.ndarray,
        labels: Volume | np.ndarray | None = None,
        *,
        window: WindowSpec | None = "soft_tissue",
        axis: int = 2,
        alpha: float = 0.4,
        label_names: LabelNames | None = None,
        width_px: int = 480,
        hide_labels: HiddenLabels = None,
    ) -> None:
        from matplotlib.figure import Figure

        self._figure = Figure(dpi=100)
        self._width_in = width_px / 100.0
        self._updating = False
        self.image = widgets.Image(format="png", layout=widgets.Layout(width=f"{width_px}px"))
        self.caption = widgets.HTML()
        self.legend = widgets.HTML()
        self.axis_toggle = widgets.ToggleButtons(
            options=[(name, a) for a, name in reversed(list(enumerate(AXIS_NAMES)))], value=check_axis(axis),
            description="view", style={"button_width": "80px"},
        )
        self.slice_slider = widgets.IntSlider(description="slice", min=0, max=0, layout=_LAYOUT)
        self.preset = widgets.Dropdown(options=[*WINDOW_PRESETS, _CUSTOM], description="window")
        self.center_slider = widgets.FloatSlider(description="centre", continuous_update=False,
                                                 readout_format=".4g", layout=_LAYOUT)
        self.width_slider = widgets.FloatSlider(description="width", continuous_update=False,
                                                readout_format=".4g", layout=_LAYOUT)
        self.opacity_slider = widgets.FloatSlider(description="overlay", value=alpha, min=0.0, max=1.0, step=0.05,
                                                  layout=_LAYOUT)
        super().__init__(children=[self.axis_toggle, self.slice_slider, self.preset, self.center_slider,
                                   self.width_slider, self.opacity_slider, self.image, self.legend, self.caption])
        self.set_volume(volume, labels, window=window, label_names=label_names, hide_labels=hide_labels)
        self.axis_toggle.observe(self._on_axis, names="value")
        self.preset.observe(self._on_preset, names="value")
        for control in (self.slice_slider, self.opacity_slider):
            control.observe(self._on_change, names="value")
        for control in (self.center_slider, self.width_slider):
            control.observe(self._on_window_slider, names="value")

    # -- public API ---------------------------------------------------------------------------
    def set_volume(
        self,
        volume: Volume | np.ndarray,
        labels: Volume | np.ndarray | None = None,
        *,
        window: WindowSpec | None = "soft_tissue",
        label_names: LabelNames | None = None,
        name: str = "",
        hide_labels: HiddenLabels = None,
    ) -> None:
        """Show another volume (and its labels); resets the slice to the middle and the window."""
        self.volume = as_volume(volume)
        self.name = name or volume_name(self.volume, "volume")
        self._display = display_volume(self.volume)
        self._labels = display_labels(labels, self.volume)
        self._style: LabelStyle | None = label_style(self._labels, names_of(labels, label_names), hide_labels)
        self.legend.value = "" if self._style is None else self._style.legend_html()
        center, width = window_for(self._display, window, name)
        self._updating = True
        try:
            self._set_window_ranges(center, width)
            self._set_preset_from(center, width)
            self.opacity_slider.disabled = self._style is None
            self._reset_slice_slider()
        finally:
            self._updating = False
        self.render()

    @property
    def axis(self) -> int:
        """Displayed axis: 2 axial, 1 coronal, 0 sagittal."""
        return int(self.axis_toggle.value)

    @property
    def window(self) -> tuple[float, float]:
        """Current ``(center, width)``."""
        return float(self.center_slider.value), float(self.width_slider.value)

    @property
    def current_slice(self) -> np.ndarray:
        """The displayed slice's raw values (rows x columns, screen orientation)."""
        return display_slice(self._display.array, self.axis, self.slice_slider.value)

    @property
    def current_image(self) -> np.ndarray:
        """The displayed slice windowed to [0, 1]."""
        return apply_window(self.current_slice, *self.window)

    def render(self) -> bytes:
        """Redraw the current slice into :attr:`image` and return the PNG bytes."""
        axis, index = self.axis, self.slice_slider.value
        w_mm, h_mm = slice_extent_mm(self._display, axis)
        fig = self._figure
        fig.clear()
        fig.set_size_inches(self._width_in, self._width_in * h_mm / w_mm)
        ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
        labels = None if self._labels is None else display_slice(self._labels, axis, index)
        draw_slice(ax, self.current_slice, *self.window, aspect=slice_aspect(self._display, axis),
                   labels=labels, style=self._style, alpha=self.opacity_slider.value)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", facecolor="black")
        png = buffer.getvalue()
        self.image.value = png
        self.caption.value = html.escape(self.caption_text)
        return png

    @property
    def caption_text(self) -> str:
        """``axial k=16 of 0–31 · z = 1.5 mm · C 40 W 400 · radiological: R on left, A up`` (0-based, as the slider)."""
        axis, index = self.axis, int(self.slice_slider.value)
        center, width = self.window
        return (f"{AXIS_NAMES[axis]} {'ijk'[axis]}={index} of 0–{self._display.shape[axis] - 1} · "
                f"{slice_title(self._display, axis, index)} · C {center:.4g} W {width:.4g} · {ORIENTATION_NOTE[axis]}")

    def snapshot(self, title: str | None = None) -> bytes:
        """A static PNG of what the viewer shows now: the slice, its caption as title, the label legend."""
        axis = self.axis
        w_mm, h_mm = slice_extent_mm(self._display, axis)
        width_in = 5.0
        legend_in = 0.0 if self._style is None else 0.25 * (1 + (len(self._style.names) - 1) // 4) + 0.25
        fig = new_figure((width_in, width_in * h_mm / w_mm + 0.7 + legend_in))
        ax = fig.add_subplot()
        labels = None if self._labels is None else display_slice(self._labels, axis, self.slice_slider.value)
        draw_slice(ax, self.current_slice, *self.window, aspect=slice_aspect(self._display, axis),
                   labels=labels, style=self._style, alpha=self.opacity_slider.value)
        ax.set_title(f"{title or self.name}\n{self.caption_text}", fontsize=8)
        if self._style is not None:
            fig.legend(handles=self._style.handles(), loc="outside lower center", ncols=min(len(self._style.names), 4),
                       fontsize="small", title=self._style.legend_title, title_fontsize="x-small")
        return figure_png(fig)

    def _repr_mimebundle_(self, **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """The widget view plus a static PNG of the current slice (for renderers without a kernel)."""
        return with_picture(super()._repr_mimebundle_(**kwargs), self.snapshot(),
                            f"SliceViewer of {self.name}: {self.caption_text}")

    # -- event handlers -----------------------------------------------------------------------
    def _on_change(self, _change: dict[str, Any]) -> None:
        if not self._updating:
            self.render()

    def _on_axis(self, _change: dict[str, Any]) -> None:
        self._updating = True
        try:
            self._reset_slice_slider()
        finally:
            self._updating = False
        self.render()

    def _on_preset(self, change: dict[str, Any]) -> None:
        if self._updating or change["new"] == _CUSTOM:
            return
        center, width = WINDOW_PRESETS[change["new"]]
        self._updating = True
        try:
            self._set_window_ranges(center, width)
        finally:
            self._updating = False
        self.render()

    def _on_window_slider(self, _change: dict[str, Any]) -> None:
        if self._updating:
            return
        self._updating = True
        try:
            self._set_preset_from(*self.window)
        finally:
            self._updating = False
        self.render()

    # -- helpers ------------------------------------------------------------------------------
    def _reset_slice_slider(self) -> None:
        n = self._display.shape[self.axis]
        self.slice_slider.max = n - 1
        self.slice_slider.value = n // 2

    def _set_window_ranges(self, center: float, width: float) -> None:
        """Slider ranges cover the data, every preset and the requested window."""
        finite = self._display.array[np.isfinite(self._display.array)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        span = max(hi - lo, 1e-6)
        c_lo = min(lo, center, *(c for c, _ in WINDOW_PRESETS.values()))
        c_hi = max(hi, center, *(c for c, _ in WINDOW_PRESETS.values()))
        w_hi = max(2 * span, width, *(w for _, w in WINDOW_PRESETS.values()))
        _set_slider(self.center_slider, c_lo, c_hi, center, (c_hi - c_lo) / 1000)
        _set_slider(self.width_slider, min(span / 1000, width), w_hi, width, w_hi / 1000)

    def _set_preset_from(self, center: float, width: float) -> None:
        matches = [n for n, (c, w) in WINDOW_PRESETS.items() if np.isclose(c, center) and np.isclose(w, width)]
        self.preset.value = matches[0] if matches else _CUSTOM


class SeriesBrowser(widgets.VBox):
    """A series dropdown, a metadata table of the selected series and a :class:`SliceViewer`."""

    def __init__(self, volumes: Mapping[str, Volume | np.ndarray],
                 labels: Mapping[str, Volume | np.ndarray] | None = None, *, hide_labels: HiddenLabels = None) -> None:
        if not volumes:
            raise ConfigError("series_browser needs at least one volume")
        self.volumes = {name: as_volume(v, name) for name, v in volumes.items()}
        self.labels = dict(labels or {})
        unknown = sorted(set(self.labels) - set(self.volumes))
        if unknown:
            raise ConfigError(f"labels given for unknown series {unknown}; series are {sorted(self.volumes)}")
        first = next(iter(self.volumes))
        self.hide_labels = hide_labels
        self.dropdown = widgets.Dropdown(options=list(self.volumes), value=first, description="series")
        self.info = widgets.HTML()
        self.viewer = SliceViewer(self.volumes[first], self.labels.get(first), window=None, hide_labels=hide_labels)
        self.viewer.name = first
        self._show_info(first)
        super().__init__(children=[self.dropdown, self.info, self.viewer])
        self.dropdown.observe(self._on_select, names="value")

    def _on_select(self, change: dict[str, Any]) -> None:
        name = change["new"]
        self.viewer.set_volume(self.volumes[name], self.labels.get(name), window=None, name=name,
                               hide_labels=self.hide_labels)
        self._show_info(name)

    def _show_info(self, name: str) -> None:
        self.info.value = series_table_html(name, self.volumes[name])

    def _repr_mimebundle_(self, **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """The widget view plus a static PNG of the selected series (for renderers without a kernel)."""
        name = str(self.dropdown.value)
        title = f"series {name!r} (1 of {len(self.volumes)}: {', '.join(list(self.volumes)[:4])}" + (
            ", …)" if len(self.volumes) > 4 else ")")
        return with_picture(super()._repr_mimebundle_(**kwargs), self.viewer.snapshot(title=_wrap(title)),
                            f"SeriesBrowser of {len(self.volumes)} series; showing {name}: {self.viewer.caption_text}")


def series_browser(volumes: Mapping[str, Volume | np.ndarray],
                   labels: Mapping[str, Volume | np.ndarray] | None = None, *,
                   hide_labels: HiddenLabels = None) -> SeriesBrowser:
    """A dropdown of series names over a :class:`SliceViewer` and the series' metadata table.

    ``labels`` maps series names to label maps on that series' grid. Each
    series opens with its modality's default window.
    """
    return SeriesBrowser(volumes, labels, hide_labels=hide_labels)


def series_table_html(name: str, volume: Volume) -> str:
    """A small HTML table: name, shape, spacing, modality and (if recorded) sequence, units, verdict."""
    rows = {
        "series": name,
        "shape": " × ".join(str(n) for n in volume.shape),
        "spacing (mm)": " × ".join(f"{s:.3g}" for s in volume.spacing),
        "modality": modality_of(volume, "") or "unknown",
    }
    for key in ("sequence", "units", "verdict"):
        if key in volume.meta:
            rows[key] = str(volume.meta[key])
    cells = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
                    for k, v in rows.items())
    return f"<table>{cells}</table>"


def _wrap(text: str, width: int = 70) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width)) or text


def _set_slider(slider: widgets.FloatSlider, lo: float, hi: float, value: float, step: float) -> None:
    """Set range and value without ever passing through min > max (which ipywidgets rejects)."""
    slider.max = max(hi, slider.max, lo)
    slider.min = lo
    slider.max = hi
    slider.step = step
    slider.value = value
