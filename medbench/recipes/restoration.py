"""03_restoration: low-dose CT and MRI motion; conditional GAN vs CNN vs autoencoder vs tuned classical filters.

The recipe's steps, one call each in the notebook:

1. :func:`degradation_demo` — one case at every dose level (the CT operator), noise SD against
   ``dose^-1/2`` and the noise power spectra; MRI motion at three timings and Rician noise;
2. :func:`load_data` — paired clean / low-dose axial slices: training and validation from the cohort's
   train / val cases (fresh noise draws), the test cases' slices with planted liver lesions;
3. :func:`tune_filters` — Gaussian, median, TV, NLM, BM3D, each tuned on validation slices only;
4. :func:`train` — RED-CNN, autoencoder and pix2pix cGAN through :func:`medbench.engine.fit`;
5. :func:`train_segmenter` — the 04 segmentation UNet (CT only) on the same cohort, for downstream Dice;
6. :func:`evaluate` — the table: PSNR, SSIM, noise, planted lesions erased / created, downstream Dice,
   time per slice, training time per epoch.

Intensities: HU; PSNR and SSIM on images clipped to [-1000, 1000] HU with the data range
:data:`DATA_RANGE_HU` = 2000 HU. The reference is the cohort's NOISE-FREE CT (``ct_clean``).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
import torch
from pydantic import Field, model_validator

from medbench import config, metrics
from medbench.baselines.denoise import CLASSICAL_FILTERS, TunedFilter, tune_classical
from medbench.data.phantom import LABEL_IDS, Cohort, PhantomCase, load_cohort
from medbench.engine import FitResult, TrainParams, fit
from medbench.errors import ConfigError
from medbench.image.volume import Volume
from medbench.models.restoration import RestorationModelParams, build_pix2pix, build_restoration_model
from medbench.physics import DOSE_LEVELS, noise_power_spectrum
from medbench.recipes.sections import PerModelEpochs, PhantomData
from medbench.restoration import Pairs, low_dose_ct, mri_motion, paired_slices, plant_lesions, rician_noise
from medbench.restoration.tasks import Pix2PixTask, PixelTask, crop_dataset, pair_dataset, restore_slices

NOTEBOOK = "03_restoration"

#: PSNR / SSIM data range (HU): images clipped to [-1000, 1000] HU (air to dense bone).
DATA_RANGE_HU = 2000.0
CLIP_HU = (-1000.0, 1000.0)

Learned = Literal["red_cnn", "autoencoder", "cgan"]
LEARNED: tuple[Learned, ...] = ("red_cnn", "autoencoder", "cgan")
MotionTiming = Literal["after_centre", "before_centre", "centre", "random"]


class RestorationDataParams(PhantomData):
    """The ``data`` section: the cohort and the task.

    The grid: 128 x 128 pixels of 3.125 mm in-plane (16 slices of 16 mm: the
    same 400 x 400 x 256 mm field of view as every profile). The series'
    default smoke grid (64 x 64 at 6.25 mm) is too coarse for a meaningful
    low-dose task: there half the body's pixels touch an organ edge, so every
    smoothing filter loses PSNR at edges whatever it gains in noise, and a
    planted 9 mm lesion is 1.4 pixels wide and invisible to any detector even
    in the noise-free image. At 3.125 mm a lesion spans about 6 pixels and
    the task rewards methods that separate noise from structure. Slices are
    2D samples, so 16 thick slices cost no more than 32 thin ones would.

    The low-dose scan is ``dose_fraction`` of each case's reference dose,
    through the cohort's own CT operator (the case's photon count and views).
    """

    n_cases: int = Field(10, ge=3, description="Synthetic cases (split 6/2/2 into train/val/test).")
    image_size: list[int] = Field(default_factory=lambda: [128, 128, 16], description="CT grid (i, j, k) in voxels.")
    spacing: list[float] = Field(default_factory=lambda: [3.125, 3.125, 16.0],
                                 description="CT voxel spacing (i, j, k) in mm.")
    dose_fraction: float = Field(0.1, gt=0, le=1, description="Low-dose scan as a fraction of the reference dose.")
    realisations: int = Field(1, ge=1, le=20, description="Independent noise draws per training slice.")
    min_body_fraction: float = Field(0.15, ge=0, lt=1,
                                     description="Training / validation slices: at least this fraction is body.")
    lesions_per_slice: int = Field(2, ge=0, le=6, description="Lesions planted per test slice with enough liver.")
    lesion_radius_mm: float = Field(9.0, gt=0, description="Planted lesion radius (mm).")
    lesion_contrast_hu: float = Field(-60.0, description="Planted lesion contrast against the liver (HU).")
    val_slices: int = Field(12, ge=2, description="Validation slices (evenly spaced) that tune the classical filters "
                                                  "and pick the learned models' best epoch.")


class GanParams(config.Section):
    """The ``gan`` section: the pix2pix loss weights."""

    l1_weight: float = Field(100.0, ge=0, description="L1 weight (pix2pix: 100).")
    adv_weight: float = Field(1.0, ge=0, description="Adversarial (BCE) weight.")
    ssim_weight: float = Field(0.0, ge=0, description="Optional (1 - SSIM) weight (0: off).")
    disc_lr_factor: float = Field(1.0, gt=0, description="Discriminator learning rate over the generator's.")


class SegParams(config.Section):
    """The ``seg`` section: the downstream segmentation model (04's UNet on CT alone)."""

    enabled: bool = Field(True, description="Train it and report downstream Dice.")
    epochs: int = Field(60, ge=1, description="Training epochs of the UNet.")
    patch: list[int] = Field(default_factory=lambda: [64, 64, 16],
                             description="Training patch (voxels); crops are balanced towards the smaller organs.")
    lr: float = Field(5e-3, gt=0, description="Peak learning rate of the UNet.")
    samples_per_volume: int = Field(2, ge=1, description="Patches per volume and epoch.")


class MotionParams(config.Section):
    """The ``mri`` section: the MRI degradations shown (not learned here)."""

    shift_mm: float = Field(8.0, ge=0, description="Translation during the corrupted lines (mm).")
    rotation_deg: float = Field(3.0, ge=0, description="Rotation during the corrupted lines (degrees).")
    fraction: float = Field(0.3, ge=0, le=1, description="Fraction of phase-encode lines acquired moved.")
    rician_sigma: float = Field(0.05, ge=0, description="Rician noise SD as a fraction of the image's 99th percentile.")


class Params(PerModelEpochs, config.Params):
    """03_restoration parameters."""

    notebook: ClassVar[str] = NOTEBOOK

    data: RestorationDataParams = Field(default_factory=RestorationDataParams)
    models: list[Learned] = Field(default_factory=lambda: list(LEARNED), description="Learned models to compare.")
    filters: list[str] = Field(default_factory=lambda: list(CLASSICAL_FILTERS),
                               description="Classical filters to tune and compare.")
    loss: Literal["l1", "l2"] = Field("l2", description="Pixel loss of RED-CNN and the autoencoder.")
    intensity_scale_hu: float = Field(100.0, gt=0, description="Networks see HU / this (noise of order 1 at low dose).")
    crop: int | None = Field(32, ge=8, description="Training crop (pixels, random per sample and epoch); None: whole slices.")
    crops_per_slice: int = Field(4, ge=1, le=64, description="Random crops drawn from every training slice per epoch.")
    model: RestorationModelParams = Field(default_factory=lambda: RestorationModelParams(channels=24, red_depth=4,
                                                                                        levels=2, num_res_units=1))
    train: TrainParams = Field(default_factory=lambda: TrainParams(epochs=8, batch_size=16, lr=3e-3, clip_grad=1.0,
                                                                   warmup_epochs=1))
    epochs_by_model: dict[str, int] = Field(
        default_factory=lambda: {"red_cnn": 20},
        description="Epochs per model where it differs from train.epochs (smoke: RED-CNN is still improving at 8 "
                    "epochs and costs ~2 s per epoch on 2 cores; the cGAN costs ~5 s).")
    gan: GanParams = Field(default_factory=GanParams)
    seg: SegParams = Field(default_factory=SegParams)
    mri: MotionParams = Field(default_factory=MotionParams)
    threads: int = Field(2, ge=1, description="torch threads (pinned: float reductions depend on it).")

    @model_validator(mode="after")
    def _check(self) -> Params:
        unknown = sorted(set(self.filters) - set(CLASSICAL_FILTERS))
        if unknown:
            raise ValueError(f"filters {unknown} are unknown; choose from {', '.join(CLASSICAL_FILTERS)}")
        problem = self.epochs_by_model_problem(LEARNED)
        if problem:
            raise ValueError(problem)
        if self.crop is not None and self.crop > min(self.data.image_size[:2]):
            raise ValueError(f"crop {self.crop} is larger than the slices {self.data.image_size[:2]}")
        size = self.crop or min(self.data.image_size[:2])
        if "cgan" in self.models and size < 2 ** (self.model.disc_layers + 2):
            raise ValueError(f"the PatchGAN discriminator's {self.model.disc_layers} strided layers need training "
                             f"images of at least {2 ** (self.model.disc_layers + 2)} pixels, got {size} "
                             "(raise crop or lower model.disc_layers)")
        if not self.models and not self.filters:
            raise ValueError("nothing to compare: models and filters are both empty")
        return self


#: A functional run in seconds (coarse 5-case cohort, one epoch, two filters): used by the tests that execute
#: every notebook twice in one kernel; its numbers mean nothing.
QUICK: dict[str, Any] = {
    "data_n_cases": 5, "data_image_size": [32, 32, 16], "data_spacing": [12.5, 12.5, 16.0], "data_realisations": 1,
    "data_val_slices": 4, "filters": ["gaussian", "median"], "train_epochs": 1, "train_warmup_epochs": 0,
    "seg_epochs": 1, "epochs_by_model": {}, "crop": 16, "model_disc_layers": 2, "crops_per_slice": 1,
}


# -- data ---------------------------------------------------------------------------------------------------
def _rng(cfg: Params, case: PhantomCase, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([cfg.seed, case.index, 0x3E57, stream]))


def scan(cfg: Params, case: PhantomCase, clean_hu: np.ndarray | Volume, stream: int,
         dose_fraction: float | None = None) -> Any:
    """``clean_hu`` scanned like ``case`` (its photons and views) at ``dose_fraction`` of its reference dose."""
    acq = case.acquisition
    dose = cfg.data.dose_fraction if dose_fraction is None else dose_fraction
    photons = float(acq["ct_photons"]) * float(acq["ct_dose"])
    if isinstance(clean_hu, Volume):
        return low_dose_ct(clean_hu, dose, _rng(cfg, case, stream), photons=photons, n_angles=int(acq["ct_views"]))
    return low_dose_ct(np.asarray(clean_hu), dose, _rng(cfg, case, stream), photons=photons,
                       n_angles=int(acq["ct_views"]), spacing_mm=float(case.ct.spacing[0]))


@dataclasses.dataclass
class TestSet:
    """The test cases' whole volumes as slices ``(N, i, j)``, with planted liver lesions in clean and degraded."""

    case_ids: list[str]
    clean: np.ndarray  # noise-free CT with the planted lesions (HU)
    degraded: np.ndarray  # its low-dose scan (HU)
    lesions: np.ndarray  # planted lesion ids per slice (0: none)
    body: np.ndarray  # body mask
    flat: np.ndarray  # flat soft tissue of the clean image inside the body (noise SD is measured here)
    offsets: list[int]  # first slice of each case in the stack

    def volume_slices(self, n: int) -> slice:
        return slice(self.offsets[n], self.offsets[n + 1] if n + 1 < len(self.offsets) else self.clean.shape[0])


@dataclasses.dataclass
class RestorationData:
    cohort: Cohort
    train: Pairs
    val: Pairs
    test: TestSet

    def summary(self) -> pd.DataFrame:
        split = self.cohort.split
        rows = [{"split": "train", "cases": ", ".join(split["train"]), "slices": len(self.train)},
                {"split": "val", "cases": ", ".join(split["val"]), "slices": len(self.val)},
                {"split": "test", "cases": ", ".join(split["test"]), "slices": int(self.test.clean.shape[0]),
                 "planted_lesions": int(sum(len(np.unique(s[s > 0])) for s in self.test.lesions))}]
        return pd.DataFrame(rows).set_index("split")


def _pairs(cfg: Params, cases: list[PhantomCase], realisations: int) -> Pairs:
    parts = []
    for case in cases:
        clean = case.ct_clean.array.astype(np.float32)
        body = clean > -500
        for r in range(realisations):
            parts.append(paired_slices(clean, scan(cfg, case, clean, stream=r), mask=body,
                                       min_fraction=cfg.data.min_body_fraction))
    return Pairs(np.concatenate([p.clean for p in parts]), np.concatenate([p.degraded for p in parts]),
                 np.concatenate([p.index for p in parts]))


def _test_set(cfg: Params, cases: list[PhantomCase]) -> TestSet:
    from scipy import ndimage

    clean_s, deg_s, les_s, offsets = [], [], [], []
    radius_px = cfg.data.lesion_radius_mm / float(cases[0].ct.spacing[0])
    total = 0
    for case in cases:
        clean = case.ct_clean.array.astype(np.float32).copy()
        lesions = np.zeros(clean.shape, np.int32)
        liver = case.labels.array == LABEL_IDS["liver"]
        rng = _rng(cfg, case, 1000)
        for k in range(clean.shape[2]):
            if cfg.data.lesions_per_slice and liver[:, :, k].sum() > 8 * np.pi * radius_px**2:
                clean[:, :, k], lesions[:, :, k] = plant_lesions(
                    clean[:, :, k], liver[:, :, k], rng, n=cfg.data.lesions_per_slice, radius_px=radius_px,
                    contrast=cfg.data.lesion_contrast_hu)
        degraded = scan(cfg, case, clean, stream=999)
        offsets.append(total)
        total += clean.shape[2]
        clean_s.append(np.moveaxis(clean, 2, 0))
        deg_s.append(np.moveaxis(degraded, 2, 0))
        les_s.append(np.moveaxis(lesions, 2, 0))
    clean_all = np.concatenate(clean_s)
    body = ndimage.binary_erosion(clean_all > -500, structure=np.ones((1, 5, 5), bool))
    flat = metrics.flat_mask(clean_all, tolerance=10.0, size=5, within=body & (np.abs(clean_all) < 300))
    return TestSet([c.case_id for c in cases], clean_all, np.concatenate(deg_s), np.concatenate(les_s), body, flat,
                   offsets)


def load_data(cfg: Params) -> RestorationData:
    """The cohort, paired training / validation slices and the test set (module doc)."""
    cohort = load_cohort(cfg.data.spec(cfg.seed))
    split = cohort.split
    cases = {name: [cohort.case(c) for c in ids] for name, ids in split.items()}
    return RestorationData(cohort, _pairs(cfg, cases["train"], cfg.data.realisations), _pairs(cfg, cases["val"], 1),
                           _test_set(cfg, cases["test"]))


# -- the degradations shown ------------------------------------------------------------------------------------
@dataclasses.dataclass
class Demo:
    ct_slices: dict[str, np.ndarray]  # name -> axial slice (HU)
    dose_table: pd.DataFrame  # dose, noise SD (HU), expected from dose^-1/2, ratio
    nps: pd.DataFrame  # frequency_mm, nps per dose
    mr_slices: dict[str, np.ndarray]  # name -> T2 slice
    mr_table: pd.DataFrame  # degradation, mean absolute error (% of the 99th percentile)
    slice_index: int


def degradation_demo(cfg: Params, data: RestorationData) -> Demo:
    """The first test case at every dose level of :data:`medbench.physics.DOSE_LEVELS`, and MR motion / noise."""
    case = data.cohort.case(data.test.case_ids[0])
    clean = case.ct_clean.array.astype(np.float32)
    liver = case.labels.array == LABEL_IDS["liver"]
    k = int(np.argmax(liver.sum(axis=(0, 1))))
    slices = {"noise-free": clean[:, :, k]}
    rows, spectra = [], {}
    from scipy import ndimage

    inner = ndimage.binary_erosion(liver, structure=np.ones((3, 3, 1), bool))
    sd_ref = None
    for dose in DOSE_LEVELS:
        noisy = scan(cfg, case, clean, stream=500 + int(dose * 100), dose_fraction=dose)
        noise = noisy - clean
        sd = float(noise[inner].std())
        sd_ref = sd if sd_ref is None else sd_ref
        rows.append({"dose": dose, "noise_sd_hu": sd, "expected_hu": sd_ref * dose**-0.5,
                     "ratio": sd / (sd_ref * dose**-0.5)})
        slices[f"dose {dose:g}"] = noisy[:, :, k]
        roi = max(8, min(clean.shape[:2]) // 4)
        spectra[f"dose {dose:g}"] = noise_power_spectrum(noise, float(case.ct.spacing[0]), roi_size=roi)
    nps = pd.DataFrame({"frequency_mm": next(iter(spectra.values()))["frequency_mm"],
                        **{name: s["nps"].to_numpy() for name, s in spectra.items()}})
    t2 = case.t2.array.astype(np.float32)
    kt = t2.shape[2] // 2
    sl = t2[:, :, kt]
    peak = float(np.percentile(sl, 99)) or 1.0
    mr = {"T2": sl}
    spacing = (float(case.t2.spacing[0]), float(case.t2.spacing[1]))
    mrows = []
    for timing in ("after_centre", "centre", "random"):
        out = mri_motion(sl, np.random.default_rng(cfg.seed), shift_mm=cfg.mri.shift_mm,
                         rotation_deg=cfg.mri.rotation_deg, fraction=cfg.mri.fraction, timing=timing,
                         spacing_mm=spacing)
        mr[f"motion ({timing})"] = out
        mrows.append({"degradation": f"motion, {timing}", "mae_pct": 100 * float(np.abs(out - sl).mean()) / peak})
    noisy_mr = rician_noise(sl, cfg.mri.rician_sigma * peak, np.random.default_rng(cfg.seed))
    mr["Rician noise"] = noisy_mr
    mrows.append({"degradation": "Rician noise", "mae_pct": 100 * float(np.abs(noisy_mr - sl).mean()) / peak})
    return Demo(slices, pd.DataFrame(rows).set_index("dose"), nps, mr, pd.DataFrame(mrows).set_index("degradation"),
                k)


# -- classical filters ------------------------------------------------------------------------------------------
def validation_pairs(cfg: Params, data: RestorationData) -> Pairs:
    """The ``data.val_slices`` validation slices (evenly spaced) every method is tuned or selected on."""
    n = len(data.val)
    idx = np.unique(np.linspace(0, n - 1, min(cfg.data.val_slices, n)).round().astype(int))
    return Pairs(data.val.clean[idx], data.val.degraded[idx], data.val.index[idx])


def tune_filters(cfg: Params, data: RestorationData) -> dict[str, TunedFilter]:
    """Each classical filter tuned on the validation slices of :func:`validation_pairs`, never on test."""
    val = validation_pairs(cfg, data)
    noisy, clean = _clip(val.degraded), _clip(val.clean)
    return {name: tune_classical(name, noisy, clean, data_range=DATA_RANGE_HU) for name in cfg.filters}


def _clip(a: np.ndarray) -> np.ndarray:
    return np.clip(a, *CLIP_HU)


def tuning_table(tuned: Mapping[str, TunedFilter]) -> pd.DataFrame:
    """The chosen parameter of every filter and its validation PSNR (dB)."""
    rows = [{"filter": n, "parameter": next(iter(t.params)), "value": next(iter(t.params.values())),
             "val_psnr_db": t.val_psnr} for n, t in tuned.items()]
    return pd.DataFrame(rows).set_index("filter")


# -- learned models -------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Trained:
    name: str
    model: torch.nn.Module
    fit: FitResult
    params_m: float

    @property
    def train_s_per_epoch(self) -> float:
        return self.fit.train_time_s / max(self.fit.epochs_run, 1)


def build(cfg: Params, name: str) -> tuple[torch.nn.Module, Any]:
    """The network and the engine task of one learned model (seeded by the caller)."""
    data_range = DATA_RANGE_HU / cfg.intensity_scale_hu
    if name == "cgan":
        return build_pix2pix(cfg.model), Pix2PixTask(l1_weight=cfg.gan.l1_weight, adv_weight=cfg.gan.adv_weight,
                                                     ssim_weight=cfg.gan.ssim_weight, data_range=data_range,
                                                     disc_lr_factor=cfg.gan.disc_lr_factor)
    arch = {"red_cnn": "red_cnn", "autoencoder": "autoencoder"}.get(name)
    if arch is None:
        raise ConfigError(f"unknown learned model {name!r}; choose from {', '.join(LEARNED)}")
    return build_restoration_model(arch, cfg.model), PixelTask(cfg.loss, data_range=data_range)


def train(cfg: Params, data: RestorationData, run: Any = None) -> dict[str, Trained]:
    """Every model of ``cfg.models`` through :func:`medbench.engine.fit` (best checkpoint by validation PSNR)."""
    scale = cfg.intensity_scale_hu
    repeats = cfg.crops_per_slice if cfg.crop else 1
    train_ds = crop_dataset(data.train, cfg.crop, scale, repeats)
    val_ds = pair_dataset(validation_pairs(cfg, data), scale)
    out: dict[str, Trained] = {}
    for n, name in enumerate(cfg.models):
        torch.manual_seed(cfg.seed + n)
        model, task = build(cfg, name)
        gen = getattr(model, "generator", model)
        params_m = sum(p.numel() for p in gen.parameters()) / 1e6
        result = fit(model, task, train_ds, val_ds, cfg.train_for(name), seed=cfg.seed + n, run=run, name=name)
        out[name] = Trained(name, model, result, params_m)
    return out


def cli_train(cfg: Params, run: Any = None) -> dict[str, Trained]:
    """``medbench train 03_restoration``: the learned models (:func:`train`) on freshly loaded slices."""
    return train(cfg, load_data(cfg), run)


def history_table(trained: Mapping[str, Trained]) -> pd.DataFrame:
    rows = [{"model": n, "params_m": t.params_m, "epochs": t.fit.epochs_run, "best_epoch": t.fit.best_epoch + 1,
             "best_val_psnr_model_units": t.fit.best_metric, "train_s_per_epoch": t.train_s_per_epoch}
            for n, t in trained.items()]
    return pd.DataFrame(rows).set_index("model")


# -- downstream segmentation ----------------------------------------------------------------------------------
@dataclasses.dataclass
class Segmenter:
    cfg: Any
    setup: Any
    model: torch.nn.Module
    val_dice: float


def train_segmenter(cfg: Params, run: Any = None) -> Segmenter | None:
    """The 04 notebook's UNet on CT alone (organs), trained on the same cohort through the 04 recipe."""
    if not cfg.seg.enabled:
        return None
    from medbench.recipes import segmentation

    # Label-balanced crops favour the organs other than the liver: with whole-volume patches the UNet learns
    # the liver and leaves spleen and kidneys near zero Dice in a short run, so a downstream drop could not show.
    data_cfg = segmentation.SegDataParams(n_cases=cfg.data.n_cases, image_size=cfg.data.image_size,
                                          spacing=cfg.data.spacing, modalities=["ct"],
                                          classes=list(segmentation.ORGANS), rare_classes=list(segmentation.ORGANS[1:]),
                                          patch=[min(p, s) for p, s in zip(cfg.seg.patch, cfg.data.image_size)])
    seg_train = segmentation.Params().train.model_copy(update={"lr": cfg.seg.lr,
                                                               "samples_per_volume": cfg.seg.samples_per_volume})
    seg_cfg = segmentation.Params(seed=cfg.seed, data=data_cfg, models=["unet"], train=seg_train,
                                  epochs_by_model={"unet": cfg.seg.epochs}, threads=cfg.threads)
    data = segmentation.load_data(seg_cfg)
    setup = segmentation.setup(seg_cfg, data)
    trained = segmentation.train(seg_cfg, run, data, setup)["unet"]
    return Segmenter(seg_cfg, setup, trained.model, trained.fit.best_metric)


def downstream_dice(seg: Segmenter, data: RestorationData, slices_hu: np.ndarray, run: Any, method: str
                    ) -> float:
    """Mean organ Dice of the segmenter on the test volumes rebuilt from ``slices_hu`` (written as NIfTI)."""
    scores = []
    fg = {k: v for k, v in seg.setup.class_names.items() if k}
    for n, cid in enumerate(data.test.case_ids):
        case = data.cohort.case(cid)
        vol = case.ct.with_array(np.moveaxis(slices_hu[data.test.volume_slices(n)], 0, 2).astype(np.float32))
        path = run.path(f"restored/{cid}_{method}.nii.gz")
        vol.to_nifti(path)
        entry = next(e for e in seg.setup.test_datalist if e["case_id"] == cid)
        item = seg.setup.eval_transform({**entry, "image": str(path)})
        pred = seg.setup.task.predict(seg.model, item["image"], torch.device("cpu"))
        truth = np.asarray(torch.as_tensor(item["label"])[0].numpy()).astype(np.int64)
        scores.append(np.nanmean(list(metrics.dice(pred, truth, fg).values())))
    return float(np.mean(scores))


# -- evaluation ----------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Evaluation:
    table: pd.DataFrame  # one row per method
    outputs: dict[str, np.ndarray]  # method -> restored test slices (HU)


def evaluate(cfg: Params, data: RestorationData, tuned: Mapping[str, TunedFilter], trained: Mapping[str, Trained],
             seg: Segmenter | None = None, run: Any = None) -> Evaluation:
    """Every method on the test slices: the comparison table (module doc) and the restored images."""
    test = data.test
    outputs: dict[str, np.ndarray] = {"degraded": test.degraded}
    seconds: dict[str, float] = {"degraded": 0.0}
    kinds = {"degraded": "input"}
    for name, f in tuned.items():
        start = time.perf_counter()
        outputs[name] = f(test.degraded)
        seconds[name] = (time.perf_counter() - start) / test.degraded.shape[0]
        kinds[name] = "classical"
    for name, t in trained.items():
        outputs[name], seconds[name] = restore_slices(t.model, test.degraded, scale=cfg.intensity_scale_hu)
        kinds[name] = "learned"
    clean = _clip(test.clean)
    rows = []
    for method, out in outputs.items():
        img = _clip(out)
        fidelity = metrics.lesion_fidelity(out, test.clean, test.lesions, contrast=cfg.data.lesion_contrast_hu,
                                           within=test.body)
        row: dict[str, Any] = {
            "method": method, "kind": kinds[method],
            "psnr_db": metrics.psnr(img, clean, DATA_RANGE_HU, mask=test.body),
            "ssim": metrics.ssim(img, clean, DATA_RANGE_HU, stack=True),
            "noise_sd_hu": metrics.noise_sd(out, test.clean, test.flat),
            "contrast_recovery": fidelity["contrast_recovery"],
            "lesions_erased": int(fidelity["erased"]), "lesions_created": int(fidelity["created"]),
            "ms_per_slice": 1000 * seconds[method],
            "train_s_per_epoch": trained[method].train_s_per_epoch if method in trained else float("nan"),
        }
        if seg is not None and run is not None:
            row["dice_organs"] = downstream_dice(seg, data, out, run, method)
        rows.append(row)
    if seg is not None and run is not None:
        clean_dice = downstream_dice(seg, data, test.clean, run, "clean")
        rows.append({"method": "noise-free (reference)", "kind": "reference", "dice_organs": clean_dice,
                     "lesions_erased": 0, "lesions_created": 0, "contrast_recovery": 1.0})
    table = pd.DataFrame(rows).set_index("method")
    return Evaluation(table, outputs)


def nps_table(cfg: Params, data: RestorationData, evaluation: Evaluation, methods: list[str] | None = None
              ) -> pd.DataFrame:
    """Noise power spectrum (HU^2 mm^2) of every method's residual (output - clean) on the test slices."""
    spacing = float(data.cohort.case(data.test.case_ids[0]).ct.spacing[0])
    names = methods or list(evaluation.outputs)
    out: dict[str, Any] = {}
    roi = max(8, min(data.test.clean.shape[1:]) // 4)
    for name in names:
        noise = np.moveaxis(evaluation.outputs[name] - data.test.clean, 0, 2)
        nps = noise_power_spectrum(noise, spacing, roi_size=roi, mask=np.moveaxis(data.test.body, 0, 2))
        out.setdefault("frequency_mm", nps["frequency_mm"].to_numpy())
        out[name] = nps["nps"].to_numpy()
    return pd.DataFrame(out)


def example_slice(data: RestorationData, evaluation: Evaluation, method: str = "cgan") -> int:
    """The test slice with planted lesions where ``method`` departs most from the noise-free image (its failure)."""
    out = evaluation.outputs.get(method)
    with_lesions = np.flatnonzero(data.test.lesions.reshape(data.test.lesions.shape[0], -1).max(axis=1) > 0)
    candidates = with_lesions if with_lesions.size else np.arange(data.test.clean.shape[0])
    if out is None:
        return int(candidates[0])
    err = [float(np.abs(out[k] - data.test.clean[k])[data.test.body[k]].mean()) for k in candidates]
    return int(candidates[int(np.argmax(err))])


# -- checked metrics -------------------------------------------------------------------------------------------------
CHECKED: dict[str, str] = {
    "psnr_<method>": "test PSNR (dB, 2000 HU data range, inside the body) of the input and every method",
    "ssim_<method>": "test SSIM (2000 HU data range, mean over slices)",
    "dice_<method>": "downstream organ Dice of the CT segmentation UNet on each method's output (and noise-free)",
    "erased_<method> / created_<method>": "planted lesions erased, false lesions created (hallucination test)",
    "gain_db_best_learned": "PSNR gain of the best learned model over the low-dose input (smoke target >= 4 dB)",
    "margin_db_over_classical": "PSNR of the best learned model minus the best tuned classical filter (target > 0)",
    "dose_sd_ratio_max_dev": "largest deviation of the noise SD from dose^-1/2 scaling over the dose levels",
}


def checked_metrics(evaluation: Evaluation, demo: Demo | None = None) -> dict[str, Any]:
    """The notebook's checked numbers (see :data:`CHECKED`)."""
    t = evaluation.table
    out: dict[str, Any] = {}
    for method, row in t.iterrows():
        key = str(method).split(" ")[0].replace("-", "_")
        if row["kind"] != "reference":
            out[f"psnr_{key}"] = float(row["psnr_db"])
            out[f"ssim_{key}"] = float(row["ssim"])
            out[f"erased_{key}"] = int(row["lesions_erased"])
            out[f"created_{key}"] = int(row["lesions_created"])
        if "dice_organs" in t.columns:
            out[f"dice_{key}"] = float(row["dice_organs"])
    learned = t[t["kind"] == "learned"]["psnr_db"]
    classical = t[t["kind"] == "classical"]["psnr_db"]
    base = float(t.loc["degraded", "psnr_db"])
    if len(learned):
        out["gain_db_best_learned"] = float(learned.max() - base)
        out["best_learned"] = str(learned.idxmax())
        if len(classical):
            out["margin_db_over_classical"] = float(learned.max() - classical.max())
    if len(classical):
        out["best_classical"] = str(classical.idxmax())
        out["gain_db_best_classical"] = float(classical.max() - base)
    if demo is not None:
        out["dose_sd_ratio_max_dev"] = float((demo.dose_table["ratio"] - 1).abs().max())
    return out


def reading(evaluation: Evaluation) -> str:
    """The comparison table in words: who wins on pixels, at what cost to the planted lesions, and downstream."""
    t = evaluation.table
    scored = t[t["kind"] != "reference"]
    lines = []
    best = str(scored["psnr_db"].idxmax())
    base = float(t.loc["degraded", "psnr_db"])
    lines.append(f"Highest PSNR: {best} ({scored.loc[best, 'psnr_db'] - base:+.2f} dB over the low-dose input).")
    for kind in ("learned", "classical"):
        part = scored[scored["kind"] == kind]["psnr_db"]
        if len(part) and part.idxmax() != best:
            lines.append(f"Best {kind}: {part.idxmax()} ({part.max() - base:+.2f} dB).")
    lines.append(f"{best} erases {int(scored.loc[best, 'lesions_erased'])} planted lesions and creates "
                 f"{int(scored.loc[best, 'lesions_created'])}; the input itself shows "
                 f"{int(t.loc['degraded', 'lesions_created'])} false lesions (noise clusters).")
    least = scored[scored["kind"] != "input"].sort_values(["lesions_erased", "lesions_created"]).index[0]
    lines.append(f"Fewest lesions erased: {least} ({int(scored.loc[least, 'lesions_erased'])} erased, "
                 f"{int(scored.loc[least, 'lesions_created'])} created, contrast recovery "
                 f"{scored.loc[least, 'contrast_recovery']:.2f}).")
    if "dice_organs" in t.columns and t["dice_organs"].notna().any():
        d = t["dice_organs"]
        ref = t[t["kind"] == "reference"].index
        ref_dice = f", noise-free {d[ref[0]]:.3f}" if len(ref) and pd.notna(d[ref[0]]) else ""
        lines.append(f"Downstream organ Dice: low-dose {d['degraded']:.3f}{ref_dice}, {best} {d[best]:.3f}; "
                     f"spread over methods {d.max() - d.min():.3f}.")
    return "\n".join(lines)


def results_table(evaluation: Evaluation) -> pd.DataFrame:
    """The comparison table, with the PSNR gain over the low-dose input."""
    t = evaluation.table.copy()
    t.insert(2, "gain_db", t["psnr_db"] - t.loc["degraded", "psnr_db"])
    return t
