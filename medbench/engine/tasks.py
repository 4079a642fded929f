"""Ready-made :class:`~medbench.engine.loop.Task` implementations.

* :class:`SegmentationTask`: DiceCE on patches, AdamW, validation by
  sliding-window inference on whole volumes, monitored on the mean
  foreground Dice.
* :class:`ClassificationTask`: cross-entropy on whole volumes, monitored on AUROC.
* :class:`RegistrationTask`: a network predicting a dense displacement from a (fixed, moving)
  pair, trained on image similarity + bending energy (+ label Dice, + a known field),
  monitored on the Dice of the warped moving labels.
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


class RegistrationTask:
    """Pairwise deformable registration: the model maps ``(fixed, moving)`` to a dense displacement (voxels).

    Items: ``image`` ``(2, i, j, k)`` (channel 0 fixed, 1 moving, both normalised), ``fixed_label`` and
    ``moving_label`` ``(1, i, j, k)`` integer maps. The loss is the dissimilarity of the warped moving image to
    the fixed one (``similarity``: MONAI local normalised cross-correlation ``"lncc"`` or ``"mse"``), plus
    ``bending_weight`` x the DDF's bending energy (smoothness), plus ``label_weight`` x the Dice loss of the
    warped one-hot moving labels against the fixed labels (weak supervision; 0 = unsupervised), plus
    ``field_weight`` x the mean squared error (voxels²) to a known displacement ``ddf`` ``(3, i, j, k)`` where an
    item carries one (full supervision, e.g. by a phantom's true field; NaN entries are ignored). Validation
    warps the moving labels (nearest) and reports ``dice_mean`` over the foreground labels, ``similarity`` (the
    image term) and, when the validation items carry a known ``ddf``, ``field_error``: the mean Euclidean distance
    (voxels) between the predicted and the known displacement over the voxels where it is known. ``monitor``
    picks the best epoch by ``dice_mean`` (higher is better) or ``field_error`` (lower is better; on a coarse grid
    the Dice of nearest-neighbour labels saturates and barely tells epochs apart).
    """

    monitor = "dice_mean"
    mode = "max"

    def __init__(self, n_labels: int, *, similarity: str = "lncc", bending_weight: float = 1.0,
                 label_weight: float = 1.0, field_weight: float = 0.0, lncc_kernel: int = 5,
                 monitor: str = "dice_mean") -> None:
        from monai.losses import DiceLoss, LocalNormalizedCrossCorrelationLoss

        if similarity not in ("lncc", "mse"):
            raise ValueError(f"similarity must be 'lncc' or 'mse', got {similarity!r}")
        if monitor not in ("dice_mean", "field_error"):
            raise ValueError(f"monitor must be 'dice_mean' or 'field_error', got {monitor!r}")
        self.monitor, self.mode = monitor, ("max" if monitor == "dice_mean" else "min")
        if n_labels < 2:
            raise ValueError(f"n_labels counts the background too and must be >= 2, got {n_labels}")
        self.n_labels = n_labels
        self.bending_weight, self.label_weight, self.field_weight = bending_weight, label_weight, field_weight
        self.similarity: torch.nn.Module = (
            LocalNormalizedCrossCorrelationLoss(spatial_dims=3, kernel_size=lncc_kernel) if similarity == "lncc"
            else torch.nn.MSELoss())
        self.dice_loss = DiceLoss(include_background=False)

    def optimizers(self, model: torch.nn.Module, params: TrainParams) -> dict[str, torch.optim.Optimizer]:
        return {"main": torch.optim.AdamW(model.parameters(), lr=params.lr, weight_decay=params.weight_decay)}

    def _one_hot(self, label: torch.Tensor) -> torch.Tensor:
        from monai.networks import one_hot

        return one_hot(label.long(), num_classes=self.n_labels, dim=1).float()

    def losses(self, model: torch.nn.Module, batch: Any, device: torch.device) -> dict[str, torch.Tensor]:
        """The loss terms of one batch (``total`` is what training minimises)."""
        from medbench.models.registration import bending_energy, warp

        x = torch.as_tensor(batch["image"]).float().to(device)
        fixed, moving = x[:, :1], x[:, 1:2]
        ddf = model(x)
        out = {"similarity": self.similarity(warp(moving, ddf), fixed), "bending": bending_energy(ddf)}
        total = out["similarity"] + self.bending_weight * out["bending"]
        if self.label_weight > 0:
            moved = warp(self._one_hot(torch.as_tensor(batch["moving_label"]).to(device)), ddf)
            out["label"] = self.dice_loss(moved, self._one_hot(torch.as_tensor(batch["fixed_label"]).to(device)))
            total = total + self.label_weight * out["label"]
        if self.field_weight > 0 and "ddf" in batch:
            true = torch.as_tensor(batch["ddf"]).float().to(device)
            known = torch.isfinite(true)
            if bool(known.any()):
                out["field"] = ((ddf - torch.nan_to_num(true)) ** 2)[known].mean()
                total = total + self.field_weight * out["field"]
        out["total"] = total
        return out

    def train_step(self, ctx: StepContext, batch: Any) -> dict[str, float]:
        with ctx.autocast():
            terms = self.losses(ctx.model, batch, ctx.device)
        ctx.backward(terms["total"])
        return {"loss": float(terms["total"].detach()), **{k: float(v.detach()) for k, v in terms.items()
                                                              if k != "total"}}

    @torch.no_grad()
    def predict_ddf(self, model: torch.nn.Module, image: torch.Tensor, device: torch.device) -> torch.Tensor:
        """The DDF ``(3, i, j, k)`` (voxels) of one item's ``image`` ``(2, i, j, k)``, in eval mode."""
        model.eval()
        return model(torch.as_tensor(image).float()[None].to(device))[0].float().cpu()

    @torch.no_grad()
    def validate(self, model: torch.nn.Module, dataset: Any, device: torch.device) -> dict[str, float]:
        from medbench.models.registration import warp

        model.eval()
        names = {k: str(k) for k in range(1, self.n_labels)}
        dices, sims, errors = [], [], []
        for i in range(len(dataset)):
            item = dataset[i]
            x = torch.as_tensor(item["image"]).float()[None].to(device)
            ddf = model(x)
            sims.append(float(self.similarity(warp(x[:, 1:2], ddf), x[:, :1])))
            if "ddf" in item:
                true = torch.as_tensor(item["ddf"]).float().to(device)
                known = torch.isfinite(true).all(dim=0)
                if bool(known.any()):
                    dist = torch.linalg.vector_norm(ddf[0] - torch.nan_to_num(true), dim=0)
                    errors.append(float(dist[known].mean()))
            moved = warp(torch.as_tensor(item["moving_label"]).float()[None].to(device), ddf, mode="nearest")
            truth = torch.as_tensor(item["fixed_label"])[0].cpu().numpy().astype(np.int64)
            values = list(dice(moved[0, 0].cpu().numpy().astype(np.int64), truth, names).values())
            dices.append(float(np.nanmean(values)) if np.isfinite(values).any() else float("nan"))
        out = {"dice_mean": float(np.nanmean(dices)) if np.isfinite(dices).any() else 0.0,
               "similarity": float(np.mean(sims))}
        if errors:
            out["field_error"] = float(np.mean(errors))
        return out
