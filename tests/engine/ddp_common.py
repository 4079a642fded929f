"""Shared by the distributed test and its torchrun worker: identical data, model and task in every process."""

from __future__ import annotations

import numpy as np
import torch

from medbench.engine import SegmentationTask, TrainParams

PATCH = (16, 16, 16)


def data(n: int = 8) -> list[dict[str, torch.Tensor]]:
    rng = np.random.default_rng(7)
    out = []
    for _ in range(n):
        img = rng.normal(0, 0.3, (1, *PATCH)).astype(np.float32)
        lab = (rng.random((1, *PATCH)) > 0.7).astype(np.int64)
        img[lab == 1] += 1.0
        out.append({"image": torch.from_numpy(img), "label": torch.from_numpy(lab)})
    return out


def model() -> torch.nn.Module:
    from monai.networks.nets import UNet

    torch.manual_seed(0)
    return UNet(3, 1, 2, channels=(4, 8), strides=(2,), num_res_units=0)


class _SGD(SegmentationTask):
    def optimizers(self, model: torch.nn.Module, params: TrainParams) -> dict[str, torch.optim.Optimizer]:
        return {"main": torch.optim.SGD(model.parameters(), lr=params.lr, momentum=0.9)}


def sgd_task() -> SegmentationTask:
    return _SGD({0: "background", 1: "fg"}, PATCH)
