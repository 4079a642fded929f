"""Benchmark ``inference``: every backend of :mod:`medbench.bench.backends` timed and checked the same way.

For one trained network and its data, :func:`benchmark_model` measures per backend

* **network-only latency** on a fixed input shape ``(batch, C, *patch)`` with
  :mod:`torch.utils.benchmark` (warm-up calls, ``blocked_autorange``; CUDA
  synchronised by the timer and by the predictor): median, p5 and p95 of the
  measured blocks (ms), throughput (inputs per second), the speedup over the
  same run's eager fp32, and the fraction of peak — the model's FLOPs
  (:func:`medbench.models.forward_flops`) over its median time, divided by a
  matrix-multiply ceiling measured in the same run (:func:`matmul_ceiling`);
* **agreement** with eager fp32 on the same inputs: the largest absolute
  logit difference on the network inputs, and on whole test volumes
  (sliding-window inference) the pooled argmax Dice against eager and
  against the ground truth. A backend passes when its Dice against eager
  reaches the tolerance of its precision (fp32 ``0.999``, reduced
  precision ``0.99``); a backend faster than eager that fails is marked
  **fast but wrong**;
* **end to end** on those test volumes: loading and pre-processing (the
  evaluation transform, from the files on disk), sliding-window inference and
  post-processing (argmax to a label map), as voxels per second, and the
  share of that time the network itself takes (the network-only vs end-to-end gap).

:func:`batch_sweep` times the reference and the fastest agreeing fp32
backend at several batch sizes. Threads are pinned (torch, ONNX Runtime and
OpenVINO get the same count) and recorded with the run-record environment
fingerprint (:func:`medbench.bench.harness.environment`).

``medbench bench inference`` (the CLI) benchmarks networks trained by the
segmentation recipe, exactly as ``notebooks/07_inference_benchmark.ipynb``
does; :func:`run` (``run_benchmark("inference")``) is the same benchmark on
a seeded network, or on a checkpoint, with synthetic phantom-free inputs
— a quick way to time backends, whose agreement numbers mean little on
untrained weights.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from medbench import metrics
from medbench.bench import backends as bk
from medbench.bench.harness import environment, write_results
from medbench.errors import ConfigError

NAME = "inference"

#: Agreement tolerance (pooled argmax Dice against eager fp32) per precision.
TOLERANCE: dict[str, float] = {"fp32": 0.999, "bf16": 0.99, "fp16": 0.99, "int8": 0.99}


# -- timing -------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Latency:
    """Seconds per call: median and 5th / 95th percentiles of the measured blocks, and how many were measured."""

    median_s: float
    p5_s: float
    p95_s: float
    blocks: int
    calls: int


def time_predictor(predict: Callable[[torch.Tensor], Any], x: torch.Tensor, *, threads: int, min_run_time: float = 1.0,
                   warmup: int = 2, synchronize: Callable[[], None] | None = None) -> Latency:
    """Time ``predict(x)`` with ``torch.utils.benchmark.Timer.blocked_autorange`` after ``warmup`` calls.

    Each block's time is the mean of its calls (blocks of one call for
    anything slower than the timer's block size, as every 3D network here is),
    so p5 / p95 are spreads of blocks. ``synchronize`` (CUDA) runs after each
    call, inside the timed statement.
    """
    from torch.utils import benchmark

    if min_run_time <= 0 or warmup < 0:
        raise ConfigError(f"time_predictor needs min_run_time > 0 and warmup >= 0, got {min_run_time}, {warmup}")
    sync = synchronize or (lambda: None)
    for _ in range(warmup):
        predict(x)
        sync()
    timer = benchmark.Timer(stmt="predict(x); sync()", globals={"predict": predict, "x": x, "sync": sync},
                            num_threads=threads)
    m = timer.blocked_autorange(min_run_time=min_run_time)
    times = np.asarray(m.times, dtype=float)
    if len(times) < 3:  # blocked_autorange measured too few blocks for percentiles: add single calls
        extra = timer.timeit(1)
        times = np.concatenate([times, np.asarray(extra.times, float)])
        while len(times) < 3:
            times = np.concatenate([times, np.asarray(timer.timeit(1).times, float)])
    return Latency(float(np.median(times)), float(np.percentile(times, 5)), float(np.percentile(times, 95)),
                   len(times), int(m.number_per_run * len(m.times)))


def matmul_ceiling(threads: int, n: int = 2048, min_run_time: float = 0.5, dtype: torch.dtype = torch.float32) -> float:
    """GFLOP/s of an ``n x n`` fp32 matrix multiply with ``threads`` threads: the machine's practical ceiling."""
    a = torch.randn(n, n, dtype=dtype, generator=torch.Generator().manual_seed(0))
    b = torch.randn(n, n, dtype=dtype, generator=torch.Generator().manual_seed(1))
    lat = time_predictor(lambda _: torch.mm(a, b), a, threads=threads, min_run_time=min_run_time, warmup=1)
    return 2.0 * n**3 / lat.median_s / 1e9


