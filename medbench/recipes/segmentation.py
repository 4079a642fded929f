"""04_segmentation: U-Net vs Attention U-Net vs SegResNet vs UNETR vs SwinUNETR, honest metrics, uncertainty, SEG.

The recipe's steps, one call each in the notebook (and :func:`train` is what
``medbench train 04_segmentation`` runs):

1. :func:`load_data` — the cohort's train / val / test split as datalists
   (``data_source="phantom"``) or a public dataset by manifest name;
2. :func:`setup` — cached datasets, transforms and the task (shared with the benchmark);
3. :func:`baseline` — the best non-learning baseline, chosen on training cases, scored on test;
4. :func:`train` — every model in ``models`` through :func:`medbench.engine.fit`;
5. :func:`evaluate` — per-case Dice, HD95 (mm) and surface Dice on test, means with 95 % CIs,
   parameters, FLOPs, train and inference time;
6. :func:`uncertainty` — MC-dropout entropy, its AUROC for errors, reliability and ECE;
7. :func:`export` — the prediction as NIfTI on the input grid and as a DICOM SEG referencing the CT series.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from pydantic import Field, field_validator, model_validator

from medbench import config, metrics
from medbench.data.datalist import manifest_datalist, msd_label_names, phantom_datalist
from medbench.data.phantom import LABELS, load_cohort
from medbench.engine import AugmentParams, FitResult, TrainParams, fit, mc_dropout
from medbench.engine.segmentation import SegmentationSetup, build_setup
from medbench.errors import ConfigError
from medbench.image.convert import from_metatensor
from medbench.image.volume import Volume
from medbench.metrics.calibration import expected_calibration_error, reliability_table, uncertainty_error_auroc
from medbench.models.factory import ARCHITECTURES, Architecture, ModelParams, forward_flops, models_patch_problem
from medbench.recipes.sections import PerModelEpochs, PhantomData

NOTEBOOK = "04_segmentation"

ORGANS = ("liver", "spleen", "kidney_left", "kidney_right")
#: The comparison's rows, convolutional first (the first also gets the uncertainty analysis).
DEFAULT_MODELS: tuple[Architecture, ...] = ("unet", "attention_unet", "segresnet", "unetr", "swin_unetr")
LESIONS = ("lesion_malignant", "lesion_cyst")


class SegDataParams(PhantomData):
    """The ``data`` section: which data, which input modalities, which classes, which patch.

    Smoke: 10 phantom cases (6 train / 2 val / 2 test) on the 6.25 mm smoke grid, one
    64 x 64 x 32 patch = the whole volume (every architecture accepts it).
    """

    n_cases: int = Field(10, ge=3, description="Number of synthetic cases (split 60/20/20 into train/val/test).")
    source: str = Field("phantom", description="'phantom', or a dataset manifest name (data_manifests/*.yaml).")
    modalities: list[str] = Field(default_factory=lambda: ["ct", "pet"],
                                  description="Input channels (phantom: resampled onto the CT grid).")
    classes: list[str] = Field(default_factory=lambda: [*ORGANS, *LESIONS], description="Structures to segment.")
    rare_classes: list[str] = Field(default_factory=lambda: list(LESIONS),
                                    description="Classes whose patches are sampled more often (label-balanced crops).")
    rare_weight: float = Field(3.0, gt=0, description="Sampling weight of the rare classes (others: 1).")
    patch: list[int] = Field(default_factory=lambda: [64, 64, 32], description="Training patch (i, j, k) in voxels.")

    @field_validator("patch")
    @classmethod
    def _patch(cls, v: list[int]) -> list[int]:
        if len(v) != 3 or min(v) < 8:
            raise ValueError("must be three sizes of at least 8 voxels")
        return v


class EvalParams(config.Section):
    """The ``eval`` section."""

    surface_tolerance_mm: float = Field(2.0, gt=0, description="Tolerance of the surface Dice (mm).")
    mc_samples: int = Field(6, ge=2, description="MC-dropout passes for uncertainty.")
    overlap: float = Field(0.25, ge=0, lt=1, description="Sliding-window overlap at inference.")
    calibration_bins: int = Field(15, ge=2, description="Confidence bins of the reliability diagram / ECE.")


class Params(PerModelEpochs, config.Params):
    """04_segmentation parameters."""

    notebook: ClassVar[str] = NOTEBOOK

    data: SegDataParams = Field(default_factory=SegDataParams)
    models: list[Architecture] = Field(default_factory=lambda: list(DEFAULT_MODELS),
                                       description="Architectures to train and compare (the first gets uncertainty).")
    model: ModelParams = Field(default_factory=lambda: ModelParams(
        base_channels=8, num_res_units=1, feature_size=12, hidden_size=96, mlp_dim=192, num_heads=4, dropout=0.1))
    train: TrainParams = Field(default_factory=lambda: TrainParams(epochs=60, lr=1e-2, samples_per_volume=1))
    augment: AugmentParams = Field(default_factory=AugmentParams)
    eval: EvalParams = Field(default_factory=EvalParams)
    threads: int = Field(2, ge=1, description="torch threads (pinned: float reductions depend on it).")

    epochs_by_model: dict[str, int] = Field(
        default_factory=lambda: {"unet": 40, "attention_unet": 14, "segresnet": 14, "unetr": 10, "swin_unetr": 3},
        description="Epochs per architecture where it differs from train.epochs (the smoke profile's CPU budget: "
                    "at smoke every row gets about the same CPU time, so the slower architectures see fewer "
                    "epochs; the full profile trains every row to convergence).")

    @model_validator(mode="after")
    def _patch_fits_models(self) -> Params:
        problem = models_patch_problem(self.models, self.data.patch)
        if problem:
            raise ValueError(problem)
        problem = self.epochs_by_model_problem(ARCHITECTURES, "architectures")
        if problem:
            raise ValueError(problem)
        return self


#: A functional run in seconds (one small UNet on a coarse 5-case cohort): used by the tests that execute
#: every notebook twice in one kernel; its numbers mean nothing.
QUICK: dict[str, Any] = {
    "models": ["unet"], "epochs_by_model": {}, "train_epochs": 2, "data_n_cases": 5,
    "data_image_size": [32, 32, 16], "data_spacing": [12.5, 12.5, 16.0], "data_patch": [32, 32, 16],
    "eval_mc_samples": 2,
}


# -- data ---------------------------------------------------------------------------------------
@dataclasses.dataclass
class SegData:
    """Datalists of the split, the source's label names and the phantom cohort (when it is the source)."""

    train: list[dict[str, Any]]
    val: list[dict[str, Any]]
    test: list[dict[str, Any]]
    label_names: dict[int, str]
    digest: str
    cohort: Any = None

    def summary(self) -> pd.DataFrame:
        rows = [{"split": name, "cases": len(items), "case_ids": ", ".join(str(e["case_id"]) for e in items)}
                for name, items in (("train", self.train), ("val", self.val), ("test", self.test))]
        return pd.DataFrame(rows).set_index("split")


