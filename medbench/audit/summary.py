"""One row per series: grouping, geometry verdict, and sampled pixel statistics.

:func:`summarize_series` builds on :mod:`medbench.io.dicom`: the headers a
scan already parsed (:class:`~medbench.audit.scan.Scan`; no file is read again)
are grouped with :func:`~medbench.io.dicom.group_series`
(which splits series that cannot form one volume and says why), each series'
geometry is judged by :func:`~medbench.io.dicom.check_geometry`, and — unless
``sample_pixels=False`` — the first, middle and last slice (or frame) are
decoded with :func:`~medbench.io.dicom.read_pixels` for the value range and
intensity statistics in physical units (HU for CT). A series whose pixels do
not decode gets its reason in ``pixel_status`` instead of stopping the
summary. Series seen only in files that failed the scan get a row too, with
``status`` ``"invalid"`` and the count of failed files.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np
import pandas as pd

from medbench.audit.scan import Scan, scan
from medbench.io.dicom import Series, check_geometry, group_series
from medbench.io.dicom.headers import printable
from medbench.io.dicom.pixels import read_frames

#: Columns of the series table, in order.
COLUMNS: tuple[str, ...] = (
    "series_key",
    "study_uid",
    "series_uid",
    "modality",
    "description",
    "series_number",
    "status",
    "n_files",
    "n_failed_files",
    "split_reason",
    "verdict",
    "problems",
    "n_slices",
    "rows",
    "columns",
    "pixel_spacing_row",
    "pixel_spacing_col",
    "slice_spacing",
    "tilt_degrees",
    "transfer_syntax",
    "pixel_status",
    "sampled_slices",
    "value_min",
    "value_max",
    "value_range",
    "mean",
    "std",
    "p01",
    "p50",
    "p99",
)

_STAT_COLUMNS = ("value_min", "value_max", "value_range", "mean", "std", "p01", "p50", "p99")


def _sample_indices(n: int) -> list[int]:
    """First, middle and last of ``n`` items (fewer when ``n`` < 3)."""
    return sorted({0, n // 2, n - 1}) if n > 0 else []


def _sampled_values(series: Series) -> tuple[np.ndarray, int]:
    """Physical values of the first, middle and last slice or frame (MOSAIC tiles too), and how many were read."""
    if len(series.files) == 1 and series.files[0].n_frames > 1:
        pixels = read_frames(series.files[0].read())
        frames = [pixels[i] for i in _sample_indices(pixels.shape[0])]
    else:
        frames = [read_frames(series.files[i].read())[0] for i in _sample_indices(len(series.files))]
    values = np.concatenate([np.asarray(f, dtype=np.float64).ravel() for f in frames])
    return values[np.isfinite(values)], len(frames)


def pixel_stats(series: Series) -> dict[str, Any]:
    """``pixel_status`` ("ok" or the reason), ``sampled_slices`` and the value statistics of a series."""
    out: dict[str, Any] = dict.fromkeys(_STAT_COLUMNS, np.nan)
    try:
        values, n_read = _sampled_values(series)
    except Exception as exc:  # decoders raise many types; the summary records the reason and carries on
        reason = str(exc) if str(exc) else type(exc).__name__
        return {**out, "pixel_status": printable(f"error: {reason}"), "sampled_slices": 0}
    if values.size == 0:
        return {**out, "pixel_status": "error: no finite pixel values", "sampled_slices": n_read}
    p01, p50, p99 = np.percentile(values, [1, 50, 99])
    lo, hi = float(values.min()), float(values.max())
    out.update(
        value_min=lo,
        value_max=hi,
        value_range=hi - lo,
        mean=float(values.mean()),
        std=float(values.std()),
        p01=float(p01),
        p50=float(p50),
        p99=float(p99),
    )
    return {**out, "pixel_status": "ok", "sampled_slices": n_read}


def _geometry(series: Series) -> dict[str, Any]:
    try:
        report = check_geometry(series)
    except Exception as exc:  # a header the geometry code chokes on is a finding, not a crash
        return {"verdict": "geometry check failed", "problems": printable(f"{type(exc).__name__}: {exc}"),
                "geometry_ok": False}
    spacing = report.pixel_spacing or (None, None)
    return {
        "verdict": report.verdict,
        "problems": printable(" | ".join(report.problems)),
        "geometry_ok": report.ok,
        "n_slices": report.n_slices,
        "pixel_spacing_row": spacing[0],
        "pixel_spacing_col": spacing[1],
        "slice_spacing": report.slice_spacing,
        "tilt_degrees": report.tilt_degrees,
    }


def _series_row(series: Series, n_failed: int, sample_pixels: bool) -> dict[str, Any]:
    first = series.files[0]
    row: dict[str, Any] = {
        "series_key": printable(series.key),
        "study_uid": series.study_uid,
        "series_uid": series.series_uid,
        "modality": series.modality,
        "description": series.description,
        "series_number": series.series_number,
        "n_files": series.n_files,
        "n_failed_files": n_failed,
        "split_reason": printable(series.split_reason or ""),
        "rows": first.dataset.get("Rows"),
        "columns": first.dataset.get("Columns"),
        "transfer_syntax": first.transfer_syntax,
    }
    if not series.is_image:
        return {**row, "status": "not an image", "verdict": "not an image", "pixel_status": "not an image"}
    geometry = _geometry(series)
    row.update({k: v for k, v in geometry.items() if k != "geometry_ok"})
    pixels = pixel_stats(series) if sample_pixels else {"pixel_status": "not sampled", "sampled_slices": 0}
    row.update(pixels)
    good = geometry["geometry_ok"] and n_failed == 0 and not str(pixels["pixel_status"]).startswith("error")
    row["status"] = "valid" if good else "invalid"
    return row


def _failed_only_rows(scan_df: pd.DataFrame, seen: set[str]) -> list[dict[str, Any]]:
    """A row per SeriesInstanceUID found only in failed files (e.g. every slice truncated)."""
    failed = scan_df[~scan_df["readable"] & scan_df["series_uid"].notna()]
    rows = []
    for uid, group in failed.groupby("series_uid", sort=True):
        if uid in seen:
            continue
        kinds = ", ".join(f"{k}: {n}" for k, n in group["error_kind"].value_counts().sort_index().items())
        rows.append(
            {
                "series_key": uid,
                "study_uid": group["study_uid"].iloc[0],
                "series_uid": uid,
                "modality": group["modality"].iloc[0],
                "description": group["series_description"].iloc[0],
                "status": "invalid",
                "n_files": 0,
                "n_failed_files": len(group),
                "verdict": "no readable files",
                "problems": f"all {len(group)} files failed the scan ({kinds})",
                "pixel_status": "not read",
            }
        )
    return rows


def summarize_series(source: Scan | str | os.PathLike[str], *, sample_pixels: bool = True) -> pd.DataFrame:
    """One row per series of a header scan (a :class:`~medbench.audit.scan.Scan`) or of a folder.

    Columns are :data:`COLUMNS`. ``status`` is ``"valid"`` (geometry valid, no
    failed files, pixels decode), ``"invalid"`` or ``"not an image"``;
    ``verdict`` / ``problems`` come from
    :func:`~medbench.io.dicom.check_geometry`; ``n_failed_files`` counts
    files of the same SeriesInstanceUID that failed the scan (shared by the
    parts of a split series). With ``sample_pixels`` the first, middle and
    last slice are decoded for ``value_*``, ``mean``, ``std`` and
    percentiles ``p01`` / ``p50`` / ``p99`` in physical units. The series are
    grouped from the headers the scan parsed: no header is read twice.
    """
    if isinstance(source, pd.DataFrame):
        raise TypeError(
            "summarize_series needs the Scan (medbench.audit.scan(...)), which holds the parsed headers, "
            "not only its table"
        )
    found = source if isinstance(source, Scan) else scan(source)
    scan_df = found.table
    failed_per_uid = scan_df[~scan_df["readable"]].groupby("series_uid").size().to_dict()
    series = group_series(found.discovery.files)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # decoder and geometry warnings; problems land in the row
        rows = [_series_row(s, int(failed_per_uid.get(s.series_uid, 0)), sample_pixels) for s in series]
    rows += _failed_only_rows(scan_df, {s.series_uid for s in series})
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    for column in ("series_number", "n_files", "n_failed_files", "n_slices", "rows", "columns", "sampled_slices"):
        df[column] = pd.to_numeric(df[column], errors="coerce").astype("Int64")
    return df