# -- agreement -----------------------------------------------------------------------------------------------
def fixed_batch(predict: Callable[[torch.Tensor], torch.Tensor], batch: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """A predictor for any batch size built on one compiled for exactly ``batch`` inputs (zero-padded chunks)."""
    def run(x: torch.Tensor) -> torch.Tensor:
        x = x.as_tensor() if hasattr(x, "as_tensor") else x
        x = x.float().contiguous()
        outs = []
        for start in range(0, int(x.shape[0]), batch):
            chunk = x[start:start + batch]
            m = int(chunk.shape[0])
            if m < batch:
                chunk = torch.cat([chunk, chunk.new_zeros((batch - m, *chunk.shape[1:]))])
            outs.append(predict(chunk.contiguous())[:m])
        return torch.cat(outs)

    return run


def fit_to_patch(image: torch.Tensor, patch: Sequence[int]) -> torch.Tensor:
    """A channel-first volume centre-cropped / zero-padded to ``patch`` (a network input of that exact shape)."""
    from monai.transforms import ResizeWithPadOrCrop

    out = ResizeWithPadOrCrop(tuple(int(p) for p in patch))(torch.as_tensor(image))
    return torch.as_tensor(out).float()


@dataclasses.dataclass
class TestCase:
    """One test volume: its datalist entry (files), the transform that loads it, and its ground truth after it."""

    case_id: str
    entry: Mapping[str, Any]
    transform: Callable[[Mapping[str, Any]], Mapping[str, Any]]


@dataclasses.dataclass
class CaseRun:
    label: np.ndarray
    truth: np.ndarray | None
    load_s: float
    network_s: float
    post_s: float
    windows: int

    @property
    def total_s(self) -> float:
        return self.load_s + self.network_s + self.post_s


def segment_case(case: TestCase, predict: Callable[[torch.Tensor], torch.Tensor], patch: Sequence[int], *,
                 sw_batch_size: int = 1, overlap: float = 0.25) -> CaseRun:
    """End to end on one volume: load + pre-process, sliding-window inference, argmax; seconds of each stage."""
    from monai.inferers import SlidingWindowInferer

    start = time.perf_counter()
    item = case.transform(dict(case.entry))
    image = torch.as_tensor(item["image"]).float()[None]
    loaded = time.perf_counter()
    calls = [0]

    def counted(x: torch.Tensor) -> torch.Tensor:
        calls[0] += int(x.shape[0])
        return predict(x)

    inferer = SlidingWindowInferer(roi_size=tuple(int(p) for p in patch), sw_batch_size=sw_batch_size, overlap=overlap,
                                   mode="gaussian")
    with torch.no_grad():
        logits = torch.as_tensor(inferer(image, counted))
    inferred = time.perf_counter()
    label = logits.argmax(dim=1)[0].numpy().astype(np.uint8)
    done = time.perf_counter()
    truth = np.asarray(torch.as_tensor(item["label"])[0].numpy()).astype(np.uint8) if "label" in item else None
    return CaseRun(label, truth, loaded - start, inferred - loaded, done - inferred, calls[0])


def verdict(status: str, speedup: float, passed: bool | None) -> str:
    """A row's one-word judgement: ``reference``, ``ok``, ``fast but wrong``, ``wrong``, or the status."""
    if status != "ran":
        return status.split(":")[0]
    if passed is None:
        return "reference"
    if not passed:
        return "fast but wrong" if speedup > 1.0 else "wrong"
    return "ok"


# -- the benchmark of one model ------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Settings:
    """How to measure (the recipe's ``bench`` section maps onto this)."""

    threads: int = 2
    batch_size: int = 1
    batch_sizes: tuple[int, ...] = (1, 2)
    min_run_time: float = 1.0
    warmup: int = 2
    overlap: float = 0.25
    matmul_n: int = 2048


@dataclasses.dataclass
class ModelBench:
    """One model's rows (one per backend), its batch sweep and what the rows were measured on."""

    model: str
    table: pd.DataFrame
    sweep: pd.DataFrame
    gflops: float
    input_shape: tuple[int, ...]


def benchmark_model(
    name: str,
    model: torch.nn.Module,
    patch: Sequence[int],
    in_channels: int,
    class_names: Mapping[int, str],
    *,
    backends: str | Sequence[str | bk.Backend] = "all",
    inputs: Sequence[torch.Tensor],
    calibration: Sequence[torch.Tensor] = (),
    cases: Sequence[TestCase] = (),
    settings: Settings = Settings(),
    ceiling_gflops: float = math.nan,
    workdir: str | os.PathLike[str] | None = None,
    log: Callable[[str], None] | None = None,
    list_skipped: bool | Mapping[str, str] = False,
) -> ModelBench:
    """Every backend on one model: latency, agreement, end to end; unavailable or failing backends keep a row.

    ``inputs``: channel-first network inputs of shape ``(C, *patch)`` (the
    agreement inputs; the first one is also the timing input). ``calibration``:
    such inputs from training data, for the INT8 backends. ``cases``: test
    volumes for the sliding-window agreement and end-to-end timing.
    ``backends`` may hold :class:`~medbench.bench.backends.Backend` objects
    that are not in the registry (the tests plant a deliberately broken one).
    ``list_skipped`` adds a ``skipped: <reason>`` row for every registered
    backend that was not chosen (the reason from the mapping, else ``not
    selected``), so the table always names them all.
    """
    if not inputs:
        raise ConfigError("benchmark_model needs at least one input")
    torch.set_num_threads(settings.threads)
    model = model.eval().cpu()
    chosen: list[bk.Backend] = []
    for b in ([backends] if isinstance(backends, str) else backends):
        if isinstance(b, bk.Backend):
            chosen.append(b)
        else:
            chosen += [bk.BACKENDS[n] for n in bk.names(b)]
    unique: dict[str, bk.Backend] = {}
    for b in chosen:
        unique.setdefault(b.name, b)
    chosen = [bk.BACKENDS[bk.REFERENCE], *[b for n, b in unique.items() if n != bk.REFERENCE]]
    batch = settings.batch_size
    shape = (batch, in_channels, *(int(p) for p in patch))
    stacked = [torch.stack([x] * batch) if batch > 1 else x[None] for x in inputs]
    calib = [x[None].repeat(batch, *([1] * x.dim())) for x in calibration]
    from medbench.models.factory import forward_flops

    flops = forward_flops(model, shape)
    fg = {k: v for k, v in class_names.items() if k}
    say = log or (lambda _msg: None)
    tmp = tempfile.TemporaryDirectory(prefix="medbench-inference-") if workdir is None else None
    ctx = bk.Context(threads=settings.threads, calibration=calib, workdir=Path(workdir or tmp.name))  # type: ignore[union-attr]
    rows: list[dict[str, Any]] = []
    ref_logits: list[torch.Tensor] = []
    ref_labels: list[np.ndarray] = []
    ref_median = math.nan
    try:
        for b in chosen:
            row: dict[str, Any] = {"model": name, "backend": b.name, "runtime": b.runtime, "precision": b.precision,
                                   "device": b.device, "status": "ran", "notes": ""}
            reason = bk.unavailable(b)
            if reason:
                row["status"] = f"unavailable: {reason}"
                rows.append(row)
                say(f"{name}/{b.name}: unavailable ({reason})")
                continue
            try:
                prepared = bk.prepare(b, model, stacked[0], ctx)
                lat = time_predictor(prepared.predict, stacked[0], threads=settings.threads,
                                     min_run_time=settings.min_run_time, warmup=settings.warmup,
                                     synchronize=prepared.synchronize)
                logits = [prepared.predict(x)[0] for x in stacked]
                predict = fixed_batch(prepared.predict, batch)
                case_runs = [segment_case(c, predict, patch, sw_batch_size=batch, overlap=settings.overlap)
                             for c in cases]
            except Exception as exc:  # one backend failing must not stop the table
                if b.name == bk.REFERENCE:
                    raise
                row["status"] = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:240]
                rows.append(row)
                say(f"{name}/{b.name}: {row['status']}")
                continue
            if b.name == bk.REFERENCE:
                ref_logits = logits
                ref_labels = [r.label for r in case_runs]
                ref_median = lat.median_s
            row.update(notes=prepared.notes, build_s=prepared.build_s, median_ms=lat.median_s * 1e3,
                       p5_ms=lat.p5_s * 1e3, p95_ms=lat.p95_s * 1e3, timed_blocks=lat.blocks,
                       throughput_per_s=batch / lat.median_s, speedup=ref_median / lat.median_s,
                       gflops_per_s=flops / lat.median_s / 1e9)
            row["peak_fraction"] = row["gflops_per_s"] / ceiling_gflops if ceiling_gflops > 0 else math.nan
            row["max_abs_diff"] = max(float((a - r).abs().max()) for a, r in zip(logits, ref_logits))
            # without test volumes, agreement is judged on the argmax of the network inputs' logits
            row["dice_vs_eager"] = float(np.nanmean([metrics.pooled_dice(a.argmax(0).numpy(), r.argmax(0).numpy(), fg)
                                                     for a, r in zip(logits, ref_logits)]))
            if case_runs:
                row["dice_vs_eager"] = float(np.mean([metrics.pooled_dice(r.label, e, fg)
                                                      for r, e in zip(case_runs, ref_labels)]))
                truths = [(r.label, r.truth) for r in case_runs if r.truth is not None]
                if truths:
                    row["dice_vs_truth"] = float(np.mean([metrics.pooled_dice(p, t, fg) for p, t in truths]))
                voxels = sum(r.label.size for r in case_runs)
                total = sum(r.total_s for r in case_runs)
                network = sum(r.windows for r in case_runs) / batch * lat.median_s
                row.update(e2e_s_per_volume=total / len(case_runs), e2e_voxels_per_s=voxels / total,
                           load_s=sum(r.load_s for r in case_runs) / len(case_runs),
                           post_s=sum(r.post_s for r in case_runs) / len(case_runs),
                           network_share=network / total)
            passed = None if b.name == bk.REFERENCE else _passes(row, b.precision)
            row["agreement"] = "reference" if passed is None else ("pass" if passed else "FAIL")
            rows.append(row)
            say(f"{name}/{b.name}: {row['median_ms']:.1f} ms, x{row['speedup']:.2f}, agreement {row['agreement']}")
    finally:
        if tmp is not None:
            tmp.cleanup()
    if list_skipped:
        done = {r["backend"] for r in rows}
        why = list_skipped if isinstance(list_skipped, Mapping) else {}
        rows += [{"model": name, "backend": b.name, "runtime": b.runtime, "precision": b.precision, "device": b.device,
                  "status": f"skipped: {why.get(b.name, 'not selected')}", "notes": ""}
                 for b in bk.BACKENDS.values() if b.name not in done]
    table = pd.DataFrame(rows)
    for col in ("speedup", "dice_vs_eager", "max_abs_diff"):
        if col not in table:
            table[col] = math.nan
    table["verdict"] = [verdict(s, sp, None if a == "reference" else a == "pass" if isinstance(a, str) else None)
                        for s, sp, a in zip(table["status"], table["speedup"], table.get("agreement", [None] * len(table)))]
    return ModelBench(name, table, pd.DataFrame(), flops / 1e9, shape)


