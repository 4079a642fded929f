"""The 01_data_audit recipe: its schema and its checked metrics, with known answers."""

from __future__ import annotations

import pandas as pd
import pytest

from medbench.errors import ConfigError
from medbench.recipes import data_audit


def _counts(found: int, readable: int, failed: dict[str, int], valid: int, invalid: int) -> dict:
    return {"files_found": found, "readable": readable, "failed": failed, "series_valid": valid,
            "series_invalid": invalid}


def test_checked_metrics_known_answer() -> None:
    findings = pd.DataFrame({"defect": ["a", "b", "c"], "detected": [True, True, False]})
    leaks = pd.DataFrame({"file": ["x"], "value": ["SMITH"]})
    m = data_audit.checked_metrics(
        _counts(10, 8, {"truncated": 1, "not_dicom": 1}, 3, 2), findings, {"written": 7, "quarantined": 1}, leaks,
        samples_counts=_counts(5, 5, {}, 1, 0),
    )
    assert m == {
        "phantom_files_found": 10, "phantom_files_readable": 8, "phantom_failed_not_dicom": 1,
        "phantom_failed_truncated": 1, "phantom_series_valid": 3, "phantom_series_invalid": 2,
        "samples_files_found": 5, "samples_files_readable": 5, "samples_series_valid": 1, "samples_series_invalid": 0,
        "defects_planted": 3, "defects_detected": 2, "deid_written": 7, "deid_quarantined": 1, "deid_leak_hits": 1,
    }


def test_every_checked_key_is_documented() -> None:
    findings = pd.DataFrame({"defect": ["a"], "detected": [True]})
    m = data_audit.checked_metrics(_counts(1, 1, {"truncated": 0}, 1, 0), findings, {"written": 1}, pd.DataFrame(),
                                   pacs_counts=_counts(2, 2, {}, 1, 0))
    documented = " ".join(data_audit.CHECKED)
    for key in m:
        stem = key.split("_", 1)[1] if key.startswith(("phantom_", "samples_", "pacs_")) else key
        assert stem.split("_")[0] in documented, key


def test_dicomweb_url_must_be_http() -> None:
    with pytest.raises(ConfigError, match=r"'audit.dicomweb_url' \(audit_dicomweb_url in the parameters cell\)"):
        data_audit.Params.validate_values({"audit_dicomweb_url": "ftp://x"})


def test_split_series_and_mosaic_metrics_known_answer() -> None:
    findings = pd.DataFrame({"defect": ["a"], "detected": [True]})
    counts = {**_counts(4, 4, {}, 3, 0), "series_split": 2}
    m = data_audit.checked_metrics(counts, findings, {"written": 4}, pd.DataFrame(), mosaic_slices=48)
    assert (m["phantom_series_split"], m["mosaic_slices"]) == (2, 48)
    assert "mosaic_slices" not in data_audit.checked_metrics(counts, findings, {}, pd.DataFrame())
    assert "phantom_series_split" not in data_audit.checked_metrics(_counts(1, 1, {}, 1, 0), findings, {}, pd.DataFrame())
    documented = " ".join(data_audit.CHECKED)
    assert "_series_split" in documented and "mosaic_slices" in documented


def test_siemens_mosaic_sample_unpacks_to_48_slices(tmp_path) -> None:
    from medbench.io.dicom import load_series

    path = data_audit.siemens_mosaic(tmp_path / "mosaic")
    assert path.parent == tmp_path / "mosaic" and path.stat().st_size > 896 * 896 * 2  # header + tiled pixels
    assert load_series(path).shape == (128, 128, 48)
