"""Whole-volume inference: sliding windows, and MC-dropout sampling for uncertainty."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from medbench.models.factory import enable_mc_dropout


def sliding_window_logits(
    model: torch.nn.Module,
    image: torch.Tensor,
    patch: Sequence[int],
    *,
    sw_batch_size: int = 2,
    overlap: float = 0.25,
    device: torch.device | None = None,
) -> torch.Tensor:
    """Logits ``(N, C, i, j, k)`` of a whole volume ``(N, C_in, i, j, k)``, patch by patch (Gaussian-weighted overlap).

    Volumes smaller than the patch are padded by MONAI and cropped back.
    """
    from monai.inferers import sliding_window_inference

    device = device or next(model.parameters()).device
    with torch.no_grad():
        out = sliding_window_inference(image.to(device), roi_size=tuple(int(p) for p in patch),
                                       sw_batch_size=sw_batch_size, predictor=model, overlap=overlap, mode="gaussian")
    return torch.as_tensor(out).float()


def predict_probabilities(model: torch.nn.Module, image: torch.Tensor, patch: Sequence[int], **kwargs: Any) -> torch.Tensor:
    """Softmax class probabilities of a volume in eval mode."""
    model.eval()
    return torch.softmax(sliding_window_logits(model, image, patch, **kwargs), dim=1)


def mc_dropout(
    model: torch.nn.Module,
    image: torch.Tensor,
    patch: Sequence[int],
    *,
    samples: int = 8,
    seed: int = 0,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """MC dropout (Gal & Ghahramani 2016): the mean softmax of ``samples`` stochastic passes and its entropy.

    Returns ``(mean_probabilities (N, C, ...), predictive_entropy (N, ...))``;
    entropy is in nats, 0 when every pass agrees with certainty, at most
    log(C). The dropout masks are drawn from a generator seeded with
    ``seed`` (the run stays reproducible); the model is left in eval mode.
    """
    enable_mc_dropout(model)
    state = torch.get_rng_state()
    torch.manual_seed(seed)
    try:
        mean: torch.Tensor | None = None
        for _ in range(samples):
            probs = torch.softmax(sliding_window_logits(model, image, patch, **kwargs), dim=1)
            mean = probs if mean is None else mean + probs
    finally:
        torch.set_rng_state(state)
        model.eval()
    assert mean is not None
    mean = mean / samples
    entropy = -(mean * torch.log(mean.clamp_min(1e-12))).sum(dim=1)
    return mean, entropy
