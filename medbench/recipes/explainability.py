"""06_explainability: attribution methods scored against a known cause, sanity checks, a planted shortcut.

The phantom knows why each case has its label: a case is positive when it has
a malignant lesion (``PhantomCase.cause_mask``), and a planted spurious cue (a
radio-opaque skin marker, ``PhantomCase.cue_mask``) can be made to travel with
the label in the training split only. So an attribution map can be *scored*.

The recipe's steps, one call each in the notebook:

1. :func:`load_data` — two cohorts of the same patients: ``clean`` (no cue) and
   ``spurious`` (the cue on ``cue_correlation`` of the training positives and
   ``1 - cue_correlation`` of the training negatives; independent of the label
   in validation and test), as classifier inputs (CT + PET on the CT grid,
   average-pooled by ``data.downsample``) with the lesion and cue masks on the same grid;
2. :func:`train` — the classifier (MONAI DenseNet, small) through
   :func:`medbench.engine.fit` on each cohort, plus a copy trained on permuted
   labels (the label-randomisation sanity check);
3. :func:`classification_table` — test AUROC / accuracy of each model on both cohorts' test cases,
   beside the best non-learning rule (the PET maximum, :func:`baseline_scores`);
3b. :func:`removal` — an intervention that needs no attribution map: each model's probability of
   "positive" before and after the malignant lesions (or the planted cue) are removed from the image
   (filled in from their surroundings). It says what each model actually uses — the ground truth
   the maps are judged against;
4. :func:`explain` — every method on the clean model's positive test cases: relevance
   mass in the lesion, rank accuracy, pointing game, deletion / insertion AUC,
   max sensitivity, seconds;
5. :func:`sanity` — cascading parameter randomisation and label randomisation,
   Spearman / SSIM, pass / fail at :data:`medbench.explain.SANITY_THRESHOLD`;
6. :func:`shortcut` — attribution mass on the cue vs the lesion for the clean and the
   spurious model on test cases that carry both;
7. :func:`segmentation_target` — the 04 segmentation model (trained by
   :mod:`medbench.recipes.segmentation`'s own functions) explained through
   :class:`medbench.explain.RegionTarget`, with its MC-dropout entropy beside the map,
   and Integrated Gradients' time and peak memory on the full-resolution volume.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
import torch
from pydantic import Field, field_validator

from medbench import config
from medbench.data.phantom import PhantomSpec, load_cohort
from medbench.data.phantom.labels import LIVER, MALIGNANT, SPLEEN
from medbench.data.transforms import MODALITY_NORMALISATION
from medbench.engine import FitResult, TrainParams, fit, mc_dropout
from medbench.engine.tasks import ClassificationTask
from medbench.errors import ConfigError
from medbench.explain import (
    METHODS,
    SANITY_THRESHOLD,
    Attribution,
    MethodParams,
    RegionTarget,
    attribute,
    cascading_randomisation,
    deletion_insertion,
    max_sensitivity,
    measure_peak,
    removal_effect,
    sanity_verdict,
)
from medbench.metrics import attribution as am
from medbench.metrics.classification import accuracy, auroc
from medbench.models.classifier import CAM_LAYERS, ClassifierParams, build_classifier
from medbench.recipes.sections import PhantomData

NOTEBOOK = "06_explainability"
COHORTS = ("clean", "spurious")
#: Labels of the organs that host the phantom's malignant lesions (liver, spleen) and of the lesions themselves.
LESION_HOSTS: tuple[int, ...] = (LIVER, SPLEEN, MALIGNANT)


class ExplainDataParams(PhantomData):
    """The ``data`` section: the cohorts (both share every patient; only the cue differs) and the input grid."""

    n_cases: int = Field(32, ge=6, description="Cases per cohort (split 60/20/20 into train/val/test).")
    modalities: list[str] = Field(default_factory=lambda: ["ct", "pet"],
                                  description="Input channels (CT grid; PET resampled onto it). The cue is CT-only.")
    downsample: int = Field(1, ge=1, le=4, description="Average-pool factor from the CT grid to the classifier's grid "
                                                       "(at 2 the smoke grid's 12.5 mm voxels shrink 8-40 mm lesions "
                                                       "to 0-3 voxels).")
    cue_correlation: float = Field(1.0, ge=0.5, le=1.0,
                                   description="Share of training positives with the cue (and of negatives without).")
    cue_radius_mm: float = Field(12.0, gt=0, le=30,
                                 description="Radius of the planted skin marker (the phantom's default, 6 mm, is about "
                                             "one smoke voxel: no classifier here learned it).")

    @field_validator("modalities")
    @classmethod
    def _mods(cls, v: list[str]) -> list[str]:
        unknown = [m for m in v if m not in ("ct", "pet")]
        if not v or unknown:
            raise ValueError(f"must be a non-empty list of 'ct' and 'pet', got {v}")
        return v


class ExplainParams(config.Section):
    """The ``explain`` section (flat names ``explain_*``)."""

    methods: list[str] = Field(default_factory=lambda: list(METHODS), description="Attribution methods to compare.")
    n_steps: int = Field(32, ge=2, description="Integrated Gradients path points.")
    internal_batch_size: int = Field(8, ge=1, description="IG / SmoothGrad points evaluated together (memory bound).")
    nt_samples: int = Field(8, ge=1, description="SmoothGrad / GradientShap noisy samples.")
    noise_sd: float = Field(0.15, gt=0, description="SmoothGrad / GradientShap noise SD (normalised input units).")
    occlusion_window: list[int] = Field(default_factory=lambda: [8, 8, 4], description="Occlusion window (voxels).")
    occlusion_stride: list[int] = Field(default_factory=lambda: [8, 8, 4], description="Occlusion stride (voxels).")
    cases: int = Field(3, ge=1, description="Positive test cases explained (fewer if the split has fewer).")
    pointing_tolerance: int = Field(1, ge=0, description="Pointing-game tolerance (voxels of the classifier grid).")
    deletion_steps: int = Field(10, ge=2, description="Points of the deletion / insertion curves.")
    sensitivity_radius: float = Field(0.02, gt=0, description="Max-sensitivity perturbation radius (input units).")
    sensitivity_samples: int = Field(2, ge=1, description="Max-sensitivity perturbations (first case only).")
    randomisation_stages: int = Field(4, ge=1, description="Cascading-randomisation steps (output to input).")
    sanity_threshold: float = Field(SANITY_THRESHOLD, gt=0, lt=1,
                                    description="A method passes when |Spearman| to the randomised map is below this.")
    label_randomisation: bool = Field(True, description="Train a permuted-label model for the label sanity check.")
    removal_margin: int = Field(1, ge=0, description="Removal intervention: voxels added around the lesion / cue "
                                                     "(partial-volume rim and PET blur) before it is filled in.")
    removal_ring: int = Field(2, ge=1, description="Removal intervention: width (voxels) of the surrounding ring "
                                                   "whose median fills the removed voxels.")

    @field_validator("methods")
    @classmethod
    def _methods(cls, v: list[str]) -> list[str]:
        unknown = [m for m in v if m not in METHODS]
        if not v or unknown:
            raise ValueError(f"unknown methods {unknown}; known: {', '.join(METHODS)}")
        return v

    def method_params(self) -> MethodParams:
        w, s = self.occlusion_window, self.occlusion_stride
        return MethodParams(n_steps=self.n_steps, internal_batch_size=self.internal_batch_size,
                            nt_samples=self.nt_samples, noise_sd=self.noise_sd,
                            occlusion_window=(w[0], w[1], w[2]), occlusion_stride=(s[0], s[1], s[2]))


class SegTargetParams(config.Section):
    """The ``seg`` section: the 04 segmentation model explained through a region target."""

    epochs: int = Field(8, ge=1, description="Epochs of the 04 UNet (trained by medbench.recipes.segmentation).")
    target: str = Field("liver", description="Class whose logits are summed inside its true region.")
    methods: list[str] = Field(default_factory=lambda: ["integrated_gradients", "smoothgrad"],
                               description="Methods applied to the segmentation target (gradient methods).")
    mc_samples: int = Field(4, ge=2, description="MC-dropout passes for the entropy map shown beside it.")


class Params(config.Params):
    """06_explainability parameters."""

    notebook: ClassVar[str] = NOTEBOOK

    data: ExplainDataParams = Field(default_factory=ExplainDataParams)
    classifier: ClassifierParams = Field(default_factory=lambda: ClassifierParams(name="resnet", blocks=[1, 1, 1]))
    train: TrainParams = Field(default_factory=lambda: TrainParams(epochs=60, batch_size=4, lr=1e-3,
                                                                   samples_per_volume=1))
    checkpoint: Literal["last", "best"] = Field(
        "last", description="Which weights to explain: the last epoch's, or the best validation AUROC's. 'last' by "
                            "default: at smoke the validation split has 6 cases (a noisy pick), and the spurious "
                            "cohort's validation cases carry the cue independently of the label, so picking the best "
                            "validation epoch would select against the very shortcut the experiment plants.")
    explain: ExplainParams = Field(default_factory=ExplainParams)
    seg: SegTargetParams = Field(default_factory=SegTargetParams)
    threads: int = Field(2, ge=1, description="torch threads (pinned: float reductions depend on it).")


#: A functional run in seconds (tiny cohorts, two epochs, two methods); its numbers mean nothing.
QUICK: dict[str, Any] = {
    "data_n_cases": 6, "data_image_size": [32, 32, 16], "data_spacing": [12.5, 12.5, 16.0], "data_downsample": 1,
    "train_epochs": 2, "explain_methods": ["saliency", "gradcam"], "explain_cases": 1, "explain_n_steps": 4,
    "explain_randomisation_stages": 2, "explain_label_randomisation": False, "seg_epochs": 1,
    "seg_methods": ["saliency"], "seg_mc_samples": 2,
}


# -- data ---------------------------------------------------------------------------------------
@dataclasses.dataclass
class Item:
    """One case as the classifier sees it, with its ground truth on the same grid."""

    case_id: str
    split: str
    label: int
    has_cue: bool
    image: torch.Tensor  # (C, i, j, k) float32, normalised
    cause: np.ndarray  # (i, j, k) bool: malignant lesion voxels
    cue: np.ndarray  # (i, j, k) bool: the planted marker (empty without)
    hosts: np.ndarray  # (i, j, k) bool: the malignant lesions' host organs (liver, spleen), lesions included


@dataclasses.dataclass
class ClassData:
    """Both cohorts' items by split, the specs and what the grids are."""

    items: dict[str, dict[str, list[Item]]]  # cohort -> split -> items
    specs: dict[str, PhantomSpec]
    modalities: list[str]
    grid: tuple[int, int, int]

    def summary(self) -> pd.DataFrame:
        rows = []
        for cohort, splits in self.items.items():
            for split, items in splits.items():
                rows.append({"cohort": cohort, "split": split, "cases": len(items),
                             "positive": sum(i.label for i in items),
                             "cue_in_positive": sum(i.has_cue for i in items if i.label),
                             "cue_in_negative": sum(i.has_cue for i in items if not i.label)})
        return pd.DataFrame(rows).set_index(["cohort", "split"])

    def dataset(self, cohort: str, split: str, permute_seed: int | None = None) -> list[dict[str, torch.Tensor]]:
        """``[{"image", "label"}]`` for the engine; ``permute_seed`` shuffles the labels (label randomisation)."""
        items = self.items[cohort][split]
        labels = [i.label for i in items]
        if permute_seed is not None:
            labels = [int(v) for v in np.random.default_rng(permute_seed).permutation(labels)]
        return [{"image": i.image, "label": torch.tensor(lab)} for i, lab in zip(items, labels)]


