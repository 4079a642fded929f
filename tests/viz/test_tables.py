"""viz.table: full text (no 50-character cut), wrapped cells, paths relative to a folder."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from medbench.viz import table


def test_long_text_is_kept_whole_and_wraps(tmp_path: Path) -> None:
    long_path = tmp_path / "reports" / "01_data_audit" / "a-run" / "dicom_tree" / "broken" / "truncated.dcm"
    error = "truncated: pixel data declares 8192 bytes but only 3403 remain in the file " * 2
    df = pd.DataFrame({"path": [str(long_path)], "error": [error], "size_bytes": [4789]})
    assert "remain in the file" not in df._repr_html_()  # what a plain DataFrame shows: the end is cut
    html = table(df).to_html()
    assert str(long_path) in html and error.strip() in html
    assert "overflow-wrap: anywhere" in html and "max-width: 20.0em" in html and "white-space: normal" in html
    assert "text-align: left" in html and "text-align: right" in html


def test_paths_relative_to_a_folder(tmp_path: Path) -> None:
    root = tmp_path / "dicom_tree"
    df = pd.DataFrame({"path": [str(root / "case000" / "IM0001.dcm"), "/elsewhere/x.dcm"], "n": [1, 2]})
    html = table(df, relative_to=root).to_html()
    assert ">case000/IM0001.dcm<" in html and ">/elsewhere/x.dcm<" in html
    assert "path relative to dicom_tree/" in html
    assert df["path"].iloc[0].startswith(str(root))  # the data itself is not changed
