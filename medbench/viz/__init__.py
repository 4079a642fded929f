"""medbench.viz: pure functions returning matplotlib figures or ipywidgets.

Nothing here shows, displays or blocks: notebooks display what these return,
and headless papermill runs just record it. Orientation conventions are in
:mod:`medbench.viz.slicing`, the window function in :mod:`medbench.image.windowing`
(re-exported here for convenience),
3D backends and their offline behaviour in :mod:`medbench.viz.view3d`, static
pictures of widgets in :mod:`medbench.viz.static`, readable tables in
:mod:`medbench.viz.tables`.
"""

from __future__ import annotations

from medbench.image.windowing import (
    WINDOW_PRESETS,
    WindowStats,
    apply_window,
    percentile_window,
    resolve_window,
    window_stats,
)
from medbench.viz.figures import CONTEXT_LABELS, modality_grid, montage, orthogonal, overlay, window_comparison
from medbench.viz.tables import table
from medbench.viz.view3d import choose_backend, view3d
from medbench.viz.viewer import SeriesBrowser, SliceViewer, series_browser

__all__ = [
    "CONTEXT_LABELS",
    "WINDOW_PRESETS",
    "SeriesBrowser",
    "SliceViewer",
    "WindowStats",
    "apply_window",
    "choose_backend",
    "modality_grid",
    "montage",
    "orthogonal",
    "overlay",
    "percentile_window",
    "resolve_window",
    "series_browser",
    "table",
    "view3d",
    "window_comparison",
    "window_stats",
]