def _split(n: int, seed: int) -> tuple[list[int], list[int], list[int]]:
    order = np.random.default_rng(seed).permutation(n).tolist()
    n_test = max(1, round(0.2 * n))
    n_val = max(1, round(0.15 * n))
    return order[n_val + n_test:], order[:n_val], order[n_val:n_val + n_test]


def load_data(cfg: Params) -> SegData:
    """The split datalists: the phantom cohort's own split, or a manifest dataset split by the seed."""
    if cfg.data.source == "phantom":
        from medbench.data.phantom import cohort_hash

        cohort = load_cohort(cfg.data.spec(cfg.seed))
        splits = cohort.split
        lists = {k: phantom_datalist(cohort, cfg.data.modalities, cases=v) for k, v in splits.items()}
        return SegData(lists["train"], lists["val"], lists["test"], dict(LABELS), cohort_hash(cohort), cohort)
    entries = manifest_datalist(cfg.data.source)
    labelled = [e for e in entries if "label" in e]
    if len(labelled) < 3:
        raise ConfigError(f"{cfg.data.source}: {len(labelled)} labelled cases; at least 3 are needed to split")
    tr, va, te = _split(len(labelled), cfg.seed)
    root = Path(labelled[0]["image"]).parents[1]
    names = msd_label_names(root) if (root / "dataset.json").is_file() else {}
    from medbench.hashing import hash_path

    return SegData([labelled[i] for i in tr], [labelled[i] for i in va], [labelled[i] for i in te], names,
                   hash_path(root)[:16])


