"""05_fusion: CT + PET + MR fusion for segmentation — which modality carries what, and how fusion fails.

The recipe's steps, one call each in the notebook (:func:`train_rows` is what ``medbench train 05_fusion``
runs):

1. :func:`load_data` — the phantom cohort's train / val / test split with every modality resampled onto the
   CT grid (the segmentation recipe's :func:`~medbench.recipes.segmentation.load_data`); the cohort is
   lesion-rich (every case has malignant lesions: ``data.positive_fraction``, ``data.extra_malignant_mean``);
2. :func:`setup` — cached datasets, transforms and task, the segmentation recipe's, with all modalities as
   channels and every volume cropped to one world box (:func:`roi_box`: around ``data.roi`` in the training
   cases): every row of the comparison trains on the same patches in the same order;
3. :func:`baseline` — the best non-learning baseline (organ rule or atlas, the CT+PET lesion rule);
4. :func:`train_rows` — the rows (:func:`row_names`) through :func:`medbench.engine.fit`:

   * one **single-modality** row per modality: the plain backbone on that one channel
     (:class:`SingleModality` picks the channel out of the shared multichannel input);
   * one **fusion** row per level (``early``, ``late``, ``intermediate``:
     :func:`medbench.models.fusion.build_fusion`, same backbone);
   * a **with-dropout** row (``<level>+dropout``) for each level in ``fusion.dropout_levels``: the same network
     trained with modality dropout (``fusion.dropout_p``);

5. :func:`evaluate` — per-case Dice per class (lesion classes included) per row on the test cases, means
   with 95 % CIs, the baseline as the last line; :func:`lesion_detection` — per row: malignant lesions found
   (sensitivity) and false positives per case, from connected components (:func:`detect_lesions`);
6. :func:`missing_modality_table` — every fusion row evaluated with every non-empty subset of the
   modalities present (:func:`medbench.models.fusion.with_modalities`): the cost of a missing modality with
   and without modality dropout;
7. :func:`misregistration` — Dice versus a known translation (mm) of the PET / MR channels against the CT
   (:func:`shift_channels`, linear interpolation), the failure mode of fusion on imperfectly registered data;
8. :func:`train_synthesis` and :func:`synthesis_experiment` — a pix2pix CT -> PET generator (the restoration
   notebook's cGAN, through the same engine) standing in for a missing PET: Dice and detection with the true,
   the synthetic and no PET, and the share of each true lesion's PET contrast the synthetic image keeps;
9. :func:`checked_metrics` — the numbers the notebook's checked cell prints (:data:`CHECKED`).

**Why the single-modality rows are plain backbones.** The alternative, the early-fusion network trained with
only one modality present, is the same function: a channel that is always zero contributes nothing to the
first convolution (its weights see no gradient but weight decay), so it differs from a one-channel backbone
only by its initialisation's fan-in. The plain backbone is the network a single-modality study would train,
and it is what the fusion rows must beat; reading its channel out of the shared input keeps the data,
augmentation and patch order identical to the fusion rows'.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
import torch
from pydantic import Field, field_validator, model_validator

from medbench import config, metrics
from medbench.data.phantom import PhantomSpec
from medbench.data.transforms import label_box_mm
from medbench.engine import AugmentParams, FitResult, TrainParams, fit
from medbench.engine.segmentation import SegmentationSetup, build_setup
from medbench.errors import ConfigError
from medbench.image.convert import from_metatensor
from medbench.image.volume import Volume
from medbench.models.factory import ModelParams, build_model, forward_flops, models_patch_problem
from medbench.models.fusion import FUSION_LEVELS, FusionLevel, FusionNet, FusionParams, build_fusion, subsets, with_modalities
from medbench.recipes import segmentation as segr
from medbench.recipes.sections import PerModelEpochs

NOTEBOOK = "05_fusion"

MODALITIES = ("ct", "pet", "t1", "t2")
ORGANS = segr.ORGANS
LESIONS = segr.LESIONS
MALIGNANT = "lesion_malignant"
DROPOUT_SUFFIX = "+dropout"


class FusionDataParams(segr.SegDataParams):
    """The ``data`` section: the 04 data section with every phantom modality as an input channel, a lesion-rich
    cohort and a crop to the organs the malignant lesions live in.

    Smoke: 10 phantom cases (6 train / 2 val / 2 test), every one with 1-4 malignant lesions, on a 3.125 mm grid
    (8-40 mm lesions are 3-13 voxels across), each volume cropped to the liver and spleen's bounding box.
    """

    n_cases: int = Field(10, ge=3, description="Number of synthetic cases (split 60/20/20 into train/val/test).")
    image_size: list[int] = Field(default_factory=lambda: [128, 128, 64], description="CT grid (i, j, k) in voxels.")
    spacing: list[float] = Field(default_factory=lambda: [3.125, 3.125, 4.0],
                                 description="CT voxel spacing (i, j, k) in mm.")
    modalities: list[str] = Field(default_factory=lambda: list(MODALITIES),
                                  description="Input channels (phantom: resampled onto the CT grid); at least two.")
    classes: list[str] = Field(default_factory=lambda: ["liver", "spleen", *LESIONS],
                               description="Structures to segment.")
    patch: list[int] = Field(default_factory=lambda: [48, 48, 32], description="Training patch (i, j, k) in voxels.")
    positive_fraction: float = Field(1.0, ge=0, le=1, description="Phantom: share of cases with malignant lesions.")
    extra_malignant_mean: float = Field(2.0, ge=0, le=10,
                                        description="Phantom: a positive case has 1 + min(Poisson(this), 3) "
                                                    "malignant lesions.")
    roi: list[str] = Field(default_factory=lambda: ["liver", "spleen"],
                           description="Crop every volume to one fixed world box: around these structures in every "
                                       "training case (never the test labels); [] = whole volumes.")
    roi_margin_mm: float = Field(12.0, ge=0, description="Margin (mm) around the training cases' box.")

    @field_validator("modalities")
    @classmethod
    def _two_or_more(cls, v: list[str]) -> list[str]:
        if len(v) < 2 or len(set(v)) != len(v):
            raise ValueError("fusion needs at least two distinct modalities")
        return v

    def spec(self, seed: int) -> PhantomSpec:
        """The phantom cohort: the grid of :class:`PhantomData` with the lesion-rich settings."""
        return PhantomSpec(**{**super().spec(seed).to_dict(), "positive_fraction": float(self.positive_fraction),
                              "extra_malignant_mean": float(self.extra_malignant_mean)})


def _levels(*names: FusionLevel) -> list[FusionLevel]:
    return list(names)


class FusionSection(config.Section):
    """The ``fusion`` section (flat names ``fusion_*``): which rows to train and how to stress them.

    The network settings (``late_weights`` ... ``attention_channels``) are those of
    :class:`medbench.models.fusion.FusionParams`, applied to every fusion row.
    """

    single: bool = Field(True, description="Train one single-modality row per modality (the plain backbone).")
    levels: list[FusionLevel] = Field(default_factory=lambda: _levels("early", "late", "intermediate"),
                                      description="Fusion rows: 'early', 'late', 'intermediate'.")
    dropout_levels: list[FusionLevel] = Field(default_factory=lambda: _levels("early"),
                                              description="Levels that also get a '+dropout' row trained with "
                                                          "modality dropout (each must be in levels).")
    dropout_p: float = Field(0.3, gt=0.0, le=1.0, description="Modality dropout probability of the '+dropout' rows.")
    late_weights: Literal["mean", "learned"] = Field("learned", description="Late fusion: mean or learned weights.")
    late_per_class: bool = Field(True, description="Late fusion with learned weights: one weight per class.")
    encoder_channels: int = Field(4, ge=2, description="Intermediate fusion: channels of each modality encoder "
                                                       "(full resolution: the smoke profile keeps them few).")
    encoder_depth: int = Field(1, ge=1, le=4, description="Intermediate fusion: convolution blocks per encoder.")
    attention_channels: int = Field(4, ge=1, description="Intermediate fusion: width of the attention head.")
    shifts_mm: list[float] = Field(default_factory=lambda: [0.0, 4.0, 8.0],
                                   description="Misregistration: translations (mm) of the shifted channels.")
    shift_modalities: list[str] = Field(default_factory=lambda: ["pet", "t1", "t2"],
                                        description="Misregistration: the channels translated (CT stays put).")
    shift_axis: int = Field(0, ge=0, le=2, description="Misregistration: array axis of the loaded (RAS) grid.")

    @field_validator("shifts_mm")
    @classmethod
    def _shifts(cls, v: list[float]) -> list[float]:
        if not v or len(set(v)) != len(v):
            raise ValueError("must be a non-empty list of distinct shifts (mm)")
        return [float(s) for s in v]

    @model_validator(mode="after")
    def _dropout_rows_have_partners(self) -> FusionSection:
        extra = [lv for lv in self.dropout_levels if lv not in self.levels]
        if extra:
            raise ValueError(f"dropout_levels {extra} are not in levels {self.levels}: a '+dropout' row is compared "
                             f"with the same level trained without dropout")
        if len(set(self.levels)) != len(self.levels) or len(set(self.dropout_levels)) != len(self.dropout_levels):
            raise ValueError("levels and dropout_levels must not repeat a level")
        return self

    def network(self, level: str, modalities: Sequence[str], dropout: bool) -> FusionParams:
        """The :class:`FusionParams` of one fusion row."""
        return FusionParams(level=level, modalities=list(modalities),  # type: ignore[arg-type]
                            late_weights=self.late_weights, late_per_class=self.late_per_class,
                            dropout_p=self.dropout_p if dropout else 0.0, encoder_channels=self.encoder_channels,
                            encoder_depth=self.encoder_depth, attention_channels=self.attention_channels)


class SynthesisSection(config.Section):
    """The ``synthesis`` section (flat names ``synthesis_*``): a pix2pix generator (the restoration notebook's
    cGAN: U-Net generator, PatchGAN discriminator, L1 + adversarial loss) that makes the ``target`` modality from
    the ``source`` one, slice by slice, to stand in for a missing ``target``."""

    enabled: bool = Field(True, description="Train the generator and compare synthesis with modality dropout.")
    source: str = Field("ct", description="Modality the generator reads.")
    target: str = Field("pet", description="Modality it makes (the one treated as missing).")
    epochs: int = Field(5, ge=1, description="Training epochs (one pass over the training cases' axial slices).")
    lr: float = Field(2e-3, gt=0, description="Generator learning rate (the discriminator's too).")
    batch_size: int = Field(8, ge=1, description="Slices per step.")
    channels: int = Field(8, ge=4, description="Generator channels at full resolution.")
    levels: int = Field(3, ge=1, le=5, description="Generator U-Net levels (slices are padded to a multiple of 2^levels).")
    disc_channels: int = Field(8, ge=4, description="PatchGAN channels of its first layer.")
    disc_layers: int = Field(2, ge=1, le=5, description="PatchGAN strided layers.")
    l1_weight: float = Field(100.0, ge=0, description="Weight of the L1 loss (pix2pix: 100).")
    adv_weight: float = Field(1.0, ge=0, description="Weight of the adversarial loss.")
    contrast_kept: float = Field(0.5, gt=0, lt=1, description="A lesion counts as erased in the synthetic image when "
                                                             "it keeps less than this share of its true contrast.")

    @model_validator(mode="after")
    def _distinct(self) -> SynthesisSection:
        if self.source == self.target:
            raise ValueError("synthesis.source and synthesis.target must differ")
        return self


class EvalParams(config.Section):
    """The ``eval`` section."""

    overlap: float = Field(0.25, ge=0, lt=1, description="Sliding-window overlap at inference.")
    lesion_connectivity: int = Field(3, ge=1, le=3, description="Connected components of lesions: 1 = faces (6), "
                                                                "2 = +edges (18), 3 = +corners (26 neighbours).")


class Params(PerModelEpochs, config.Params):
    """05_fusion parameters."""

    notebook: ClassVar[str] = NOTEBOOK

    data: FusionDataParams = Field(default_factory=FusionDataParams)
    model: ModelParams = Field(default_factory=lambda: ModelParams(name="unet", base_channels=8, num_res_units=1,
                                                                   dropout=0.0),
                               description="The backbone of every row.")
    train: TrainParams = Field(default_factory=lambda: TrainParams(epochs=40, lr=1e-2, samples_per_volume=1,
                                                                   val_every=20))
    augment: AugmentParams = Field(default_factory=AugmentParams)
    fusion: FusionSection = Field(default_factory=FusionSection)
    synthesis: SynthesisSection = Field(default_factory=SynthesisSection)
    eval: EvalParams = Field(default_factory=EvalParams)
    threads: int = Field(2, ge=1, description="torch threads (pinned: float reductions depend on it).")
    epochs_by_model: dict[str, int] = Field(
        default_factory=lambda: {"late": 12, "intermediate": 22, "early+dropout": 60},
        description="Epochs per row (row names: the modalities, the levels, '<level>+dropout') where it differs "
                    "from train.epochs. At smoke every row gets about the same CPU time, so late fusion (one "
                    "backbone per modality, ~4x a single row's step) and intermediate fusion (full-resolution "
                    "encoders, ~2-4x) see fewer epochs, and the modality-dropout row more (each sample shows it "
                    "only part of the data); the full profile trains every row to convergence.")

    @model_validator(mode="after")
    def _consistent(self) -> Params:
        problem = models_patch_problem([self.model.name], self.data.patch)
        if problem:
            raise ValueError(problem)
        problem = self.epochs_by_model_problem(row_names(self), "rows of this run")
        if problem:
            raise ValueError(problem)
        unknown = [m for m in self.fusion.shift_modalities if m not in self.data.modalities]
        if unknown:
            raise ValueError(f"fusion.shift_modalities {unknown} are not input modalities {self.data.modalities}")
        if self.synthesis.enabled:
            absent = [m for m in (self.synthesis.source, self.synthesis.target) if m not in self.data.modalities]
            if absent:
                raise ValueError(f"synthesis modalities {absent} are not input modalities {self.data.modalities}")
        if MALIGNANT not in self.data.classes:
            raise ValueError(f"data.classes must include {MALIGNANT!r} (the lesion the notebook is about)")
        return self


#: A functional run in seconds (every row, one epoch, on a coarse 5-case cohort): used by the tests that execute
#: the notebook; its numbers mean nothing.
QUICK: dict[str, Any] = {
    "train_epochs": 1, "train_val_every": 1, "epochs_by_model": {}, "data_n_cases": 5,
    "data_image_size": [32, 32, 16], "data_spacing": [12.5, 12.5, 16.0], "data_patch": [32, 32, 16],
    "fusion_shifts_mm": [0.0, 12.5], "synthesis_epochs": 1,
}


def row_names(cfg: Params) -> list[str]:
    """The rows of the comparison, in table order: single modalities, fusion levels, '+dropout' variants."""
    single = list(cfg.data.modalities) if cfg.fusion.single else []
    return [*single, *cfg.fusion.levels, *(f"{lv}{DROPOUT_SUFFIX}" for lv in cfg.fusion.dropout_levels)]


def fusion_rows(names: Sequence[str]) -> list[str]:
    """The fusion rows among ``names`` (with and without dropout)."""
    return [n for n in names if n.removesuffix(DROPOUT_SUFFIX) in FUSION_LEVELS]


# -- data ---------------------------------------------------------------------------------------------
def segmentation_params(cfg: Params) -> segr.Params:
    """The segmentation recipe's parameters for the same data, backbone and training (so its functions apply)."""
    return segr.Params(data=cfg.data, models=[cfg.model.name], model=cfg.model, train=cfg.train,
                       augment=cfg.augment, eval=segr.EvalParams(overlap=cfg.eval.overlap), epochs_by_model={},
                       threads=cfg.threads, seed=cfg.seed)


