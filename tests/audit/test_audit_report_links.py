"""The audit report keeps working when the folder holding it and the data is renamed (a run folder's atomic rename).

Also: the outlier plot shows every series (normal ones on top) and its labels never overlap.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.text import Text

from medbench.audit import detect_outliers, outlier_plot, run_audit
from tests.report.test_index import dead_links


def test_links_and_paths_survive_renaming_the_run_folder(mixed_tree: Path, tmp_path: Path) -> None:
    run = tmp_path / ".run.tmp-abc"  # how a run folder looks while it is assembled
    run.mkdir()
    shutil.move(str(mixed_tree), run / "dicom_tree")
    run_audit(run / "dicom_tree", run / "audit", sample_pixels=False)
    final = tmp_path / "20260101T000000Z-smoke"
    os.rename(run, final)

    page = final / "audit" / "index.html"
    html = page.read_text()
    assert ".run.tmp-abc" not in html
    assert dead_links(page) == []
    assert 'href="../dicom_tree/broken/IM0003.dcm"' in html  # a failed file links to the file itself
    files = pd.read_csv(final / "audit" / "files.csv")
    summary = json.loads((final / "audit" / "summary.json").read_text())
    assert summary["root_from_report"] == "../dicom_tree"
    data = (final / "audit" / summary["root_from_report"]).resolve()
    assert all((data / p).exists() for p in files["path"]), "files.csv paths are relative to the audited folder"
    assert not files["path"].str.startswith("/").any()


def _series(n: int = 10) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    df = pd.DataFrame({
        "series_key": [f"k{i}" for i in range(n)], "description": [f"case{i:03d} CT (a long description)" for i in range(n)],
        "n_slices": [32] * n, "slice_spacing": [3.0] * n, "value_min": [-1024.0] * n,
        "value_max": rng.normal(900, 5, n), "mean": rng.normal(-660, 3, n), "std": rng.normal(488, 2, n),
    })
    df.loc[[1, 2, 3], ["value_max", "std"]] = [[9000.0, 50.0], [9001.0, 51.0], [9002.0, 52.0]]  # three alike outliers
    return df


def test_outlier_plot_keeps_normal_points_visible_and_labels_apart() -> None:
    out = detect_outliers(_series())
    fig = outlier_plot(out)
    ax = fig.axes[0]
    normal = [c for c in ax.collections if c.get_label().startswith("normal")]
    flagged = [c for c in ax.collections if not c.get_label().startswith("normal")]
    assert normal and flagged and all(normal[0].get_zorder() > c.get_zorder() for c in flagged)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    boxes = [Text.get_window_extent(t, renderer) for t in ax.texts]  # the text only, not its leader line
    assert len(boxes) == int(out["outlier"].sum()) >= 3
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:]), "labels overlap"
    figure_box = fig.bbox
    assert all(figure_box.x0 <= b.x0 and b.x1 <= figure_box.x1 for b in boxes), "a label is clipped by the figure edge"
    assert all(b.x0 > ax.get_window_extent(renderer).x1 for b in boxes), "labels sit beside the axes, not on the points"


def test_outlier_plot_axes_keep_their_tick_labels() -> None:
    # like the phantom audit: seven near-identical CT series and one MR series far from them
    df = _series(8)
    df["value_range"] = [1938.0, 1940.0, 1930.0, 1939.0, 1938.5, 1937.0, 1941.0, 927.4]
    df["std"] = [487.8, 491.5, 491.7, 489.0, 488.4, 490.2, 490.9, 231.4]
    df["value_max"] = 900.0
    out = detect_outliers(df)
    fig = outlier_plot(out)
    ax = fig.axes[0]
    FigureCanvasAgg(fig).draw()
    for axis in (ax.xaxis, ax.yaxis):
        lo, hi = axis.get_view_interval()
        shown = [t for t in axis.get_major_ticks() if lo <= t.get_loc() <= hi and t.label1.get_text()]
        assert len(shown) >= 2, f"{axis.axis_name} axis has {len(shown)} labelled ticks"