def setup(cfg: Params, data: SegData) -> SegmentationSetup:
    """Cached datasets, transforms and task for the run (the same for every model)."""
    return build_setup(data.train, data.val, data.test, label_names=data.label_names, classes=cfg.data.classes,
                       modalities=cfg.data.modalities, patch=cfg.data.patch, train_params=cfg.train,
                       model_params=cfg.model, augment=cfg.augment, rare_classes=cfg.data.rare_classes,
                       rare_weight=cfg.data.rare_weight, seed=cfg.seed, overlap=cfg.eval.overlap)


# -- training ----------------------------------------------------------------------------------
@dataclasses.dataclass
class Trained:
    """One trained model and what it cost."""

    name: str
    model: torch.nn.Module
    fit: FitResult
    params_m: float
    gflops: float


def train(cfg: Params, run: Any = None, data: SegData | None = None, seg: SegmentationSetup | None = None
          ) -> dict[str, Trained]:
    """Train every architecture in ``cfg.models`` from a seeded initialisation; best checkpoints go in the run."""
    data = data or load_data(cfg)
    seg = seg or setup(cfg, data)
    out: dict[str, Trained] = {}
    for n, name in enumerate(cfg.models):
        params = cfg.model.model_copy(update={"name": name})
        model = seg.model(params, seed=cfg.seed)
        size = (1, len(seg.modalities), *seg.patch)
        params_m = sum(p.numel() for p in model.parameters()) / 1e6
        gflops = forward_flops(model, size) / 1e9
        result = fit(model, seg.task, seg.train_dataset, seg.val_dataset, cfg.train_for(name), seed=cfg.seed + n,
                     run=run, name=name)
        out[name] = Trained(name, model, result, params_m, gflops)
    return out


def cli_train(cfg: Params, run: Any = None) -> dict[str, Trained]:
    """``medbench train 04_segmentation``: :func:`train` on freshly loaded data."""
    return train(cfg, run)


def train_summary(trained: Mapping[str, Trained]) -> dict[str, Any]:
    """What ``medbench train`` records: best validation Dice and train time per model."""
    out: dict[str, Any] = {}
    for name, t in trained.items():
        out[f"{name}_val_dice"] = t.fit.best_metric
        out[f"{name}_train_s"] = t.fit.train_time_s
    return out


# -- baseline ---------------------------------------------------------------------------------
@dataclasses.dataclass
class BaselineResult:
    name: str
    per_case: pd.DataFrame  # one row per test case, dice_<class>


def baseline(cfg: Params, data: SegData, seg: SegmentationSetup) -> BaselineResult:
    """The best non-learning baseline, fitted on training cases (never on test) and scored on the test cases.

    Organs: the better of the threshold rule and the image-free atlas
    (:func:`medbench.baselines.best_segmentation_baseline`, chosen on the
    validation cases). Malignant lesions, when PET is an input: the CT+PET
    rule fitted on the training cases. Cysts have no non-learning rule here
    (their row stays empty rather than borrowing a number).
    """
    from medbench import baselines

    if data.cohort is None:
        raise ConfigError("the non-learning baselines need the phantom cohort (data_source='phantom')")
    cohort = data.cohort
    ids = {name: value for value, name in data.label_names.items()}
    train_cases = [cohort.case(e["case_id"]) for e in data.train]
    val_cases = [cohort.case(e["case_id"]) for e in data.val]
    test_cases = [cohort.case(e["case_id"]) for e in data.test]
    organ_ids = [ids[c] for c in cfg.data.classes if c in ORGANS]
    name, predictions = baselines.best_segmentation_baseline(train_cases, test_cases, organ_ids, val=val_cases)
    scored = {ids[c]: c for c in cfg.data.classes if c in ORGANS}
    if "lesion_malignant" in cfg.data.classes and "pet" in cfg.data.modalities:
        params = baselines.fit_ct_pet_lesion_rule(train_cases)
        for case in test_cases:
            lesion = baselines.ct_pet_lesion_rule(case, **params).array > 0
            pred = predictions[case.case_id]
            arr = np.where(lesion, ids["lesion_malignant"], pred.array).astype(pred.array.dtype)
            predictions[case.case_id] = pred.with_array(arr)
        scored[ids["lesion_malignant"]] = "lesion_malignant"
        name = f"{name} + CT+PET lesion rule"
    rows = []
    for case in test_cases:
        scores = metrics.dice(predictions[case.case_id], case.labels, scored)
        rows.append({"case_id": case.case_id, **{f"dice_{c}": v for c, v in scores.items()}})
    return BaselineResult(name, pd.DataFrame(rows).set_index("case_id"))