def load_data(cfg: Params) -> segr.SegData:
    """The cohort's split with every modality on the CT grid (the segmentation recipe's ``load_data``)."""
    return segr.load_data(segmentation_params(cfg))


def roi_box(cfg: Params, data: segr.SegData) -> tuple[list[float], list[float]] | None:
    """The world box (mm) every volume is cropped to: around ``data.roi`` in the **training** cases, grown by
    ``data.roi_margin_mm`` (None when ``data.roi`` is empty).

    One box for all cases, chosen without the validation or test labels: a fixed field of view over the upper
    abdomen, so a single-modality row still meets the stomach, bowel and kidneys a PET alone confuses with lesions.
    """
    if not cfg.data.roi:
        return None
    by_name = {name: int(v) for v, name in data.label_names.items()}
    unknown = [c for c in cfg.data.roi if c not in by_name]
    if unknown:
        raise ConfigError(f"data.roi {unknown} are not in the label map; available: {sorted(by_name)}")
    return label_box_mm(data.train, [by_name[c] for c in cfg.data.roi], cfg.data.roi_margin_mm)


def setup(cfg: Params, data: segr.SegData) -> SegmentationSetup:
    """Cached datasets (all modalities as channels, cropped to :func:`roi_box`), transforms and task: shared by
    every row (the segmentation recipe's, with the crop)."""
    d = cfg.data
    return build_setup(data.train, data.val, data.test, label_names=data.label_names, classes=d.classes,
                       modalities=d.modalities, patch=d.patch, train_params=cfg.train, model_params=cfg.model,
                       augment=cfg.augment, rare_classes=d.rare_classes, rare_weight=d.rare_weight, seed=cfg.seed,
                       overlap=cfg.eval.overlap, roi_mm=roi_box(cfg, data))