def _normalise(array: np.ndarray, modality: str) -> np.ndarray:
    kind, lo, hi = MODALITY_NORMALISATION[modality]
    if kind != "window":
        raise ConfigError(f"modality {modality!r} has no fixed window")
    return np.clip((array.astype(np.float32) - lo) / (hi - lo), 0.0, 1.0)


def _pool_mask(mask: np.ndarray, factor: int) -> np.ndarray:
    if factor == 1:
        return mask.astype(bool)
    t = torch.as_tensor(mask.astype(np.float32))[None, None]
    return np.asarray(torch.nn.functional.max_pool3d(t, factor)[0, 0].numpy() > 0)


def case_item(case: Any, modalities: Sequence[str], downsample: int) -> Item:
    """A phantom case as classifier input: CT (+ PET resampled onto the CT grid), windowed to [0, 1], pooled.

    Arrays keep the CT grid's (i, j, k) order, so the masks index the same voxels.
    The masks are max-pooled (a pooled voxel counts when any CT voxel under it is covered).
    ``hosts`` is where the phantom plants malignant lesions (:data:`LESION_HOSTS`), from its true labels:
    it serves only the reference rule :func:`host_reference_scores`, never a model.
    """
    channels = []
    for m in modalities:
        vol = case.ct if m == "ct" else case.pet.resample_to(case.ct)
        channels.append(_normalise(vol.array, m))
    image = torch.from_numpy(np.stack(channels))
    if downsample > 1:
        image = torch.nn.functional.avg_pool3d(image[None], downsample)[0]
    return Item(case.case_id, case.split, case.label, bool(case.classification.get("cue", False)),
                image.contiguous(), _pool_mask(case.cause_mask().array, downsample),
                _pool_mask(case.cue_mask().array, downsample),
                _pool_mask(np.isin(case.labels.array, LESION_HOSTS), downsample))


