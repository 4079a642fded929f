"""The planted-defect tree: each defect is really there, and verify_findings can tell found from missed."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from medbench.audit.defects import EXPECTED, build_defect_tree, verify_findings
from medbench.audit.report import run_audit
from medbench.data.phantom import PhantomSpec, load_cohort
from medbench.io.dicom import load_all_series


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    base = tmp_path_factory.mktemp("defects")
    cohort = load_cohort(PhantomSpec(n_cases=2, shape=(24, 24, 10), spacing=(2.0, 2.0, 4.0)), cache_dir=base / "c")
    return base / "tree", build_defect_tree(cohort, base / "tree")


def test_tree_plants_every_defect_once(tree: tuple[Path, pd.DataFrame]) -> None:
    root, planted = tree
    assert set(planted["defect"]) == set(EXPECTED)
    assert len(list((root / "missing_slice").iterdir())) == 9
    assert len(list((root / "duplicate_slice").iterdir())) == 11
    assert len(list((root / "two_series").iterdir())) == 20
    with pytest.raises(FileExistsError):
        build_defect_tree(load_cohort(PhantomSpec(n_cases=1, shape=(24, 24, 10)), cache_dir=root.parent / "c"), root)


def test_audit_detects_all_planted_defects(tree: tuple[Path, pd.DataFrame], tmp_path: Path) -> None:
    root, planted = tree
    result = run_audit(root, tmp_path / "audit")
    findings = verify_findings(planted, root, result.files_df, result.series_df)
    assert findings["detected"].all(), findings[~findings["detected"]].to_dict("records")
    # the check can fail: claim the damaged series were clean
    fake = planted.assign(defect="none")
    assert not verify_findings(fake, root, result.files_df, result.series_df)["detected"].all()
    assert result.counts["failed"] == {"not_dicom": 1, "truncated": 1}


def test_load_all_series_refuses_bad_geometry_with_reasons(tree: tuple[Path, pd.DataFrame]) -> None:
    root, _ = tree
    volumes, table = load_all_series(root)
    refused = table[table["status"] == "refused"]
    assert len(refused) == 3 and refused["message"].str.contains("missing|duplicate|uneven").all()
    assert len(volumes) == 4 and all(v.shape == (24, 24, 10) for v in volumes.values())
    volumes, table = load_all_series(root, resample=True)
    assert set(table["status"]) == {"loaded", "resampled", "refused"}  # duplicates are never resampled away