# -- evaluation --------------------------------------------------------------------------------
@dataclasses.dataclass
class Evaluation:
    per_case: pd.DataFrame  # model, case_id, metric_class columns
    table: pd.DataFrame  # one row per model (and the baseline): means with CIs, size, time
    predictions: dict[str, dict[str, Volume]]  # model -> case_id -> label Volume (RAS-loaded grid)


def _predict(model: torch.nn.Module, seg: SegmentationSetup, item: Mapping[str, Any],
             device: torch.device) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    pred = seg.task.predict(model, item["image"], device)
    return pred, time.perf_counter() - start


def evaluate(cfg: Params, seg: SegmentationSetup, trained: Mapping[str, Trained],
             base: BaselineResult | None = None) -> Evaluation:
    """Per-case Dice, HD95 (mm) and surface Dice on the test set; means with 95 % CIs; cost columns."""
    device = torch.device("cpu")
    fg = {k: v for k, v in seg.class_names.items() if k}
    rows: list[dict[str, Any]] = []
    preds: dict[str, dict[str, Volume]] = {}
    for name, t in trained.items():
        t.model.eval()
        preds[name] = {}
        for i in range(len(seg.test_dataset)):
            item = seg.test_dataset[i]
            cid = seg.test_datalist[i]["case_id"]
            pred, seconds = _predict(t.model, seg, item, device)
            truth_t = item["label"]
            truth = np.asarray(torch.as_tensor(truth_t)[0].numpy()).astype(np.int64)
            spacing = tuple(float(s) for s in from_metatensor(truth_t).spacing)
            row: dict[str, Any] = {"model": name, "case_id": cid, "inference_s": seconds}
            scores = {"dice": metrics.dice(pred, truth, fg), "hd95": metrics.hd95(pred, truth, fg, spacing=spacing),
                      "surface_dice": metrics.surface_dice(pred, truth, fg, cfg.eval.surface_tolerance_mm,
                                                           spacing=spacing)}
            for metric, values in scores.items():
                for cls, v in values.items():
                    row[f"{metric}_{cls}"] = v
            rows.append(row)
            preds[name][cid] = from_metatensor(truth_t).with_array(pred, role="label")
    per_case = pd.DataFrame(rows)
    table_rows = []
    for name, t in trained.items():
        part = per_case[per_case["model"] == name]
        table_rows.append({"model": name, **class_summary(part, fg), "params_m": t.params_m, "gflops": t.gflops,
                           "train_s": t.fit.train_time_s, "epochs": t.fit.epochs_run,
                           "inference_s": float(part["inference_s"].mean())})
    if base is not None:
        table_rows.append({"model": f"baseline: {base.name}", **class_summary(base.per_case, fg, dice_only=True)})
    return Evaluation(per_case, pd.DataFrame(table_rows).set_index("model"), preds)


def class_summary(part: pd.DataFrame, fg: Mapping[int, str], dice_only: bool = False) -> dict[str, float]:
    """Per-class mean Dice with its 95 % CI half-width over the cases of ``part`` (and HD95 / surface Dice unless
    ``dice_only``), plus the organs' mean; shared by the 04 and 05 tables."""
    out: dict[str, float] = {}
    organ_means = []
    for cls in fg.values():
        if f"dice_{cls}" not in part:  # e.g. a class the baseline has no rule for
            continue
        ci = metrics.mean_ci(part[f"dice_{cls}"])
        out[f"dice_{cls}"] = ci.mean
        out[f"dice_{cls}_ci"] = (ci.high - ci.low) / 2 if ci.n > 1 else float("nan")
        if cls in ORGANS:
            organ_means.append(ci.mean)
        if not dice_only:
            out[f"hd95_{cls}"] = metrics.mean_ci(part[f"hd95_{cls}"]).mean
            out[f"surface_dice_{cls}"] = metrics.mean_ci(part[f"surface_dice_{cls}"]).mean
    out["dice_organs"] = float(np.mean(organ_means)) if organ_means else float("nan")
    return out


# -- uncertainty ----------------------------------------------------------------------------------
@dataclasses.dataclass
class Uncertainty:
    model: str
    case_id: str
    entropy: Volume  # predictive entropy (nats) on the test case grid
    error: Volume  # label map of wrong voxels (1 = wrong)
    reliability: pd.DataFrame
    ece: float
    auroc: float


