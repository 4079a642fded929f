"""Registration figures and widgets: they build, the live plot stays quiet headless, the slider degrades."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from medbench.image.volume import Volume
from medbench.viz import registration as rviz


class _Result:
    def __init__(self, n: int) -> None:
        self.history = pd.DataFrame({"level": [0] * n + [1] * n, "iteration": list(range(n)) * 2,
                                     "metric": np.linspace(0, -1, 2 * n)})
        self.engine, self.metric, self.status = "SimpleITK", "mattes", "converged"


@pytest.fixture
def vols() -> tuple[Volume, Volume]:
    rng = np.random.default_rng(0)
    a = Volume.from_spacing(rng.normal(size=(16, 12, 8)).astype(np.float32), (2.0, 2.0, 3.0))
    return a, a.with_array(np.roll(a.array, 2, axis=0))


def test_figures_build(vols: tuple[Volume, Volume]) -> None:
    a, b = vols
    assert isinstance(rviz.metric_curves({"x": _Result(5), "y": _Result(3)}), Figure)
    assert len(rviz.checkerboard(a, {"before": b, "after": a}).axes) == 2
    assert len(rviz.blend(a, {"before": b}).axes) == 1
    fig = rviz.scalar_maps(a, {"jac": a.with_array(np.ones(a.shape, np.float32))}, center=1.0)
    assert len(fig.axes) == 2  # the panel and its colour bar


def test_live_plot_records_and_stays_quiet_headless(monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MEDBENCH_HEADLESS", "1")
    live = rviz.LiveMetricPlot(every=1)
    for i in range(5):
        live(0, i, -0.1 * i)
    assert live.values == pytest.approx([0.0, -0.1, -0.2, -0.3, -0.4])
    assert not live.live and live._handle is None
    assert capsys.readouterr().out == ""


def test_fade_slider_is_a_widget_or_a_static_figure(vols: tuple[Volume, Volume],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = vols
    widget = rviz.fade_slider(a, b)
    assert type(widget).__name__ == "VBox"
    assert widget.children[0].value == 0.5
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # as if ipywidgets were not installed
    assert isinstance(rviz.fade_slider(a, b), Figure)
