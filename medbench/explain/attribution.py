"""Attribution maps of a 3D network's output over its input (captum and MONAI).

Every method takes a model, one channel-first batch ``x`` of shape
``(1, C, i, j, k)`` and a target (the output column to explain) and returns
an :class:`Attribution`: the raw per-channel map ``(C, i, j, k)`` (signed,
in the method's own units) and ``relevance`` ``(i, j, k)``: the evidence
*for* the target, summed over channels and clipped at 0 (Grad-CAM is
already a non-negative map; occlusion's raw value is the drop of the
target's logit when a window is replaced by the baseline).

==========================  ==========================================================================
``integrated_gradients``    captum ``IntegratedGradients`` from a zero baseline, ``n_steps`` path points
                            evaluated ``internal_batch_size`` at a time (memory bounded in 3D)
``saliency``                captum ``Saliency`` (the plain gradient, signed)
``smoothgrad``              captum ``NoiseTunnel(Saliency)``: mean gradient over ``nt_samples`` noisy
                            copies (noise SD ``noise_sd`` in normalised input units)
``gradient_shap``           captum ``GradientShap`` with a zero baseline (expected gradients x input
                            over ``nt_samples`` noisy path points; no internal batching in captum, so
                            ``nt_samples`` sets the memory)
``gradcam``                 MONAI ``visualize.GradCAM`` on the model's last spatial feature map,
                            trilinearly upsampled to the input grid
``gradcampp``               MONAI ``visualize.GradCAMpp`` (same layer and upsampling)
``occlusion``               captum ``Occlusion``: windows of ``occlusion_window`` voxels moved by
                            ``occlusion_stride`` and replaced by 0; the target's drop, spread over
                            the window
==========================  ==========================================================================

:class:`RegionTarget` turns a segmentation network into something these
methods explain: the sum of one class's logits inside a region.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch

from medbench.errors import ConfigError

Method = Literal["integrated_gradients", "saliency", "smoothgrad", "gradient_shap", "gradcam", "gradcampp",
                 "occlusion"]
METHODS: tuple[str, ...] = ("integrated_gradients", "saliency", "smoothgrad", "gradient_shap", "gradcam",
                            "gradcampp", "occlusion")
#: Methods that need the name of a feature-map layer.
LAYER_METHODS = ("gradcam", "gradcampp")


@dataclasses.dataclass(frozen=True)
class MethodParams:
    """Settings of the attribution methods (defaults suit the 64 x 64 x 32 smoke grid on a CPU)."""

    n_steps: int = 32
    internal_batch_size: int = 8
    nt_samples: int = 8
    noise_sd: float = 0.15
    occlusion_window: tuple[int, int, int] = (8, 8, 4)
    occlusion_stride: tuple[int, int, int] = (8, 8, 4)
    perturbations_per_eval: int = 16


@dataclasses.dataclass
class Attribution:
    """One attribution map: method, raw ``(C, i, j, k)`` map, non-negative ``relevance`` ``(i, j, k)``, seconds."""

    method: str
    raw: np.ndarray
    relevance: np.ndarray
    seconds: float


class RegionTarget(torch.nn.Module):
    """A segmentation network seen as a one-output model: the sum of ``class_index``'s logits inside ``region``.

    ``region`` is a boolean/0-1 array ``(i, j, k)`` on the network's input grid.
    The output has shape ``(N, 1)`` (explain target 0). Gradient methods then
    answer "which input voxels raise the class's logits inside this region".
    """

    def __init__(self, model: torch.nn.Module, class_index: int, region: np.ndarray | torch.Tensor) -> None:
        super().__init__()
        self.model = model
        self.class_index = int(class_index)
        mask = torch.as_tensor(np.asarray(region), dtype=torch.float32)
        if mask.ndim != 3 or not bool(mask.any()):
            raise ConfigError("RegionTarget needs a non-empty 3D region (i, j, k)")
        self.register_buffer("region", mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.model(x)
        region = self.region
        assert isinstance(region, torch.Tensor)
        if logits.shape[2:] != region.shape:
            raise ConfigError(f"region {tuple(region.shape)} differs from the network output grid "
                              f"{tuple(logits.shape[2:])}")
        return (logits[:, self.class_index] * region).sum(dim=(1, 2, 3))[:, None]


def _check_input(x: torch.Tensor) -> torch.Tensor:
    if x.ndim != 5 or x.shape[0] != 1:
        raise ConfigError(f"attribution takes one channel-first volume (1, C, i, j, k), got {tuple(x.shape)}")
    return x.detach().float()


def _gradcam(model: torch.nn.Module, x: torch.Tensor, target: int, layer: str, plus: bool) -> np.ndarray:
    from monai.visualize import GradCAM, GradCAMpp

    # MONAI registers hooks it never removes (and turns in-place ReLUs off): work on a throw-away copy
    work = copy.deepcopy(model).eval()
    if layer not in dict(work.named_modules()):
        raise ConfigError(f"{type(model).__name__} has no layer {layer!r} for Grad-CAM")
    cls = GradCAMpp if plus else GradCAM
    cam = cls(nn_module=work, target_layers=layer, postprocessing=lambda a: a)
    out = cam(x, class_idx=target)
    return np.asarray(out.detach()[0, 0].cpu().numpy(), dtype=np.float32)


def attribute(
    model: torch.nn.Module,
    x: torch.Tensor,
    method: str,
    target: int,
    *,
    layer: str | None = None,
    params: MethodParams | None = None,
    seed: int = 0,
) -> Attribution:
    """The attribution of output column ``target`` of ``model`` over ``x`` ``(1, C, i, j, k)`` by ``method``.

    ``layer`` (dotted module path) is needed by Grad-CAM / Grad-CAM++. The
    model is put in eval mode; noise-based methods draw from a generator
    seeded by ``seed`` (the global torch RNG state is restored).
    """
    if method not in METHODS:
        raise ConfigError(f"unknown attribution method {method!r}; known: {', '.join(METHODS)}")
    if method in LAYER_METHODS and not layer:
        raise ConfigError(f"{method} needs the name of a feature-map layer (layer=...)")
    p = params or MethodParams()
    x = _check_input(x)
    model.eval()
    state = torch.get_rng_state()
    torch.manual_seed(seed)
    start = time.perf_counter()
    try:
        if method in LAYER_METHODS:
            cam = _gradcam(model, x, target, str(layer), plus=method == "gradcampp")
            raw = cam[None]
            relevance = np.clip(cam, 0, None)
        else:
            raw = _captum(model, x, method, target, p)
            relevance = np.clip(raw.sum(axis=0), 0, None)
    finally:
        torch.set_rng_state(state)
    seconds = time.perf_counter() - start
    return Attribution(method, raw.astype(np.float32), relevance.astype(np.float32), seconds)


def _captum(model: torch.nn.Module, x: torch.Tensor, method: str, target: int, p: MethodParams) -> np.ndarray:
    from captum.attr import GradientShap, IntegratedGradients, NoiseTunnel, Occlusion, Saliency

    inp = x.clone().requires_grad_(True)
    if method == "integrated_gradients":
        a = IntegratedGradients(model).attribute(inp, baselines=torch.zeros_like(x), target=target,
                                                 n_steps=p.n_steps, internal_batch_size=p.internal_batch_size)
    elif method == "saliency":
        a = Saliency(model).attribute(inp, target=target, abs=False)
    elif method == "smoothgrad":
        a = NoiseTunnel(Saliency(model)).attribute(inp, nt_type="smoothgrad", nt_samples=p.nt_samples,
                                                   nt_samples_batch_size=p.internal_batch_size,
                                                   stdevs=p.noise_sd, target=target, abs=False)
    elif method == "gradient_shap":
        a = GradientShap(model).attribute(inp, baselines=torch.zeros_like(x), n_samples=p.nt_samples,
                                          stdevs=p.noise_sd, target=target)
    else:  # occlusion
        channels = int(x.shape[1])
        a = Occlusion(model).attribute(x, sliding_window_shapes=(channels, *p.occlusion_window),
                                       strides=(channels, *p.occlusion_stride), baselines=0.0, target=target,
                                       perturbations_per_eval=p.perturbations_per_eval)
    return np.asarray(a.detach()[0].cpu().numpy(), dtype=np.float32)


def attribute_all(
    model: torch.nn.Module,
    x: torch.Tensor,
    target: int,
    methods: Sequence[str] = METHODS,
    *,
    layer: str | None = None,
    params: MethodParams | None = None,
    seed: int = 0,
) -> dict[str, Attribution]:
    """:func:`attribute` for each method in ``methods`` (Grad-CAM methods skipped when ``layer`` is None)."""
    return {m: attribute(model, x, m, target, layer=layer, params=params, seed=seed)
            for m in methods if layer is not None or m not in LAYER_METHODS}