def specs(cfg: Params) -> dict[str, PhantomSpec]:
    """The two cohorts' specs: same patients (seed, size, grid), with and without the correlated cue."""
    base = cfg.data.spec(cfg.seed)
    return {"clean": base,
            "spurious": PhantomSpec(**{**base.model_dump(), "spurious_cue": True, "cue_split": "train",
                                       "cue_correlation": cfg.data.cue_correlation,
                                       "cue_radius_mm": cfg.data.cue_radius_mm})}


def load_data(cfg: Params) -> ClassData:
    """Generate (or read from the cache) both cohorts and build every case's classifier input and masks."""
    sp = specs(cfg)
    items: dict[str, dict[str, list[Item]]] = {}
    grid: tuple[int, int, int] = (0, 0, 0)
    for name, spec in sp.items():
        cohort = load_cohort(spec)
        items[name] = {}
        for split, ids in cohort.split.items():
            items[name][split] = [case_item(cohort.case(i), cfg.data.modalities, cfg.data.downsample) for i in ids]
            if items[name][split]:
                grid = tuple(int(s) for s in items[name][split][0].image.shape[1:])  # type: ignore[assignment]
    return ClassData(items, sp, list(cfg.data.modalities), grid)


# -- training ------------------------------------------------------------------------------------
@dataclasses.dataclass
class Trained:
    name: str
    model: torch.nn.Module
    fit: FitResult


