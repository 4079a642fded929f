"""The phantom generation benchmark at a tiny size (no timing assertions)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from medbench.bench import BENCHMARKS, run_benchmark
from medbench.errors import ConfigError


def test_phantom_benchmark_runs_and_writes_its_table(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    table = run_benchmark("phantom", out_dir=out, profiles=("smoke",), n_cases=1)
    assert "phantom" in BENCHMARKS
    assert table["method"].tolist() == ["reference", "projector build (once per grid)", "generate case",
                                        "write case (NIfTI, truth.json, DICOM)"]
    assert table.loc[0, "ratio"] == 1.0 and (table["median_s"] > 0).all()
    gen = table[table["method"] == "generate case"].iloc[0]
    assert gen["ratio"] == pytest.approx(gen["median_s"] / table.loc[0, "median_s"])
    assert gen["meets_target"] in (True, False)
    assert sorted(p.name for p in out.iterdir()) == ["results.csv", "results.json", "results.png"]
    assert len(pd.read_csv(out / "results.csv")) == 4
    assert json.loads((out / "results.json").read_text())["parameters"]["targets_s"] == {"smoke": 2.0, "full": 10.0}
    with pytest.raises(ConfigError, match="profiles"):
        run_benchmark("phantom", out_dir=out, profiles=("huge",))