# -- networks and training -------------------------------------------------------------------------------
class SingleModality(torch.nn.Module):
    """A plain one-channel backbone fed channel ``index`` of the multichannel input (a single-modality row)."""

    def __init__(self, backbone: torch.nn.Module, modalities: Sequence[str], modality: str) -> None:
        super().__init__()
        if modality not in modalities:
            raise ConfigError(f"modality {modality!r} is not an input channel ({list(modalities)})")
        self.backbone = backbone
        self.modalities = tuple(modalities)
        self.index = self.modalities.index(modality)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.backbone(x[:, self.index:self.index + 1])
        return out


def build_row(cfg: Params, seg: SegmentationSetup, row: str) -> torch.nn.Module:
    """A freshly initialised network for one row (initial weights fixed by the seed)."""
    torch.manual_seed(cfg.seed)
    mods = list(seg.modalities)
    if row in mods:
        return SingleModality(build_model(cfg.model, 1, seg.n_classes, seg.patch), mods, row)
    level = row.removesuffix(DROPOUT_SUFFIX)
    if level not in FUSION_LEVELS:
        raise ConfigError(f"unknown row {row!r}; rows are the modalities {mods}, the levels {list(FUSION_LEVELS)} "
                          f"and '<level>{DROPOUT_SUFFIX}'")
    fusion = cfg.fusion.network(level, mods, dropout=row.endswith(DROPOUT_SUFFIX))
    return build_fusion(fusion, cfg.model, seg.n_classes, seg.patch)


