"""Static figures of volumes: montage, overlay, orthogonal views, window and modality grids.

Every function returns a :class:`matplotlib.figure.Figure` built with the
object-oriented API and *not* registered with pyplot: nothing is shown, nothing
needs closing, memory is freed when the figure is dropped, and returning the
figure from a notebook cell displays it once (a pyplot figure would display
twice: once as the cell's value, once when the inline backend flushes). So
that a bare Figure displays as an image even before pyplot was ever used in
the kernel, the first figure registers IPython's PNG formatter for figures,
exactly as the inline backend itself would, unless a figure format is already
registered. All code is Agg-safe; nothing blocks.

Each displayed image holds the windowed slice (``ax.images[0].get_array()`` is
``apply_window(slice, center, width)``), drawn at the aspect ratio given by the
voxel spacing. Orientation conventions: :mod:`medbench.viz.slicing`.

Label overlays colour the structures of a label map and leave the rest of the
image untouched: label 0 and the *context* classes that fill the whole body
(:data:`CONTEXT_LABELS`: ``background``, ``body``, ``soft_tissue``, ``fat``,
matched by name) are not drawn, so the image stays readable under the
organs. ``hide_labels=()`` draws every non-zero label; any other collection of
values or names replaces the default. Every overlay has a legend naming the
colours, and says which classes were left out.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from math import ceil, sqrt

import numpy as np
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import BoundaryNorm, ListedColormap, Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from medbench.errors import ConfigError, GeometryError
from medbench.image.volume import Volume
from medbench.image.windowing import WindowSpec, apply_window, percentile_window, resolve_window, window_stats
from medbench.viz.slicing import (
    AXIS_NAMES,
    ORIENTATION_NOTE,
    as_volume,
    check_axis,
    check_index,
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

#: Label names: a mapping {label value: name}, or a sequence naming labels 1, 2, 3, ... in order.
LabelNames = Mapping[int, str] | Sequence[str]
ImageLike = Volume | np.ndarray
#: Label values (int) or names (str) an overlay leaves out; None = :data:`CONTEXT_LABELS`.
HiddenLabels = Collection[int | str] | None

#: Classes that fill the body rather than mark a structure: not drawn by default.
CONTEXT_LABELS: tuple[str, ...] = ("background", "body", "soft_tissue", "fat")

_CROSSHAIR = {"color": "yellow", "linewidth": 0.8, "alpha": 0.7}


@dataclass(frozen=True)
class LabelStyle:
    """Fixed colours for the label values of a whole label map (same colour on every slice)."""

    values: np.ndarray
    names: tuple[str, ...]
    cmap: ListedColormap
    norm: BoundaryNorm
    hidden: tuple[str, ...] = ()

    def index_image(self, labels_2d: np.ndarray) -> np.ma.MaskedArray:
        """Colour indices for a label slice; background (0) and unknown values are masked."""
        idx = np.searchsorted(self.values, labels_2d)
        idx = np.clip(idx, 0, len(self.values) - 1)
        known = self.values[idx] == labels_2d
        return np.ma.masked_array(idx, mask=~known)

    def handles(self) -> list[Patch]:
        """Legend entries, one per drawn label value."""
        return [Patch(facecolor=self.cmap(i), label=name) for i, name in enumerate(self.names)]

    @property
    def legend_title(self) -> str | None:
        """``"not drawn: soft_tissue, fat"`` when classes were left out, else None."""
        return f"not drawn: {', '.join(self.hidden)}" if self.hidden else None

    def rgba(self) -> list[tuple[int, int, int, int]]:
        """8-bit RGBA colour of each drawn label value (same order as :attr:`values`)."""
        return [tuple(int(round(255 * c)) for c in self.cmap(i)) for i in range(len(self.values))]  # type: ignore[misc]

    def legend_html(self) -> str:
        """The legend as a line of HTML colour swatches (for widgets)."""
        import html

        items = "".join(
            f"<span style='white-space:nowrap;margin-right:12px'><span style='display:inline-block;width:12px;"
            f"height:12px;background:rgb({r},{g},{b});border:1px solid #555;vertical-align:middle'></span>"
            f" {html.escape(name)}</span> "
            for (r, g, b, _), name in zip(self.rgba(), self.names)
        )
        note = f"<span style='color:#666'>({html.escape(self.legend_title or '')})</span>" if self.hidden else ""
        return f"<div class='medbench-legend' style='font-size:12px;line-height:1.8'>{items}{note}</div>"


def names_of(labels: object, label_names: LabelNames | None) -> LabelNames | None:
    """``label_names``, else the names a label Volume records in ``meta["label_names"]`` (else None)."""
    if label_names is not None:
        return label_names
    meta = getattr(labels, "meta", None)
    names = meta.get("label_names") if isinstance(meta, Mapping) else None
    return names if isinstance(names, (Mapping, Sequence)) and not isinstance(names, str) else None


def label_style(
    labels: np.ndarray | None, label_names: LabelNames | None = None, hide_labels: HiddenLabels = None
) -> LabelStyle | None:
    """Discrete colours (tab10, tab20 beyond 10 labels, cycling beyond 20) for the drawn labels.

    Drawn: every non-zero value present except those hidden by value or by
    name (``hide_labels``; None hides :data:`CONTEXT_LABELS`). None when
    nothing is left to draw.
    """
    if labels is None:
        return None
    present = np.unique(np.asarray(labels))
    present = present[present != 0]
    hidden_spec = CONTEXT_LABELS if hide_labels is None else tuple(hide_labels)
    is_hidden = [int(v) in hidden_spec or _label_name(int(v), label_names) in hidden_spec for v in present]
    values = present[~np.asarray(is_hidden, dtype=bool)] if present.size else present
    hidden = tuple(_label_name(int(v), label_names) for v, h in zip(present, is_hidden) if h)
    if values.size == 0:
        return None
    import matplotlib

    base = matplotlib.colormaps["tab10" if values.size <= 10 else "tab20"]
    colors = [base(i % base.N) for i in range(values.size)]
    names = tuple(_label_name(int(v), label_names) for v in values)
    cmap = ListedColormap(colors, name="medbench_labels")
    norm = BoundaryNorm(np.arange(values.size + 1) - 0.5, values.size)
    return LabelStyle(values, names, cmap, norm, hidden)


def draw_slice(
    ax: Axes,
    raw: np.ndarray,
    center: float,
    width: float,
    *,
    aspect: float = 1.0,
    labels: np.ndarray | None = None,
    style: LabelStyle | None = None,
    alpha: float = 0.4,
) -> None:
    """Draw a windowed grey slice (image 0) and, if given, its label overlay (image 1) on ``ax``."""
    ax.imshow(apply_window(raw, center, width), cmap="gray", vmin=0.0, vmax=1.0,
              aspect=aspect, interpolation="nearest")
    if labels is not None and style is not None and alpha > 0:
        ax.imshow(style.index_image(labels), cmap=style.cmap, norm=style.norm, alpha=alpha,
                  aspect=aspect, interpolation="nearest")
    ax.set_axis_off()


def evenly_spaced(n_total: int, n: int) -> list[int]:
    """``min(n, n_total)`` slice indices at the centres of equal bins (skips the empty edges)."""
    if n < 1:
        raise ConfigError(f"n_slices must be at least 1, got {n}")
    n = min(n, n_total)
    return [int(v) for v in ((np.arange(n) + 0.5) * n_total / n)]


def new_figure(figsize: tuple[float, float]) -> Figure:
    """A pyplot-free, constrained-layout Figure that displays as PNG in a notebook."""
    _ensure_notebook_display()
    return Figure(figsize=figsize, dpi=100, layout="constrained")


def montage(
    volume: ImageLike,
    *,
    window: WindowSpec | None = "soft_tissue",
    n_slices: int = 12,
    axis: int = 2,
    labels: ImageLike | None = None,
    alpha: float = 0.4,
    title: str | None = None,
    label_names: LabelNames | None = None,
    ncols: int | None = None,
    hide_labels: HiddenLabels = None,
) -> Figure:
    """A grid of ``n_slices`` evenly spaced slices, each titled with its position in mm.

    ``window`` is a preset name, a ``(center, width)`` pair, or None for the
    modality default. Unused grid cells are removed, so the figure has exactly
    one axes per slice. ``hide_labels``: see the module docstring.
    """
    vol, disp, axis = _prepare(volume, axis)
    center, width = window_for(disp, window)
    labs = display_labels(labels, vol)
    style = label_style(labs, names_of(labels, label_names), hide_labels)
    _check_alpha(alpha)
    indices = evenly_spaced(disp.shape[axis], n_slices)
    ncols = ncols or ceil(sqrt(len(indices)))
    nrows = ceil(len(indices) / ncols)
    cell_w, cell_h = _cell_size(disp, axis, 2.2)
    fig = new_figure((ncols * cell_w, nrows * (cell_h + 0.3) + 0.6))
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    aspect = slice_aspect(disp, axis)
    for ax, idx in zip(axes, indices):
        draw_slice(ax, display_slice(disp.array, axis, idx), center, width, aspect=aspect,
                   labels=None if labs is None else display_slice(labs, axis, idx), style=style, alpha=alpha)
        ax.set_title(slice_title(disp, axis, idx), fontsize="small")
    for ax in axes[len(indices):]:
        fig.delaxes(ax)
    fig.suptitle(title or f"{volume_name(vol)} · {AXIS_NAMES[axis]} · {_window_text(window, center, width)}")
    _figure_legend(fig, style)
    return fig


def overlay(
    image_2d_or_volume: ImageLike,
    labels: ImageLike,
    *,
    window: WindowSpec | None = "soft_tissue",
    alpha: float = 0.4,
    slice_index: int | None = None,
    label_names: LabelNames | None = None,
    axis: int = 2,
    hide_labels: HiddenLabels = None,
) -> Figure:
    """One slice with its labels in discrete colours and a legend.

    A 2D image is shown as is (rows x columns, like ``imshow``) with a 2D label
    array of the same shape. For a volume, ``slice_index=None`` picks the slice
    along ``axis`` with the most labelled voxels (the middle one if there are none).
    """
    _check_alpha(alpha)
    if isinstance(image_2d_or_volume, np.ndarray) and image_2d_or_volume.ndim == 2:
        raw = image_2d_or_volume
        labs2d = np.asarray(labels)
        if labs2d.shape != raw.shape:
            raise GeometryError(f"labels shape {labs2d.shape} does not match the image shape {raw.shape}")
        style = label_style(labs2d, names_of(labels, label_names), hide_labels)
        center, width = percentile_window(raw) if window is None else resolve_window(window)
        aspect, heading, size = 1.0, "slice", _fit((raw.shape[1], raw.shape[0]), 5.0)
    else:
        vol, disp, axis = _prepare(image_2d_or_volume, axis)
        labs = display_labels(labels, vol)
        if labs is None:
            raise ConfigError("overlay needs labels")
        style = label_style(labs, names_of(labels, label_names), hide_labels)
        drawn = labs if style is None else np.isin(labs, style.values)
        index = _most_labelled(drawn, axis) if slice_index is None else check_index(disp, axis, slice_index)
        center, width = window_for(disp, window)
        raw, labs2d = display_slice(disp.array, axis, index), display_slice(labs, axis, index)
        aspect = slice_aspect(disp, axis)
        heading = f"{volume_name(vol)} · {AXIS_NAMES[axis]} {slice_title(disp, axis, index)}"
        size = _fit(slice_extent_mm(disp, axis), 5.0)
    fig = new_figure((size[0] + 1.6, size[1] + 0.5))
    ax = fig.add_subplot()
    draw_slice(ax, raw, center, width, aspect=aspect, labels=labs2d, style=style, alpha=alpha)
    ax.set_title(f"{heading}\n{_window_text(window, center, width)}", fontsize="medium")
    if style is not None:
        ax.legend(handles=style.handles(), loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="small",
                  title=style.legend_title, title_fontsize="x-small")
    return fig


def orthogonal(
    volume: ImageLike,
    *,
    point: Sequence[int] | None = None,
    window: WindowSpec | None = "soft_tissue",
    labels: ImageLike | None = None,
    alpha: float = 0.4,
    label_names: LabelNames | None = None,
    hide_labels: HiddenLabels = None,
) -> Figure:
    """Axial, coronal and sagittal slices through ``point`` (voxel indices, default centre), with a crosshair.

    Axes are sized by their physical extent; titles state the index, the
    position in mm and the display orientation.
    """
    vol, disp, _ = _prepare(volume, 2)
    _check_alpha(alpha)
    center, width = window_for(disp, window)
    labs = display_labels(labels, vol)
    style = label_style(labs, names_of(labels, label_names), hide_labels)
    point = _check_point(disp, point)
    nx, ny, nz = disp.shape
    extents = [slice_extent_mm(disp, a) for a in (2, 1, 0)]
    height_in = 3.2
    widths = [max(height_in * w / max(h for _, h in extents), 2.2) for w, _ in extents]
    fig = new_figure((sum(widths) + 0.6, height_in + 0.9))
    axes = fig.subplots(1, 3, width_ratios=[w for w, _ in extents])
    # Crosshair position (column, row) on each displayed view.
    cross = {2: (point[0], point[1]), 1: (point[0], nz - 1 - point[2]), 0: (point[1], nz - 1 - point[2])}
    for ax, axis in zip(axes, (2, 1, 0)):
        idx = point[axis]
        draw_slice(ax, display_slice(disp.array, axis, idx), center, width, aspect=slice_aspect(disp, axis),
                   labels=None if labs is None else display_slice(labs, axis, idx), style=style, alpha=alpha)
        col, row = cross[axis]
        ax.axvline(col, **_CROSSHAIR)
        ax.axhline(row, **_CROSSHAIR)
        ax.set_title(f"{AXIS_NAMES[axis].capitalize()} {'ijk'[axis]}={idx}, {slice_title(disp, axis, idx)}\n"
                     f"{ORIENTATION_NOTE[axis]}", fontsize="small")
    fig.suptitle(f"{volume_name(vol)} at voxel {tuple(point)} · {_window_text(window, center, width)}")
    _figure_legend(fig, style)
    return fig


def window_comparison(
    volume_or_slice: ImageLike,
    presets: Sequence[WindowSpec] = ("soft_tissue", "lung", "bone", "brain"),
    slice_index: int | None = None,
    *,
    axis: int = 2,
) -> Figure:
    """The same slice under each window, side by side, with :func:`window_stats` in each title.

    A 2D array is shown as is; for a volume, ``slice_index`` (default middle)
    along ``axis``. The numbers are :func:`~medbench.metrics.window_coverage_table`
    of the same slice.
    """
    if not presets:
        raise ConfigError("window_comparison needs at least one preset")
    if isinstance(volume_or_slice, np.ndarray) and volume_or_slice.ndim == 2:
        raw, aspect, where = volume_or_slice, 1.0, "slice"
        size = _fit((raw.shape[1], raw.shape[0]), 3.0)
    else:
        vol, disp, axis = _prepare(volume_or_slice, axis)
        index = check_index(disp, axis, slice_index)
        raw, aspect = display_slice(disp.array, axis, index), slice_aspect(disp, axis)
        where = f"{volume_name(vol)} · {AXIS_NAMES[axis]} {slice_title(disp, axis, index)}"
        size = _fit(slice_extent_mm(disp, axis), 3.0)
    fig = new_figure((len(presets) * size[0] + 0.4, size[1] + 1.3))
    axes = fig.subplots(1, len(presets), squeeze=False).ravel()
    for ax, spec in zip(axes, presets):
        center, width = resolve_window(spec)
        stats = window_stats(raw, center, width)
        draw_slice(ax, raw, center, width, aspect=aspect)
        ax.set_title(f"{_window_text(spec, center, width)}\nbelow {stats.below:.1%} · in {stats.inside:.1%}"
                     f" · above {stats.above:.1%}", fontsize="small")
    fig.suptitle(where)
    return fig


def modality_grid(
    volumes: Mapping[str, ImageLike],
    *,
    slice_index: int | None = None,
    labels: ImageLike | Mapping[str, ImageLike] | None = None,
    alpha: float = 0.4,
    axis: int = 2,
    windows: Mapping[str, WindowSpec] | None = None,
    hide_labels: HiddenLabels = None,
) -> Figure:
    """One column per series (CT, PET, T1, T2, ...), each with its own window and a colorbar.

    Default windows: the soft-tissue preset for CT (modality from
    ``meta["modality"]``, else the dict key), the 1st-99th percentile window
    otherwise; ``windows`` overrides them by name. ``slice_index=None`` shows
    each series' middle slice. ``labels`` is one label map for every series on
    its grid, or a mapping from series name to label map. The colorbar is in the
    image's units (``meta["units"]``; HU for CT). The figure has two axes per
    series: the image and its colorbar.
    """
    if not volumes:
        raise ConfigError("modality_grid needs at least one volume")
    _check_alpha(alpha)
    axis = check_axis(axis)
    prepared = {name: _prepare(v, axis)[:2] for name, v in volumes.items()}
    size = max((_fit(slice_extent_mm(d, axis), 3.0) for _, d in prepared.values()), key=lambda s: s[1])
    fig = new_figure((len(prepared) * (size[0] + 1.0), size[1] + 1.3))
    axes = fig.subplots(1, len(prepared), squeeze=False).ravel()
    for ax, (name, (vol, disp)) in zip(axes, prepared.items()):
        spec = (windows or {}).get(name)
        center, width = window_for(disp, spec, name)
        given = labels.get(name) if isinstance(labels, Mapping) else labels
        labs = display_labels(given, vol)
        index = check_index(disp, axis, slice_index)
        draw_slice(ax, display_slice(disp.array, axis, index), center, width, aspect=slice_aspect(disp, axis),
                   labels=None if labs is None else display_slice(labs, axis, index),
                   style=label_style(labs, names_of(given, None), hide_labels), alpha=alpha)
        modality = modality_of(vol, name)
        units = str(vol.meta.get("units") or ("HU" if modality.upper() == "CT" else "a.u."))
        mappable = ScalarMappable(norm=Normalize(center - width / 2, center + width / 2), cmap="gray")
        fig.colorbar(mappable, ax=ax, shrink=0.8, label=units)
        ax.set_title(f"{name} ({modality or 'unknown modality'})\n{slice_title(disp, axis, index)} · "
                     f"{_window_text(spec, center, width)}", fontsize="small")
    return fig


# -- helpers ---------------------------------------------------------------------------------
def _figure_legend(fig: Figure, style: LabelStyle | None) -> None:
    """The label legend under the axes, titled with the classes left out (if any)."""
    if style is not None:
        fig.legend(handles=style.handles(), loc="outside lower center", ncols=min(len(style.names), 6),
                   fontsize="small", title=style.legend_title, title_fontsize="x-small")


def _prepare(image: ImageLike, axis: int) -> tuple[Volume, Volume, int]:
    vol = as_volume(image)
    return vol, display_volume(vol), check_axis(axis)


def _check_alpha(alpha: float) -> None:
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"alpha (overlay opacity) must be within 0..1, got {alpha}")


def _check_point(volume: Volume, point: Sequence[int] | None) -> tuple[int, int, int]:
    if point is None:
        return tuple(n // 2 for n in volume.shape)  # type: ignore[return-value]
    if len(point) != 3:
        raise ConfigError(f"point must be three voxel indices (i, j, k), got {point!r}")
    return tuple(check_index(volume, a, p) for a, p in enumerate(point))  # type: ignore[return-value]


def _most_labelled(labels: np.ndarray, axis: int) -> int:
    counts = np.count_nonzero(labels, axis=tuple(a for a in range(3) if a != axis))
    return int(np.argmax(counts)) if counts.any() else labels.shape[axis] // 2


def _label_name(value: int, names: LabelNames | None) -> str:
    if names is None:
        return f"label {value}"
    if isinstance(names, Mapping):
        return str(names.get(value, f"label {value}"))
    return str(names[value - 1]) if 1 <= value <= len(names) else f"label {value}"


def _window_text(spec: WindowSpec | None, center: float, width: float) -> str:
    text = f"C{center:.4g} W{width:.4g}"
    return f"{spec.strip().lower()} ({text})" if isinstance(spec, str) else text


def _fit(extent_mm: tuple[float, float], longest_in: float) -> tuple[float, float]:
    """(width, height) in inches with the given physical proportions, longest side ``longest_in``."""
    w, h = extent_mm
    scale = longest_in / max(w, h)
    return max(w * scale, 0.8), max(h * scale, 0.8)


def _cell_size(volume: Volume, axis: int, width_in: float) -> tuple[float, float]:
    w, h = slice_extent_mm(volume, axis)
    return width_in, min(max(width_in * h / w, 0.6), 3 * width_in)


def _ensure_notebook_display() -> None:
    """In a Jupyter kernel, make bare Figures display as PNG (what the inline backend does)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None or getattr(shell, "kernel", None) is None:
        return
    formatters = shell.display_formatter.formatters
    for mime in ("image/png", "image/svg+xml", "image/jpeg", "application/pdf"):
        try:
            formatters[mime].lookup_by_type(Figure)
            return
        except KeyError:
            continue
    from IPython.core.pylabtools import select_figure_formats

    select_figure_formats(shell, {"png"})
