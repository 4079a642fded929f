"""medbench.engine.fit: learning, accumulation, early stopping, checkpoints, resume, custom steps, failures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from medbench.engine import SegmentationTask, StepContext, TrainParams, fit
from medbench.errors import ConfigError, DataError
from medbench.recipes import tour
from medbench.report import read_record, start_run
from medbench.report import run as run_mod

PATCH = (16, 16, 16)
NAMES = {0: "background", 1: "cube"}


def _volumes(n: int, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """Noisy volumes with a bright cube of random size and position; the label is the cube."""
    rng = np.random.default_rng(seed)
    items = []
    for _ in range(n):
        img = rng.normal(0.0, 0.3, (1, *PATCH)).astype(np.float32)
        lab = np.zeros((1, *PATCH), np.int64)
        lo = rng.integers(2, 7, 3)
        hi = lo + rng.integers(5, 9, 3)
        lab[0, lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = 1
        img[lab == 1] += 1.0
        items.append({"image": torch.from_numpy(img), "label": torch.from_numpy(lab)})
    return items


def _model(seed: int = 0) -> torch.nn.Module:
    from monai.networks.nets import UNet

    torch.manual_seed(seed)
    return UNet(3, 1, 2, channels=(4, 8), strides=(2,), num_res_units=0)


def _params(**kw: Any) -> TrainParams:
    return TrainParams(**{"epochs": 3, "batch_size": 2, "lr": 1e-2, **kw})


def _same(a: torch.nn.Module, b: torch.nn.Module, atol: float = 1e-6) -> bool:
    return all(torch.allclose(p, q, atol=atol) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv(run_mod.ENV_RUN_DIR, str(tmp_path / "run"))
    return start_run(tour.Params(), deterministic=True)


def test_fit_learns_and_records_history() -> None:
    train, val = _volumes(8, 0), _volumes(3, 1)
    task = SegmentationTask(NAMES, PATCH)
    model = _model()
    before = task.validate(model, val, torch.device("cpu"))["dice_mean"]
    result = fit(model, task, train, val, _params(epochs=6), seed=0, progress=False)
    assert list(result.history.columns[:2]) == ["epoch", "loss"] and len(result.history) == 6
    assert result.history["loss"].iloc[-1] < result.history["loss"].iloc[0]
    assert result.best_metric > max(before + 0.3, 0.6), (before, result.best_metric)
    assert result.samples_seen == 6 * 8 and result.samples_per_s > 0
    lr = result.history["lr"].to_numpy()
    assert lr[-1] < lr[0], "cosine decay"


def test_same_seed_same_weights_different_seed_different() -> None:
    a, b, c = _model(), _model(), _model()
    data = _volumes(4)
    for m, seed in ((a, 0), (b, 0), (c, 1)):
        fit(m, SegmentationTask(NAMES, PATCH), data, None, _params(epochs=2), seed=seed, progress=False)
    assert _same(a, b, atol=0) and not _same(a, c)


class SGDSegmentation(SegmentationTask):
    """Plain SGD: Adam divides by the running gradient size, which turns float rounding in gradients
    that are truly zero (conv biases before instance norm) into full-size steps, so exact-equality
    tests of the loop's arithmetic use SGD."""

    def optimizers(self, model: torch.nn.Module, params: TrainParams) -> dict[str, torch.optim.Optimizer]:
        return {"main": torch.optim.SGD(model.parameters(), lr=params.lr, momentum=0.9)}


def test_gradient_accumulation_matches_the_larger_batch() -> None:
    data = _volumes(4)
    big, accum, unaccumulated = _model(), _model(), _model()
    fit(big, SGDSegmentation(NAMES, PATCH), data, None, _params(epochs=2, batch_size=2), progress=False)
    fit(accum, SGDSegmentation(NAMES, PATCH), data, None, _params(epochs=2, batch_size=1, grad_accum=2),
        progress=False)
    fit(unaccumulated, SGDSegmentation(NAMES, PATCH), data, None, _params(epochs=2, batch_size=1), progress=False)
    assert _same(big, accum, atol=1e-6)
    assert not _same(big, unaccumulated, atol=1e-4), "the check can tell accumulation from plain small batches"


