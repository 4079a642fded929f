"""Restoration networks: shapes, identity at initialisation, the pix2pix task through the engine, checkpoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from medbench.engine import TrainParams, fit
from medbench.errors import ConfigError
from medbench.models.restoration import (
    ConditionalGAN,
    RestorationModelParams,
    build_pix2pix,
    build_restoration_model,
)
from medbench.restoration import Pairs
from medbench.restoration.tasks import Pix2PixTask, PixelTask, crop_dataset, pair_dataset, restore_slices

SMALL = RestorationModelParams(channels=4, levels=2, red_depth=2, disc_channels=4, disc_layers=2)


@pytest.mark.parametrize("name", ["red_cnn", "autoencoder", "unet"])
def test_shapes_and_identity_at_start(name: str) -> None:
    torch.manual_seed(0)
    net = build_restoration_model(name, SMALL)
    x = torch.randn(2, 1, 16, 16)
    y = net(x)
    assert y.shape == x.shape
    torch.testing.assert_close(y, x)  # output layers start at zero: the untrained network is the identity
    net3d = build_restoration_model(name, SMALL, spatial_dims=3)
    assert net3d(torch.randn(1, 1, 8, 8, 8)).shape == (1, 1, 8, 8, 8)
    with pytest.raises(ConfigError, match="unknown restoration architecture"):
        build_restoration_model("vnet", SMALL)


def test_pix2pix_synthesis_is_not_residual() -> None:
    gan = build_pix2pix(SMALL, in_channels=1, out_channels=1, residual=False)
    x = torch.randn(2, 1, 16, 16)
    assert isinstance(gan, ConditionalGAN) and gan(x).shape == x.shape
    assert gan.discriminate(x, x).dim() == 4  # a map of patch logits


def _pairs(n: int = 8, size: int = 16, seed: int = 0) -> Pairs:
    rng = np.random.default_rng(seed)
    ii, jj = np.indices((size, size))
    clean = np.stack([np.where(np.hypot(ii - size / 2, jj - size / 2) < size / 3, 50.0, -900.0)
                      for _ in range(n)]).astype(np.float32)
    noisy = (clean + rng.normal(0, 60.0, clean.shape)).astype(np.float32)
    return Pairs(clean, noisy, np.arange(n)[:, None])


def _params(**kw: object) -> TrainParams:
    return TrainParams(**{"epochs": 3, "batch_size": 4, "lr": 1e-2, "clip_grad": 1.0, **kw})  # type: ignore[arg-type]


def test_pix2pix_task_trains_both_networks_through_the_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from medbench.recipes import tour
    from medbench.report import run as run_mod
    from medbench.report import start_run

    monkeypatch.setenv(run_mod.ENV_RUN_DIR, str(tmp_path / "run"))
    torch.manual_seed(0)
    gan = build_pix2pix(SMALL)
    g0 = [p.clone() for p in gan.generator.parameters()]
    d0 = [p.clone() for p in gan.discriminator.parameters()]
    run = start_run(tour.Params(), deterministic=True)
    task = Pix2PixTask(l1_weight=10.0, adv_weight=1.0, ssim_weight=1.0, data_range=2.0)
    result = fit(gan, task, pair_dataset(_pairs()), pair_dataset(_pairs(4, seed=1)), _params(), run=run,
                 name="cgan", progress=False)
    assert {"loss_d", "loss_g", "adv", "l1", "ssim_loss", "val_psnr"} <= set(result.history.columns)
    assert any(not torch.equal(a, b) for a, b in zip(g0, gan.generator.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(d0, gan.discriminator.parameters()))
    assert all(p.requires_grad for p in gan.discriminator.parameters())  # unfrozen after the generator step
    state = run.load_checkpoint("cgan-best")  # weights_only=True inside
    fresh = build_pix2pix(SMALL)
    fresh.load_state_dict(state)
    with pytest.raises(ConfigError, match="generator"):
        Pix2PixTask().optimizers(torch.nn.Linear(1, 1), _params())


def test_pixel_task_trains_and_restore_slices_round_trips() -> None:
    torch.manual_seed(0)
    pairs = _pairs(8)
    fresh = build_restoration_model("red_cnn", SMALL)
    out, seconds = restore_slices(fresh, pairs.degraded, scale=100.0)
    assert out.shape == pairs.degraded.shape and seconds > 0
    np.testing.assert_allclose(out, pairs.degraded, atol=1e-3)  # untrained = identity, scaling undone exactly
    net = build_restoration_model("red_cnn", SMALL)
    w0 = [p.clone() for p in net.parameters()]
    result = fit(net, PixelTask("l1", data_range=20.0), crop_dataset(pairs, 12, 100.0),
                 pair_dataset(_pairs(4, seed=2), 100.0), _params(epochs=2), seed=0, progress=False)
    assert {"loss", "val_psnr", "val_l1"} <= set(result.history.columns) and result.best_metric > 0
    assert any(not torch.equal(a, b) for a, b in zip(w0, net.parameters()))
    with pytest.raises(ConfigError, match="pixel loss"):
        PixelTask("l3")
    with pytest.raises(ConfigError, match="larger than"):
        crop_dataset(pairs, 40)