def uncertainty(cfg: Params, seg: SegmentationSetup, trained: Mapping[str, Trained], case: int = 0) -> Uncertainty:
    """MC dropout on one test case with the first model: entropy, its AUROC for errors, calibration.

    Calibration and AUROC are measured inside the body (voxels whose first
    input channel is above its minimum), so the trivially certain air around
    the patient does not flatter them.
    """
    name = cfg.models[0]
    model = trained[name].model
    item = seg.test_dataset[case]
    image = torch.as_tensor(item["image"])[None]
    mean, entropy = mc_dropout(model, image, seg.patch, samples=cfg.eval.mc_samples, seed=cfg.seed,
                               overlap=cfg.eval.overlap, device=torch.device("cpu"))
    probs = mean[0].numpy()
    truth = np.asarray(torch.as_tensor(item["label"])[0].numpy()).astype(np.int64)
    body = np.asarray(image[0, 0].numpy()) > float(image[0, 0].min())
    error = probs.argmax(0) != truth
    grid = from_metatensor(item["label"])
    return Uncertainty(
        name, seg.test_datalist[case]["case_id"],
        grid.with_array(entropy[0].numpy().astype(np.float32), role="image", name="entropy"),
        grid.with_array(error.astype(np.uint8), role="label", name="error"),
        reliability_table(probs, truth, cfg.eval.calibration_bins, mask=body),
        expected_calibration_error(probs, truth, cfg.eval.calibration_bins, mask=body),
        uncertainty_error_auroc(entropy[0].numpy(), error, mask=body),
    )


# -- export ---------------------------------------------------------------------------------------------
def export(cfg: Params, seg: SegmentationSetup, data: SegData, evaluation: Evaluation, run: Any,
           model: str | None = None, case: int = 0) -> dict[str, Path]:
    """The test case's prediction on the CT's own grid as NIfTI, and as a DICOM SEG referencing the CT series."""
    from medbench.io.dicom.seg import write_segmentation

    name = model or cfg.models[0]
    cid = seg.test_datalist[case]["case_id"]
    pred = evaluation.predictions[name][cid]
    if data.cohort is None:
        raise ConfigError("export needs the phantom cohort's DICOM CT series (data_source='phantom')")
    ct = data.cohort.case(cid).ct
    on_ct = pred.resample_to(ct)  # nearest neighbour: the loaded grid differs from the CT's only by axis flips
    source_ids = {v: k for k, v in seg.source_ids.items()}
    back = on_ct.with_array(np.vectorize(lambda c: source_ids.get(int(c), 0))(on_ct.array).astype(np.uint8))
    nifti = run.path(f"predictions/{cid}_{name}.nii.gz")
    back.to_nifti(nifti)
    names = {src: seg.class_names[c] for src, c in seg.source_ids.items()}
    dcm = write_segmentation(back, data.cohort.paths(cid)["dicom_ct"], names, run.path(f"predictions/{cid}_{name}_seg.dcm"),
                             algorithm=f"medbench {name}", series_description=f"{name} segmentation")
    run.add_artifact(f"prediction NIfTI ({cid}, {name})", nifti)
    run.add_artifact(f"prediction DICOM SEG ({cid}, {name})", dcm)
    return {"nifti": nifti, "seg": dcm}


# -- checked metrics -------------------------------------------------------------------------------
CHECKED: dict[str, str] = {
    "dice_<class>_<model>": "test-set mean Dice per class and model: the comparison the notebook is about",
    "dice_organs_<model>": "mean organ Dice per model",
    "baseline_dice_organs / baseline_name": "the best non-learning baseline (chosen on training cases)",
    "margin_organs_<model>": "organ Dice above the baseline (the smoke target is >= 0.10 for the UNet)",
    "ece_<model>": "expected calibration error inside the body (MC dropout, first model)",
    "uncertainty_error_auroc": "how well MC-dropout entropy finds the model's errors (0.5 = chance)",
}


def checked_metrics(evaluation: Evaluation, unc: Uncertainty, base: BaselineResult | None) -> dict[str, Any]:
    """The notebook's checked numbers (see :data:`CHECKED`)."""
    out: dict[str, Any] = {}
    table = evaluation.table
    base_row = next((r for r in table.index if str(r).startswith("baseline")), None)
    for model in table.index:
        if model == base_row:
            continue
        row = table.loc[model]
        for col in table.columns:
            if col.startswith("dice_") and not col.endswith("_ci"):
                out[f"{col}_{model}"] = float(row[col])
        if base_row is not None:
            out[f"margin_organs_{model}"] = float(row["dice_organs"] - table.loc[base_row, "dice_organs"])
    if base is not None and base_row is not None:
        out["baseline_dice_organs"] = float(table.loc[base_row, "dice_organs"])
        out["baseline_name"] = base.name
    out[f"ece_{unc.model}"] = unc.ece
    out["uncertainty_error_auroc"] = unc.auroc if not math.isnan(unc.auroc) else "nan"
    return out


