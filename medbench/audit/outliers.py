"""Flag unusual series in a per-series table, and say why.

Two complementary methods run on the numeric per-series features (slice
count, spacing, value range, intensity statistics, ...):

* the **IQR rule**, per feature: a value above ``Q3 + 1.5·IQR`` or below
  ``Q1 − 1.5·IQR`` of that feature across series is flagged, and the text
  names the feature, the value and the fence it crossed;
* scikit-learn's **IsolationForest** on all features together (seeded, so the
  same table gives the same flags): it catches combinations the per-feature
  rule misses. Its text gives the score (``decision_function``: negative =
  outlier) and the features that deviate most by robust z-score
  ``(value − median) / (1.4826·MAD)``.

Missing feature values are ignored by the IQR rule and imputed with the
feature's median for IsolationForest; series without any feature value (no
image) are not scored. With fewer than :data:`MIN_SERIES` scored series
neither method flags anything and the text says so.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.ensemble import IsolationForest

from medbench.errors import ConfigError
from medbench.viz.figures import new_figure

#: Per-series features used when none are given (those present in the table).
DEFAULT_FEATURES: tuple[str, ...] = (
    "n_slices",
    "slice_spacing",
    "pixel_spacing_row",
    "pixel_spacing_col",
    "value_min",
    "value_max",
    "value_range",
    "mean",
    "std",
)

#: Below this many scored series, quartiles and isolation depths mean nothing.
MIN_SERIES = 4

#: At most this many flagged points get a text label (the most anomalous by IsolationForest score).
MAX_LABELS = 8

#: IQR multiplier of the fences.
IQR_K = 1.5

#: Fence crossings smaller than this fraction of the fence's magnitude are float noise, not outliers.
_REL_TOL = 1e-6

#: Columns copied from the series table to identify each row, when present.
_ID_COLUMNS = ("series_key", "series_uid", "modality", "description")


def _feature_columns(df: pd.DataFrame, features: Sequence[str] | None) -> list[str]:
    if features is None:
        return [c for c in DEFAULT_FEATURES if c in df.columns and pd.to_numeric(df[c], errors="coerce").notna().any()]
    missing = [c for c in features if c not in df.columns]
    if missing:
        raise ConfigError(f"outlier features {missing} are not columns of the series table ({list(df.columns)})")
    return list(features)


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def iqr_flags(values: pd.DataFrame, k: float = IQR_K) -> tuple[pd.Series, pd.Series]:
    """Per row: whether any feature is outside its IQR fences, and the explanation text."""
    reasons: list[list[str]] = [[] for _ in range(len(values))]
    for column in values.columns:
        col = values[column]
        present = col.dropna()
        if present.empty:
            continue
        q1, q3 = float(present.quantile(0.25)), float(present.quantile(0.75))
        iqr = q3 - q1
        hi, lo = q3 + k * iqr, q1 - k * iqr
        for pos, v in enumerate(col.to_numpy()):
            if np.isnan(v):
                continue
            if v > hi + _REL_TOL * max(abs(hi), 1.0):
                reasons[pos].append(f"{column} {_fmt(v)} > Q3+{k:g}·IQR = {_fmt(hi)}")
            elif v < lo - _REL_TOL * max(abs(lo), 1.0):
                reasons[pos].append(f"{column} {_fmt(v)} < Q1−{k:g}·IQR = {_fmt(lo)}")
    text = pd.Series(["; ".join(r) for r in reasons], index=values.index)
    return text != "", text


def robust_z(values: pd.DataFrame) -> pd.DataFrame:
    """``(value − median) / scale`` per feature; scale = 1.4826·MAD, else IQR/1.349, else mean |deviation|.

    When every other value equals the median (scale 0), a differing value gets
    ±inf: it is as unusual as a value can be.
    """
    out = {}
    for column in values.columns:
        col = values[column].astype(float)
        median = col.median()
        dev = col - median
        scale = 1.4826 * dev.abs().median()
        if not scale > 0:
            scale = (col.quantile(0.75) - col.quantile(0.25)) / 1.349
        if not scale > 0:
            scale = dev.abs().mean() * 1.2533
        if scale > 0:
            out[column] = dev / scale
        else:
            out[column] = dev.where(dev == 0, np.sign(dev) * np.inf)
    return pd.DataFrame(out, index=values.index)


def _top_deviations(z: pd.Series, n: int = 2) -> str:
    ranked = z.dropna().abs().sort_values(ascending=False)
    parts = [f"{name} (robust z = {z[name]:+.1f})" for name in ranked.index[:n] if ranked[name] > 0]
    return ", ".join(parts) if parts else "no single feature stands out"


def detect_outliers(
    series_df: pd.DataFrame,
    features: Sequence[str] | None = None,
    *,
    contamination: float | str = "auto",
    random_state: int = 0,
    n_estimators: int = 200,
) -> pd.DataFrame:
    """Outlier flags and explanations for every row of a per-series table.

    ``features`` defaults to the :data:`DEFAULT_FEATURES` present with at
    least one value. Returns one row per input row (same index) with the
    identifying columns, the features, ``iqr_outlier`` / ``iqr_reason``,
    ``iforest_score`` / ``iforest_outlier`` / ``iforest_reason``, and
    ``outlier`` (either method) with ``explanation`` (both texts).
    ``contamination`` and ``random_state`` go to
    :class:`sklearn.ensemble.IsolationForest`; the same inputs give the same output.
    """
    columns = _feature_columns(series_df, features)
    values = series_df[columns].apply(pd.to_numeric, errors="coerce").astype(float)
    out = series_df[[c for c in _ID_COLUMNS if c in series_df.columns]].copy()
    out[columns] = values
    out["iqr_outlier"] = False
    out["iqr_reason"] = ""
    out["iforest_score"] = np.nan
    out["iforest_outlier"] = False
    out["iforest_reason"] = ""
    scored = values.notna().any(axis=1) if columns else pd.Series(False, index=values.index)
    n = int(scored.sum())
    if n < MIN_SERIES:
        note = f"not scored: {n} series with features, outlier detection needs at least {MIN_SERIES}"
        out["iqr_reason"] = note
        out["iforest_reason"] = note
    else:
        sub = values[scored]
        flags, text = iqr_flags(sub)
        out.loc[sub.index, "iqr_outlier"] = flags
        out.loc[sub.index, "iqr_reason"] = text
        forest = IsolationForest(n_estimators=n_estimators, contamination=contamination, random_state=random_state)
        x = sub.fillna(sub.median()).fillna(0.0).to_numpy()
        forest.fit(x)
        score = forest.decision_function(x)
        z = robust_z(sub)
        out.loc[sub.index, "iforest_score"] = score
        out.loc[sub.index, "iforest_outlier"] = score < 0
        out.loc[sub.index, "iforest_reason"] = [
            f"IsolationForest score {s:+.3f} < 0; most deviating: {_top_deviations(z.loc[i])}" if s < 0 else ""
            for i, s in zip(sub.index, score, strict=True)
        ]
    out["outlier"] = out["iqr_outlier"] | out["iforest_outlier"]
    out["explanation"] = [
        " | ".join(t for t in (a, b) if t) if flag else ""
        for flag, a, b in zip(out["outlier"], out["iqr_reason"], out["iforest_reason"], strict=True)
    ]
    return out


def _label(row: pd.Series) -> str:
    for column in ("description", "series_key", "series_uid"):
        value = row.get(column)
        if isinstance(value, str) and value:
            return value if len(value) <= 40 else "…" + value[-39:]
    return str(row.name)


def _symlog_threshold(values: pd.Series) -> float | None:
    """A symlog linear threshold when the values span far more than their bulk (else None: linear axis)."""
    present = pd.to_numeric(values, errors="coerce").dropna()
    if present.empty:
        return None
    iqr = float(present.quantile(0.75) - present.quantile(0.25))
    span = float(present.max() - present.min())
    if iqr <= 0 or span <= 100 * iqr:
        return None
    threshold = max(float(present.abs().quantile(0.5)), iqr, 1e-12)
    # Symlog is linear below the threshold: when every value is within ten times it, the axis would be
    # effectively linear but lose its tick labels, so keep a plain linear axis.
    return threshold if float(present.abs().max()) > 10 * threshold else None


def outlier_plot(outliers_df: pd.DataFrame, x: str | None = None, y: str | None = None) -> Figure:
    """Scatter of two features coloured by which method flagged each series.

    ``x`` / ``y`` default to the two features with the largest spread in
    robust z-score, so the plot shows where the flagged series differ. The
    :data:`MAX_LABELS` most anomalous flagged points are labelled; an axis
    whose values span over 100 times their interquartile range is drawn
    symlog so the bulk stays visible next to extreme series.
    """
    features = [
        c for c in outliers_df.columns
        if c not in _ID_COLUMNS and c in outliers_df.select_dtypes("number").columns and c != "iforest_score"
    ]  # fmt: skip
    if x is None or y is None:
        spread = robust_z(outliers_df[features]).replace([np.inf, -np.inf], np.nan).abs().max().fillna(0)
        ranked = [c for c in spread.sort_values(ascending=False).index if c not in (x, y)]
        x = x or (ranked.pop(0) if ranked else None)
        y = y or (ranked.pop(0) if ranked else x)
    fig = new_figure((8.6, 5.0))
    ax = fig.add_subplot()
    if x is None or outliers_df.empty:
        ax.text(0.5, 0.5, "no numeric series features to plot", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    groups = {
        "normal": ~outliers_df["iqr_outlier"] & ~outliers_df["iforest_outlier"],
        "IQR rule": outliers_df["iqr_outlier"] & ~outliers_df["iforest_outlier"],
        "IsolationForest": ~outliers_df["iqr_outlier"] & outliers_df["iforest_outlier"],
        "both": outliers_df["iqr_outlier"] & outliers_df["iforest_outlier"],
    }
    colours = {"normal": "0.45", "IQR rule": "tab:orange", "IsolationForest": "tab:purple", "both": "tab:red"}
    # Flagged series are drawn first and larger, normal ones last and smaller, so a normal series that sits
    # on the same spot as a flagged one still shows (a grey dot inside a coloured disc).
    for name in ("IQR rule", "IsolationForest", "both", "normal"):
        part = outliers_df[groups[name]]
        if not part.empty:
            normal = name == "normal"
            ax.scatter(part[x], part[y], c=colours[name], label=f"{name} ({len(part)})", s=22 if normal else 90,
                       edgecolors="white" if normal else "k", linewidths=0.6, zorder=3 if normal else 2,
                       alpha=1.0 if normal else 0.85)
    flagged = outliers_df[outliers_df["outlier"]].sort_values("iforest_score").head(MAX_LABELS)
    flagged = flagged[flagged[x].notna() & flagged[y].notna()]
    # Labels in a column right of the axes, ordered like their points from top to bottom, each with a
    # leader line: they never overlap one another, the points or the axes' edge.
    slots = dict(zip(flagged.sort_values(y, ascending=False).index, np.linspace(0.95, 0.05, max(len(flagged), 2))))
    for index, row in flagged.iterrows():  # most anomalous first
        ax.annotate(_label(row), (row[x], row[y]), xytext=(1.03, slots[index]), textcoords="axes fraction", fontsize=8,
                    va="center", annotation_clip=False,
                    arrowprops={"arrowstyle": "-", "color": "0.5", "linewidth": 0.6, "shrinkA": 2, "shrinkB": 5})
    ax.set_xlabel(x)
    ax.set_ylabel(str(y))
    for axis, column in (("x", x), ("y", y)):
        threshold = _symlog_threshold(outliers_df[column])
        if threshold is not None:
            getattr(ax, f"set_{axis}scale")("symlog", linthresh=threshold)
    ax.margins(0.08)
    ax.set_title(f"Series outliers: {int(outliers_df['outlier'].sum())} of {len(outliers_df)} flagged "
                 f"(the two features that deviate most)", fontsize="medium")
    fig.legend(loc="outside lower center", ncols=4, fontsize=8)
    ax.grid(alpha=0.3)
    return fig
    groups = {
        "normal": ~outliers_df["iqr_outlier"] & ~outliers_df["iforest_outlier"],
        "IQR rule": outliers_df["iqr_outlier"] & ~outliers_df["iforest_outlier"],
        "IsolationForest": ~outliers_df["iqr_outlier"] & outliers_df["iforest_outlier"],
        "both": outliers_df["iqr_outlier"] & outliers_df["iforest_outlier"],
    }
    colours = {"normal": "0.6", "IQR rule": "tab:orange", "IsolationForest": "tab:purple", "both": "tab:red"}
    for name, mask in groups.items():
        part = outliers_df[mask]
        if not part.empty:
            ax.scatter(part[x], part[y], c=colours[name], label=f"{name} ({len(part)})", s=36, edgecolors="k", linewidths=0.4)
    flagged = outliers_df[outliers_df["outlier"]].sort_values("iforest_score")
    for _, row in flagged.head(MAX_LABELS).iterrows():
        if pd.notna(row[x]) and pd.notna(row[y]):
            ax.annotate(_label(row), (row[x], row[y]), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xlabel(x)
    ax.set_ylabel(str(y))
    for axis, column in (("x", x), ("y", y)):
        threshold = _symlog_threshold(outliers_df[column])
        if threshold is not None:
            getattr(ax, f"set_{axis}scale")("symlog", linthresh=threshold)
    ax.set_title(f"Series outliers: {int(outliers_df['outlier'].sum())} of {len(outliers_df)} flagged")
    ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3)
    return fig