def _passes(row: Mapping[str, Any], precision: str) -> bool:
    tol = TOLERANCE.get(precision, 0.99)
    dice = row.get("dice_vs_eager", math.nan)
    if dice is None or not np.isfinite(dice):
        return False
    return bool(dice >= tol)


def batch_sweep(name: str, model: torch.nn.Module, example: torch.Tensor, backends: Sequence[str], *,
                batch_sizes: Sequence[int], settings: Settings, ceiling_gflops: float = math.nan,
                workdir: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """Throughput of each backend in ``backends`` at each batch size (inputs/s and voxels/s, network only)."""
    from medbench.models.factory import forward_flops

    rows = []
    with tempfile.TemporaryDirectory(prefix="medbench-sweep-") as tmp:
        for batch in batch_sizes:
            x = torch.stack([example] * int(batch))
            flops = forward_flops(model, tuple(x.shape))
            ctx = bk.Context(threads=settings.threads, workdir=Path(workdir or tmp) / f"b{batch}")
            for b in backends:
                reason = bk.unavailable(b)
                if reason:
                    continue
                prepared = bk.prepare(b, model, x, ctx)
                lat = time_predictor(prepared.predict, x, threads=settings.threads, min_run_time=settings.min_run_time,
                                     warmup=settings.warmup, synchronize=prepared.synchronize)
                rows.append({"model": name, "backend": b, "batch": int(batch), "median_ms": lat.median_s * 1e3,
                             "throughput_per_s": batch / lat.median_s,
                             "voxels_per_s": batch * example[0].numel() / lat.median_s,
                             "gflops_per_s": flops / lat.median_s / 1e9,
                             "peak_fraction": flops / lat.median_s / 1e9 / ceiling_gflops if ceiling_gflops > 0
                             else math.nan})
    return pd.DataFrame(rows)


def best_backend(table: pd.DataFrame, precision: str | Sequence[str] = "fp32", *, agreeing: bool = True) -> str | None:
    """The fastest backend that ran (other than the reference) at ``precision`` and, by default, passed agreement."""
    precisions = [precision] if isinstance(precision, str) else list(precision)
    ran = table[(table["status"] == "ran") & (table["backend"] != bk.REFERENCE) & table["precision"].isin(precisions)]
    if agreeing:
        ran = ran[ran["agreement"] == "pass"]
    if ran.empty:
        return None
    return str(ran.sort_values("median_ms").iloc[0]["backend"])


# -- summaries ---------------------------------------------------------------------------------------------------
def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per model: the best fp32 and int8 backends, their speedups and agreement (the issue's targets)."""
    rows = []
    for model, part in table.groupby("model", sort=False):
        fp32 = best_backend(part, "fp32")
        int8 = best_backend(part, "int8", agreeing=False)
        get = part.set_index("backend")
        row: dict[str, Any] = {"model": model, "best_fp32": fp32, "best_int8": int8}
        for key, b in (("fp32", fp32), ("int8", int8)):
            if b is not None:
                row[f"{key}_speedup"] = float(get.loc[b, "speedup"])
                row[f"{key}_dice_vs_eager"] = float(get.loc[b, "dice_vs_eager"])
                row[f"{key}_peak_fraction"] = float(get.loc[b, "peak_fraction"])
        if fp32 is not None and int8 is not None:
            row["int8_faster_than_fp32"] = bool(get.loc[int8, "median_ms"] < get.loc[fp32, "median_ms"])
        rows.append(row)
    return pd.DataFrame(rows).set_index("model")


def status_checks(table: pd.DataFrame) -> dict[str, str]:
    """``<model>_<backend>`` -> ``ran, agreement pass`` / ``unavailable`` / ``failed`` (reproducible, no times)."""
    out = {}
    for _, row in table.iterrows():
        key = f"{row['model']}_{row['backend']}"
        status = str(row["status"]).split(":")[0]
        out[key] = f"ran, agreement {row['agreement']}" if status == "ran" else status
    return out


# -- the registry entry (a seeded or loaded network on synthetic inputs) ---------------------------------------
def run(
    out_dir: str | os.PathLike[str] | None = None,
    *,
    model: str = "unet",
    backends: str | Sequence[str] = "all",
    checkpoint: str | os.PathLike[str] | None = None,
    patch: Sequence[int] = (96, 96, 96),
    in_channels: int = 1,
    n_classes: int = 5,
    base_channels: int = 16,
    levels: int = 5,
    threads: int = 2,
    min_run_time: float = 2.0,
    batch_sizes: Sequence[int] = (1, 2),
    calibration: int = 8,
    seed: int = 0,
) -> pd.DataFrame:
    """The backends on one network (seeded, or a state-dict ``checkpoint``) with smooth random inputs.

    The default is the issue's reference point: a MONAI UNet 16-256 with two
    residual units at 96^3. Inputs are smoothed noise (no test volumes, so
    agreement is judged on the network inputs' logits only and reported, not
    trusted, on untrained weights); ``medbench bench inference`` runs the
    trained version through the segmentation recipe.
    """
    from medbench.models.factory import ModelParams, build_model

    params = ModelParams(name=model, base_channels=base_channels, levels=levels)  # type: ignore[arg-type]
    torch.manual_seed(seed)
    net = build_model(params, in_channels, n_classes, patch)
    if checkpoint is not None:
        from medbench.report.run import load_checkpoint

        net.load_state_dict(load_checkpoint(checkpoint))
    gen = torch.Generator().manual_seed(seed)
    pool = torch.nn.AvgPool3d(5, 1, 2)
    inputs = [pool(torch.randn(1, in_channels, *patch, generator=gen))[0] for _ in range(1 + calibration)]
    settings = Settings(threads=threads, min_run_time=min_run_time, batch_sizes=tuple(batch_sizes))
    ceiling = matmul_ceiling(threads)
    names = {0: "background", **{k: f"class{k}" for k in range(1, n_classes)}}
    result = benchmark_model(model, net, patch, in_channels, names, backends=backends, inputs=inputs[:1],
                             calibration=inputs[1:], settings=settings, ceiling_gflops=ceiling, log=print)
    table = result.table
    best = best_backend(table, "fp32", agreeing=False)
    sweep = batch_sweep(model, net, inputs[0], [bk.REFERENCE] + ([best] if best else []), batch_sizes=batch_sizes,
                        settings=settings, ceiling_gflops=ceiling)
    write(table, sweep, out_dir, ceiling_gflops=ceiling,
          parameters={"model": model, "patch": list(patch), "threads": threads, "checkpoint": str(checkpoint),
                      "weights": "checkpoint" if checkpoint else f"seeded initialisation (seed {seed})"})
    print(table[["backend", "status", "median_ms", "speedup", "max_abs_diff"]].round(3).to_string(index=False))
    return table


def write(table: pd.DataFrame, sweep: pd.DataFrame, out_dir: str | os.PathLike[str] | None, *, ceiling_gflops: float,
          parameters: Mapping[str, Any]) -> Path:
    """``results.csv/json/png`` (the backend table; ratio = speedup over eager) plus ``batch_sweep.csv``."""
    from medbench.atomic import write_text

    rows = table.assign(label=table["model"] + "/" + table["backend"])
    rows["speedup"] = pd.to_numeric(rows["speedup"], errors="coerce")
    out = write_results(NAME, rows.to_dict("records"), out_dir, label="label", ratio="speedup",
                        extra={**parameters, "matmul_ceiling_gflops": ceiling_gflops,
                               "threads": parameters.get("threads"), "tolerance": TOLERANCE})
    write_text(out / "batch_sweep.csv", sweep.to_csv(index=False))
    return out


__all__ = ["NAME", "TOLERANCE", "CaseRun", "Latency", "ModelBench", "Settings", "TestCase", "batch_sweep",
           "benchmark_model", "best_backend", "environment", "fit_to_patch", "fixed_batch", "matmul_ceiling", "run",
           "segment_case", "status_checks", "summary", "time_predictor", "verdict"]
