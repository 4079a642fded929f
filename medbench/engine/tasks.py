"""Ready-made :class:`~medbench.engine.loop.Task` implementations.

* :class:`SegmentationTask`: DiceCE on patches, AdamW, validation by
  sliding-window inference on whole volumes, monitored on the mean
  foreground Dice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from medbench.engine.inference import sliding_window_logits
from medbench.engine.loop import StepContext
from medbench.engine.params import TrainParams
from medbench.metrics import dice


class SegmentationTask:
    """Multi-class segmentation: softmax DiceCE (MONAI ``DiceCELoss``), one AdamW optimiser.

    ``class_names`` maps label ids (0 = background) to names; validation
    reports ``dice_<name>`` per foreground class and ``dice_mean`` (the mean
    over classes and cases, classes absent from a case's truth and prediction
    left out), the monitored metric.
    """

    monitor = "dice_mean"
    mode = "max"

    def __init__(
        self,
        class_names: Mapping[int, str],
        patch: Sequence[int],
        *,
        sw_batch_size: int = 2,
        overlap: float = 0.25,
        lambda_dice: float = 1.0,
        lambda_ce: float = 1.0,
        image_key: str = "image",
        label_key: str = "label",
    ) -> None:
        from monai.losses import DiceCELoss

        self.class_names = dict(class_names)
        self.patch = tuple(int(p) for p in patch)
        self.sw_batch_size = sw_batch_size
        self.overlap = overlap
        self.image_key, self.label_key = image_key, label_key
        self.loss = DiceCELoss(to_onehot_y=True, softmax=True, lambda_dice=lambda_dice, lambda_ce=lambda_ce)

    def optimizers(self, model: torch.nn.Module, params: TrainParams) -> dict[str, torch.optim.Optimizer]:
        return {"main": torch.optim.AdamW(model.parameters(), lr=params.lr, weight_decay=params.weight_decay)}

    def train_step(self, ctx: StepContext, batch: Any) -> dict[str, float]:
        x = torch.as_tensor(batch[self.image_key]).to(ctx.device)
        y = torch.as_tensor(batch[self.label_key]).to(ctx.device)
        with ctx.autocast():
            loss = self.loss(ctx.model(x), y)
        ctx.backward(loss)
        return {"loss": float(loss.detach())}

    def predict(self, model: torch.nn.Module, image: torch.Tensor, device: torch.device) -> np.ndarray:
        """Argmax label map ``(i, j, k)`` of one channel-first volume ``(C, i, j, k)``."""
        logits = sliding_window_logits(model, torch.as_tensor(image)[None], self.patch,
                                       sw_batch_size=self.sw_batch_size, overlap=self.overlap, device=device)
        return logits.argmax(dim=1)[0].cpu().numpy().astype(np.uint8)

    def validate(self, model: torch.nn.Module, dataset: Any, device: torch.device) -> dict[str, float]:
        model.eval()
        foreground = {k: v for k, v in self.class_names.items() if k != 0}
        per_class: dict[str, list[float]] = {name: [] for name in foreground.values()}
        for i in range(len(dataset)):
            item = dataset[i]
            pred = self.predict(model, item[self.image_key], device)
            truth = np.asarray(torch.as_tensor(item[self.label_key])[0].cpu().numpy()).astype(np.int64)
            for name, value in dice(pred, truth, foreground).items():
                per_class[name].append(value)
        out = {f"dice_{name}": float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")
               for name, v in per_class.items()}
        finite = [v for v in out.values() if np.isfinite(v)]
        out["dice_mean"] = float(np.mean(finite)) if finite else 0.0
        return out


class ClassificationTask:
    """Whole-volume classification: cross-entropy on logits ``(N, n_classes)``, one AdamW optimiser.

    Items are dicts with a channel-first ``image`` ``(C, i, j, k)`` and an
    integer ``label``. Validation reports ``accuracy``, ``auroc`` (binary
    tasks: the positive class's probability; 0.5 when only one class is
    present) and ``loss``; the monitored metric is ``monitor`` (default
    ``"auroc"``, ties broken by the engine's first-best rule).
    """

    mode = "max"

    def __init__(self, n_classes: int = 2, *, monitor: str = "auroc", image_key: str = "image",
                 label_key: str = "label", label_smoothing: float = 0.0) -> None:
        if monitor not in ("auroc", "accuracy"):
            raise ValueError(f"monitor must be 'auroc' or 'accuracy', got {monitor!r}")
        self.n_classes = n_classes
        self.monitor = monitor
        self.image_key, self.label_key = image_key, label_key
        self.loss = torch.nn.CrossEntropyLoss(label_smoothing=label_smoothing)

    def optimizers(self, model: torch.nn.Module, params: TrainParams) -> dict[str, torch.optim.Optimizer]:
        return {"main": torch.optim.AdamW(model.parameters(), lr=params.lr, weight_decay=params.weight_decay)}

    def train_step(self, ctx: StepContext, batch: Any) -> dict[str, float]:
        x = torch.as_tensor(batch[self.image_key]).to(ctx.device)
        y = torch.as_tensor(batch[self.label_key]).long().reshape(-1).to(ctx.device)
        with ctx.autocast():
            loss = self.loss(ctx.model(x), y)
        ctx.backward(loss)
        return {"loss": float(loss.detach())}

    @torch.no_grad()
    def probabilities(self, model: torch.nn.Module, dataset: Any, device: torch.device) -> tuple[np.ndarray, np.ndarray]:
        """Softmax probabilities ``(n, n_classes)`` and labels ``(n,)`` of every item, in eval mode."""
        model.eval()
        probs, labels = [], []
        for i in range(len(dataset)):
            item = dataset[i]
            x = torch.as_tensor(item[self.image_key])[None].to(device)
            probs.append(torch.softmax(model(x).float(), dim=1)[0].cpu().numpy())
            labels.append(int(torch.as_tensor(item[self.label_key]).reshape(-1)[0]))
        return np.asarray(probs), np.asarray(labels)

    def validate(self, model: torch.nn.Module, dataset: Any, device: torch.device) -> dict[str, float]:
        from medbench.metrics.classification import auroc

        probs, labels = self.probabilities(model, dataset, device)
        nll = -np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, None))
        out = {"accuracy": float((probs.argmax(1) == labels).mean()), "loss": float(nll.mean())}
        out["auroc"] = auroc(probs[:, 1], labels) if self.n_classes == 2 else float("nan")
        return out
