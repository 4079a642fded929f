"""Everything a segmentation experiment needs, built once from a datalist: datasets, task, model factory.

:func:`build_setup` is shared by the segmentation notebook's recipe, the
``engine`` benchmark and ``medbench train``, so all three train on exactly the
same cached data with the same transforms. Label maps are remapped to
contiguous class ids ``0..n`` (0 = background) from the source's ids, so a
notebook can train on a subset of a label map's structures.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.transforms import MapTransform

from medbench.data.transforms import cached_dataset, segmentation_transforms
from medbench.engine.params import AugmentParams, TrainParams
from medbench.engine.tasks import SegmentationTask
from medbench.errors import ConfigError
from medbench.models.factory import ModelParams, build_model


class RemapLabelsd(MapTransform):
    """Map source label ids to contiguous class ids (unlisted ids become background 0); deterministic, cached."""

    def __init__(self, key: str, mapping: Mapping[int, int]) -> None:
        super().__init__([key])
        self.key = key
        size = max(int(k) for k in mapping) + 1 if mapping else 1
        self.table = np.zeros(max(size, 1), np.int64)
        for src, dst in mapping.items():
            self.table[int(src)] = int(dst)

    def __call__(self, data: Mapping[str, Any]) -> dict[str, Any]:
        d = dict(data)
        lab = torch.as_tensor(d[self.key])
        idx = lab.long().clamp(0, len(self.table) - 1)
        mapped = torch.as_tensor(self.table)[idx]
        mapped[lab.long() >= len(self.table)] = 0
        d[self.key] = mapped if not hasattr(d[self.key], "affine") else type(d[self.key])(mapped, meta=d[self.key].meta)
        return d


@dataclasses.dataclass
class SegmentationSetup:
    """Datasets, transforms and task of one experiment; :meth:`model` builds a fresh network."""

    class_names: dict[int, str]  # contiguous class id -> name (0 = background)
    source_ids: dict[int, int]  # source label id -> class id
    modalities: list[str]
    patch: tuple[int, ...]
    train_datalist: list[dict[str, Any]]
    val_datalist: list[dict[str, Any]]
    test_datalist: list[dict[str, Any]]
    train_transform: Any
    eval_transform: Any
    train_dataset: Any
    val_dataset: Any
    test_dataset: Any
    task: SegmentationTask
    train_params: TrainParams
    model_params: ModelParams

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def description(self) -> str:
        return (f"{self.model_params.name}, {len(self.train_datalist)} training volumes, "
                f"{'+'.join(self.modalities)} -> {self.n_classes - 1} classes, patch {list(self.patch)}")

    def model(self, params: ModelParams | None = None, seed: int = 0) -> torch.nn.Module:
        """A freshly initialised network (initial weights fixed by ``seed``)."""
        torch.manual_seed(seed)
        p = params or self.model_params
        return build_model(p, len(self.modalities), self.n_classes, self.patch)


def class_ratios(class_names: Mapping[int, str], rare: Sequence[str], rare_weight: float) -> list[float]:
    """Crop-centre sampling weights: background 1, each class 1, classes named in ``rare`` ``rare_weight``."""
    return [0.5 if k == 0 else (rare_weight if name in rare else 1.0) for k, name in sorted(class_names.items())]


def build_setup(
    train: Sequence[Mapping[str, Any]],
    val: Sequence[Mapping[str, Any]],
    test: Sequence[Mapping[str, Any]],
    *,
    label_names: Mapping[int, str],
    classes: Sequence[str],
    modalities: Sequence[str],
    patch: Sequence[int],
    train_params: TrainParams,
    model_params: ModelParams,
    augment: AugmentParams | None = None,
    rare_classes: Sequence[str] = (),
    rare_weight: float = 3.0,
    seed: int = 0,
    sw_batch_size: int = 2,
    overlap: float = 0.25,
    roi_mm: tuple[Sequence[float], Sequence[float]] | None = None,
) -> SegmentationSetup:
    """Cached datasets for train / val / test datalists, the remapping of ``classes`` and the task.

    ``roi_mm``: every volume is cropped to this world box (low, high corner in mm; see
    :func:`~medbench.data.transforms.segmentation_transforms`).
    """
    by_name = {name: int(value) for value, name in label_names.items()}
    missing = [c for c in classes if c not in by_name]
    if missing:
        raise ConfigError(f"classes {missing} are not in the label map; available: {sorted(by_name)}")
    if not train:
        raise ConfigError("the training datalist is empty")
    source_ids = {by_name[c]: n + 1 for n, c in enumerate(classes)}
    class_names = {0: "background", **{n + 1: c for n, c in enumerate(classes)}}
    remap = RemapLabelsd("label", source_ids)
    ratios = class_ratios(class_names, rare_classes, rare_weight)
    train_tf = segmentation_transforms(modalities, patch, train=True, n_classes=len(class_names), class_ratios=ratios,
                                       samples_per_volume=train_params.samples_per_volume,
                                       augment=(augment or AugmentParams()).model_dump(), remap=remap, roi_mm=roi_mm)
    eval_tf = segmentation_transforms(modalities, patch, train=False, n_classes=len(class_names), remap=remap,
                                      roi_mm=roi_mm)
    task = SegmentationTask(class_names, patch, sw_batch_size=sw_batch_size, overlap=overlap)
    return SegmentationSetup(
        class_names=class_names, source_ids=source_ids, modalities=list(modalities), patch=tuple(int(p) for p in patch),
        train_datalist=[dict(e) for e in train], val_datalist=[dict(e) for e in val],
        test_datalist=[dict(e) for e in test],
        train_transform=train_tf, eval_transform=eval_tf,
        train_dataset=cached_dataset(train, train_tf, cache_rate=train_params.cache_rate, seed=seed),
        val_dataset=cached_dataset(val, eval_tf, seed=seed) if val else None,
        test_dataset=cached_dataset(test, eval_tf, seed=seed) if test else None,
        task=task, train_params=train_params, model_params=model_params,
    )
