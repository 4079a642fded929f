"""The registration benchmark at a tiny size (no timing assertions)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medbench.bench import BENCHMARKS, run_benchmark
from medbench.errors import ConfigError


@pytest.mark.slow
def test_registration_benchmark_runs_and_writes_its_table(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    table = run_benchmark("registration", out_dir=out, n_cases=1, image_size=(32, 32, 16),
                          spacing=(12.5, 12.5, 16.0), iterations=20, repeats=2, engines=False)
    assert "registration" in BENCHMARKS
    assert table["method"].tolist() == ["single resolution", "3-level pyramid", "3-level pyramid, capped"]
    single = table[table["method"] == "single resolution"].iloc[0]
    pyramid = table[table["method"] == "3-level pyramid"].iloc[0]
    capped = table[table["method"] == "3-level pyramid, capped"].iloc[0]
    assert single["ratio"] == 1.0
    assert pyramid["ratio"] == pytest.approx(single["time_s"] / pyramid["time_s"])
    assert capped["iterations"] <= 50 + 30 + 10  # the capped schedule never exceeds its caps
    assert (table["tre_mm"] >= 0).all()
    assert sorted(p.name for p in out.iterdir()) == ["results.csv", "results.json", "results.png"]
    payload = json.loads((out / "results.json").read_text())
    assert payload["parameters"]["pyramid_target_met"] in (True, False)
    assert payload["parameters"]["repeats"] == 2 and payload["parameters"]["finest_cap"] == 10
    with pytest.raises(ConfigError, match="n_cases"):
        run_benchmark("registration", out_dir=out, n_cases=0)