def train_rows(cfg: Params, data: segr.SegData | None = None, run: Any = None,
               seg: SegmentationSetup | None = None) -> dict[str, segr.Trained]:
    """Train every row (:func:`row_names`) through :func:`medbench.engine.fit`; best checkpoints go in the run.

    Every row uses the same seed, hence the same patches in the same order; rows differ only in the network.
    """
    data = data or load_data(cfg)
    seg = seg or setup(cfg, data)
    out: dict[str, segr.Trained] = {}
    for row in row_names(cfg):
        model = build_row(cfg, seg, row)
        params_m = sum(p.numel() for p in model.parameters()) / 1e6
        gflops = forward_flops(model, (1, len(seg.modalities), *seg.patch)) / 1e9
        result = fit(model, seg.task, seg.train_dataset, seg.val_dataset, cfg.train_for(row), seed=cfg.seed,
                     run=run, name=row.replace(DROPOUT_SUFFIX, "_dropout"))
        out[row] = segr.Trained(row, model, result, params_m, gflops)
    return out


def cli_train(cfg: Params, run: Any = None) -> dict[str, segr.Trained]:
    """``medbench train 05_fusion``: :func:`train_rows` on freshly loaded data."""
    return train_rows(cfg, run=run)


train_summary = segr.train_summary
history_table = segr.history_table
lesion_table = segr.lesion_table
test_case = segr.test_case


# -- inference helpers ----------------------------------------------------------------------------------
def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def _truth(item: Mapping[str, Any]) -> np.ndarray:
    return np.asarray(torch.as_tensor(item["label"])[0].cpu().numpy()).astype(np.int64)


def _scores(pred: np.ndarray, truth: np.ndarray, fg: Mapping[int, str]) -> dict[str, float]:
    """``dice_<class>`` per foreground class, and ``dice_mean``: their mean over the classes measurable here."""
    values = metrics.dice(pred, truth, fg)
    finite = [v for v in values.values() if np.isfinite(v)]
    return {**{f"dice_{c}": v for c, v in values.items()},
            "dice_mean": float(np.mean(finite)) if finite else float("nan")}


