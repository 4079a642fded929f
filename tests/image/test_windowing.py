from __future__ import annotations

import numpy as np
import pytest

from medbench.errors import ConfigError, DataError
from medbench.image.windowing import (
    WINDOW_PRESETS,
    apply_window,
    percentile_window,
    resolve_window,
    window_label,
    window_stats,
)
from medbench.metrics import window_coverage_table as window_stats_table


def test_presets_are_the_documented_values() -> None:
    assert WINDOW_PRESETS == {
        "soft_tissue": (40, 400), "lung": (-600, 1500), "bone": (400, 1800),
        "brain": (40, 80), "liver": (60, 160), "mediastinum": (50, 350),
    }


def test_apply_window_exact_at_edges_and_centre() -> None:
    values = np.array([-1000.0, -160.0, -60.0, 40.0, 140.0, 240.0, 3000.0])
    out = apply_window(values, 40, 400)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [0.0, 0.0, 0.25, 0.5, 0.75, 1.0, 1.0])


def test_apply_window_keeps_nan_and_rejects_bad_width() -> None:
    assert np.isnan(apply_window(np.array([np.nan]), 0, 10)[0])
    with pytest.raises(ConfigError, match="width > 0"):
        apply_window(np.zeros(3), 0, 0)


def test_resolve_window_names_pairs_and_errors() -> None:
    assert resolve_window("Lung") == (-600.0, 1500.0)
    assert resolve_window((10, 20)) == (10.0, 20.0)
    with pytest.raises(ConfigError) as err:
        resolve_window("abdomen")
    assert "abdomen" in str(err.value)
    for name in WINDOW_PRESETS:
        assert name in str(err.value)
    with pytest.raises(ConfigError, match="pair"):
        resolve_window((1, 2, 3))
    with pytest.raises(ConfigError, match="width > 0"):
        resolve_window((40, -5))
    assert window_label((40, 400)) == "C40 W400"


def test_window_stats_counts_edges_inside_and_ignores_nan() -> None:
    values = np.array([-500.0, -160.0, 0.0, 240.0, 241.0, 1000.0, np.nan])
    stats = window_stats(values, 40, 400)
    assert stats == pytest.approx((1 / 6, 3 / 6, 2 / 6))
    with pytest.raises(DataError):
        window_stats(np.array([np.nan]), 40, 400)


def test_window_stats_sum_to_one_and_agree_with_apply_window() -> None:
    values = np.random.default_rng(0).normal(0, 500, size=(30, 30))
    for center, width in WINDOW_PRESETS.values():
        stats = window_stats(values, center, width)
        assert sum(stats) == pytest.approx(1.0)
        shown = apply_window(values, center, width)
        assert stats.below == pytest.approx(np.mean(shown == 0.0))  # no value sits exactly on an edge
        assert stats.above == pytest.approx(np.mean(shown == 1.0))


def test_window_stats_table_rows_match_window_stats() -> None:
    values = np.linspace(-1000, 1000, 101)
    table = window_stats_table(values, ["lung", (0, 100)])
    assert list(table.index) == ["lung", "C0 W100"]
    assert table.loc["C0 W100", "inside"] == pytest.approx(window_stats(values, 0, 100).inside)
    assert table[["below", "inside", "above"]].sum(axis=1).to_numpy() == pytest.approx([1.0, 1.0])


def test_percentile_window() -> None:
    center, width = percentile_window(np.arange(101.0))
    assert (center, width) == pytest.approx((50.0, 98.0))
    assert percentile_window(np.full((4, 4), 7.0)) == (7.0, 1.0)
    with pytest.raises(ConfigError):
        percentile_window(np.arange(5.0), 50, 10)
