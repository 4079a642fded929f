"""The benchmark harness and the audit throughput benchmark at a tiny size (no timing assertions)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from pydicom.uid import JPEG2000Lossless

from medbench.bench import BENCHMARKS, run_benchmark
from medbench.bench.audit_throughput import synthetic_tree
from medbench.bench.harness import environment, time_call, write_results
from medbench.errors import ConfigError


def test_audit_benchmark_runs_at_a_tiny_size_and_writes_its_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench"
    table = run_benchmark("audit", out_dir=out, n_files=20, image_sizes=(32,), slices_per_series=8,
                          repeat=1, warmup=0, cache_dir=tmp_path / "cache")
    methods = ["full read (dcmread + pixel_array)", "dcmread header loop (stop_before_pixels)", "scan_headers (medbench)"]
    assert table["method"].tolist() == methods * 2
    assert table["syntax"].tolist() == ["native"] * 3 + ["jpeg2000"] * 3
    assert (table["files"] == 20).all()
    assert table.loc[table["method"] == methods[0], "ratio"].tolist() == [1.0, 1.0]
    assert (table["files_per_s"] > 0).all() and (table["median_s"] >= table["min_s"]).all()
    assert table["meets_targets"].notna().sum() == 2
    assert sorted(p.name for p in out.iterdir()) == ["results.csv", "results.json", "results.png"]
    assert len(pd.read_csv(out / "results.csv")) == 6
    payload = json.loads((out / "results.json").read_text())
    assert payload["benchmark"] == "audit" and payload["parameters"]["n_files"] == 20
    assert payload["environment"]["versions"]["pydicom"] == pydicom.__version__
    assert (out / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = capsys.readouterr().out
    assert "scan_headers (medbench)" in printed and str(out) in printed
    encoded = sorted((tmp_path / "cache").glob("*jpeg2000*/*/*.dcm"))
    assert len(encoded) == 20
    assert pydicom.dcmread(encoded[0], stop_before_pixels=True).file_meta.TransferSyntaxUID == JPEG2000Lossless


def test_synthetic_tree_is_cached(tmp_path: Path) -> None:
    first = synthetic_tree(10, 8, "native", slices_per_series=4, cache_dir=tmp_path)
    stamp = {p: p.stat().st_mtime_ns for p in first.rglob("*.dcm")}
    assert len(stamp) == 10 and len({p.parent for p in stamp}) == 3  # 4 + 4 + 2 slices
    assert synthetic_tree(10, 8, "native", slices_per_series=4, cache_dir=tmp_path) == first
    assert {p: p.stat().st_mtime_ns for p in first.rglob("*.dcm")} == stamp
    with pytest.raises(ConfigError, match="positive"):
        synthetic_tree(0, 8, cache_dir=tmp_path)
    with pytest.raises(ConfigError, match="unknown pixel encoding 'png'"):
        synthetic_tree(4, 8, "png", cache_dir=tmp_path)
    with pytest.raises(ConfigError, match="JPEG 2000 trees need image_size >= 32"):
        synthetic_tree(4, 16, "jpeg2000", cache_dir=tmp_path)


def test_registry_and_unknown_names() -> None:
    assert "audit" in BENCHMARKS
    with pytest.raises(ConfigError, match="unknown benchmark 'nope'; available: audit, engine, inference, phantom, registration"):
        run_benchmark("nope")


def test_harness_timing_environment_and_results(tmp_path: Path) -> None:
    calls = []
    timing = time_call(lambda: calls.append(1), repeat=4, warmup=2)
    assert len(calls) == 6 and timing.repeat == 4
    assert timing.min_s <= timing.median_s
    with pytest.raises(ConfigError):
        time_call(lambda: None, repeat=0)
    env = environment()
    assert env["cpu"]["cpu_count"] >= 1 and env["versions"]["python"].count(".") == 2
    assert env["versions"]["numpy"] == np.__version__
    with pytest.raises(ConfigError, match="no 'ratio' column"):
        write_results("x", [{"method": "a"}], tmp_path / "x")
    out = write_results("demo", [{"method": "base", "ratio": 1.0}, {"method": "fast", "ratio": 3.0}], tmp_path / "d")
    assert pd.read_csv(out / "results.csv")["ratio"].tolist() == [1.0, 3.0]