def _means(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Means over cases of the ``dice_*`` columns (NaN cases left out), plus the organs' mean."""
    cols = [c for c in frame.columns if c.startswith("dice_")]
    out = frame.groupby(by, sort=False)[cols].mean()
    organs = [f"dice_{o}" for o in ORGANS if f"dice_{o}" in out.columns]
    if organs:
        out.insert(0, "dice_organs", out[organs].mean(axis=1))
    return out


def test_arrays(seg: SegmentationSetup, case: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Test case ``case`` as the networks see it: the normalised channels ``(C, i, j, k)`` and the class ids."""
    if seg.test_dataset is None:
        raise ConfigError("there are no test cases")
    item = seg.test_dataset[case]
    return np.asarray(torch.as_tensor(item["image"]).detach().cpu().numpy()), _truth(item)


# -- evaluation ----------------------------------------------------------------------------------------
@dataclasses.dataclass
class Evaluation:
    per_case: pd.DataFrame  # row, case_id, dice_<class>, dice_mean
    table: pd.DataFrame  # one line per row: means with CI half-widths, size, cost
    predictions: dict[str, dict[str, np.ndarray]]  # row -> case_id -> label map (class ids, loaded grid)
    truths: dict[str, np.ndarray]  # case_id -> label map (class ids)
    class_names: dict[int, str]


def baseline(cfg: Params, data: segr.SegData, seg: SegmentationSetup) -> segr.BaselineResult:
    """The best non-learning baseline (the segmentation recipe's): organs by threshold rule or atlas, malignant
    lesions by the CT+PET rule, fitted on the training cases and scored on the test cases' full CT grid.

    The lesion rule searches the true liver and spleen (the localisation a CT organ segmentation gives, at its
    best), so its malignant Dice is an upper bound of what such a rule reaches.
    """
    return segr.baseline(segmentation_params(cfg), data, seg)


def evaluate(cfg: Params, seg: SegmentationSetup, trained: Mapping[str, segr.Trained],
             base: segr.BaselineResult | None = None) -> Evaluation:
    """Per-case Dice per class (lesions included) of every row on the test cases; means with 95 % CIs; the
    baseline (if given) as the last line, named ``baseline: <rule>``."""
    if seg.test_dataset is None:
        raise ConfigError("there are no test cases to evaluate on")
    fg = {k: v for k, v in seg.class_names.items() if k}
    rows: list[dict[str, Any]] = []
    preds: dict[str, dict[str, np.ndarray]] = {}
    truths: dict[str, np.ndarray] = {}
    for name, t in trained.items():
        t.model.eval()
        preds[name] = {}
        for i in range(len(seg.test_dataset)):
            item = seg.test_dataset[i]
            cid = str(seg.test_datalist[i]["case_id"])
            pred = seg.task.predict(t.model, item["image"], _device(t.model))
            truths[cid] = _truth(item)
            preds[name][cid] = pred
            rows.append({"row": name, "case_id": cid, **_scores(pred, truths[cid], fg)})
    per_case = pd.DataFrame(rows)
    table_rows = []
    for name, t in trained.items():
        part = per_case[per_case["row"] == name]
        summary = segr.class_summary(part, fg, dice_only=True)
        table_rows.append({"row": name, **summary, "dice_mean": float(part["dice_mean"].mean()),
                           "params_m": t.params_m, "gflops": t.gflops, "train_s": t.fit.train_time_s,
                           "epochs": t.fit.epochs_run})
    if base is not None:
        table_rows.append({"row": f"baseline: {base.name}", **segr.class_summary(base.per_case, fg, dice_only=True)})
    return Evaluation(per_case, pd.DataFrame(table_rows).set_index("row"), preds, truths, dict(seg.class_names))


def prediction_volumes(evaluation: Evaluation, truth: Volume, case_id: str) -> dict[str, Volume]:
    """Every row's prediction of one test case as a label Volume on ``truth``'s grid (for the figures)."""
    return {row: truth.with_array(np.asarray(cases[case_id]).astype(np.uint8), role="label")
            for row, cases in evaluation.predictions.items()}


def missing_rows(cfg: Params, names: Sequence[str]) -> list[str]:
    """The fusion rows the missing-modality experiments compare: each level in ``fusion.dropout_levels``, trained
    without and with modality dropout."""
    return [n for n in fusion_rows(names) if n.removesuffix(DROPOUT_SUFFIX) in cfg.fusion.dropout_levels]


def missing_modality_table(cfg: Params, seg: SegmentationSetup, trained: Mapping[str, segr.Trained]) -> pd.DataFrame:
    """Mean test Dice of the fusion rows of :func:`missing_rows` with every non-empty subset of the modalities
    present.

    Index ``(row, subset)`` (subset names joined by '+', largest subsets first); columns ``n_modalities``,
    ``dice_organs``, ``dice_<class>``, ``dice_mean``. The full subset is the row's ordinary evaluation.
    """
    if seg.test_dataset is None:
        raise ConfigError("there are no test cases to evaluate on")
    fg = {k: v for k, v in seg.class_names.items() if k}
    rows: list[dict[str, Any]] = []
    for name in missing_rows(cfg, list(trained)):
        net = trained[name].model
        if not isinstance(net, FusionNet):
            raise ConfigError(f"row {name!r} is not a fusion network")
        net.eval()
        for keep in subsets(net.modalities):
            wrapped = with_modalities(net, keep).to(_device(net))
            for i in range(len(seg.test_dataset)):
                item = seg.test_dataset[i]
                pred = seg.task.predict(wrapped, item["image"], _device(net))
                rows.append({"row": name, "subset": "+".join(keep), "n_modalities": len(keep),
                             "case_id": seg.test_datalist[i]["case_id"], **_scores(pred, _truth(item), fg)})
    frame = pd.DataFrame(rows)
    table = _means(frame.drop(columns="case_id"), ["row", "subset"])
    table.insert(0, "n_modalities", frame.groupby(["row", "subset"], sort=False)["n_modalities"].first())
    return table


# -- misregistration -----------------------------------------------------------------------------------
def shift_channels(image: np.ndarray | torch.Tensor, shift_mm: float, spacing: Sequence[float],
                   channels: Sequence[int], axis: int = 0) -> np.ndarray:
    """``image`` ``(C, i, j, k)`` with ``channels`` translated by ``shift_mm`` along array ``axis``.

    The shift in voxels is ``shift_mm / spacing[axis]`` (positive: towards higher indices); sub-voxel shifts use
    **linear interpolation** (``scipy.ndimage.shift``, ``order=1``, which conserves the mass and moves the centroid
    by exactly the shift), and voxels shifted in from outside take the nearest edge value (``mode="nearest"``:
    the border is air / background). Other channels are returned unchanged.
    """
    from scipy import ndimage

    arr = np.array(torch.as_tensor(image).detach().cpu().numpy() if isinstance(image, torch.Tensor) else image,
                   dtype=np.float32, copy=True)
    if arr.ndim != 4:
        raise ConfigError(f"shift_channels needs a channel-first volume (C, i, j, k), got shape {arr.shape}")
    if not 0 <= axis < 3:
        raise ConfigError(f"axis must be 0, 1 or 2, got {axis}")
    voxels = [0.0, 0.0, 0.0]
    voxels[axis] = float(shift_mm) / float(spacing[axis])
    if voxels[axis] == 0:
        return arr
    for c in channels:
        arr[c] = ndimage.shift(arr[c], voxels, order=1, mode="nearest")
    return arr


def misregistration(cfg: Params, seg: SegmentationSetup, trained: Mapping[str, segr.Trained]) -> pd.DataFrame:
    """Mean test Dice of every row when the ``fusion.shift_modalities`` channels are translated against the CT.

    Index ``(row, shift_mm)``; columns ``dice_organs``, ``dice_<class>``, ``dice_mean``. A single-modality row on
    a shifted channel sees its prediction move off the (CT-grid) truth; the CT row is the unshifted control.
    """
    if seg.test_dataset is None:
        raise ConfigError("there are no test cases to evaluate on")
    fg = {k: v for k, v in seg.class_names.items() if k}
    channels = [seg.modalities.index(m) for m in cfg.fusion.shift_modalities]
    cases = []  # (truth, {shift: image}) per test case, shifted once for every row
    for i in range(len(seg.test_dataset)):
        item = seg.test_dataset[i]
        spacing = [float(s) for s in from_metatensor(item["label"]).spacing]
        images = {shift: torch.from_numpy(shift_channels(item["image"], shift, spacing, channels,
                                                         cfg.fusion.shift_axis))
                  for shift in cfg.fusion.shifts_mm}
        cases.append((_truth(item), images))
    rows: list[dict[str, Any]] = []
    for name, t in trained.items():
        t.model.eval()
        for shift in cfg.fusion.shifts_mm:
            for truth, images in cases:
                pred = seg.task.predict(t.model, images[shift], _device(t.model))
                rows.append({"row": name, "shift_mm": shift, **_scores(pred, truth, fg)})
    return _means(pd.DataFrame(rows), ["row", "shift_mm"])


# -- lesion detection ------------------------------------------------------------------------------------
def detect_lesions(pred: np.ndarray, truth: np.ndarray, connectivity: int = 3) -> dict[str, int]:
    """Lesion-level detection from two binary masks by connected components (``scipy.ndimage.label``).

    A true lesion (component of ``truth``) is **detected** when any predicted voxel overlaps it; a predicted
    component that overlaps no true lesion is a **false positive**. ``connectivity`` as in
    ``scipy.ndimage.generate_binary_structure`` (3 = 26 neighbours). Returns ``lesions``, ``detected``,
    ``missed``, ``false_positives``.
    """
    from scipy import ndimage

    p, t = np.asarray(pred, bool), np.asarray(truth, bool)
    if p.shape != t.shape:
        raise ConfigError(f"prediction {p.shape} and truth {t.shape} differ in shape")
    structure = ndimage.generate_binary_structure(p.ndim, connectivity)
    t_lab, n_true = ndimage.label(t, structure)
    p_lab, n_pred = ndimage.label(p, structure)
    detected = len(set(np.unique(t_lab[p & t]).tolist()) - {0})
    matched = len(set(np.unique(p_lab[p & t]).tolist()) - {0})
    return {"lesions": int(n_true), "detected": detected, "missed": int(n_true) - detected,
            "false_positives": int(n_pred) - matched}


def lesion_detection(cfg: Params, evaluation: Evaluation, cls: str = MALIGNANT) -> pd.DataFrame:
    """Per row: true lesions of class ``cls`` in the test cases, detected, sensitivity, false positives per case."""
    ids = {name: k for k, name in evaluation.class_names.items()}
    if cls not in ids:
        raise ConfigError(f"{cls!r} is not a class of this run ({sorted(ids)})")
    out = []
    for row, cases in evaluation.predictions.items():
        counts = [detect_lesions(pred == ids[cls], evaluation.truths[cid] == ids[cls], cfg.eval.lesion_connectivity)
                  for cid, pred in cases.items()]
        lesions = sum(c["lesions"] for c in counts)
        detected = sum(c["detected"] for c in counts)
        fps = sum(c["false_positives"] for c in counts)
        out.append({"row": row, "cases": len(counts), "lesions": lesions, "detected": detected,
                    "sensitivity": detected / lesions if lesions else float("nan"),
                    "fp_per_case": fps / len(counts) if counts else float("nan")})
    return pd.DataFrame(out).set_index("row")


# -- cross-modal synthesis ------------------------------------------------------------------------------
@dataclasses.dataclass
class Synthesis:
    """The trained generator and what it cost."""

    model: torch.nn.Module  # ConditionalGAN; forward = the generator
    fit: FitResult
    params_m: float
    source: int  # channel index read
    target: int  # channel index made
    multiple: int  # slices are padded to a multiple of this


def _whole_volumes(seg: SegmentationSetup, datalist: Sequence[Mapping[str, Any]]) -> Any:
    """The datalist's whole volumes through the evaluation transforms (cached; the training set is cropped)."""
    from medbench.data.transforms import cached_dataset

    return cached_dataset(datalist, seg.eval_transform)


def _pad_to(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Zero-pad the last two axes up to a multiple of ``multiple``; returns the padded tensor and the sizes."""
    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    return torch.nn.functional.pad(x, (0, pw, 0, ph)), (h, w)


def synthesis_pairs(image: torch.Tensor, source: int, target: int, multiple: int) -> list[dict[str, torch.Tensor]]:
    """Axial slices (last axis) of one normalised volume ``(C, i, j, k)`` as ``{"input", "target"}`` pairs,
    ``(1, i', j')`` each, zero-padded to a multiple of ``multiple`` (zero is air / no uptake after normalising)."""
    vol = torch.as_tensor(image).detach().float().cpu()
    out = []
    for k in range(vol.shape[-1]):
        x, _ = _pad_to(vol[source:source + 1, :, :, k], multiple)
        y, _ = _pad_to(vol[target:target + 1, :, :, k], multiple)
        out.append({"input": x.as_subclass(torch.Tensor), "target": y.as_subclass(torch.Tensor)})
    return out


def train_synthesis(cfg: Params, seg: SegmentationSetup, run: Any = None) -> Synthesis:
    """The pix2pix ``synthesis.source`` -> ``synthesis.target`` generator, trained through
    :func:`medbench.engine.fit` (:class:`~medbench.restoration.tasks.Pix2PixTask`) on the training cases' axial
    slices, its best checkpoint chosen by PSNR on the validation cases'."""
    from medbench.models.restoration import RestorationModelParams, build_pix2pix
    from medbench.restoration.tasks import Pix2PixTask

    s = cfg.synthesis
    mods = list(seg.modalities)
    src, tgt = mods.index(s.source), mods.index(s.target)
    multiple = 2 ** s.levels
    train = [p for item in _whole_volumes(seg, seg.train_datalist)
             for p in synthesis_pairs(item["image"], src, tgt, multiple)]
    val_ds = seg.val_dataset or []  # already whole volumes through the evaluation transforms: no second load
    val = [p for i in range(len(val_ds)) for p in synthesis_pairs(val_ds[i]["image"], src, tgt, multiple)] or None
    torch.manual_seed(cfg.seed)
    params = RestorationModelParams(channels=s.channels, levels=s.levels, num_res_units=1,
                                    disc_channels=s.disc_channels, disc_layers=s.disc_layers)
    model = build_pix2pix(params, spatial_dims=2, residual=False)
    task = Pix2PixTask(l1_weight=s.l1_weight, adv_weight=s.adv_weight, data_range=1.0)
    tp = TrainParams(epochs=s.epochs, lr=s.lr, batch_size=s.batch_size, val_every=max(1, s.epochs // 5),
                     samples_per_volume=1)
    result = fit(model, task, train, val, tp, seed=cfg.seed, run=run, name=f"synth_{s.source}_to_{s.target}")
    params_m = sum(p.numel() for p in model.generator.parameters()) / 1e6
    return Synthesis(model, result, params_m, src, tgt, multiple)


@torch.no_grad()
def synthesize(synth: Synthesis, image: torch.Tensor) -> torch.Tensor:
    """``image`` ``(C, i, j, k)`` with the target channel replaced by the generator's output from the source."""
    gen: torch.nn.Module = getattr(synth.model, "generator", synth.model)
    gen.eval()
    device = next(gen.parameters()).device
    vol = torch.as_tensor(image).detach().float().cpu().as_subclass(torch.Tensor).clone()
    x, (h, w) = _pad_to(vol[synth.source].permute(2, 0, 1)[:, None], synth.multiple)  # (k, 1, i', j')
    made = torch.cat([gen(x[n:n + 16].to(device)).cpu() for n in range(0, len(x), 16)])
    vol[synth.target] = made[:, 0, :h, :w].permute(1, 2, 0)
    return vol


def _lesion_contrast(img: np.ndarray, truth: np.ndarray, lesion_id: int, host_ids: Sequence[int],
                     connectivity: int) -> list[float]:
    """Per true lesion (connected component): its mean in ``img`` minus the mean of its host organs outside lesions."""
    from scipy import ndimage

    lab, n = ndimage.label(truth == lesion_id, ndimage.generate_binary_structure(3, connectivity))
    host = np.isin(truth, list(host_ids))
    background = float(img[host].mean()) if host.any() else float(img[truth == 0].mean())
    return [float(img[lab == i].mean()) - background for i in range(1, n + 1)]


@dataclasses.dataclass
class SynthesisResult:
    table: pd.DataFrame  # (row, target) -> Dice and lesion detection with the target true / synthetic / missing
    lesions: pd.DataFrame  # one line per true malignant lesion: contrast in the true and the synthetic image
    quality: dict[str, float]  # image agreement of synthetic and true target on the test cases
    example: dict[str, np.ndarray]  # one test case: true and synthetic target (loaded grid), truth


def synthesis_experiment(cfg: Params, seg: SegmentationSetup, trained: Mapping[str, segr.Trained],
                         synth: Synthesis) -> SynthesisResult:
    """Does a synthetic target beat modality dropout, and does it invent or erase lesions?

    For the fusion rows of :func:`missing_rows` and the target's single-modality row, on the test cases: Dice
    and malignant-lesion
    detection with the **true** target, the **synthetic** one (:func:`synthesize`) and (fusion rows) the target
    **missing** (:func:`~medbench.models.fusion.with_modalities`). Per true malignant lesion: its contrast over
    the host organs in the true and the synthetic target; *erased* when the synthetic image keeps less than
    ``synthesis.contrast_kept`` of it. False lesions created show as false positives per case.
    """
    if seg.test_dataset is None:
        raise ConfigError("there are no test cases to evaluate on")
    fg = {k: v for k, v in seg.class_names.items() if k}
    ids = {v: k for k, v in seg.class_names.items()}
    mal = ids[MALIGNANT]
    hosts = [ids[c] for c in ("liver", "spleen") if c in ids]
    tgt_name = seg.modalities[synth.target]
    cases = []
    lesion_rows: list[dict[str, Any]] = []
    sq_err, abs_err, n_vox = 0.0, 0.0, 0
    example: dict[str, np.ndarray] = {}
    for i in range(len(seg.test_dataset)):
        item = seg.test_dataset[i]
        cid = str(seg.test_datalist[i]["case_id"])
        truth = _truth(item)
        true_img = torch.as_tensor(item["image"]).detach().float().cpu().as_subclass(torch.Tensor)
        fake_img = synthesize(synth, true_img)
        t, f = true_img[synth.target].numpy(), fake_img[synth.target].numpy()
        sq_err += float(((f - t) ** 2).sum())
        abs_err += float(np.abs(f - t).sum())
        n_vox += t.size
        for n, (ct, cf) in enumerate(zip(_lesion_contrast(t, truth, mal, hosts, cfg.eval.lesion_connectivity),
                                         _lesion_contrast(f, truth, mal, hosts, cfg.eval.lesion_connectivity))):
            lesion_rows.append({"case_id": cid, "lesion": n + 1, "contrast_true": ct, "contrast_synthetic": cf,
                                "kept": cf / ct if ct > 0 else float("nan"),
                                "erased": bool(ct > 0 and cf < cfg.synthesis.contrast_kept * ct)})
        if not example:
            example = {"true": t, "synthetic": f, "truth": truth}
        cases.append((cid, truth, true_img, fake_img))
    rows: list[dict[str, Any]] = []
    names = [n for n in trained if n == tgt_name or n in missing_rows(cfg, list(trained))]
    for name in names:
        net = trained[name].model
        net.eval()
        variants: dict[str, torch.nn.Module] = {"true": net, "synthetic": net}
        if isinstance(net, FusionNet):
            variants["missing"] = with_modalities(net, [m for m in net.modalities if m != tgt_name]).to(_device(net))
        for variant, model in variants.items():
            scores, counts = [], []
            for _cid, truth, true_img, fake_img in cases:
                pred = seg.task.predict(model, fake_img if variant == "synthetic" else true_img, _device(net))
                scores.append(_scores(pred, truth, fg))
                counts.append(detect_lesions(pred == mal, truth == mal, cfg.eval.lesion_connectivity))
            lesions = sum(c["lesions"] for c in counts)
            rows.append({"row": name, tgt_name: variant,
                         "dice_malignant": float(np.nanmean([s[f"dice_{MALIGNANT}"] for s in scores])),
                         "dice_mean": float(np.nanmean([s["dice_mean"] for s in scores])),
                         "lesions": lesions, "detected": sum(c["detected"] for c in counts),
                         "sensitivity": sum(c["detected"] for c in counts) / lesions if lesions else float("nan"),
                         "fp_per_case": sum(c["false_positives"] for c in counts) / len(counts)})
    mse = sq_err / max(n_vox, 1)
    quality = {"mae": abs_err / max(n_vox, 1), "psnr_db": float(10 * np.log10(1.0 / max(mse, 1e-12)))}
    return SynthesisResult(pd.DataFrame(rows).set_index(["row", tgt_name]), pd.DataFrame(lesion_rows), quality,
                           example)


# -- checked metrics ------------------------------------------------------------------------------------
CHECKED: dict[str, str] = {
    "dice_malignant_<row>": "test-set mean Dice of the malignant lesions per row: what fusion is for",
    "fusion_margin_malignant": "best fusion row's malignant Dice minus the best single-modality row's",
    "baseline_dice_malignant": "the non-learning CT+PET rule's malignant Dice (searching the true organs)",
    "margin_over_baseline_malignant": "best learned row's malignant Dice minus the baseline's",
    "worst_subset_drop_<row>": "per fusion row (with and without dropout): mean Dice with every modality minus "
                               "the worst non-empty subset's (how badly a missing modality hurts)",
    "full_dice_<row>": "per fusion row (with and without dropout): mean Dice with every modality present (the "
                       "price of modality dropout when nothing is missing)",
    "synthesis_dice_malignant_<row>_<synthetic|missing>": "malignant Dice with the synthesis target (PET) made "
                                                           "from the CT, or missing, per row",
    "synthesis_lesions_erased": "true malignant lesions whose contrast the synthetic image loses (of all)",
}


def checked_metrics(evaluation: Evaluation, missing: pd.DataFrame,
                    synthesis: SynthesisResult | None = None) -> dict[str, Any]:
    """The notebook's checked numbers (see :data:`CHECKED`); ``dice_mean`` is the mean over the classes."""
    out: dict[str, Any] = {}
    table = evaluation.table
    col = f"dice_{MALIGNANT}"
    names = [str(n) for n in table.index if not str(n).startswith("baseline")]
    for row in names:
        out[f"dice_malignant_{row.replace(DROPOUT_SUFFIX, '_dropout')}"] = float(table.loc[row, col])
    fused, single = fusion_rows(names), [n for n in names if n not in fusion_rows(names)]
    if fused and single:
        out["fusion_margin_malignant"] = (float(np.nanmax(table.loc[fused, col].to_numpy(float)))
                                          - float(np.nanmax(table.loc[single, col].to_numpy(float))))
    base = [str(n) for n in table.index if str(n).startswith("baseline")]
    if base and col in table.columns and np.isfinite(float(table.loc[base[0], col])):
        out["baseline_dice_malignant"] = float(table.loc[base[0], col])
        out["margin_over_baseline_malignant"] = (float(np.nanmax(table.loc[names, col].to_numpy(float)))
                                                 - out["baseline_dice_malignant"])
    for row in dict.fromkeys(missing.index.get_level_values("row")):
        part = missing.xs(row, level="row")
        full = float(part.loc[part["n_modalities"] == part["n_modalities"].max(), "dice_mean"].iloc[0])
        key = row.replace(DROPOUT_SUFFIX, "_dropout")
        out[f"full_dice_{key}"] = full
        out[f"worst_subset_drop_{key}"] = full - float(part["dice_mean"].min())
    if synthesis is not None:
        for (row, variant), line in synthesis.table.iterrows():
            if variant != "true":
                key = f"synthesis_dice_malignant_{str(row).replace(DROPOUT_SUFFIX, '_dropout')}_{variant}"
                out[key] = float(line["dice_malignant"])
        lesions = synthesis.lesions
        out["synthesis_lesions_erased"] = f"{int(lesions['erased'].sum())}/{len(lesions)}"
    return out