def test_early_stopping_keeps_the_best_weights_and_records_checkpoints(run: Any) -> None:
    class Flat(SegmentationTask):
        calls = 0

        def validate(self, model: torch.nn.Module, dataset: Any, device: torch.device) -> dict[str, float]:
            Flat.calls += 1
            return {"dice_mean": [0.5, 0.9, 0.7, 0.6, 0.8, 0.1, 0.1][Flat.calls - 1]}

    model = _model()
    result = fit(model, Flat(NAMES, PATCH), _volumes(4), _volumes(1), _params(epochs=7, patience=2), run=run,
                 name="unet", progress=False)
    assert result.stopped_early and result.epochs_run == 4 and result.best_epoch == 1
    assert result.best_metric == pytest.approx(0.9)
    rec = read_record(run.run_dir)
    best = rec["checkpoints"]["unet-best"]
    assert best["epoch"] == 1 and len(best["sha256"]) == 64 and best["value"] == pytest.approx(0.9)
    state = run.load_checkpoint("unet-best")
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items()), "the model holds the best weights"


def test_resume_continues_exactly_where_an_interrupted_run_stopped(run: Any) -> None:
    data = _volumes(4)
    full = _model()
    fit(full, SegmentationTask(NAMES, PATCH), data, None, _params(epochs=4), seed=3, progress=False)

    def interrupt(row: dict[str, Any]) -> None:
        if row["epoch"] == 1:
            raise KeyboardInterrupt

    resumed = _model()
    with pytest.raises(KeyboardInterrupt):
        fit(resumed, SegmentationTask(NAMES, PATCH), data, None, _params(epochs=4), seed=3, run=run, name="m",
            progress=False, on_epoch_end=interrupt)
    result = fit(resumed, SegmentationTask(NAMES, PATCH), data, None, _params(epochs=4), seed=3, run=run, name="m",
                 progress=False, resume=True)
    assert result.epochs_run == 2
    assert _same(full, resumed, atol=1e-6)


class _TwoOptimisers:
    """A GAN-shaped task: two parameter groups, two optimisers, stepped in the task's own order."""

    monitor, mode = "loss_a", "min"

    def __init__(self) -> None:
        self.order: list[str] = []

    def optimizers(self, model: torch.nn.Module, params: TrainParams) -> dict[str, torch.optim.Optimizer]:
        return {"a": torch.optim.SGD(model[0].parameters(), lr=0.1),  # type: ignore[index]
                "b": torch.optim.SGD(model[1].parameters(), lr=0.1)}  # type: ignore[index]

    def train_step(self, ctx: StepContext, batch: Any) -> dict[str, float]:
        x = batch["image"].flatten(1)[:, :4]
        loss_b = ctx.model[1](x).pow(2).mean()  # type: ignore[index]
        ctx.backward(loss_b, "b")
        if ctx.step("b"):
            self.order.append("b")
        loss_a = ctx.model[0](x).pow(2).mean()  # type: ignore[index]
        ctx.backward(loss_a, "a")
        if ctx.step("a"):
            self.order.append("a")
        return {"loss_a": float(loss_a.detach()), "loss_b": float(loss_b.detach())}

    def validate(self, model: torch.nn.Module, dataset: Any, device: torch.device) -> dict[str, float]:
        return {"loss_a": 1.0}


def test_a_custom_step_with_two_optimisers_plugs_in() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(4, 1), torch.nn.Linear(4, 1))
    w_a, w_b = model[0].weight.clone(), model[1].weight.clone()
    task = _TwoOptimisers()
    result = fit(model, task, _volumes(4), None, _params(epochs=2), progress=False)
    assert task.order == ["b", "a"] * 4 and {"loss_a", "loss_b"} <= set(result.history.columns)
    assert not torch.equal(model[0].weight, w_a) and not torch.equal(model[1].weight, w_b)


def test_divergence_is_a_clear_error() -> None:
    class Exploding(SegmentationTask):
        def train_step(self, ctx: StepContext, batch: Any) -> dict[str, float]:
            ctx.backward(torch.tensor(float("nan"), requires_grad=True))
            return {}

    with pytest.raises(DataError, match="training diverged: the 'main' loss is nan"):
        fit(_model(), Exploding(NAMES, PATCH), _volumes(2), None, _params(), progress=False)


def test_amp_on_a_cpu_is_refused() -> None:
    with pytest.raises(ConfigError, match="needs a CUDA device"):
        fit(_model(), SegmentationTask(NAMES, PATCH), _volumes(2), None, _params(amp="on"),
            device=torch.device("cpu"), progress=False)
