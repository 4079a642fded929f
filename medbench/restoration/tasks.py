"""Engine tasks for image-to-image models, and slice-wise inference.

Samples are dicts of channel-first tensors: ``{"input": (C, ...), "target": (C', ...)}``
(:func:`pair_dataset` builds them from :class:`~medbench.restoration.degrade.Pairs`).
Intensities are in the model's units (:data:`HU_SCALE`: CT as ``HU / 1000``, water
0, air -1); PSNR in validation uses ``data_range`` in those units.

* :class:`PixelTask` — one AdamW optimiser, an L1 or L2 pixel loss (RED-CNN, autoencoder).
* :class:`Pix2PixTask` — the conditional GAN (pix2pix, Isola et al. 2017) with two optimisers stepped
  in the algorithm's order on every batch: the discriminator first (real pairs -> 1, generated pairs -> 0,
  binary cross-entropy on logits, halved), then the generator with the discriminator frozen
  (``adv_weight * BCE(D(x, G(x)), 1) + l1_weight * |G(x) - y| + ssim_weight * (1 - SSIM)``).
  Validation scores the generator alone. It is modality-agnostic: restoration (noisy -> clean CT) and
  synthesis (CT -> PET) use it alike.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from medbench.engine.loop import StepContext
from medbench.engine.params import TrainParams
from medbench.errors import ConfigError
from medbench.restoration.degrade import Pairs

#: CT in the networks: HU / HU_SCALE (water 0, air -1, dense bone about +1.5).
HU_SCALE = 1000.0


def pair_dataset(pairs: Pairs, scale: float = HU_SCALE) -> list[dict[str, torch.Tensor]]:
    """``[{"input": degraded / scale, "target": clean / scale}]`` with a channel axis, float32 tensors."""
    return [{"input": torch.from_numpy(pairs.degraded[n][None] / np.float32(scale)),
             "target": torch.from_numpy(pairs.clean[n][None] / np.float32(scale))} for n in range(len(pairs))]


def crop_dataset(pairs: Pairs, crop: int | None, scale: float = HU_SCALE, repeats: int = 1) -> Any:
    """:func:`pair_dataset` with a random ``crop`` x ``crop`` window per sample and epoch (None: whole slices).

    A MONAI ``Dataset`` whose transform (``RandSpatialCropd`` on both keys at
    one place) the engine re-seeds every epoch, so crops are reproducible.
    ``repeats``: each slice appears this many times per epoch (each time with
    its own random crop), so an epoch covers about as many pixels as the slices hold.
    """
    if repeats < 1:
        raise ConfigError(f"repeats must be >= 1, got {repeats}")
    items = pair_dataset(pairs, scale) * repeats
    if crop is None:
        return items
    from monai.data import Dataset
    from monai.transforms import Compose, RandSpatialCropd

    size = pairs.clean.shape[1:]
    if crop > min(size):
        raise ConfigError(f"crop {crop} is larger than the slices {size}")
    return Dataset(items, transform=Compose([RandSpatialCropd(["input", "target"], (crop, crop), random_size=False)]))


@torch.no_grad()
def predict_batches(model: torch.nn.Module, inputs: torch.Tensor, device: torch.device, batch_size: int = 16
                    ) -> torch.Tensor:
    """``model`` (eval mode) over ``inputs`` ``(N, C, ...)`` in batches; returns ``(N, C', ...)`` on the CPU."""
    model.eval()
    outs = [model(inputs[s:s + batch_size].to(device)).cpu() for s in range(0, inputs.shape[0], batch_size)]
    return torch.cat(outs) if outs else inputs[:0]


def restore_slices(model: torch.nn.Module, slices_hu: np.ndarray, *, device: torch.device | None = None,
                   batch_size: int = 16, scale: float = HU_SCALE) -> tuple[np.ndarray, float]:
    """Restore axial slices ``(N, i, j)`` in HU; returns the result (HU, float32) and seconds per slice."""
    arr = np.asarray(slices_hu, np.float32)
    if arr.ndim != 3:
        raise ConfigError(f"restore_slices needs slices (N, i, j), got shape {arr.shape}")
    start = time.perf_counter()
    out = predict_batches(model, torch.from_numpy(arr[:, None] / np.float32(scale)), device or torch.device("cpu"),
                          batch_size)
    seconds = (time.perf_counter() - start) / max(arr.shape[0], 1)
    return (out[:, 0].numpy() * np.float32(scale)).astype(np.float32), seconds


def _stack(dataset: Any, key: str) -> torch.Tensor:
    return torch.stack([torch.as_tensor(dataset[n][key]) for n in range(len(dataset))])


def validation_psnr(model: torch.nn.Module, dataset: Any, device: torch.device, data_range: float) -> dict[str, float]:
    """Mean PSNR (dB, per sample, ``data_range`` in model units) and L1 of ``model`` on ``dataset``."""
    x, y = _stack(dataset, "input"), _stack(dataset, "target")
    pred = predict_batches(model, x, device)
    mse = ((pred - y) ** 2).flatten(1).mean(1).clamp_min(1e-12)
    psnr = 10.0 * torch.log10(data_range**2 / mse)
    return {"psnr": float(psnr.mean()), "l1": float((pred - y).abs().mean())}


class PixelTask:
    """Supervised image-to-image training with a pixel loss (``"l1"`` or ``"l2"``); monitors validation PSNR."""

    monitor = "psnr"
    mode = "max"

    def __init__(self, loss: str = "l2", data_range: float = 2.0) -> None:
        if loss not in ("l1", "l2"):
            raise ConfigError(f"pixel loss must be 'l1' or 'l2', got {loss!r}")
        self.loss = torch.nn.L1Loss() if loss == "l1" else torch.nn.MSELoss()
        self.data_range = float(data_range)

    def optimizers(self, model: torch.nn.Module, params: TrainParams) -> dict[str, torch.optim.Optimizer]:
        return {"main": torch.optim.AdamW(model.parameters(), lr=params.lr, weight_decay=params.weight_decay)}

    def train_step(self, ctx: StepContext, batch: Mapping[str, torch.Tensor]) -> dict[str, float]:
        x, y = batch["input"].to(ctx.device), batch["target"].to(ctx.device)
        with ctx.autocast():
            loss = self.loss(ctx.model(x), y)
        ctx.backward(loss)
        return {"loss": float(loss.detach())}

    def validate(self, model: torch.nn.Module, dataset: Any, device: torch.device) -> dict[str, float]:
        return validation_psnr(model, dataset, device, self.data_range)


class Pix2PixTask:
    """The pix2pix conditional GAN step (module doc) for a :class:`~medbench.models.restoration.ConditionalGAN`.

    Weights: ``l1_weight`` (pix2pix: 100), ``adv_weight`` (1), ``ssim_weight``
    (0: off; MONAI ``SSIMLoss`` with ``data_range``). The discriminator learns
    at ``disc_lr_factor`` times the generator's rate; both use Adam with
    ``betas=(0.5, 0.999)`` (the pix2pix setting) and the engine's schedule.
    """

    monitor = "psnr"
    mode = "max"

    def __init__(self, *, l1_weight: float = 100.0, adv_weight: float = 1.0, ssim_weight: float = 0.0,
                 data_range: float = 2.0, disc_lr_factor: float = 1.0, spatial_dims: int = 2) -> None:
        if min(l1_weight, adv_weight, ssim_weight) < 0 or l1_weight + adv_weight + ssim_weight == 0:
            raise ConfigError("pix2pix loss weights must be >= 0 and not all zero")
        self.l1_weight, self.adv_weight, self.ssim_weight = float(l1_weight), float(adv_weight), float(ssim_weight)
        self.data_range = float(data_range)
        self.disc_lr_factor = float(disc_lr_factor)
        self.bce = torch.nn.BCEWithLogitsLoss()
        self.ssim: torch.nn.Module | None = None
        if ssim_weight > 0:
            from monai.losses import SSIMLoss

            self.ssim = SSIMLoss(spatial_dims=spatial_dims, data_range=self.data_range)

    def optimizers(self, model: torch.nn.Module, params: TrainParams) -> dict[str, torch.optim.Optimizer]:
        gan = _gan(model)
        return {
            "d": torch.optim.Adam(gan.discriminator.parameters(), lr=params.lr * self.disc_lr_factor,
                                  betas=(0.5, 0.999)),
            "g": torch.optim.Adam(gan.generator.parameters(), lr=params.lr, betas=(0.5, 0.999)),
        }

    def train_step(self, ctx: StepContext, batch: Mapping[str, torch.Tensor]) -> dict[str, float]:
        gan = _gan(ctx.model)
        x, y = batch["input"].to(ctx.device), batch["target"].to(ctx.device)
        with ctx.autocast():
            fake = gan.generator(x)
            real_logits = gan.discriminate(x, y)
            fake_logits = gan.discriminate(x, fake.detach())
            loss_d = 0.5 * (self.bce(real_logits, torch.ones_like(real_logits))
                            + self.bce(fake_logits, torch.zeros_like(fake_logits)))
        ctx.backward(loss_d, "d")
        ctx.step("d")
        for p in gan.discriminator.parameters():
            p.requires_grad_(False)
        try:
            with ctx.autocast():
                logits = gan.discriminate(x, fake)
                adv = self.bce(logits, torch.ones_like(logits))
                l1 = (fake - y).abs().mean()
                loss_g = self.adv_weight * adv + self.l1_weight * l1
                ssim_loss = torch.zeros(())
                if self.ssim is not None:
                    ssim_loss = self.ssim(fake, y)
                    loss_g = loss_g + self.ssim_weight * ssim_loss
            ctx.backward(loss_g, "g")
            ctx.step("g")
        finally:
            for p in gan.discriminator.parameters():
                p.requires_grad_(True)
        out = {"loss_d": float(loss_d.detach()), "loss_g": float(loss_g.detach()), "adv": float(adv.detach()),
               "l1": float(l1.detach())}
        if self.ssim is not None:
            out["ssim_loss"] = float(ssim_loss.detach())
        return out

    def validate(self, model: torch.nn.Module, dataset: Any, device: torch.device) -> dict[str, float]:
        return validation_psnr(_gan(model).generator, dataset, device, self.data_range)


def _gan(model: torch.nn.Module) -> Any:
    net = getattr(model, "module", model)  # DistributedDataParallel wraps the module
    if not (hasattr(net, "generator") and hasattr(net, "discriminator")):
        raise ConfigError("Pix2PixTask needs a model with .generator and .discriminator (models.restoration."
                          "ConditionalGAN)")
    return net
