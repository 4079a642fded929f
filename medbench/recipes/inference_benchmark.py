"""07_inference_benchmark: the trained segmentation networks in every runtime and precision, timed and checked.

The recipe's steps, one call each in the notebook (``medbench bench inference``
runs the same steps from a shell and writes the same table):

1. :func:`load_data` / :func:`setup` — the segmentation recipe's cohort, split
   and cached datasets (same spec and seed => the 04 notebook's data);
2. :func:`networks` — the networks in ``models`` trained by the segmentation
   recipe's :func:`~medbench.recipes.segmentation.train`, or loaded from the
   best checkpoints of a 04 run folder (``bench_weights``);
3. :func:`bench_inputs` — network inputs from the test cases (agreement, timing),
   calibration inputs from the training cases (INT8), test volumes (end to end);
4. :func:`benchmark` — every backend per network (:mod:`medbench.bench.inference`):
   latency with p5-p95, speedup over eager fp32, fraction of a same-run matmul
   ceiling, agreement with eager and with the truth, end to end, batch sweep;
5. :func:`checked_metrics` — which backends ran and whether agreement passed (never times).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
import torch
from pydantic import Field, field_validator, model_validator

from medbench import config
from medbench.bench import backends as bk
from medbench.bench import inference as ib
from medbench.engine import AugmentParams, TrainParams
from medbench.engine.segmentation import SegmentationSetup
from medbench.errors import ConfigError, DataError
from medbench.models.factory import ARCHITECTURES, Architecture, ModelParams, models_patch_problem
from medbench.recipes import segmentation as seg
from medbench.recipes.sections import PerModelEpochs

NOTEBOOK = "07_inference_benchmark"
#: A convolutional network and a transformer.
DEFAULT_MODELS: tuple[Architecture, ...] = ("unet", "unetr")


class BenchSection(config.Section):
    """The ``bench`` section: which backends, how to time, how much data to check on."""

    backends: str = Field("all", description="'all', 'cpu', 'gpu' or a comma-separated list of backend names "
                                             "(medbench.bench.backends.BACKENDS); eager_fp32 always runs.")
    skip: list[str] = Field(default_factory=lambda: ["torch_compile"],
                            description="Backends left out of 'backends' (smoke: torch.compile, whose inductor build "
                                        "takes 1-2 min per network on 2 cores; full runs it).")
    batch_size: int = Field(1, ge=1, description="Network inputs per call (also the sliding-window batch).")
    batch_sizes: list[int] = Field(default_factory=lambda: [1, 2],
                                   description="Batch sweep of eager and the fastest agreeing fp32 backend ([] = none).")
    min_run_time: float = Field(0.5, gt=0, description="Seconds torch.utils.benchmark measures each backend for.")
    warmup: int = Field(2, ge=0, description="Untimed calls before timing.")
    calibration: int = Field(4, ge=1, description="Training volumes used to calibrate the INT8 backends.")
    test_cases: int = Field(2, ge=1, description="Test volumes for agreement and end-to-end timing.")
    overlap: float = Field(0.25, ge=0, lt=1, description="Sliding-window overlap of the end-to-end inference.")
    matmul_n: int = Field(2048, ge=64, description="Side of the fp32 matrix multiply that measures the ceiling.")
    weights: str = Field("", description="A 04_segmentation run folder whose <model>-best checkpoints to load "
                                         "('' = train here with the segmentation recipe).")

    @field_validator("batch_sizes")
    @classmethod
    def _sizes(cls, v: list[int]) -> list[int]:
        if any(b < 1 for b in v):
            raise ValueError("batch sizes must be >= 1")
        return v

    @field_validator("backends")
    @classmethod
    def _backends(cls, v: str) -> str:
        try:
            bk.names(v)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return v

    @field_validator("skip")
    @classmethod
    def _skip(cls, v: list[str]) -> list[str]:
        unknown = [n for n in v if n not in bk.BACKENDS]
        if unknown:
            raise ValueError(f"unknown backend(s) {unknown}; available: {', '.join(bk.BACKENDS)}")
        if bk.REFERENCE in v:
            raise ValueError(f"{bk.REFERENCE} is the reference and cannot be skipped")
        return v

    def chosen(self) -> list[str]:
        """The backends to run: ``backends`` less ``skip``."""
        return [n for n in bk.names(self.backends) if n not in self.skip]


class Params(PerModelEpochs, config.Params):
    """07_inference_benchmark parameters (data, model and train as in 04_segmentation's smoke profile)."""

    notebook: ClassVar[str] = NOTEBOOK

    data: seg.SegDataParams = Field(default_factory=seg.SegDataParams)
    models: list[Architecture] = Field(default_factory=lambda: list(DEFAULT_MODELS),
                                       description="Networks to benchmark: a CNN and a transformer.")
    model: ModelParams = Field(default_factory=lambda: seg.Params().model)
    train: TrainParams = Field(default_factory=lambda: seg.Params().train)
    augment: AugmentParams = Field(default_factory=AugmentParams)
    epochs_by_model: dict[str, int] = Field(default_factory=lambda: {"unet": 40, "unetr": 10},
                                            description="Training epochs per architecture (04's smoke budgets).")
    bench: BenchSection = Field(default_factory=BenchSection)
    threads: int = Field(2, ge=1, description="Threads for training and for every backend (pinned, recorded).")

    @model_validator(mode="after")
    def _check(self) -> Params:
        problem = models_patch_problem(self.models, self.data.patch) or self.epochs_by_model_problem(
            ARCHITECTURES, "architectures")
        if problem:
            raise ValueError(problem)
        return self


#: A functional run in seconds (used by the notebook rerun test); its numbers mean nothing.
QUICK: dict[str, Any] = {
    "models": ["unet"], "epochs_by_model": {"unet": 1}, "data_n_cases": 5, "data_image_size": [32, 32, 16],
    "data_spacing": [12.5, 12.5, 16.0], "data_patch": [32, 32, 16], "bench_backends": "eager_fp32,torchscript",
    "bench_batch_sizes": [], "bench_min_run_time": 0.05, "bench_test_cases": 1, "bench_calibration": 1,
    "bench_matmul_n": 256,
}


def segmentation_params(cfg: Params) -> seg.Params:
    """The segmentation recipe's parameters for the same data, models and training (so its functions apply)."""
    return seg.Params(data=cfg.data, models=cfg.models, model=cfg.model, train=cfg.train, augment=cfg.augment,
                      epochs_by_model=cfg.epochs_by_model, threads=cfg.threads, seed=cfg.seed)


def load_data(cfg: Params) -> seg.SegData:
    """The cohort's split (the segmentation recipe's :func:`~medbench.recipes.segmentation.load_data`)."""
    return seg.load_data(segmentation_params(cfg))


def setup(cfg: Params, data: seg.SegData) -> SegmentationSetup:
    """Cached datasets, transforms and task (the segmentation recipe's :func:`~medbench.recipes.segmentation.setup`)."""
    return seg.setup(segmentation_params(cfg), data)


def networks(cfg: Params, run: Any, data: seg.SegData, setup_: SegmentationSetup) -> dict[str, torch.nn.Module]:
    """Trained networks: from ``bench.weights`` (a 04 run folder, sha256-checked) or trained here like 04."""
    if cfg.bench.weights:
        return load_networks(cfg, setup_, cfg.bench.weights)
    trained = seg.train(segmentation_params(cfg), run, data, setup_)
    return {name: t.model.eval() for name, t in trained.items()}


def load_networks(cfg: Params, setup_: SegmentationSetup, run_dir: str | os.PathLike[str]) -> dict[str, torch.nn.Module]:
    """Each model's ``<name>-best`` checkpoint from a run folder, verified against its run.json sha256."""
    from medbench.report.run import load_checkpoint, read_record

    record = read_record(run_dir)
    checkpoints = record.get("checkpoints", {})
    if not checkpoints:
        raise DataError(f"{run_dir}: no run.json with checkpoints (expected a 04_segmentation run folder)")
    out: dict[str, torch.nn.Module] = {}
    for name in cfg.models:
        entry = checkpoints.get(f"{name}-best")
        if entry is None:
            raise DataError(f"{run_dir}: no checkpoint {name}-best; recorded: {sorted(checkpoints)}")
        state = load_checkpoint(Path(run_dir) / entry["file"], expected_sha256=entry["sha256"])
        net = setup_.model(cfg.model.model_copy(update={"name": name}), seed=cfg.seed)
        try:
            net.load_state_dict(state)
        except RuntimeError as exc:
            raise DataError(f"{run_dir}: checkpoint {name}-best does not fit this run's model parameters "
                            f"(set model_* as in the run that trained it): {str(exc).splitlines()[0]}") from None
        out[name] = net.eval()
    return out


@dataclasses.dataclass
class BenchInputs:
    """Network inputs (test cases, fitted to the patch), calibration inputs (training cases), test volumes."""

    inputs: list[torch.Tensor]
    calibration: list[torch.Tensor]
    cases: list[ib.TestCase]


def bench_inputs(cfg: Params, setup_: SegmentationSetup) -> BenchInputs:
    """What every backend sees: the test cases for agreement and end to end, training cases for calibration."""
    patch = setup_.patch
    tests = setup_.test_datalist[:cfg.bench.test_cases]
    if not tests:
        raise ConfigError("the split has no test cases to check agreement on")
    inputs = [ib.fit_to_patch(setup_.test_dataset[i]["image"], patch) for i in range(len(tests))]
    calib = [ib.fit_to_patch(setup_.eval_transform(dict(e))["image"], patch)
             for e in setup_.train_datalist[:cfg.bench.calibration]]
    cases = [ib.TestCase(str(e["case_id"]), e, setup_.eval_transform) for e in tests]
    return BenchInputs(inputs, calib, cases)


@dataclasses.dataclass
class Result:
    """The benchmark table (one row per model and backend), the batch sweep and the matmul ceiling."""

    table: pd.DataFrame
    sweep: pd.DataFrame
    ceiling_gflops: float
    gflops: dict[str, float]
    input_shape: dict[str, tuple[int, ...]]


def settings(cfg: Params) -> ib.Settings:
    return ib.Settings(threads=cfg.threads, batch_size=cfg.bench.batch_size, batch_sizes=tuple(cfg.bench.batch_sizes),
                       min_run_time=cfg.bench.min_run_time, warmup=cfg.bench.warmup, overlap=cfg.bench.overlap,
                       matmul_n=cfg.bench.matmul_n)


def benchmark(cfg: Params, nets: Mapping[str, torch.nn.Module], setup_: SegmentationSetup, data_in: BenchInputs,
              log: Callable[[str], None] | None = None) -> Result:
    """Every backend on every network, plus the matmul ceiling and the batch sweep (see the module docstring)."""
    s = settings(cfg)
    torch.set_num_threads(cfg.threads)
    ceiling = ib.matmul_ceiling(cfg.threads, n=cfg.bench.matmul_n, min_run_time=min(1.0, cfg.bench.min_run_time))
    tables, sweeps, gflops, shapes = [], [], {}, {}
    for name, net in nets.items():
        mb = ib.benchmark_model(name, net, setup_.patch, len(setup_.modalities), setup_.class_names,
                                backends=cfg.bench.chosen(), inputs=data_in.inputs, calibration=data_in.calibration,
                                cases=data_in.cases, settings=s, ceiling_gflops=ceiling, log=log,
                                list_skipped={n: "bench.skip (build time at this profile)" for n in cfg.bench.skip})
        tables.append(mb.table)
        gflops[name], shapes[name] = mb.gflops, mb.input_shape
        if cfg.bench.batch_sizes:
            best = ib.best_backend(mb.table, "fp32")
            chosen = [bk.REFERENCE] + ([best] if best else [])
            measured = mb.table[mb.table["backend"].isin(chosen)]  # the table's own batch size is not re-measured
            same = pd.DataFrame({"model": name, "backend": measured["backend"], "batch": cfg.bench.batch_size,
                                 "median_ms": measured["median_ms"], "throughput_per_s": measured["throughput_per_s"],
                                 "voxels_per_s": measured["throughput_per_s"] * data_in.inputs[0][0].numel(),
                                 "gflops_per_s": measured["gflops_per_s"], "peak_fraction": measured["peak_fraction"]})
            others = [b for b in cfg.bench.batch_sizes if b != cfg.bench.batch_size]
            sweep = ib.batch_sweep(name, net, data_in.inputs[0], chosen, batch_sizes=others, settings=s,
                                   ceiling_gflops=ceiling)
            sweeps.append(pd.concat([same, sweep], ignore_index=True).sort_values(["backend", "batch"], kind="stable"))
    table = pd.concat(tables, ignore_index=True)
    sweep = pd.concat(sweeps, ignore_index=True) if sweeps else pd.DataFrame()
    return Result(table, sweep, ceiling, gflops, shapes)


# -- tables for the notebook --------------------------------------------------------------------------------------
def availability_table(backends: str = "all") -> pd.DataFrame:
    """Every registered backend: runtime, precision, device and whether it can run here (or why not)."""
    rows = [{"backend": b.name, "runtime": b.runtime, "precision": b.precision, "device": b.device,
             "available": bk.unavailable(b) or "yes", "what": b.description}
            for b in bk.BACKENDS.values() if b.name in bk.names(backends)]
    return pd.DataFrame(rows).set_index("backend")


TIMING_COLUMNS = ["model", "backend", "precision", "median_ms", "p5_ms", "p95_ms", "speedup", "throughput_per_s",
                  "gflops_per_s", "peak_fraction", "build_s", "verdict"]
AGREEMENT_COLUMNS = ["model", "backend", "precision", "max_abs_diff", "dice_vs_eager", "dice_vs_truth", "agreement",
                     "verdict"]
E2E_COLUMNS = ["model", "backend", "e2e_s_per_volume", "e2e_voxels_per_s", "load_s", "post_s", "network_share"]


def _columns(table: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    return table[[c for c in columns if c in table.columns]].set_index(["model", "backend"])


def timing_table(result: Result) -> pd.DataFrame:
    """Network-only latency (ms), speedup over eager, GFLOP/s and fraction of the matmul ceiling per backend."""
    return _columns(result.table, TIMING_COLUMNS)


def agreement_table(result: Result) -> pd.DataFrame:
    """Max |logit difference|, argmax Dice against eager and against the truth, the verdict per backend."""
    return _columns(result.table, AGREEMENT_COLUMNS)


def end_to_end_table(result: Result) -> pd.DataFrame:
    """Sliding-window segmentation of whole test volumes: seconds, voxels/s, and the network's share of it."""
    ran = result.table[result.table["status"] == "ran"]
    return _columns(ran, E2E_COLUMNS)


def status_table(result: Result) -> pd.DataFrame:
    """Backends that did not run, with the reason."""
    rows = result.table[result.table["status"] != "ran"]
    return rows[["model", "backend", "status"]].set_index(["model", "backend"])


def targets(result: Result) -> pd.DataFrame:
    """The issue's CPU targets per model: best fp32 >= 3x at Dice >= 0.999 and >= 50 % of the ceiling; INT8 faster."""
    summ = ib.summary(result.table)
    summ["fp32_target_met"] = [bool(r.get("fp32_speedup", 0) >= 3.0 and r.get("fp32_dice_vs_eager", 0) >= 0.999
                                    and r.get("fp32_peak_fraction", 0) >= 0.5) for _, r in summ.iterrows()]
    return summ


def write_table(cfg: Params, result: Result, out_dir: str | os.PathLike[str] | None = None) -> Path:
    """The table as ``results.csv/json/png`` (+ ``batch_sweep.csv``) under ``out_dir`` (default reports/bench/inference)."""
    return ib.write(result.table, result.sweep, out_dir, ceiling_gflops=result.ceiling_gflops,
                    parameters={**cfg.to_flat(), "gflops": result.gflops,
                                "input_shape": {k: list(v) for k, v in result.input_shape.items()}})


# -- checked metrics ---------------------------------------------------------------------------------------------
CHECKED: dict[str, str] = {
    "<model>_<backend>": "'ran, agreement pass|FAIL|reference', 'unavailable' or 'failed' — which backends ran "
                         "here and whether they give eager's answer (never times: they differ run to run)",
    "<model>_eager_dice_vs_truth": "pooled Dice of the eager prediction against the truth (the trained weights "
                                   "are the 04 recipe's; 2 decimals)",
    "all_agree": "every backend that ran passed agreement",
}


def checked_metrics(result: Result) -> dict[str, Any]:
    """The notebook's checked values (see :data:`CHECKED`)."""
    out: dict[str, Any] = dict(ib.status_checks(result.table))
    table = result.table
    for _, row in table[table["backend"] == bk.REFERENCE].iterrows():
        value = row.get("dice_vs_truth", math.nan)
        out[f"{row['model']}_eager_dice_vs_truth"] = round(float(value), 2) if pd.notna(value) else "nan"
    ran = table[(table["status"] == "ran") & (table["backend"] != bk.REFERENCE)]
    out["all_agree"] = "yes" if (ran["agreement"] == "pass").all() else "no"
    return out


# -- the command line ---------------------------------------------------------------------------------------------
def run_cli(*, models: list[str] | None = None, backends: str | None = None, out_dir: str | os.PathLike[str] | None,
            profile: str = "smoke", params: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """``medbench bench inference``: the notebook's steps from a shell, its table written under ``out_dir``."""
    from medbench import recipes, report

    overrides: dict[str, Any] = dict(params or {})
    if models:
        overrides["models"] = models
    if backends:
        overrides["bench.backends"] = backends
    cfg = recipes.resolve(NOTEBOOK, profile, overrides)
    assert isinstance(cfg, Params)
    from medbench.bench.harness import default_dir
    from medbench.report.run import ENV_RUN_DIR

    out = Path(out_dir) if out_dir else default_dir(ib.NAME)
    previous = os.environ.get(ENV_RUN_DIR)
    os.environ[ENV_RUN_DIR] = str(out / "run")  # the run record (params, environment, checkpoints) beside the table
    try:
        run = report.start_run(cfg, threads=cfg.threads)
    finally:
        if previous is None:
            os.environ.pop(ENV_RUN_DIR, None)
        else:
            os.environ[ENV_RUN_DIR] = previous
    data = load_data(cfg)
    setup_ = setup(cfg, data)
    nets = networks(cfg, run, data, setup_)
    result = benchmark(cfg, nets, setup_, bench_inputs(cfg, setup_), log=print)
    folder = write_table(cfg, result, out)
    run.finish(checked_metrics(result))
    show = result.table[["model", "backend", "status", "median_ms", "speedup", "dice_vs_eager", "verdict"]]
    print(show.round(4).to_string(index=False))
    print(targets(result).round(3).to_string())
    print(f"results: {folder}")
    return result.table
