"""05_fusion: CT + PET + MR fusion for segmentation — which modality carries what, and how fusion fails.

The recipe's steps, one call each in the notebook (:func:`train_rows` is what ``medbench train 05_fusion``
runs):

1. :func:`load_data` — the phantom cohort's train / val / test split with every modality resampled onto the
   CT grid (the segmentation recipe's :func:`~medbench.recipes.segmentation.load_data`);
2. :func:`setup` — cached datasets, transforms and task, the segmentation recipe's, with all modalities as
   channels: every row of the comparison trains on the same patches in the same order;
3. :func:`train_rows` — the rows (:func:`row_names`) through :func:`medbench.engine.fit`:

   * one **single-modality** row per modality: the plain backbone on that one channel
     (:class:`SingleModality` picks the channel out of the shared multichannel input);
   * one **fusion** row per level (``early``, ``late``, ``intermediate``:
     :func:`medbench.models.fusion.build_fusion`, same backbone);
   * a **with-dropout** row (``<level>+dropout``) for each level in ``fusion.dropout_levels``: the same network
     trained with modality dropout (``fusion.dropout_p``);

4. :func:`evaluate` — per-case Dice per class (lesion classes included) per row on the test cases, means
   with 95 % CIs;
5. :func:`missing_modality_table` — every fusion row evaluated with every non-empty subset of the
   modalities present (:func:`medbench.models.fusion.with_modalities`): the cost of a missing modality with
   and without modality dropout;
6. :func:`misregistration` — Dice versus a known translation (mm) of the PET / MR channels against the CT
   (:func:`shift_channels`, linear interpolation), the failure mode of fusion on imperfectly registered data;
7. :func:`lesion_detection` — per row: malignant lesions found (sensitivity) and false positives per case,
   from connected components (:func:`detect_lesions`);
8. :func:`checked_metrics` — the numbers the notebook's checked cell prints (:data:`CHECKED`).

**Why the single-modality rows are plain backbones.** The alternative, the early-fusion network trained with
only one modality present, is the same function: a channel that is always zero contributes nothing to the
first convolution (its weights see no gradient but weight decay), so it differs from a one-channel backbone
only by its initialisation's fan-in. The plain backbone is the network a single-modality study would train,
and it is what the fusion rows must beat; reading its channel out of the shared input keeps the data,
augmentation and patch order identical to the fusion rows'.

**Not yet built:** cross-modal synthesis (a pix2pix CT -> PET generator to stand in for a missing PET).
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
from medbench.engine import AugmentParams, TrainParams, fit
from medbench.engine.segmentation import SegmentationSetup
from medbench.errors import ConfigError
from medbench.image.convert import from_metatensor
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
    """The ``data`` section: the 04 data section with every phantom modality as an input channel.

    Smoke: 10 phantom cases (6 train / 2 val / 2 test) on the 6.25 mm smoke grid, one 64 x 64 x 32 patch = the
    whole volume.
    """

    modalities: list[str] = Field(default_factory=lambda: list(MODALITIES),
                                  description="Input channels (phantom: resampled onto the CT grid); at least two.")

    @field_validator("modalities")
    @classmethod
    def _two_or_more(cls, v: list[str]) -> list[str]:
        if len(v) < 2 or len(set(v)) != len(v):
            raise ValueError("fusion needs at least two distinct modalities")
        return v


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
    dropout_p: float = Field(0.5, gt=0.0, le=1.0, description="Modality dropout probability of the '+dropout' rows.")
    late_weights: Literal["mean", "learned"] = Field("mean", description="Late fusion: mean or learned weights.")
    late_per_class: bool = Field(True, description="Late fusion with learned weights: one weight per class.")
    encoder_channels: int = Field(4, ge=2, description="Intermediate fusion: channels of each modality encoder "
                                                       "(full resolution: the smoke profile keeps them few).")
    encoder_depth: int = Field(1, ge=1, le=4, description="Intermediate fusion: convolution blocks per encoder.")
    attention_channels: int = Field(4, ge=1, description="Intermediate fusion: width of the attention head.")
    shifts_mm: list[float] = Field(default_factory=lambda: [0.0, 2.0, 4.0, 8.0],
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
    train: TrainParams = Field(default_factory=lambda: TrainParams(epochs=24, lr=1e-2, samples_per_volume=1,
                                                                   val_every=6))
    augment: AugmentParams = Field(default_factory=AugmentParams)
    fusion: FusionSection = Field(default_factory=FusionSection)
    eval: EvalParams = Field(default_factory=EvalParams)
    threads: int = Field(2, ge=1, description="torch threads (pinned: float reductions depend on it).")
    epochs_by_model: dict[str, int] = Field(
        default_factory=lambda: {"late": 8, "intermediate": 12},
        description="Epochs per row (row names: the modalities, the levels, '<level>+dropout') where it differs "
                    "from train.epochs. At smoke every row gets about the same CPU time, so late fusion (one "
                    "backbone per modality, ~4x a single row's step) and intermediate fusion (full-resolution "
                    "encoders, ~2-4x) see fewer epochs; the full profile trains every row to convergence.")

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
        if MALIGNANT not in self.data.classes:
            raise ValueError(f"data.classes must include {MALIGNANT!r} (the lesion the notebook is about)")
        return self


#: A functional run in seconds (every row, one epoch, on a coarse 5-case cohort): used by the tests that execute
#: the notebook; its numbers mean nothing.
QUICK: dict[str, Any] = {
    "train_epochs": 1, "train_val_every": 1, "epochs_by_model": {}, "data_n_cases": 5,
    "data_image_size": [32, 32, 16], "data_spacing": [12.5, 12.5, 16.0], "data_patch": [32, 32, 16],
    "fusion_shifts_mm": [0.0, 12.5],
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


def setup(cfg: Params, data: segr.SegData) -> SegmentationSetup:
    """Cached datasets (all modalities as channels), transforms and task: shared by every row."""
    return segr.setup(segmentation_params(cfg), data)


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


# -- evaluation ----------------------------------------------------------------------------------------
@dataclasses.dataclass
class Evaluation:
    per_case: pd.DataFrame  # row, case_id, dice_<class>, dice_mean
    table: pd.DataFrame  # one line per row: means with CI half-widths, size, cost
    predictions: dict[str, dict[str, np.ndarray]]  # row -> case_id -> label map (class ids, loaded grid)
    truths: dict[str, np.ndarray]  # case_id -> label map (class ids)
    class_names: dict[int, str]


def evaluate(cfg: Params, seg: SegmentationSetup, trained: Mapping[str, segr.Trained]) -> Evaluation:
    """Per-case Dice per class (lesions included) of every row on the test cases; means with 95 % CIs."""
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
    return Evaluation(per_case, pd.DataFrame(table_rows).set_index("row"), preds, truths, dict(seg.class_names))


def missing_modality_table(cfg: Params, seg: SegmentationSetup, trained: Mapping[str, segr.Trained]) -> pd.DataFrame:
    """Mean test Dice of every fusion row with every non-empty subset of the modalities present.

    Index ``(row, subset)`` (subset names joined by '+', largest subsets first); columns ``n_modalities``,
    ``dice_organs``, ``dice_<class>``, ``dice_mean``. The full subset is the row's ordinary evaluation.
    """
    if seg.test_dataset is None:
        raise ConfigError("there are no test cases to evaluate on")
    fg = {k: v for k, v in seg.class_names.items() if k}
    rows: list[dict[str, Any]] = []
    for name in fusion_rows(list(trained)):
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


# -- checked metrics ------------------------------------------------------------------------------------
CHECKED: dict[str, str] = {
    "dice_malignant_<row>": "test-set mean Dice of the malignant lesions per row: what fusion is for",
    "fusion_margin_malignant": "best fusion row's malignant Dice minus the best single-modality row's",
    "worst_subset_drop_<row>": "per fusion row (with and without dropout): mean Dice with every modality minus "
                               "the worst non-empty subset's (how badly a missing modality hurts)",
    "full_dice_<row>": "per fusion row (with and without dropout): mean Dice with every modality present (the "
                       "price of modality dropout when nothing is missing)",
}


def checked_metrics(evaluation: Evaluation, missing: pd.DataFrame) -> dict[str, Any]:
    """The notebook's checked numbers (see :data:`CHECKED`); ``dice_mean`` is the mean over the classes."""
    out: dict[str, Any] = {}
    table = evaluation.table
    col = f"dice_{MALIGNANT}"
    for row in table.index:
        out[f"dice_malignant_{str(row).replace(DROPOUT_SUFFIX, '_dropout')}"] = float(table.loc[row, col])
    names = list(table.index)
    fused, single = fusion_rows(names), [n for n in names if n not in fusion_rows(names)]
    if fused and single:
        out["fusion_margin_malignant"] = (float(np.nanmax(table.loc[fused, col].to_numpy(float)))
                                          - float(np.nanmax(table.loc[single, col].to_numpy(float))))
    for row in dict.fromkeys(missing.index.get_level_values("row")):
        part = missing.xs(row, level="row")
        full = float(part.loc[part["n_modalities"] == part["n_modalities"].max(), "dice_mean"].iloc[0])
        key = row.replace(DROPOUT_SUFFIX, "_dropout")
        out[f"full_dice_{key}"] = full
        out[f"worst_subset_drop_{key}"] = full - float(part["dice_mean"].min())
    return out
