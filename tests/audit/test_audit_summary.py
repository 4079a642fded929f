"""summarize_series: geometry verdicts, sampled value statistics, undecodable pixels as rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from pydicom.encaps import encapsulate
from pydicom.uid import JPEGBaseline8Bit

from medbench.audit import scan, summarize_series
from medbench.audit.summary import COLUMNS
from tests.audit.audit_helpers import N_SLICES, SIZE, SPACING, truncate, write


def _by_folder(df, scan_df, folder: str):
    uid = scan_df.loc[scan_df["path"].str.contains(f"/{folder}/"), "series_uid"].iloc[0]
    rows = df[df["series_uid"] == uid]
    assert len(rows) == 1
    return rows.iloc[0]


def test_good_and_gapped_series_verdicts(mixed_tree: Path) -> None:
    found = scan(mixed_tree)
    scan_df = found.table
    df = summarize_series(found)
    assert list(df.columns) == list(COLUMNS)
    assert len(df) == 4  # good, gapped, broken, and the one-slice series inside scan.dcm/

    good = _by_folder(df, scan_df, "good")
    assert (good["status"], good["verdict"], good["problems"]) == ("valid", "valid", "")
    assert (good["n_files"], good["n_slices"], good["n_failed_files"]) == (N_SLICES, N_SLICES, 0)
    assert good["slice_spacing"] == np.float64(SPACING[2])
    assert (good["pixel_spacing_row"], good["pixel_spacing_col"]) == (SPACING[1], SPACING[0])
    # ramp volume: slice k = 10 k + i + j; sampled slices 0, 4, 7
    assert (good["pixel_status"], good["sampled_slices"]) == ("ok", 3)
    assert (good["value_min"], good["value_max"]) == (0.0, 70.0 + 2 * (SIZE - 1))
    assert good["value_range"] == good["value_max"] - good["value_min"]
    assert good["mean"] == np.mean([10 * k + (SIZE - 1) for k in (0, 4, 7)])

    gapped = _by_folder(df, scan_df, "gapped")
    assert (gapped["status"], gapped["verdict"]) == ("invalid", "missing slices")
    assert "1 slice missing" in gapped["problems"]

    broken = _by_folder(df, scan_df, "broken")
    assert broken["status"] == "invalid" and broken["n_failed_files"] == 1 and broken["n_files"] == N_SLICES - 1


def test_summary_from_a_folder_without_pixel_sampling(mixed_tree: Path) -> None:
    df = summarize_series(mixed_tree / "good", sample_pixels=False)
    assert len(df) == 1
    row = df.iloc[0]
    assert (row["status"], row["pixel_status"], row["sampled_slices"]) == ("valid", "not sampled", 0)
    assert np.isnan(row["mean"])


def test_undecodable_pixels_give_a_reason_not_a_crash(tmp_path: Path) -> None:
    paths = write(tmp_path / "jpeg", "jpeg")
    for path in paths:  # valid encapsulation, garbage JPEG stream: the scan passes, decoding fails
        ds = pydicom.dcmread(path)
        ds.PixelData = encapsulate([b"\xff\xd8\xff\xe0 not really a jpeg "])
        ds["PixelData"].VR = "OB"
        ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
        ds.save_as(path)
    row = summarize_series(tmp_path).iloc[0]
    assert row["status"] == "invalid" and row["verdict"] == "valid"
    assert row["pixel_status"].startswith("error: cannot decode") and "JPEG Baseline" in row["pixel_status"]
    assert np.isnan(row["value_min"])


def test_series_with_only_failed_files_still_has_a_row(tmp_path: Path) -> None:
    for path in write(tmp_path / "all_cut", "all_cut"):
        truncate(path, 10)
    df = summarize_series(tmp_path)
    assert len(df) == 1
    row = df.iloc[0]
    assert (row["status"], row["verdict"], row["n_files"], row["n_failed_files"]) == (
        "invalid", "no readable files", 0, N_SLICES,
    )  # fmt: skip
    assert f"all {N_SLICES} files failed the scan (truncated: {N_SLICES})" in row["problems"]