def _train_one(cfg: Params, data: ClassData, cohort: str, name: str, run: Any, seed_offset: int,
               permute_seed: int | None = None) -> Trained:
    torch.manual_seed(cfg.seed + seed_offset)
    model = build_classifier(cfg.classifier, len(data.modalities), 2)
    task = ClassificationTask(2)
    result = fit(model, task, data.dataset(cohort, "train", permute_seed),
                 data.dataset(cohort, "val", permute_seed), cfg.train, seed=cfg.seed + seed_offset, run=run,
                 name=name)
    if cfg.checkpoint == "best" and result.best_state is not None:
        model.load_state_dict(result.best_state)
    model.eval()
    return Trained(name, model, result)


def train(cfg: Params, data: ClassData, run: Any = None) -> dict[str, Trained]:
    """``clean`` and ``spurious`` classifiers (same seed and schedule), and ``permuted`` (clean data, shuffled labels).

    The weights explained are the last epoch's (``checkpoint="last"``, see
    :class:`Params`) or the best validation AUROC's. The permuted-label
    model is the label-randomisation sanity check's reference (trained only when
    ``explain.label_randomisation``).
    """
    out = {name: _train_one(cfg, data, name, name, run, 0) for name in COHORTS}
    if cfg.explain.label_randomisation:
        out["permuted"] = _train_one(cfg, data, "clean", "permuted", run, 0, permute_seed=cfg.seed + 1)
    return out


def cli_train(cfg: Params, run: Any = None) -> dict[str, Trained]:
    """``medbench train 06_explainability``: the classifiers (:func:`train`) on freshly loaded cohorts."""
    return train(cfg, load_data(cfg), run)


def classification_table(data: ClassData, trained: Mapping[str, Trained]) -> pd.DataFrame:
    """Test AUROC and accuracy of each model on each cohort's test split (the spurious test has the cue
    independent of the label, so a model that learned the cue drops here)."""
    task = ClassificationTask(2)
    rows = []
    for name, t in trained.items():
        for cohort in COHORTS:
            ds = data.dataset(cohort, "test")
            probs, labels = task.probabilities(t.model, ds, torch.device("cpu"))
            rows.append({"model": name, "test_cohort": cohort, "auroc": auroc(probs[:, 1], labels),
                         "accuracy": accuracy(probs.argmax(1), labels), "cases": len(labels)})
    for name, rule in ((BASELINE, baseline_scores), (HOST_REFERENCE, host_reference_scores)):
        for cohort in COHORTS:
            score, truth = rule(data, cohort, "test")
            threshold = float(np.median(rule(data, cohort, "train")[0]))
            rows.append({"model": name, "test_cohort": cohort, "auroc": auroc(score, truth),
                         "accuracy": accuracy((score > threshold).astype(int), truth), "cases": len(truth)})
    return pd.DataFrame(rows).set_index(["model", "test_cohort"])


#: The non-learning baseline's name in :func:`classification_table`.
BASELINE = "baseline"
#: The reference rule that reads the true organ labels (:func:`host_reference_scores`).
HOST_REFERENCE = "host_reference"


