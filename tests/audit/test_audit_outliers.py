"""detect_outliers: IQR rule and seeded IsolationForest, each flag explained; outlier_plot."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from medbench.audit import detect_outliers, outlier_plot
from medbench.errors import ConfigError


def _series_table(n: int = 12, seed: int = 0) -> pd.DataFrame:
    """n ordinary series as a summarize_series-like table: features spread evenly in narrow bands
    (no value is outside its IQR fences), in a seeded random order."""
    rng = np.random.default_rng(seed)

    def band(lo: float, hi: float) -> np.ndarray:
        return rng.permutation(np.linspace(lo, hi, n))

    return pd.DataFrame(
        {
            "series_key": [f"s{i}" for i in range(n)],
            "description": [f"series {i}" for i in range(n)],
            "n_slices": np.round(band(98, 103)),
            "slice_spacing": band(1.98, 2.02),
            "mean": band(36.0, 44.0),
            "std": band(290.0, 310.0),
        }
    )


def test_iqr_rule_flags_the_injected_series_and_names_the_feature() -> None:
    df = _series_table()
    df.loc[5, "slice_spacing"] = 5.0
    df.loc[9, "mean"] = -500.0
    out = detect_outliers(df)
    assert out.index.tolist() == df.index.tolist()
    assert set(out.index[out["iqr_outlier"]]) == {5, 9}
    assert out.loc[5, "iqr_reason"].startswith("slice_spacing 5 > Q3+1.5·IQR = ")
    assert out.loc[9, "iqr_reason"].startswith("mean -500 < Q1−1.5·IQR = ")
    fence = float(out.loc[5, "iqr_reason"].rsplit("= ", 1)[1])
    q1, q3 = df["slice_spacing"].quantile([0.25, 0.75])
    assert fence == pytest.approx(q3 + 1.5 * (q3 - q1), rel=1e-3)
    assert out.loc[5, "outlier"] and "slice_spacing" in out.loc[5, "explanation"]
    assert not out.loc[~out.index.isin([5, 9]), "iqr_outlier"].any()


def test_isolation_forest_is_seeded_and_explains_with_robust_z() -> None:
    df = _series_table(16)
    df.loc[3, ["slice_spacing", "std"]] = [6.0, 900.0]
    first = detect_outliers(df, random_state=0)
    again = detect_outliers(df, random_state=0)
    other = detect_outliers(df, random_state=1)
    pd.testing.assert_frame_equal(first, again)
    assert not np.allclose(first["iforest_score"], other["iforest_score"])
    assert first.loc[3, "iforest_outlier"]
    assert first.loc[3, "iforest_score"] == first["iforest_score"].min()
    reason = first.loc[3, "iforest_reason"]
    assert reason.startswith("IsolationForest score -") and "most deviating:" in reason
    assert "slice_spacing (robust z = +" in reason and "std (robust z = +" in reason


def test_features_and_small_tables() -> None:
    df = _series_table()
    with pytest.raises(ConfigError, match="no_such_feature"):
        detect_outliers(df, ["n_slices", "no_such_feature"])
    only = detect_outliers(df, ["n_slices"])
    assert "slice_spacing" not in only.columns
    few = detect_outliers(df.head(3))
    assert not few["outlier"].any()
    assert few["iqr_reason"].str.startswith("not scored: 3 series").all()


def test_outlier_plot_draws_every_series() -> None:
    df = _series_table()
    df.loc[2, "mean"] = 400.0
    out = detect_outliers(df)
    fig = outlier_plot(out)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert sum(len(c.get_offsets()) for c in ax.collections) == len(df)
    assert "mean" in (ax.get_xlabel(), ax.get_ylabel())
    flagged = out.loc[out["outlier"]].sort_values("iforest_score")
    assert out.loc[2, "outlier"]
    assert [t.get_text() for t in ax.texts] == flagged["description"].head(8).tolist()
