"""Segmentation networks from MONAI, configured from one schema section.

One :class:`ModelParams` section describes every architecture the series
compares; each field says which architectures read it. Sizes are chosen per
profile (the smoke profile uses small widths so every row trains on a CPU in
seconds; the full profile uses the published defaults or close to them).

==================  =====================================================================
``name``            MONAI class (and the fields it reads)
==================  =====================================================================
``unet``            ``UNet``: ``base_channels`` doubled per level for ``levels`` levels,
                    ``num_res_units``, ``dropout``
``attention_unet``  ``AttentionUnet``: ``base_channels``, ``levels``, ``dropout``
``unetr``           ``UNETR``: ``feature_size``, ``hidden_size``, ``mlp_dim``, ``num_heads``,
                    ``dropout`` (the ViT patch size is 16 voxels, so the input patch must be a
                    multiple of 16)
``swin_unetr``      ``SwinUNETR``: ``feature_size`` (multiple of 12), ``window_size``,
                    ``dropout`` (patch sides: multiples of 32, one of them at least 64)
``segresnet``       ``SegResNet``: ``base_channels`` (init filters), ``dropout``
==================  =====================================================================

Dropout layers are what MC-dropout uncertainty samples (:func:`enable_mc_dropout`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
from pydantic import Field, model_validator

from medbench.config import Section
from medbench.errors import ConfigError

Architecture = Literal["unet", "attention_unet", "unetr", "swin_unetr", "segresnet"]
ARCHITECTURES: tuple[str, ...] = ("unet", "attention_unet", "unetr", "swin_unetr", "segresnet")

#: The input patch of each architecture must be a multiple of this many voxels along each axis.
PATCH_MULTIPLE: dict[str, int] = {"unet": 8, "attention_unet": 8, "unetr": 16, "swin_unetr": 32, "segresnet": 8}


class ModelParams(Section):
    """The ``model`` section (flat names ``model_*``)."""

    name: Architecture = Field("unet", description="Architecture (see medbench.models.factory).")
    base_channels: int = Field(16, ge=4, description="UNet/AttentionUnet first-level width; SegResNet init filters.")
    levels: int = Field(4, ge=2, le=6, description="UNet/AttentionUnet resolution levels (stride-2 steps + 1).")
    num_res_units: int = Field(2, ge=0, description="UNet residual units per level.")
    feature_size: int = Field(12, ge=4, description="UNETR/SwinUNETR decoder width (SwinUNETR: multiple of 12).")
    hidden_size: int = Field(192, ge=12, description="UNETR transformer width.")
    mlp_dim: int = Field(384, ge=12, description="UNETR transformer MLP width.")
    num_heads: int = Field(4, ge=1, description="UNETR attention heads (hidden_size must divide).")
    window_size: int = Field(7, ge=2, description="SwinUNETR attention window (voxels of the embedded grid).")
    dropout: float = Field(0.1, ge=0.0, lt=1.0, description="Dropout probability (MC-dropout uncertainty uses it).")

    @model_validator(mode="after")
    def _consistent(self) -> ModelParams:
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} must be a multiple of num_heads {self.num_heads}")
        if self.feature_size % 12 and self.name == "swin_unetr":
            raise ValueError(f"SwinUNETR needs feature_size as a multiple of 12, got {self.feature_size}")
        if self.base_channels % 8 and self.name == "segresnet":
            raise ValueError(f"SegResNet's group norm (8 groups) needs base_channels as a multiple of 8, "
                             f"got {self.base_channels}")
        return self


#: SwinUNETR's instance norm needs more than one voxel at its 1/32 bottleneck: one side must be >= 64.
PATCH_MINIMUM: dict[str, int] = {"swin_unetr": 64}


def patch_problem(name: str, patch: Sequence[int]) -> str | None:
    """Why ``patch`` does not suit architecture ``name`` (None when it does)."""
    m = PATCH_MULTIPLE[name]
    if any(int(p) % m for p in patch):
        return f"{name} needs an input patch whose sides are multiples of {m} voxels, got {list(patch)}"
    low = PATCH_MINIMUM.get(name, 0)
    if low and max(int(p) for p in patch) < low:
        return f"{name} needs one patch side of at least {low} voxels (its bottleneck is 1/32), got {list(patch)}"
    return None


def models_patch_problem(names: Sequence[str], patch: Sequence[int]) -> str | None:
    """Why a list of architectures cannot share ``patch`` (an empty list, or the first misfit); None when they can.

    Recipe schemas that train several architectures on one patch validate with this.
    """
    if not names:
        return "models is empty"
    for name in names:
        problem = patch_problem(name, patch)
        if problem:
            return f"data.patch: {problem}"
    return None


def _check_patch(name: str, patch: Sequence[int]) -> None:
    problem = patch_problem(name, patch)
    if problem:
        raise ConfigError(problem)


def build_model(params: ModelParams, in_channels: int, out_channels: int, patch: Sequence[int]) -> torch.nn.Module:
    """The network ``params`` describes, for ``in_channels`` inputs and ``out_channels`` classes (logits)."""
    from monai.networks.nets import UNETR, AttentionUnet, SegResNet, SwinUNETR, UNet

    _check_patch(params.name, patch)
    channels = [params.base_channels * 2**i for i in range(params.levels)]
    strides = [2] * (params.levels - 1)
    if params.name == "unet":
        return UNet(3, in_channels, out_channels, channels=channels, strides=strides,
                    num_res_units=params.num_res_units, dropout=params.dropout)
    if params.name == "attention_unet":
        return AttentionUnet(3, in_channels, out_channels, channels=channels, strides=strides, dropout=params.dropout)
    if params.name == "unetr":
        return UNETR(in_channels, out_channels, img_size=tuple(int(p) for p in patch), feature_size=params.feature_size,
                     hidden_size=params.hidden_size, mlp_dim=params.mlp_dim, num_heads=params.num_heads,
                     dropout_rate=params.dropout, spatial_dims=3)
    if params.name == "swin_unetr":
        return SwinUNETR(in_channels, out_channels, feature_size=params.feature_size, window_size=params.window_size,
                         drop_rate=params.dropout, spatial_dims=3)
    if params.name == "segresnet":
        return SegResNet(3, init_filters=params.base_channels, in_channels=in_channels, out_channels=out_channels,
                         dropout_prob=params.dropout or None)
    raise ConfigError(f"unknown architecture {params.name!r}; choose one of {', '.join(ARCHITECTURES)}")


def count_parameters(model: torch.nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters."""
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only))