def baseline_scores(data: ClassData, cohort: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """The best non-learning score of "has a malignant lesion": the hottest voxel of the PET channel.

    A malignant lesion is PET-avid, so the PET maximum is the natural rule; the
    phantom's physiological uptake (kidneys, bladder, bowel, heart) is often
    hotter, which is why a rule this simple stays weak and a model has something
    to learn. Without PET the CT maximum stands in. Returns ``(scores, labels)``.
    """
    channel = data.modalities.index("pet") if "pet" in data.modalities else 0
    items = data.items[cohort][split]
    scores = np.array([float(i.image[channel].max()) for i in items])
    return scores, np.array([i.label for i in items], dtype=int)


def host_reference_scores(data: ClassData, cohort: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """A reference, not a baseline: the hottest PET voxel inside the lesions' host organs, from the TRUE labels.

    It knows where to look (the phantom's liver and spleen, lesions included), which no model here is
    told, so it is not a competitor. It answers whether the label's cause is visible in the input at
    all. On the smoke cohort it separates the classes on every split, while the image-wide maximum
    (:func:`baseline_scores`) does not (kidney, bladder and heart uptake is hotter); the organs grown by
    one voxel (6.25 mm) let kidney uptake in and its validation AUROC falls to 0.89 (two voxels: 0.44).
    Scores are 0 where there is no PET channel or no host voxel.
    """
    items = data.items[cohort][split]
    labels = np.array([i.label for i in items], dtype=int)
    if "pet" not in data.modalities:
        return np.zeros(len(items)), labels
    channel = data.modalities.index("pet")
    scores = np.array([float(i.image[channel][torch.from_numpy(i.hosts)].max()) if i.hosts.any() else 0.0
                       for i in items])
    return scores, labels


# -- what the models use: removal ------------------------------------------------------------------
@dataclasses.dataclass
class Removal:
    """Probability of "positive" before / after removing the lesions or the cue, per model and case."""

    per_case: pd.DataFrame  # model, part, case_id, label, before, after, drop
    table: pd.DataFrame  # (model, part) -> cases, mean before / after / drop, flipped (positive call lost)


def removal(cfg: Params, data: ClassData, trained: Mapping[str, Trained]) -> Removal:
    """Remove the cause or the cue from held-out images and watch each model's output (module doc, step 3b).

    ``lesion``: the clean cohort's positive test and validation cases, every malignant lesion
    removed (:func:`medbench.explain.inpaint`: grown by ``explain.removal_margin`` voxels, filled
    with the median of the ``explain.removal_ring`` voxels around it, per channel). A model that
    detects the cause loses its positive call. ``cue``: the spurious cohort's test and validation
    cases that carry the marker (positive or not), the marker removed. A model that took the
    shortcut loses probability here; one that did not is unmoved.
    """
    parts = {"lesion": [i for s in ("test", "val") for i in data.items["clean"][s] if i.label == 1 and i.cause.any()],
             "cue": [i for s in ("test", "val") for i in data.items["spurious"][s] if i.has_cue and i.cue.any()]}
    rows = []
    for name, t in trained.items():
        for part, items in parts.items():
            for item in items:
                mask = item.cause if part == "lesion" else item.cue
                before, after = removal_effect(t.model, item.image, mask, 1, margin=cfg.explain.removal_margin,
                                               ring=cfg.explain.removal_ring)
                rows.append({"model": name, "part": part, "case_id": item.case_id, "label": item.label,
                             "before": before, "after": after, "drop": before - after,
                             "flipped": before > 0.5 >= after})
    per_case = pd.DataFrame(rows, columns=["model", "part", "case_id", "label", "before", "after", "drop", "flipped"])
    table = per_case.groupby(["model", "part"], sort=False).agg(
        cases=("drop", "size"), before=("before", "mean"), after=("after", "mean"), drop=("drop", "mean"),
        flipped=("flipped", "sum"))
    return Removal(per_case, table)


# -- explanation ---------------------------------------------------------------------------------
def _layer(cfg: Params) -> str:
    return CAM_LAYERS[cfg.classifier.name]


def _x(item: Item) -> torch.Tensor:
    return item.image[None].float()


@dataclasses.dataclass
class Explanations:
    """Maps of the clean model on its positive test cases, and their scores."""

    items: list[Item]
    maps: dict[str, dict[str, Attribution]]  # case_id -> method -> map
    per_case: pd.DataFrame  # method, case_id, scores
    table: pd.DataFrame  # one row per method: means
    curves: dict[str, Any]  # method -> Curves of the first case


def positive_cases(data: ClassData, cohort: str, n: int, *, with_cue: bool | None = None) -> list[Item]:
    """Up to ``n`` positive cases of the cohort's test split (then validation), optionally only with/without cue."""
    pool = [i for s in ("test", "val") for i in data.items[cohort][s] if i.label == 1 and i.cause.any()]
    if with_cue is not None:
        pool = [i for i in pool if i.has_cue == with_cue and (i.cue.any() or not with_cue)]
    return pool[:n]


def explain(cfg: Params, data: ClassData, trained: Mapping[str, Trained]) -> Explanations:
    """Every method on the clean model's positive test cases, scored against the lesion (see the module doc)."""
    model = trained["clean"].model
    mp = cfg.explain.method_params()
    items = positive_cases(data, "clean", cfg.explain.cases)
    if not items:
        raise ConfigError("no positive case with a malignant lesion in the test / validation split; raise data.n_cases")
    maps: dict[str, dict[str, Attribution]] = {}
    rows, curves = [], {}
    for n, item in enumerate(items):
        x = _x(item)
        maps[item.case_id] = {}
        for m in cfg.explain.methods:
            a = attribute(model, x, m, 1, layer=_layer(cfg), params=mp, seed=cfg.seed)
            maps[item.case_id][m] = a
            c = deletion_insertion(model, x, a.relevance, 1, steps=cfg.explain.deletion_steps, seed=cfg.seed)
            row = {"method": m, "case_id": item.case_id, "seconds": a.seconds,
                   "relevance_mass": am.relevance_mass(a.relevance, item.cause),
                   "rank_accuracy": am.relevance_rank(a.relevance, item.cause),
                   "pointing_game": am.pointing_game(a.relevance, item.cause, cfg.explain.pointing_tolerance),
                   "chance_mass": am.mask_fraction(item.cause),
                   "deletion_auc": c.deletion_auc, "insertion_auc": c.insertion_auc}
            if n == 0:
                curves[m] = c
                row["max_sensitivity"] = max_sensitivity(
                    model, x, m, 1, layer=_layer(cfg), params=mp, radius=cfg.explain.sensitivity_radius,
                    samples=cfg.explain.sensitivity_samples, seed=cfg.seed, reference=a)
            rows.append(row)
    per_case = pd.DataFrame(rows)
    table = per_case.groupby("method", sort=False).agg(
        relevance_mass=("relevance_mass", "mean"), rank_accuracy=("rank_accuracy", "mean"),
        pointing_game=("pointing_game", "mean"), chance_mass=("chance_mass", "mean"),
        deletion_auc=("deletion_auc", "mean"), insertion_auc=("insertion_auc", "mean"),
        max_sensitivity=("max_sensitivity", "max"), seconds=("seconds", "mean"))
    return Explanations(items, maps, per_case, table, curves)


# -- sanity checks ---------------------------------------------------------------------------------
@dataclasses.dataclass
class Sanity:
    """Cascading randomisation curves, label-randomisation similarities and the verdict per method."""

    cascading: pd.DataFrame  # method, stage, fraction, spearman, ssim
    label: pd.DataFrame  # method, spearman, ssim (empty without the permuted model)
    verdict: pd.DataFrame  # method -> cascading_spearman, label_spearman, passes_*, passes (None: empty map)
    threshold: float


def sanity(cfg: Params, trained: Mapping[str, Trained], expl: Explanations) -> Sanity:
    """Adebayo et al.'s two checks on the first explained case; a method passes when both maps changed."""
    item = expl.items[0]
    x = _x(item)
    mp = cfg.explain.method_params()
    methods = list(cfg.explain.methods)
    originals = expl.maps[item.case_id]
    casc = cascading_randomisation(trained["clean"].model, x, methods, 1, layer=_layer(cfg), params=mp,
                                   stages=cfg.explain.randomisation_stages, seed=cfg.seed, originals=originals)
    label_rows = []
    if "permuted" in trained:
        for m in methods:
            b = attribute(trained["permuted"].model, x, m, 1, layer=_layer(cfg), params=mp, seed=cfg.seed)
            label_rows.append({"method": m, "spearman": am.rank_correlation(originals[m].relevance, b.relevance),
                               "ssim": am.map_ssim(originals[m].relevance, b.relevance)})
    label = pd.DataFrame(label_rows, columns=["method", "spearman", "ssim"])
    thr = cfg.explain.sanity_threshold
    rows = []
    for m in methods:
        last = casc[(casc["method"] == m)].iloc[-1]
        row: dict[str, Any] = {"method": m, "cascading_spearman": float(last["spearman"]),
                               "passes_cascading": sanity_verdict(float(last["spearman"]), thr)}
        if len(label):
            rho = float(label.loc[label["method"] == m, "spearman"].iloc[0])
            row.update(label_spearman=rho, passes_label=sanity_verdict(rho, thr))
        row["passes"] = bool(row["passes_cascading"] and row.get("passes_label", True))
        if not (originals[m].relevance > 0).any():
            row["passes"] = None  # an empty original map: nothing to compare, neither pass nor fail
        rows.append(row)
    return Sanity(casc, label, pd.DataFrame(rows).set_index("method"), thr)


def sanity_word(passes: bool | None) -> str:
    """``pass`` / ``fail``, or ``no map`` when the method's map of the explained case was empty (all zero)."""
    if passes is None or (isinstance(passes, float) and np.isnan(passes)):
        return "no map"
    return "pass" if passes else "fail"


# -- the shortcut experiment ----------------------------------------------------------------------------
#: A model's map *flags* the cue when the mean relevance mass on the cue exceeds the mass on the lesion AND is at
#: least this many times the cue's chance level (its volume fraction): two near-zero masses do not count. A method
#: *reveals* the shortcut when it flags the spurious model and not the clean one, which never saw the cue in
#: training (the control: Integrated Gradients, input x gradient, can flag a bright marker on any model).
CUE_ENRICHMENT = 10.0


@dataclasses.dataclass
class Shortcut:
    per_case: pd.DataFrame  # model, method, case_id, cue_mass, lesion_mass
    table: pd.DataFrame  # (model, method) -> mean cue / lesion mass, cue_over_lesion
    revealed: dict[str, bool]  # method -> flags the cue for the spurious model and not for the clean control
    items: list[Item]
    maps: dict[str, dict[str, dict[str, Attribution]]]  # model -> case_id -> method -> map


def shortcut(cfg: Params, data: ClassData, trained: Mapping[str, Trained]) -> Shortcut:
    """Attribution mass on the cue vs the lesion, clean vs spurious model, on test cases that carry both."""
    items = positive_cases(data, "spurious", cfg.explain.cases, with_cue=True)
    if not items:
        raise ConfigError("no positive test / validation case carries the cue; raise data.n_cases")
    mp = cfg.explain.method_params()
    rows = []
    maps: dict[str, dict[str, dict[str, Attribution]]] = {}
    for name in COHORTS:
        maps[name] = {}
        for item in items:
            maps[name][item.case_id] = {}
            for m in cfg.explain.methods:
                a = attribute(trained[name].model, _x(item), m, 1, layer=_layer(cfg), params=mp, seed=cfg.seed)
                maps[name][item.case_id][m] = a
                rows.append({"model": name, "method": m, "case_id": item.case_id,
                             "cue_mass": am.relevance_mass(a.relevance, item.cue),
                             "lesion_mass": am.relevance_mass(a.relevance, item.cause)})
    per_case = pd.DataFrame(rows)
    table = per_case.groupby(["model", "method"], sort=False)[["cue_mass", "lesion_mass"]].mean()
    chance = float(np.mean([am.mask_fraction(i.cue) for i in items]))
    table["cue_chance"] = chance
    table["cue_over_lesion"] = (table["cue_mass"] > table["lesion_mass"]) & (table["cue_mass"] > CUE_ENRICHMENT * chance)
    revealed = {m: bool(table.loc[("spurious", m), "cue_over_lesion"]) and not bool(table.loc[("clean", m),
                                                                                                "cue_over_lesion"])
                for m in cfg.explain.methods}
    return Shortcut(per_case, table, revealed, items, maps)


# -- segmentation target ---------------------------------------------------------------------------------
@dataclasses.dataclass
class SegExplanation:
    case_id: str
    class_name: str
    image: np.ndarray  # (C, i, j, k) network input
    region: np.ndarray  # (i, j, k) bool
    maps: dict[str, Attribution]
    entropy: np.ndarray  # (i, j, k) MC-dropout predictive entropy (nats)
    table: pd.DataFrame  # method -> relevance mass in the region, chance, seconds, peak memory
    ig_cost: dict[str, Any]


def segmentation_target(cfg: Params, run: Any = None) -> SegExplanation:
    """Train the 04 UNet briefly with :mod:`medbench.recipes.segmentation` and explain one class inside its region.

    The segmentation cohort is the clean cohort (same spec, so the cache is shared).
    Integrated Gradients' wall time and peak extra memory (RSS) on this full-resolution
    volume are measured with :func:`medbench.explain.measure_peak`.
    """
    from medbench.recipes import segmentation as segr

    seg_cfg = segr.Params.validate_values({
        "seed": cfg.seed, "data_n_cases": cfg.data.n_cases, "data_image_size": list(cfg.data.image_size),
        "data_spacing": list(cfg.data.spacing), "data_patch": list(cfg.data.image_size), "models": ["unet"],
        "epochs_by_model": {}, "train_epochs": cfg.seg.epochs, "threads": cfg.threads,
    })
    seg_data = segr.load_data(seg_cfg)
    setup = segr.setup(seg_cfg, seg_data)
    trained = segr.train(seg_cfg, run, seg_data, setup)
    model = trained["unet"].model.eval()
    ids = {name: k for k, name in setup.class_names.items()}
    if cfg.seg.target not in ids:
        raise ConfigError(f"seg.target {cfg.seg.target!r} is not a class of the 04 model: "
                          f"{sorted(ids)}")
    cls = ids[cfg.seg.target]
    item = setup.test_dataset[0]
    image = torch.as_tensor(item["image"]).float()
    truth = np.asarray(torch.as_tensor(item["label"])[0].numpy()).astype(np.int64)
    region = truth == cls
    if not region.any():
        raise ConfigError(f"the first test case has no {cfg.seg.target!r} voxels")
    x = image[None].as_subclass(torch.Tensor)
    target = RegionTarget(model, cls, region)
    mp = cfg.explain.method_params()
    maps: dict[str, Attribution] = {}
    rows: list[dict[str, Any]] = []
    cost: dict[str, Any] = {}
    for m in cfg.seg.methods:
        a, stats = measure_peak(functools.partial(attribute, target, x, m, 0, params=mp, seed=cfg.seed))
        maps[m] = a
        if m == "integrated_gradients":
            cost = {"grid": tuple(int(s) for s in x.shape[2:]), "n_steps": mp.n_steps,
                    "internal_batch_size": mp.internal_batch_size, **stats}
        rows.append({"method": m, "relevance_mass": am.relevance_mass(a.relevance, region),
                     "chance_mass": am.mask_fraction(region), "seconds": stats["seconds"],
                     "peak_delta_mb": stats["peak_delta_mb"]})
    _, entropy = mc_dropout(model, x, setup.patch, samples=cfg.seg.mc_samples, seed=cfg.seed,
                            device=torch.device("cpu"))
    return SegExplanation(str(setup.test_datalist[0]["case_id"]), cfg.seg.target, image.numpy(), region, maps,
                          entropy[0].numpy(), pd.DataFrame(rows).set_index("method"), cost)


# -- checked numbers -------------------------------------------------------------------------------------
CHECKED: dict[str, str] = {
    "auroc_<model>_<cohort>": "test AUROC of each classifier on each cohort's test split (the spurious model "
                              "drops on the spurious cohort, where the cue no longer follows the label), of the "
                              "baseline and of the host reference (PET maximum in the true liver and spleen: is "
                              "the cause visible at all)",
    "auroc_margin_clean": "the clean model's test AUROC minus the non-learning baseline's (PET maximum) on the "
                          "clean test split",
    "removal_<part>_<model>": "mean drop of P(positive) when the malignant lesions (part 'lesion', clean positive "
                              "held-out cases) or the planted cue (part 'cue', spurious held-out cases with the "
                              "cue) are removed from the image: what each model actually uses",
    "mass_<method> / pointing_<method>": "localisation of the clean model's evidence: relevance mass in the "
                                         "lesion and pointing-game hit rate (chance: chance_mass)",
    "deletion_<method> / insertion_<method>": "faithfulness: deletion AUC (lower is better) and insertion AUC",
    "sanity_<method>": "pass/fail of the randomisation sanity checks (|Spearman| < threshold); 'no map' when the "
                       "method's map of the explained case is empty",
    "best_method / best_mass / best_pointing": "the method with the highest lesion mass (target: >= 0.5 and >= 0.8)",
    "shortcut_detected / shortcut_methods": "yes when at least one method puts more mass on the cue than on the "
                                            "lesion for the spurious model and not for the clean control",
    "seg_mass_<method>": "the segmentation target's relevance mass inside its region",
}


def checked_metrics(table: pd.DataFrame, expl: Explanations, san: Sanity, short: Shortcut,
                    seg: SegExplanation | None = None, removed: Removal | None = None) -> dict[str, Any]:
    """The notebook's checked numbers (see :data:`CHECKED`)."""
    out: dict[str, Any] = {}
    for (model, cohort), row in table.iterrows():
        out[f"auroc_{model}_{cohort}"] = float(row["auroc"])
    if "auroc_clean_clean" in out and f"auroc_{BASELINE}_clean" in out:
        out["auroc_margin_clean"] = out["auroc_clean_clean"] - out[f"auroc_{BASELINE}_clean"]
    if removed is not None:
        for (model, part), row in removed.table.iterrows():
            out[f"removal_{part}_{model}"] = float(row["drop"])
    for m, row in expl.table.iterrows():
        out[f"mass_{m}"] = float(row["relevance_mass"])
        out[f"pointing_{m}"] = float(row["pointing_game"])
        out[f"deletion_{m}"] = float(row["deletion_auc"])
        out[f"insertion_{m}"] = float(row["insertion_auc"])
    out["chance_mass"] = float(expl.table["chance_mass"].mean())
    for m, row in san.verdict.iterrows():
        out[f"sanity_{m}"] = sanity_word(row["passes"])
    best = str(expl.table["relevance_mass"].astype(float).idxmax())
    out["best_method"] = best
    out["best_mass"] = float(expl.table.loc[best, "relevance_mass"])
    out["best_pointing"] = float(expl.table.loc[best, "pointing_game"])
    found = [m for m, v in short.revealed.items() if v]
    out["shortcut_detected"] = "yes" if found else "no"
    out["shortcut_methods"] = ",".join(found) if found else "none"
    if seg is not None:
        for m, row in seg.table.iterrows():
            out[f"seg_mass_{m}"] = float(row["relevance_mass"])
    return out


def method_table(expl: Explanations, san: Sanity, short: Shortcut) -> pd.DataFrame:
    """One row per method: localisation, faithfulness, robustness, sanity verdict, shortcut revealed, seconds."""
    t = expl.table.copy()
    t["sanity"] = [sanity_word(san.verdict.loc[m, "passes"]) for m in t.index]
    t["reveals_shortcut"] = [short.revealed.get(str(m), False) for m in t.index]
    return t