# -- tables for the notebook ------------------------------------------------------------------------
def lesion_table(data: SegData) -> pd.DataFrame:
    """The training cases' lesions: class, size, CT contrast (HU, CT-occult when |dHU| <= 5), PET and T2 contrast.

    ``voxels_ml`` is the lesion's volume on the CT grid: lesions smaller than
    a voxel of the grid vanish from its label map (the smoke grid's 6.25 mm
    voxels cannot hold a 5 mm lesion; the full profile's 1.6 mm voxels can).
    """
    if data.cohort is None:
        raise ConfigError("lesion_table needs the phantom cohort")
    table = data.cohort.lesions()
    train = {e["case_id"] for e in data.train}
    cols = ["case_id", "class", "diameter_mm", "ct_delta_hu", "ct_occult", "pet_peak_to_liver", "t2_to_host",
            "volume_ml"]
    out = table[table["case_id"].isin(train)][cols].rename(columns={"volume_ml": "voxels_ml"})
    return out.reset_index(drop=True)


def model_table(cfg: Params, seg: SegmentationSetup) -> pd.DataFrame:
    """Parameters (millions) and forward GFLOPs of every architecture at the run's patch size."""
    rows = []
    for name in cfg.models:
        model = seg.model(cfg.model.model_copy(update={"name": name}), seed=cfg.seed)
        summary = {"params_m": sum(p.numel() for p in model.parameters()) / 1e6,
                   "gflops": forward_flops(model, (1, len(seg.modalities), *seg.patch)) / 1e9}
        rows.append({"model": name, **summary})
    return pd.DataFrame(rows).set_index("model")


def history_table(trained: Mapping[str, Trained]) -> pd.DataFrame:
    """Per model: epochs run, best validation Dice and its epoch, training seconds and samples per second."""
    rows = [{"model": n, "epochs": t.fit.epochs_run, "best_val_dice": t.fit.best_metric,
             "best_epoch": t.fit.best_epoch + 1, "train_s": t.fit.train_time_s, "samples_per_s": t.fit.samples_per_s}
            for n, t in trained.items()]
    return pd.DataFrame(rows).set_index("model")


def results_table(evaluation: Evaluation) -> pd.DataFrame:
    """The comparison table: Dice (with CI half-widths), HD95, surface Dice, cost; baseline last."""
    table = evaluation.table
    first = ["dice_organs"] + [c for c in table.columns if c.startswith("dice_") and c != "dice_organs"]
    rest = [c for c in table.columns if c not in first]
    return table[first + rest]


def per_case_table(evaluation: Evaluation, metric: str = "dice") -> pd.DataFrame:
    """One row per (model, test case) with the metric per class."""
    cols = [c for c in evaluation.per_case.columns if c.startswith(f"{metric}_")]
    return evaluation.per_case.set_index(["model", "case_id"])[cols]


def test_case(seg: SegmentationSetup, case: int = 0) -> tuple[Volume, Volume]:
    """The first input channel and the truth (class ids) of a test case, as Volumes on the loaded grid."""
    item = seg.test_dataset[case]
    image = from_metatensor(item["image"][:1], role="image")
    truth = from_metatensor(item["label"], role="label")
    return image, truth.with_array(np.asarray(truth.array).astype(np.uint8), role="label")


def seg_summary(path: str | Path) -> pd.DataFrame:
    """What a DICOM SEG holds, read back with pydicom: class, segments, frames and the series it references."""
    import pydicom

    ds = pydicom.dcmread(path)
    ref = ds.ReferencedSeriesSequence[0]
    rows = {
        "SOP class": ds.SOPClassUID.name,
        "segments": ", ".join(str(s.SegmentLabel) for s in ds.SegmentSequence),
        "frames": int(ds.NumberOfFrames),
        "referenced series": str(ref.SeriesInstanceUID),
        "referenced instances": len(ref.ReferencedInstanceSequence),
        "study": str(ds.StudyInstanceUID),
    }
    return pd.DataFrame({"value": rows})
