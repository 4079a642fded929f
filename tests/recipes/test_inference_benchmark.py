"""The 07_inference_benchmark recipe: schema, profiles, QUICK, tables and checked values with known answers."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from medbench import recipes
from medbench.bench import backends as bk
from medbench.errors import ConfigError
from medbench.recipes import inference_benchmark as ib


def test_defaults_profiles_and_quick_validate() -> None:
    cfg = ib.Params()
    assert cfg.models == ["unet", "unetr"] and cfg.bench.backends == "all"
    seg = ib.segmentation_params(cfg)
    assert seg.data == cfg.data and seg.train_for("unet").epochs == 40 and seg.train_for("unetr").epochs == 10
    assert recipes.NOTEBOOKS["07_inference_benchmark"] == "medbench.recipes.inference_benchmark"
    full = recipes.resolve("07_inference_benchmark", "full")
    assert isinstance(full, ib.Params) and full.data.patch == [96, 96, 96] and full.model.levels == 5
    quick = ib.Params.validate_values(ib.QUICK)
    assert quick.models == ["unet"] and bk.names(quick.bench.backends) == ["eager_fp32", "torchscript"]


def test_bad_parameters_fail_loudly() -> None:
    with pytest.raises(ConfigError, match="unknown backend"):
        ib.Params.validate_values({"bench_backends": "eager_fp32,openvino_fp64"})
    with pytest.raises(ConfigError, match="multiples of 16"):
        ib.Params.validate_values({"data_patch": [64, 64, 40]})
    with pytest.raises(ConfigError, match="batch sizes must be >= 1"):
        ib.Params.validate_values({"bench_batch_sizes": [0]})


def test_availability_table_lists_every_backend_with_a_reason() -> None:
    table = ib.availability_table()
    assert list(table.index) == list(bk.BACKENDS)
    assert table.loc["eager_fp32", "available"] == "yes"
    assert all(v == "yes" or len(v) > 5 for v in table["available"])


def _result() -> ib.Result:
    rows = [
        {"model": "unet", "backend": "eager_fp32", "precision": "fp32", "status": "ran", "agreement": "reference",
         "dice_vs_truth": 0.8149, "median_ms": 10.0},
        {"model": "unet", "backend": "openvino_int8", "precision": "int8", "status": "ran", "agreement": "pass",
         "dice_vs_truth": 0.81, "median_ms": 5.0},
        {"model": "unet", "backend": "tensorrt_fp16", "precision": "fp16", "status": "unavailable: no CUDA device",
         "agreement": None, "dice_vs_truth": math.nan, "median_ms": math.nan},
    ]
    return ib.Result(pd.DataFrame(rows), pd.DataFrame(), 100.0, {"unet": 1.0}, {"unet": (1, 2, 8, 8, 8)})


def test_checked_metrics_known_answer() -> None:
    result = _result()
    assert ib.checked_metrics(result) == {
        "unet_eager_fp32": "ran, agreement reference", "unet_openvino_int8": "ran, agreement pass",
        "unet_tensorrt_fp16": "unavailable", "unet_eager_dice_vs_truth": 0.81, "all_agree": "yes"}
    result.table.loc[1, "agreement"] = "FAIL"
    changed = ib.checked_metrics(result)
    assert changed["all_agree"] == "no" and changed["unet_openvino_int8"] == "ran, agreement FAIL"
    assert list(ib.status_table(result).index) == [("unet", "tensorrt_fp16")]


@pytest.mark.slow
def test_cli_trains_benchmarks_and_writes_the_notebooks_table(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    """``medbench bench inference`` at the QUICK size: trained network, table, run record, checked values."""
    import json

    from medbench import cli

    quick = {k: v for k, v in ib.QUICK.items() if k not in ("models", "bench_backends")}
    args = ["bench", "inference", "--model", "unet", "--backends", "eager_fp32,torchscript,cuda_eager_fp32",
            "--out", str(tmp_path / "out")]
    for key, value in quick.items():
        args += ["-p", f"{key}={json.dumps(value)}"]
    assert cli.main(args) == 0
    table = pd.read_csv(tmp_path / "out" / "results.csv")
    rows = table.set_index("backend")
    assert rows.loc["eager_fp32", "status"] == "ran" and rows.loc["torchscript", "agreement"] == "pass"
    assert rows.loc["cuda_eager_fp32", "status"].startswith(("unavailable", "ran"))
    assert rows.loc["openvino_int8", "status"] == "skipped: not selected"  # every backend has a row
    metrics = json.loads((tmp_path / "out" / "run" / "metrics.json").read_text())
    assert metrics["unet_torchscript"] == "ran, agreement pass"
    record = json.loads((tmp_path / "out" / "run" / "run.json").read_text())
    assert "unet-best" in record["checkpoints"] and record["threads"] == 2
    out = capsys.readouterr().out
    assert "best_fp32" in out and "results:" in out
