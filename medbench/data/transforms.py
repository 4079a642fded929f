"""MONAI dictionary transforms for training and evaluating on a datalist (:mod:`medbench.data.datalist`).

The pipeline, split where :class:`monai.data.CacheDataset` splits it (the
deterministic part runs once per volume and is cached; the random part runs
every time a patch is drawn):

deterministic
    ``LoadImaged`` (channels first) -> ``Orientationd`` (RAS) -> optional
    ``Spacingd`` (bilinear images, nearest labels) -> :class:`NormaliseChannelsd`
    (per modality: a CT window from the shared preset table
    :data:`medbench.image.windowing.WINDOW_PRESETS`, a fixed SUV range for PET,
    1st-99th percentiles for MR, whose units are arbitrary) -> ``SpatialPadd``
    to at least the patch
random (training only)
    ``RandCropByLabelClassesd`` (label-balanced patches: rare lesion classes
    are sampled as often as the ``class_ratios`` ask) -> ``RandFlipd`` on each
    axis -> ``RandRotated`` (small angles) -> ``Rand3DElasticd`` (optional,
    expensive on CPU) -> ``RandScaleIntensityd`` / ``RandShiftIntensityd``
    (intensity jitter)

Every random transform owns its random state (MONAI ``Randomizable``);
:func:`medbench.engine.fit` re-seeds them per epoch from the run seed.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Hashable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.transforms import MapTransform

from medbench.errors import ConfigError
from medbench.image.windowing import WINDOW_PRESETS

#: How each modality is brought to about [0, 1]: ("window", low, high) clips and scales;
#: ("percentile", low_pct, high_pct) scales between the image's own percentiles (clipped).
MODALITY_NORMALISATION: dict[str, tuple[str, float, float]] = {
    "ct": ("window", WINDOW_PRESETS["soft_tissue"][0] - WINDOW_PRESETS["soft_tissue"][1] / 2,
           WINDOW_PRESETS["soft_tissue"][0] + WINDOW_PRESETS["soft_tissue"][1] / 2),
    "pet": ("window", 0.0, 10.0),  # SUV
    "t1": ("percentile", 1.0, 99.0),
    "t2": ("percentile", 1.0, 99.0),
}


#: The augmentation settings :func:`segmentation_transforms` reads (the ``augment`` section of a
#: training schema, :class:`medbench.engine.params.AugmentParams`, documents and defaults them).
AUGMENT_KEYS = ("flip_prob", "rotate_prob", "rotate_deg", "elastic_prob", "intensity_prob", "intensity_scale",
                "intensity_shift")


class NormaliseChannelsd(MapTransform):
    """Normalise each channel of ``keys`` by its modality's rule (:data:`MODALITY_NORMALISATION`).

    A deterministic MONAI ``MapTransform``, so ``CacheDataset`` caches its output.
    """

    def __init__(self, keys: Sequence[str], modalities: Sequence[str]) -> None:
        super().__init__(list(keys))
        unknown = [m for m in modalities if m not in MODALITY_NORMALISATION]
        if unknown:
            raise ConfigError(f"no normalisation rule for modality {unknown}; known: {sorted(MODALITY_NORMALISATION)}")
        self.rules = [MODALITY_NORMALISATION[m] for m in modalities]

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.keys:
            img = d[key]
            if img.shape[0] != len(self.rules):
                raise ConfigError(f"{key} has {img.shape[0]} channels but {len(self.rules)} modalities were named")
            out = img.clone() if isinstance(img, torch.Tensor) else np.array(img, copy=True)
            for c, (kind, lo, hi) in enumerate(self.rules):
                channel = out[c]
                if kind == "percentile":
                    arr = channel.detach().cpu().numpy() if isinstance(channel, torch.Tensor) else channel
                    lo, hi = (float(v) for v in np.percentile(arr, [lo, hi]))
                scale = 1.0 / (hi - lo) if hi > lo else 1.0
                normed = (channel - lo) * scale
                out[c] = normed.clamp(0.0, 1.0) if isinstance(normed, torch.Tensor) else np.clip(normed, 0.0, 1.0)
            d[key] = out
        return d


@contextlib.contextmanager
def quiet_monai_readers() -> Iterator[None]:
    """Silence MONAI's notice that the optional GPU DICOM decoder (nvImageCodec) is absent: it does not apply
    to NIfTI loading and would otherwise be printed into every notebook that loads data."""
    logger = logging.getLogger("monai.data.nvimgcodec_pydicom_plugin")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*nvImageCodec.*")
            warnings.filterwarnings("ignore", message=".*NvImgCodec.*")
            yield
    finally:
        logger.setLevel(level)


class CropWorldBoxd(MapTransform):
    """Crop ``keys`` to the voxels whose centres lie in an axis-aligned box given in world mm (the affine's frame).

    The box is fixed before the data are seen (e.g. from the training cases by :func:`label_box_mm`), so every
    volume, test cases included, gets the same field of view whatever its own labels say. The crop moves the
    affine with it (MONAI ``SpatialCrop``); a box that misses a volume entirely is an error naming the file.
    """

    def __init__(self, keys: Sequence[str], lo_mm: Sequence[float], hi_mm: Sequence[float]) -> None:
        super().__init__(keys)
        self.lo = np.asarray(lo_mm, float)
        self.hi = np.asarray(hi_mm, float)
        if self.lo.shape != (3,) or self.hi.shape != (3,) or (self.hi <= self.lo).any():
            raise ConfigError(f"a world box needs 3 lower and 3 higher bounds (mm), got {lo_mm!r}, {hi_mm!r}")

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        from monai.transforms import SpatialCrop

        d = dict(data)
        ref = d[self.keys[0]]
        affine = np.asarray(torch.as_tensor(ref.affine).cpu().numpy(), float)
        shape = np.asarray(ref.shape[1:])
        corners = np.array([[x, y, z, 1.0] for x in (self.lo[0], self.hi[0]) for y in (self.lo[1], self.hi[1])
                            for z in (self.lo[2], self.hi[2])]).T
        ijk = (np.linalg.inv(affine) @ corners)[:3]
        start = np.clip(np.ceil(ijk.min(axis=1) - 1e-6), 0, shape).astype(int)
        stop = np.clip(np.floor(ijk.max(axis=1) + 1e-6) + 1, 0, shape).astype(int)
        if (stop <= start).any():
            name = getattr(ref, "meta", {}).get("filename_or_obj", "a volume")
            raise ConfigError(f"{name}: the crop box {self.lo.tolist()}..{self.hi.tolist()} mm lies outside the "
                              f"volume")
        crop = SpatialCrop(roi_slices=[slice(int(a), int(b)) for a, b in zip(start, stop)])
        for key in self.key_iterator(d):
            d[key] = crop(d[key])
        return d


def label_box_mm(datalist: Sequence[Mapping[str, Any]], ids: Sequence[int], margin_mm: float = 0.0,
                 key: str = "label") -> tuple[list[float], list[float]]:
    """The world-mm box (RAS-oriented arrays' affine frame) around every voxel of the ``ids`` in the datalist's
    label maps, grown by ``margin_mm``: the field of view that holds those structures in every case given.

    Pass the training cases only, so the box applied to the test cases is chosen without their labels.
    """
    from monai import transforms as mt

    if not datalist:
        raise ConfigError("label_box_mm needs at least one case")
    with quiet_monai_readers():
        load = mt.Compose([mt.LoadImaged([key], ensure_channel_first=True, image_only=True),
                           mt.Orientationd([key], axcodes="RAS", labels=(("L", "R"), ("P", "A"), ("I", "S")))])
    lo, hi = np.full(3, np.inf), np.full(3, -np.inf)
    for entry in datalist:
        lab = load({key: entry[key]})[key]
        where = np.argwhere(np.isin(np.asarray(lab[0].cpu().numpy()), [int(i) for i in ids]))
        if not len(where):
            continue
        affine = np.asarray(torch.as_tensor(lab.affine).cpu().numpy(), float)
        box = np.array([[i, j, k, 1.0] for i in (where[:, 0].min() - 0.5, where[:, 0].max() + 0.5)
                        for j in (where[:, 1].min() - 0.5, where[:, 1].max() + 0.5)
                        for k in (where[:, 2].min() - 0.5, where[:, 2].max() + 0.5)]).T
        world = (affine @ box)[:3]
        lo, hi = np.minimum(lo, world.min(axis=1)), np.maximum(hi, world.max(axis=1))
    if not np.isfinite(lo).all():
        raise ConfigError(f"no case of the datalist has label {list(ids)}: no region to crop to")
    return (lo - margin_mm).tolist(), (hi + margin_mm).tolist()


def segmentation_transforms(
    modalities: Sequence[str],
    patch: Sequence[int],
    *,
    train: bool,
    n_classes: int,
    class_ratios: Sequence[float] | None = None,
    samples_per_volume: int = 4,
    spacing: Sequence[float] | None = None,
    augment: Mapping[str, float] | None = None,
    with_label: bool = True,
    remap: Any = None,
    roi_mm: tuple[Sequence[float], Sequence[float]] | None = None,
) -> Any:
    """The MONAI ``Compose`` for a datalist; ``train=False`` gives the deterministic part only (whole volumes).

    ``remap`` is an optional callable on the data dictionary applied to the
    label right after loading (e.g. source label ids to contiguous class ids).
    ``roi_mm``: a world box (low corner, high corner; mm) every volume is cropped to after orientation
    (:class:`CropWorldBoxd`, in the cached part), e.g. :func:`label_box_mm` of the training cases.
    """
    from monai import transforms as mt

    keys = ["image", "label"] if with_label else ["image"]
    patch = [int(p) for p in patch]
    with quiet_monai_readers():
        loader = mt.LoadImaged(keys, ensure_channel_first=True, image_only=True)
    steps: list[Any] = [
        loader,
        mt.Orientationd(keys, axcodes="RAS", labels=(("L", "R"), ("P", "A"), ("I", "S"))),
    ]
    if spacing is not None:
        steps.append(mt.Spacingd(keys, pixdim=list(spacing), mode=["bilinear", "nearest"][: len(keys)]))
    if remap is not None and with_label:
        if not isinstance(remap, mt.Transform) or isinstance(remap, mt.Randomizable):
            raise ConfigError("remap must be a deterministic MONAI Transform (so CacheDataset can cache it)")
        steps.append(remap)
    if roi_mm is not None:
        steps.append(CropWorldBoxd(keys, *roi_mm))
    steps += [NormaliseChannelsd(["image"], modalities), mt.EnsureTyped(keys, dtype=torch.float32)]
    if with_label:
        steps.append(mt.EnsureTyped(["label"], dtype=torch.int64))
    steps.append(mt.SpatialPadd(keys, spatial_size=patch))
    if train and with_label:
        # where each class is, computed once per volume in the cached part (not at every crop)
        steps.append(mt.ClassesToIndicesd("label", num_classes=n_classes, indices_postfix="_cls_indices"))
    if train:
        if not with_label:
            raise ConfigError("training transforms need labels")
        unknown = sorted(set(augment or {}) - set(AUGMENT_KEYS))
        if unknown:
            raise ConfigError(f"unknown augmentation setting(s) {unknown}; known: {', '.join(AUGMENT_KEYS)}")
        a = {k: 0.0 for k in AUGMENT_KEYS} | dict(augment or {})  # absent = off
        ratios = list(class_ratios) if class_ratios is not None else [1.0] * n_classes
        if len(ratios) != n_classes:
            raise ConfigError(f"class_ratios has {len(ratios)} entries for {n_classes} classes")
        steps.append(mt.RandCropByLabelClassesd(keys, label_key="label", spatial_size=patch, num_classes=n_classes,
                                                ratios=ratios, num_samples=samples_per_volume,
                                                indices_key="label_cls_indices", warn=False, allow_smaller=False))
        steps.append(mt.DeleteItemsd("label_cls_indices"))
        if a["flip_prob"] > 0:
            steps += [mt.RandFlipd(keys, prob=a["flip_prob"], spatial_axis=axis) for axis in range(3)]
        if a["rotate_prob"] > 0 and a["rotate_deg"] > 0:
            r = float(np.deg2rad(a["rotate_deg"]))
            steps.append(mt.RandRotated(keys, range_x=r, range_y=r, range_z=r, prob=a["rotate_prob"],
                                        mode=["bilinear", "nearest"], padding_mode="border", keep_size=True))
        if a["elastic_prob"] > 0:
            steps.append(mt.Rand3DElasticd(keys, sigma_range=(5, 8), magnitude_range=(40, 80), prob=a["elastic_prob"],
                                           mode=["bilinear", "nearest"], padding_mode="border"))
        if a["intensity_prob"] > 0:
            steps += [mt.RandScaleIntensityd(["image"], factors=a["intensity_scale"], prob=a["intensity_prob"]),
                      mt.RandShiftIntensityd(["image"], offsets=a["intensity_shift"], prob=a["intensity_prob"])]
        steps.append(mt.EnsureTyped(["label"], dtype=torch.int64))
    return mt.Compose(steps)


def cached_dataset(datalist: Sequence[Mapping[str, Any]], transform: Any, *, cache_rate: float = 1.0,
                   seed: int = 0) -> Any:
    """A MONAI ``CacheDataset`` (deterministic transforms run once, in this process) with seeded random transforms."""
    from monai.data import CacheDataset

    with quiet_monai_readers():
        ds = CacheDataset(list(datalist), transform=transform, cache_rate=cache_rate, num_workers=0, progress=False,
                          copy_cache=True)
    transform.set_random_state(seed=seed)
    return ds