def forward_flops(model: torch.nn.Module, input_shape: Sequence[int]) -> int:
    """FLOPs of one forward pass on a zero input of ``input_shape`` (N, C, i, j, k), by torch's FlopCounterMode.

    Counts the matrix multiplications and convolutions torch knows (a
    multiply-add is 2 FLOPs); element-wise work (norms, activations) is not
    counted, so this is the arithmetic a backend must do at least.
    """
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.zeros(tuple(int(s) for s in input_shape)))
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())


def model_summary(model: torch.nn.Module, input_shape: Sequence[int]) -> dict[str, Any]:
    """Parameters (millions) and forward GFLOPs for a table row."""
    return {"params_m": count_parameters(model) / 1e6, "gflops": forward_flops(model, input_shape) / 1e9}


def enable_mc_dropout(model: torch.nn.Module) -> int:
    """Put the model in eval mode but its dropout layers in train mode (MC dropout); return how many.

    Normalisation layers stay in eval mode, so only dropout makes the passes differ.
    Raises :class:`ConfigError` when the model has no dropout layer to sample.
    """
    model.eval()
    n = 0
    for m in model.modules():
        if isinstance(m, (torch.nn.Dropout, torch.nn.Dropout2d, torch.nn.Dropout3d)) and m.p > 0:
            m.train()
            n += 1
    if n == 0:
        raise ConfigError("MC dropout needs dropout layers with p > 0; build the model with dropout > 0")
    return n
