"""The one training loop (DESIGN §12): :func:`fit`.

Everything that trains in medbench — segmentation networks, the
restoration GAN, fusion models, classifiers — goes through :func:`fit`. What
differs between them is a :class:`Task`: it creates the optimisers, computes
one training step (calling :meth:`StepContext.backward`) and validates. The
engine owns everything else, the same way for every task:

* data: seeded samplers (the epoch's order is a function of (seed, epoch), so
  a resumed run sees the data an uninterrupted one would), loaders, random
  transform state re-seeded per epoch;
* optimisation: AdamW-style optimisers from the task, linear warm-up then
  cosine decay per optimiser step, gradient accumulation, gradient clipping,
  AMP with a gradient scaler on CUDA (never on CPU: no bf16 hardware, 25x slower);
* validation every ``val_every`` epochs, early stopping on the task's
  monitored metric, the best checkpoint saved through the run record (sha256,
  ``weights_only=True`` loading) and a ``last`` checkpoint for resuming;
* multi-process training: under ``torchrun`` the model is wrapped in
  DistributedDataParallel (gloo on CPU, nccl on CUDA), each process gets its
  shard of every epoch, only rank 0 validates, writes and prints, and the
  stop decision is broadcast so every rank leaves together;
* progress: a tqdm bar in an interactive terminal or JupyterLab, one line per
  validation in logs, nothing under ``medbench run``/nbval
  (``MEDBENCH_HEADLESS``); and a metric history (one row per epoch).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

import pandas as pd
import torch

from medbench.engine import distributed as dist
from medbench.engine.params import TrainParams
from medbench.engine.progress import Progress
from medbench.errors import ConfigError, DataError
from medbench.report.run import ENV_HEADLESS

#: Environment variable set by ``medbench run`` / ``medbench notebooks``: no progress bars.
HEADLESS_ENV = ENV_HEADLESS


class Task(Protocol):
    """What a training run does; the engine does the rest.

    ``monitor`` names the validation metric that picks the best checkpoint and
    drives early stopping; ``mode`` is ``"max"`` or ``"min"``.
    """

    monitor: str
    mode: str

    def optimizers(self, model: torch.nn.Module, params: TrainParams) -> dict[str, torch.optim.Optimizer]:
        """Named optimisers (``{"main": AdamW(...)}``; a GAN returns ``{"g": ..., "d": ...}``)."""
        ...

    def train_step(self, ctx: StepContext, batch: Any) -> Mapping[str, float]:
        """Forward, losses and ``ctx.backward(loss, name)`` for one micro-batch; return loss values to log."""
        ...

    def validate(self, model: torch.nn.Module, dataset: Any, device: torch.device) -> Mapping[str, float]:
        """Validation metrics of ``model`` (in eval mode) on ``dataset``; must include :attr:`monitor`."""
        ...


@dataclasses.dataclass
class StepContext:
    """Handed to :meth:`Task.train_step`: the model, device, precision and the optimiser mechanics.

    ``backward(loss, name)`` scales the loss for accumulation and AMP;
    ``step(name)`` applies clipping and the optimiser step at accumulation
    boundaries (the engine steps any optimiser still pending after
    ``train_step``). A task with several optimisers calls ``step`` itself in
    the order its algorithm needs.
    """

    model: torch.nn.Module
    device: torch.device
    optimizers: dict[str, torch.optim.Optimizer]
    schedulers: dict[str, Any]
    scaler: Any
    params: TrainParams
    use_amp: bool
    micro_step: int = 0
    optimizer_steps: int = 0
    _pending: set[str] = dataclasses.field(default_factory=set)

    @property
    def at_boundary(self) -> bool:
        """True on the micro-batch that completes an accumulation group."""
        return (self.micro_step + 1) % self.params.grad_accum == 0

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """Mixed precision for the forward pass when AMP is on (CUDA), else a no-op."""
        if self.use_amp:
            return torch.autocast(device_type=self.device.type, dtype=torch.float16)
        return contextlib.nullcontext()

    def backward(self, loss: torch.Tensor, name: str = "main") -> None:
        if name not in self.optimizers:
            raise ConfigError(f"backward: no optimiser named {name!r}; the task defined {sorted(self.optimizers)}")
        if not torch.isfinite(loss.detach()):
            raise DataError(f"training diverged: the {name!r} loss is {float(loss.detach())} at micro-step "
                            f"{self.micro_step}; lower the learning rate or check the data")
        scaled = loss / self.params.grad_accum
        (self.scaler.scale(scaled) if self.use_amp else scaled).backward()
        self._pending.add(name)

    def step(self, name: str = "main") -> bool:
        """Clip, step and zero optimiser ``name`` if this micro-batch ends an accumulation group."""
        if name not in self._pending or not self.at_boundary:
            return False
        opt = self.optimizers[name]
        if self.use_amp:
            self.scaler.unscale_(opt)
        if self.params.clip_grad is not None:
            params = [p for group in opt.param_groups for p in group["params"] if p.grad is not None]
            torch.nn.utils.clip_grad_norm_(params, self.params.clip_grad)
        if self.use_amp:
            self.scaler.step(opt)
            self.scaler.update()
        else:
            opt.step()
        opt.zero_grad(set_to_none=True)
        self.schedulers[name].step()
        self._pending.discard(name)
        self.optimizer_steps += 1
        return True


@dataclasses.dataclass
class FitResult:
    """What :func:`fit` returns: the history, the best validation result and timings."""

    history: pd.DataFrame
    best_metric: float
    best_epoch: int
    epochs_run: int
    stopped_early: bool
    train_time_s: float  # training steps only (data loading included, validation excluded), all epochs so far
    wall_time_s: float  # this call, validation and checkpointing included
    samples_seen: int
    best_state: dict[str, torch.Tensor]
    checkpoint: Path | None = None

    @property
    def samples_per_s(self) -> float:
        return self.samples_seen / self.train_time_s if self.train_time_s > 0 else float("nan")


def _cosine(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if warmup_steps and step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def _use_amp(params: TrainParams, device: torch.device) -> bool:
    if params.amp == "on" and device.type != "cuda":
        raise ConfigError("train.amp='on' needs a CUDA device; on CPU use 'auto' or 'off' (CPU autocast is slow here)")
    return device.type == "cuda" and params.amp in ("auto", "on")


def default_device() -> torch.device:
    """CUDA (this process's local rank) when available, else CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", dist.local_rank())
    return torch.device("cpu")


def _reseed_transforms(dataset: Any, seed: int) -> None:
    transform = getattr(dataset, "transform", None)
    if transform is not None and hasattr(transform, "set_random_state"):
        transform.set_random_state(seed=seed % 2**32)


def _loader(dataset: Any, params: TrainParams, *, seed: int, shuffle: bool, collate_fn: Any = None) -> Any:
    from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, SequentialSampler

    if dist.world_size() > 1:
        sampler: Any = DistributedSampler(dataset, num_replicas=dist.world_size(), rank=dist.rank(), shuffle=shuffle,
                                          seed=seed, drop_last=False)
    elif shuffle:
        sampler = RandomSampler(dataset, generator=torch.Generator().manual_seed(seed))
    else:
        sampler = SequentialSampler(dataset)
    from monai.data.utils import list_data_collate

    # list_data_collate flattens the several patches a random crop returns per volume into one batch
    kwargs: dict[str, Any] = {"batch_size": params.batch_size, "sampler": sampler, "num_workers": params.num_workers,
                              "drop_last": False, "pin_memory": torch.cuda.is_available(),
                              "collate_fn": collate_fn or list_data_collate}
    if params.num_workers > 0:
        kwargs["persistent_workers"] = False
    return DataLoader(dataset, **kwargs)


def _state_of(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    inner = model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model
    return {k: v.detach().cpu().clone() for k, v in inner.state_dict().items()}


def _progress_wanted(progress: bool | None) -> bool:
    if progress is not None:
        return progress
    return not os.environ.get(HEADLESS_ENV)


def fit(
    model: torch.nn.Module,
    task: Task,
    train_dataset: Any,
    val_dataset: Any | None,
    params: TrainParams,
    *,
    seed: int = 0,
    run: Any = None,
    name: str = "model",
    device: torch.device | None = None,
    progress: bool | None = None,
    resume: bool = False,
    collate_fn: Any = None,
    on_epoch_end: Callable[[dict[str, Any]], None] | None = None,
) -> FitResult:
    """Train ``model`` on ``train_dataset`` with ``task``; validate on ``val_dataset``; return a :class:`FitResult`.

    With a ``run`` (:class:`medbench.report.Run`), the best weights are saved as
    checkpoint ``<name>-best`` and the resumable state as ``<name>-last`` (both
    recorded with sha256 in run.json); ``resume=True`` continues from
    ``<name>-last`` if the run has one. ``seed`` fixes the data order and the
    random transforms of every epoch.
    """
    device = device or default_device()
    ddp = dist.world_size() > 1
    model = model.to(device)
    optimizers = task.optimizers(model, params)
    if not optimizers:
        raise ConfigError("the task defined no optimiser")
    train_model: torch.nn.Module = model
    if ddp:
        train_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    loader = _loader(train_dataset, params, seed=seed, shuffle=params.shuffle, collate_fn=collate_fn)
    steps_per_epoch = max(1, math.ceil(len(loader) / params.grad_accum))
    total = steps_per_epoch * params.epochs
    warmup = steps_per_epoch * params.warmup_epochs
    schedulers = {k: torch.optim.lr_scheduler.LambdaLR(o, _cosine(total, warmup)) for k, o in optimizers.items()}
    use_amp = _use_amp(params, device)
    scaler = torch.amp.GradScaler(device.type, enabled=use_amp)
    ctx = StepContext(train_model, device, optimizers, schedulers, scaler, params, use_amp)

    history: list[dict[str, Any]] = []
    best_metric = -math.inf if task.mode == "max" else math.inf
    best_epoch, since_best, start_epoch = -1, 0, 0
    best_state = _state_of(model)
    if resume and run is not None and f"{name}-last" in run.checkpoints:
        state = run.load_checkpoint(f"{name}-last")
        model.load_state_dict(state["model"])
        for k, opt in optimizers.items():
            opt.load_state_dict(state["optimizers"][k])
            schedulers[k].load_state_dict(state["schedulers"][k])
        start_epoch = int(state["epoch"]) + 1
        best_metric, best_epoch = float(state["best_metric"]), int(state["best_epoch"])
        since_best = int(state["since_best"])
        best_state = state["best_model"]
        history = [dict(zip(state["history_keys"], row)) for row in state["history_rows"]]
        ctx.micro_step = int(state["micro_step"])
        ctx.optimizer_steps = int(state["optimizer_steps"])

    bar = Progress(enabled=_progress_wanted(progress) and dist.is_main(), total=params.epochs, initial=start_epoch,
                   desc=name)
    start = time.perf_counter()
    train_elapsed = float(history[-1]["train_s"]) if history else 0.0
    samples = 0
    stopped = False
    epoch = start_epoch - 1
    try:
        for epoch in range(start_epoch, params.epochs):
            train_model.train()
            if hasattr(loader.sampler, "set_epoch"):
                loader.sampler.set_epoch(epoch)
            if isinstance(loader.sampler, torch.utils.data.RandomSampler):
                loader.sampler.generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
            _reseed_transforms(train_dataset, seed * 1_000_003 + epoch)
            sums: dict[str, float] = {}
            n_batches = 0
            epoch_start = time.perf_counter()
            for batch in loader:
                sync = ctx.at_boundary or not ddp
                with contextlib.nullcontext() if sync else train_model.no_sync():  # type: ignore[operator]
                    losses = task.train_step(ctx, batch)
                for opt_name in sorted(ctx._pending):
                    ctx.step(opt_name)
                ctx.micro_step += 1
                n_batches += 1
                samples += _batch_size(batch)
                for k, v in losses.items():
                    sums[k] = sums.get(k, 0.0) + float(v)
            train_elapsed += time.perf_counter() - epoch_start
            row: dict[str, Any] = {"epoch": epoch, **{k: v / max(n_batches, 1) for k, v in sums.items()},
                                   "lr": float(next(iter(optimizers.values())).param_groups[0]["lr"]),
                                   "train_s": train_elapsed}
            if val_dataset is not None and ((epoch + 1) % params.val_every == 0 or epoch + 1 == params.epochs):
                metrics: Mapping[str, float] = {}
                if dist.is_main():
                    metrics = task.validate(model, val_dataset, device)
                    if task.monitor not in metrics:
                        raise ConfigError(f"validation returned {sorted(metrics)} but the task monitors "
                                          f"{task.monitor!r}")
                value = dist.broadcast_float(float(metrics.get(task.monitor, math.nan)))
                row.update({f"val_{k}": float(v) for k, v in metrics.items()})
                improved = value > best_metric if task.mode == "max" else value < best_metric
                if improved:
                    best_metric, best_epoch, since_best = value, epoch, 0
                    best_state = _state_of(model)
                else:
                    since_best += 1
                bar.note(f"{task.monitor} {value:.4f} (best {best_metric:.4f} @ {best_epoch})")
                if params.patience is not None and since_best >= params.patience:
                    stopped = True
            history.append(row)
            bar.update(row)
            if run is not None and dist.is_main():
                _save_last(run, name, model, optimizers, schedulers, epoch, best_metric, best_epoch, since_best,
                           best_state, history, ctx)
            if on_epoch_end is not None and dist.is_main():
                on_epoch_end(row)
            if stopped:
                break
    finally:
        bar.close()
    wall_time = time.perf_counter() - start
    if val_dataset is None:
        best_state, best_epoch = _state_of(model), epoch
    model.load_state_dict(best_state)
    checkpoint = None
    if run is not None and dist.is_main():
        checkpoint = run.save_checkpoint(best_state, f"{name}-best", epoch=best_epoch, monitor=task.monitor,
                                         value=None if math.isinf(best_metric) else best_metric)
    return FitResult(pd.DataFrame(history), float(best_metric), int(best_epoch), epoch + 1 - start_epoch, stopped,
                     train_elapsed, wall_time, samples * dist.world_size(), best_state, checkpoint)


def _batch_size(batch: Any) -> int:
    if isinstance(batch, Mapping):
        batch = next(iter(batch.values()))
    if isinstance(batch, (list, tuple)):
        batch = batch[0]
    return int(batch.shape[0]) if hasattr(batch, "shape") else 1


def _save_last(run: Any, name: str, model: torch.nn.Module, optimizers: Mapping[str, Any],
               schedulers: Mapping[str, Any], epoch: int, best_metric: float, best_epoch: int, since_best: int,
               best_state: Mapping[str, torch.Tensor], history: list[dict[str, Any]], ctx: StepContext) -> None:
    keys = sorted({k for row in history for k in row})
    state = {
        "model": _state_of(model),
        "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
        "schedulers": {k: s.state_dict() for k, s in schedulers.items()},
        "epoch": epoch,
        "best_metric": best_metric,
        "best_epoch": best_epoch,
        "since_best": since_best,
        "best_model": dict(best_state),
        "history_keys": keys,
        "history_rows": [[float(row.get(k, math.nan)) for k in keys] for row in history],
        "micro_step": ctx.micro_step,
        "optimizer_steps": ctx.optimizer_steps,
    }
    run.save_checkpoint(state, f"{name}-last", epoch=epoch)


@contextlib.contextmanager
def headless() -> Iterator[None]:
    """Within the block, :func:`fit` shows no progress bars (what ``medbench run`` does for its kernels)."""
    before = os.environ.get(HEADLESS_ENV)
    os.environ[HEADLESS_ENV] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(HEADLESS_ENV, None)
        else:
            os.environ[HEADLESS_ENV] = before
