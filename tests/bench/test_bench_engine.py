"""The ``engine`` benchmark at a tiny size, so it cannot rot (the real table: reports/baselines/bench-engine.csv)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medbench.bench import run_benchmark


@pytest.mark.slow
def test_engine_benchmark_runs_and_writes_its_table(tmp_path: Path) -> None:
    table = run_benchmark("engine", out_dir=tmp_path / "out", budget_s=2.0, dice_target=0.05, n_cases=4,
                          cache_dir=tmp_path / "cache")
    assert list(table["method"]) == ["plain MONAI loop", "medbench engine"]
    assert (table["samples"] > 0).all() and (table["samples_per_s"] > 0).all()
    assert table.loc[0, "ratio"] == pytest.approx(1.0)  # the baseline is the reference
    payload = json.loads((tmp_path / "out" / "results.json").read_text())
    assert payload["parameters"]["budget_s"] == 2.0 and "versions" in payload["environment"]
