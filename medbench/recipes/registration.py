"""02_registration: rigid, B-spline and dense registration on the phantom, measured against its exact ground truth.

The recipe's steps, one call each in the notebook:

1. :func:`load_case` — one phantom case: CT, MR T1 (own grid), the breathing-deformed CT, labels, and the truth
   (CT->MR rigid transform, dense breathing displacement, landmarks in every space);
2. :func:`rigid_case` — (a) MR T1 (fixed) to CT (moving), rigid, Mattes MI, three-level pyramid;
3. :func:`failure_cases` — (d) the same pair with mean squares, and with an MR whose scanner origin is far from
   the CT's registered without initialisation: both fail visibly (status, TRE);
4. :func:`breathing_case` — (b) deformed CT (fixed) to CT (moving): rigid alone, B-spline FFD and diffeomorphic
   demons (both starting from the rigid result);
   :func:`learned_case` — (b) by a MONAI LocalNet trained through :func:`medbench.engine.fit` on other phantom
   patients (never this one), predicting the whole deformation in one forward pass;
5. tables (:func:`tre_table`, :func:`dense_table`, :func:`breathing_table`) and :func:`checked_metrics`.

Conventions: every transform maps fixed points to moving points (LPS mm); TRE is measured between
T(fixed landmarks) and the true moving landmarks; the dense TRE compares T_est(x) with T_true(x) at every
voxel of the fixed grid.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from medbench import config, metrics
from medbench.data.phantom import BENCHMARK_ORGANS, LABELS, PhantomCase, cohort_hash, load_cohort
from medbench.errors import RegistrationError
from medbench.image.transforms import RigidTransform
from medbench.image.volume import Volume
from medbench.models.registration import LocalNetParams
from medbench.recipes.sections import PhantomData
from medbench.registration import BONE_HU, RegistrationResult, demons, register, threshold_mask

NOTEBOOK = "02_registration"
ORGANS: dict[int, str] = {i: LABELS[i] for i in BENCHMARK_ORGANS}
#: How far the "scanner origin" of the MR is moved in the no-initialisation failure case (LPS mm).
ORIGIN_SHIFT_MM = (0.0, 0.0, 200.0)


class RegDataParams(PhantomData):
    """The ``data`` section: the phantom cohort and which case to register."""

    n_cases: int = Field(1, ge=1, description="Number of synthetic cases generated.")
    case: int = Field(0, ge=0, description="Index of the case registered.")


class RigidParams(config.Section):
    """The ``rigid`` section: case (a), MR T1 -> CT with mutual information."""

    transform: Literal["euler", "versor"] = Field("euler", description="Rigid parametrisation.")
    initialisation: Literal["geometry", "moments", "none"] = Field("geometry", description="Centred initialisation.")
    histogram_bins: int = Field(16, ge=4, description="Mattes MI histogram bins (few voxels at smoke: few bins).")
    shrink_factors: list[int] = Field(default_factory=lambda: [4, 2, 1], description="Pyramid shrink factors.")
    smoothing_sigmas: list[float] = Field(default_factory=lambda: [2.0, 1.0, 0.0],
                                          description="Pyramid smoothing (voxels of each level).")
    sampling_fraction: float = Field(0.2, gt=0, le=1, description="Share of fixed voxels sampled per iteration.")
    iterations: int = Field(100, ge=1, description="Optimiser iterations per level.")


class DeformableParams(config.Section):
    """The ``deformable`` section: case (b), breathing CT <-> CT."""

    rigid_sampling: Literal["bone", "image"] = Field(
        "bone", description="What the rigid stage of case (b) samples: bone (CT >= bone_hu, dilated one voxel; the "
                            "skeleton does not breathe) or the whole image. B-spline and demons start from it.")
    bone_hu: float = Field(BONE_HU, description="CT threshold of the bone mask (HU).")

    bspline_mesh_mm: float = Field(50.0, gt=0, description="B-spline control-point spacing (mm).")
    bspline_iterations: int = Field(20, ge=1, description="L-BFGS-B iterations per level.")
    bspline_sampling_fraction: float = Field(0.05, gt=0, le=1, description="Sampled share of voxels (B-spline).")
    bspline_shrink_factors: list[int] = Field(default_factory=lambda: [2, 1], description="B-spline pyramid.")
    demons_iterations: int = Field(50, ge=1, description="Demons iterations per level.")
    demons_smoothing_mm: float = Field(8.0, gt=0, description="Gaussian regularising the demons field (SD, mm).")
    demons_shrink_factors: list[int] = Field(default_factory=lambda: [2, 1], description="Demons pyramid.")
    elastix: bool = Field(True, description="Add elastix's B-spline (optional extra itk-elastix) when installed.")
    elastix_iterations: int = Field(64, ge=1, description="elastix iterations per level (rigid and B-spline).")
    elastix_resolutions: int = Field(2, ge=1, description="elastix pyramid levels.")


class LearnedParams(LocalNetParams):
    """The ``learned`` section: case (b) by a MONAI LocalNet trained through the engine (:func:`learned_case`).

    Its training and validation pairs come from a second cohort (seed + 1: other patients, same grid), so the
    evaluated case is never seen. A pair is (fixed = breathing-deformed CT, moving = CT), and with
    ``both_directions`` also the reverse, with the organ labels for weak supervision and for validation.
    """

    enabled: bool = Field(True, description="Train the LocalNet and add its row to case (b).")
    pairs: int = Field(8, ge=1, description="Training patients (pairs).")
    val_pairs: int = Field(2, ge=1, description="Validation patients (pairs; they pick the best epoch by monitor).")
    both_directions: bool = Field(True, description="Also train on the reverse pair (CT fixed, deformed moving).")
    epochs: int = Field(30, ge=1, description="Training epochs.")
    lr: float = Field(3e-3, gt=0, description="Peak learning rate (AdamW, cosine).")
    similarity: Literal["lncc", "mse"] = Field("lncc", description="Image term: local normalised cross-correlation "
                                                                   "or mean squares (same-modality pairs).")
    bending_weight: float = Field(1.0, ge=0, description="Weight of the DDF's bending energy (smoothness).")
    label_weight: float = Field(0.0, ge=0, description="Weight of the organ-label Dice loss (0: not used).")
    field_weight: float = Field(1.0, ge=0, description="Weight of the error to the training patients' TRUE breathing "
                                                       "field (voxels²; supervised registration; 0: not used).")
    train_seed_offset: int = Field(0, ge=0, description="Training seed = seed + this (network initialisation and data "
                                                        "order only; the patients stay): the run-to-run spread.")
    monitor: Literal["field_error", "dice_mean"] = Field(
        "field_error", description="Best epoch by the validation patients' error to their true field (voxels) or by "
                                   "their organ Dice (saturates on a coarse grid).")


class MniParams(config.Section):
    """The ``mni`` section: case (c), nilearn's bundled MNI152 T1 moved by a known rigid transform."""

    spacing_mm: float = Field(4.0, gt=0, description="Isotropic grid the template is resampled to (mm).")
    angles_deg: list[float] = Field(default_factory=lambda: [6.0, -4.0, 8.0],
                                    description="True rotation (deg, about x, y, z; ITK Euler order).")
    translation_mm: list[float] = Field(default_factory=lambda: [8.0, -6.0, 5.0], description="True translation.")
    bias_strength: float = Field(0.3, ge=0, description="Multiplicative bias field: exp(+-strength) across the head.")
    n_points: int = Field(50, ge=3, description="Random brain points the TRE is measured at.")


class Params(config.Params):
    """02_registration parameters."""

    notebook: ClassVar[str] = NOTEBOOK

    data: RegDataParams = Field(default_factory=RegDataParams)
    rigid: RigidParams = Field(default_factory=RigidParams)
    deformable: DeformableParams = Field(default_factory=DeformableParams)
    mni: MniParams = Field(default_factory=MniParams)
    learned: LearnedParams = Field(default_factory=LearnedParams)
    threads: int = Field(2, ge=1, description="SimpleITK threads (pinned: float sums depend on it).")


@dataclasses.dataclass
class CaseData:
    """The registered case and a digest of its cohort."""

    case: PhantomCase
    digest: str

    def summary(self) -> pd.DataFrame:
        c = self.case
        rows = [{"image": n, "grid": "x".join(map(str, v.shape)),
                 "spacing_mm": " x ".join(f"{s:g}" for s in v.spacing)}
                for n, v in (("ct", c.ct), ("t1", c.t1), ("ct_deformed", c.ct_deformed))]
        return pd.DataFrame(rows).set_index("image")

    def truth(self) -> pd.DataFrame:
        c = self.case
        return pd.DataFrame([
            {"truth": "CT -> MR rigid", "rotation_deg": c.rigid.rotation_angle_deg,
             "translation_mm": float(np.linalg.norm(c.rigid.translation_mm)), "max_displacement_mm": np.nan},
            {"truth": "breathing (deformed -> CT)", "rotation_deg": np.nan, "translation_mm": np.nan,
             "max_displacement_mm": float(c.displacement.magnitude.max())},
        ]).set_index("truth")


def load_case(cfg: Params) -> CaseData:
    """The phantom case the notebook registers."""
    spec = cfg.data.spec(cfg.seed)
    if cfg.data.case >= cfg.data.n_cases:
        raise RegistrationError(f"data.case {cfg.data.case} is not below data.n_cases {cfg.data.n_cases}")
    cohort = load_cohort(spec)
    return CaseData(cohort.case(cfg.data.case), cohort_hash(cohort))


# ---- (a) rigid CT <-> MR, and (d) its failures --------------------------------------------------------------


def _rigid(cfg: Params, fixed: Volume, moving: Volume, *, on_iteration: Callable[[int, int, float], None] | None = None,
           **override: Any) -> RegistrationResult:
    r = cfg.rigid
    kw: dict[str, Any] = dict(transform=r.transform, metric="mattes", initialisation=r.initialisation,
                              shrink_factors=r.shrink_factors, smoothing_sigmas=r.smoothing_sigmas,
                              sampling="random", sampling_fraction=r.sampling_fraction, iterations=r.iterations,
                              histogram_bins=r.histogram_bins, seed=cfg.seed, threads=cfg.threads,
                              on_iteration=on_iteration)
    kw.update(override)
    return register(fixed, moving, **kw)


def rigid_case(cfg: Params, data: CaseData, on_iteration: Callable[[int, int, float], None] | None = None
               ) -> dict[str, RegistrationResult]:
    """(a) MR T1 (fixed; the smaller field of view) -> CT (moving), rigid, Mattes MI, multi-resolution.

    Also the same at a single resolution (the pyramid's baseline). Returns {row name: result}.
    """
    c = data.case
    return {"rigid MI, 3-level pyramid": _rigid(cfg, c.t1, c.ct, on_iteration=on_iteration),
            "rigid MI, single resolution": _rigid(cfg, c.t1, c.ct, shrink_factors=[1], smoothing_sigmas=[0.0])}


def shifted_origin(volume: Volume, shift_mm: tuple[float, float, float] = ORIGIN_SHIFT_MM) -> Volume:
    """The same image with its world origin moved (a different scanner / table position), LPS mm."""
    aff = volume.affine.copy()
    aff[:3, 3] += np.asarray(shift_mm, dtype=float)
    return Volume(volume.array, aff, {**volume.meta, "name": f"{volume.meta.get('name', 'image')} (origin moved)"},
                  role=volume.role)


def failure_cases(cfg: Params, data: CaseData) -> dict[str, RegistrationResult | str]:
    """(d) Mean squares on MR -> CT, and no initialisation when the MR's origin is 200 mm away.

    A value is the result, or the error message when the input is refused.
    """
    c = data.case
    out: dict[str, RegistrationResult | str] = {}
    out["mean squares (MR vs CT)"] = _rigid(cfg, c.t1, c.ct, metric="mean_squares")
    moved = shifted_origin(c.t1)
    for init in ("none", "geometry"):
        name = f"origin moved 200 mm, init {init}"
        try:
            out[name] = _rigid(cfg, moved, c.ct, initialisation=init)
        except RegistrationError as exc:
            out[name] = str(exc)
    return out


def _mr_landmarks(data: CaseData, name: str) -> np.ndarray:
    pts = data.case.landmarks.mr
    return pts + np.asarray(ORIGIN_SHIFT_MM) if "origin moved" in name else pts


def tre_table(data: CaseData, results: Mapping[str, RegistrationResult | str]) -> pd.DataFrame:
    """Landmark TRE (mm; and in CT voxels of the largest spacing) before and after, status, time, stop condition."""
    c = data.case
    voxel = max(c.ct.spacing)
    rows = []
    for name, res in results.items():
        mr = _mr_landmarks(data, name)
        before = metrics.tre_summary(mr, c.landmarks.ct)
        row: dict[str, Any] = {"case": name, "tre_before_mm": before["mean"]}
        if isinstance(res, str):
            row.update(status="refused", stop_condition=res)
        else:
            after = metrics.landmark_tre(res.transform, mr, c.landmarks.ct)
            row.update(tre_after_mm=after["mean"], tre_max_mm=after["max"], tre_after_voxels=after["mean"] / voxel,
                       status=res.status, iterations=res.iterations, time_s=res.wall_time_s,
                       stop_condition=res.stop_condition)
        rows.append(row)
    return pd.DataFrame(rows).set_index("case")


def rigid_error(data: CaseData, result: RegistrationResult) -> pd.DataFrame:
    """Rotation (deg) and translation (mm) error of a rigid result against the truth (MR -> CT = inverse of CT -> MR)."""
    est = RigidTransform.from_sitk(result.transform)
    truth_inv = np.linalg.inv(data.case.rigid.matrix)
    d = np.linalg.inv(truth_inv) @ est.matrix  # identity when est == truth
    angle = float(np.degrees(np.arccos(np.clip((np.trace(d[:3, :3]) - 1) / 2, -1, 1))))
    centre = data.case.t1.center
    shift = float(np.linalg.norm(est.apply(centre)[0] - (truth_inv[:3, :3] @ centre + truth_inv[:3, 3])))
    return pd.DataFrame([{"rotation_error_deg": angle, "error_at_centre_mm": shift}])


# ---- (c) real anatomy: MNI152 --------------------------------------------------------------------------------


@dataclasses.dataclass
class MniCase:
    """Case (c): fixed = the MNI152 T1, moving = it moved by ``truth`` with another contrast and a bias field."""

    fixed: Volume
    moving: Volume
    truth: RigidTransform
    points: np.ndarray  # brain points of the fixed image (N, 3) LPS mm
    brain: np.ndarray  # brain mask on the fixed grid

    def table(self, result: RegistrationResult) -> pd.DataFrame:
        """TRE (mm) at the brain points and the dense TRE over the brain, before and after."""
        rows = []
        for name, tx in (("before", None), ("after rigid MI", result.transform)):
            est = self.points if tx is None else metrics.transform_points(tx, self.points)
            tre = metrics.tre_summary(est, self.truth.apply(self.points))
            err = metrics.dense_error_map(tx, self.truth, self.fixed).array[self.brain]
            rows.append({"stage": name, "tre_mean_mm": tre["mean"], "tre_max_mm": tre["max"],
                         "dense_tre_brain_median_mm": float(np.median(err)),
                         "time_s": 0.0 if tx is None else result.wall_time_s,
                         "status": "-" if tx is None else result.status})
        return pd.DataFrame(rows).set_index("stage")


def mni_case(cfg: Params) -> MniCase:
    """Build case (c) from nilearn's MNI152 T1 (inside the installed wheel; no download).

    The moving image is the template resampled through the inverse of the true transform (so
    moving(T(x)) = fixed(x)), its contrast remapped non-monotonically (grey/white contrast
    inverted, as between T1 and T2) and multiplied by a smooth bias field.
    """
    from medbench.data import samples
    from medbench.image.resample import resample_to

    m = cfg.mni
    t1 = Volume.from_nifti(samples.mni152_t1(), {"modality": "MR", "name": "MNI152 T1"})
    extent = np.asarray(t1.shape) * np.asarray(t1.spacing)
    shape = tuple(int(round(e / m.spacing_mm)) for e in extent)
    grid = Volume.from_spacing(np.zeros(shape, np.float32), (m.spacing_mm,) * 3, origin=t1.origin,
                               direction=t1.direction)
    fixed = resample_to(t1, grid).with_array(resample_to(t1, grid).array.astype(np.float32), name="MNI152 T1")
    truth = RigidTransform(tuple(m.angles_deg), tuple(m.translation_mm), tuple(fixed.center))  # type: ignore[arg-type]
    moved = resample_to(fixed, fixed, truth.to_sitk().GetInverse(), default=0.0).array
    norm = np.clip(moved / max(float(np.percentile(fixed.array, 99.5)), 1e-6), 0, 1)
    contrast = np.where(norm > 0.15, 1.2 - norm, norm * 4.0)  # background dark, tissue contrast inverted
    pts = fixed.grid_points().reshape(*fixed.shape, 3) - fixed.center
    ramp = pts @ np.array([1.0, 0.6, -0.4]) / (0.5 * float(np.linalg.norm(extent)))
    moving = fixed.with_array((1000.0 * contrast * np.exp(m.bias_strength * ramp)).astype(np.float32),
                              name="MNI152, moved, other contrast, bias field")
    brain = fixed.array > np.percentile(fixed.array[fixed.array > 0], 30)
    rng = np.random.default_rng(cfg.seed)
    idx = np.argwhere(brain)
    points = fixed.world(idx[rng.choice(len(idx), size=min(m.n_points, len(idx)), replace=False)].astype(float))
    return MniCase(fixed, moving, truth, points, brain)


def mni_register(cfg: Params, case: MniCase) -> RegistrationResult:
    """Case (c): rigid Mattes MI, geometry initialisation, the same pyramid as case (a)."""
    return _rigid(cfg, case.fixed, case.moving, histogram_bins=32)


# ---- (b) breathing CT <-> CT ----------------------------------------------------------------------------------


def breathing_rigid(cfg: Params, data: CaseData) -> dict[str, RegistrationResult]:
    """The rigid stage of case (b): ``{"rigid": ...}``, plus ``rigid_whole_image`` when ``rigid`` samples bone."""
    c, d = data.case, cfg.deformable
    whole = _rigid(cfg, c.ct_deformed, c.ct, histogram_bins=32)
    if d.rigid_sampling == "image":
        return {"rigid": whole}
    bone = _rigid(cfg, c.ct_deformed, c.ct, histogram_bins=32,
                  fixed_mask=threshold_mask(c.ct_deformed, d.bone_hu, dilate_voxels=1))
    return {"rigid_whole_image": whole, "rigid": bone}


def breathing_case(cfg: Params, data: CaseData) -> dict[str, RegistrationResult]:
    """Deformed CT (fixed) -> CT (moving): rigid MI alone, then B-spline FFD and demons from the rigid result.

    With ``deformable.rigid_sampling = "bone"`` the rigid stage (``rigid``) samples only bone, and the rigid
    registration of the whole image is reported beside it (``rigid_whole_image``): one global motion cannot
    match the sliding organs and the static body wall at once, and on a coarse grid it settles on a compromise
    that moves the skeleton by millimetres.
    """
    c, d = data.case, cfg.deformable
    out = breathing_rigid(cfg, data)
    rigid = out.pop("rigid")
    n = len(d.bspline_shrink_factors)
    bspline = register(c.ct_deformed, c.ct, transform="bspline", metric="mean_squares", initialisation=rigid.transform,
                       bspline_mesh_mm=d.bspline_mesh_mm, iterations=d.bspline_iterations,
                       shrink_factors=d.bspline_shrink_factors, smoothing_sigmas=[float(f) / 2 for f in
                                                                                  d.bspline_shrink_factors][:n],
                       sampling="random", sampling_fraction=d.bspline_sampling_fraction, seed=cfg.seed,
                       threads=cfg.threads)
    dense = demons(c.ct_deformed, c.ct, initialisation=rigid.transform, iterations=d.demons_iterations,
                   smoothing_mm=d.demons_smoothing_mm, shrink_factors=d.demons_shrink_factors, threads=cfg.threads)
    return {**out, "rigid": rigid, "bspline": bspline, "demons": dense}


#: The SimpleITK rows of case (b), the ones the checked cell prints (elastix is an optional extra).
CHECKED_METHODS = ("before", "rigid_whole_image", "rigid", "bspline", "demons", "localnet")
#: The non-learning deformable rows the learned one is compared with.
CLASSICAL_DEFORMABLE = ("bspline", "demons")


#: CT window (HU) the learned registration sees, scaled to [0, 1]: air to bone, so the body outline,
#: fat, organs and bone all carry contrast.
LEARNED_WINDOW_HU = (-1000.0, 1000.0)


def _pair_item(fixed: Volume, moving: Volume, fixed_label: Volume, moving_label: Volume, factor: int,
               truth: Any = None) -> dict[str, Any]:
    """A training / test pair on the fixed grid pooled by ``factor``: images windowed to [0, 1] and block-averaged,
    organ labels (1..n, everything else 0) sampled nearest at the pooled voxel centres, and ``ddf``: the true
    fixed -> moving displacement ``truth`` (a DisplacementField) in pooled voxels, NaN when it is not known."""
    import torch

    from medbench.image.resample import pool_image, pooled_grid

    lo, hi = LEARNED_WINDOW_HU
    coarse = pooled_grid(fixed, factor)
    moving = moving.resample_to(fixed) if not moving.same_grid(fixed) else moving

    def organs(lab: Volume) -> np.ndarray:
        on_grid = lab.resample_to(coarse).array
        out = np.zeros(coarse.shape, np.int64)
        for n, value in enumerate(ORGANS, start=1):
            out[on_grid == value] = n
        return out[None]

    image = np.stack([pool_image(np.clip((v.array.astype(np.float32) - lo) / (hi - lo), 0, 1), factor)
                      for v in (fixed, moving)])
    ddf = np.full((3, *coarse.shape), np.nan, np.float32)
    if truth is not None:
        u = truth.displacement(coarse.grid_points()).reshape(*coarse.shape, 3)
        ddf = np.einsum("rc,...c->r...", np.linalg.inv(np.asarray(coarse.affine)[:3, :3]), u).astype(np.float32)
    return {"image": torch.from_numpy(image), "fixed_label": torch.from_numpy(organs(fixed_label)),
            "moving_label": torch.from_numpy(organs(moving_label)), "ddf": torch.from_numpy(ddf)}


def learned_pairs(cfg: Params, lc: LearnedParams) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(training, validation) pairs from the second cohort (``seed + 1``), validation = its last ``val_pairs``."""
    spec = cfg.data.model_copy(update={"n_cases": lc.pairs + lc.val_pairs}).spec(cfg.seed + 1)
    cohort = load_cohort(spec)
    train, val = [], []
    for n in range(spec.n_cases):
        c = cohort.case(n)
        forward = _pair_item(c.ct_deformed, c.ct, c.labels_deformed, c.labels, lc.downsample, c.displacement)
        if n >= lc.pairs:
            val.append(forward)
            continue
        train.append(forward)
        if lc.both_directions:
            train.append(_pair_item(c.ct, c.ct_deformed, c.labels, c.labels_deformed, lc.downsample))
    return train, val


def learned_case(cfg: Params, data: CaseData, lc: LearnedParams | None = None, run: Any = None
                 ) -> tuple[RegistrationResult, Any]:
    """(b) by a LocalNet trained on other patients: (the row's result, the engine's FitResult).

    ``wall_time_s`` of the result is the inference time on this case (one forward pass); the training time is
    in the FitResult and in ``settings["train_time_s"]``.
    """
    import time

    import torch

    from medbench.engine import TrainParams, fit
    from medbench.engine.tasks import RegistrationTask
    from medbench.image.resample import pooled_grid
    from medbench.models.registration import build_localnet, ddf_to_field, field_on, min_patch_multiple

    lc = lc or LearnedParams()
    c = data.case
    multiple = min_patch_multiple(lc) * lc.downsample
    if any(s % multiple for s in c.ct.shape):
        raise RegistrationError(f"learned: the CT grid {c.ct.shape} must be a multiple of {multiple} per axis for a "
                                f"{lc.levels}-level LocalNet on a grid pooled by {lc.downsample}; lower "
                                f"learned.levels or learned.downsample, or change data.image_size")
    train, val = learned_pairs(cfg, lc)
    torch.manual_seed(cfg.seed + lc.train_seed_offset)
    model = build_localnet(lc)
    task = RegistrationTask(len(ORGANS) + 1, similarity=lc.similarity, bending_weight=lc.bending_weight,
                            label_weight=lc.label_weight, field_weight=lc.field_weight, monitor=lc.monitor)
    params = TrainParams(epochs=lc.epochs, lr=lc.lr, batch_size=2, samples_per_volume=1, warmup_epochs=1)
    result = fit(model, task, train, val, params, seed=cfg.seed + lc.train_seed_offset, run=run, name="localnet")
    if result.best_state is not None:
        model.load_state_dict(result.best_state)
    test = _pair_item(c.ct_deformed, c.ct, c.labels_deformed, c.labels, lc.downsample)
    start = time.perf_counter()
    ddf = task.predict_ddf(model, test["image"], torch.device("cpu"))
    field = field_on(ddf_to_field(ddf, pooled_grid(c.ct_deformed, lc.downsample)), c.ct_deformed)
    seconds = time.perf_counter() - start
    history = result.history.rename(columns={"loss": "metric"}).assign(level=0, iteration=result.history["epoch"])
    return RegistrationResult(
        method="localnet", metric=" + ".join([lc.similarity, "bending"] + ["label Dice"] * (lc.label_weight > 0)
                                             + ["true-field error"] * (lc.field_weight > 0)) + " (training loss)",
        transform=field.to_sitk(),
        history=history, stop_condition=f"trained {result.epochs_run} epochs on {len(train)} pairs, best epoch "
                                        f"{result.best_epoch + 1} by validation {lc.monitor} {result.best_metric:.3f}",
        wall_time_s=seconds, status="converged", fixed=c.ct_deformed, engine="MONAI LocalNet (learned)",
        settings={**lc.model_dump(), "train_time_s": result.train_time_s}), result


def learned_rows(cfg: Params, data: CaseData, run: Any = None
                 ) -> tuple[dict[str, RegistrationResult], pd.DataFrame, pd.DataFrame]:
    """Case (b)'s learned row: ({"localnet": result}, its training summary, the engine's history per epoch),
    or ({}, empty, empty) when ``learned.enabled`` is off. The summary has the training pairs, epochs, the best
    epoch and its validation metric, the training time and the inference time on this case."""
    if not cfg.learned.enabled:
        return {}, pd.DataFrame(), pd.DataFrame()
    result, fitted = learned_case(cfg, data, cfg.learned, run=run)
    lc = cfg.learned
    summary = pd.DataFrame([{"model": "LocalNet", "train_pairs": lc.pairs * (2 if lc.both_directions else 1),
                             "epochs": fitted.epochs_run, "best_epoch": fitted.best_epoch + 1,
                             f"val_{lc.monitor}_best": fitted.best_metric,
                             "train_time_s": fitted.train_time_s, "inference_time_s": result.wall_time_s}]
                           ).set_index("model")
    return {"localnet": result}, summary, fitted.history


def second_engine(cfg: Params, data: CaseData) -> tuple[dict[str, RegistrationResult], str]:
    """(b) with elastix (rigid + B-spline, Mattes MI, its default maps): ({"elastix": result}, "") when
    itk-elastix is installed and ``deformable.elastix`` is on; otherwise ({}, why not)."""
    from medbench.registration.elastix import elastix_available, elastix_register

    if not cfg.deformable.elastix:
        return {}, "deformable.elastix is off"
    ok, reason = elastix_available()
    if not ok:
        return {}, reason
    c, d = data.case, cfg.deformable
    res = elastix_register(c.ct_deformed, c.ct, kind="bspline", resolutions=d.elastix_resolutions,
                           grid_spacing_mm=d.bspline_mesh_mm, iterations=d.elastix_iterations, threads=cfg.threads)
    return {"elastix": res}, ""


@dataclasses.dataclass
class BreathingEvaluation:
    """Per method: summary row, dense error maps, Jacobian maps, propagated labels and warped images."""

    table: pd.DataFrame
    organs: pd.DataFrame
    errors: dict[str, Volume]
    jacobians: dict[str, Volume]
    warped: dict[str, Volume]


def evaluate_breathing(data: CaseData, results: Mapping[str, RegistrationResult]) -> BreathingEvaluation:
    """Landmark TRE, dense TRE (body, organs), Dice of propagated labels, Jacobian, intensity agreement."""
    c = data.case
    fixed, lab = c.ct_deformed, c.labels_deformed
    body = lab.array > 0
    organ_mask = np.isin(lab.array, list(ORGANS))
    rows, organ_rows = [], []
    errors, jacobians, warped = {}, {}, {}
    for name, tx in [("before", None), *[(k, r.transform) for k, r in results.items()]]:
        res = results.get(name)
        err = metrics.dense_error_map(tx, c.displacement, fixed)
        errors[name] = err
        table = metrics.region_errors(err, lab, ORGANS)
        organ_all = float(np.median(err.array[organ_mask]))
        if tx is None:
            moved_img, moved_lab = c.ct, c.labels
            tre = metrics.tre_summary(c.landmarks.deformed, c.landmarks.ct)
            jac = fixed.with_array(np.ones(fixed.shape, np.float32))
        else:
            from medbench.image.resample import resample_to

            moved_img = resample_to(c.ct, fixed, tx, default=-1024.0)
            moved_lab = resample_to(c.labels, fixed, tx)
            tre = metrics.landmark_tre(tx, c.landmarks.deformed, c.landmarks.ct)
            jac = metrics.jacobian_determinant(tx, fixed)
        warped[name] = moved_img
        jacobians[name] = jac
        dice = metrics.dice(moved_lab, lab, ORGANS)
        js = metrics.jacobian_summary(jac, body)
        agree = metrics.intensity_agreement(fixed, moved_img, body)
        rows.append({"method": name, "landmark_tre_mm": tre["mean"], "dense_tre_body_median_mm":
                     table.loc["body", "median_mm"], "dense_tre_body_p95_mm": table.loc["body", "p95_mm"],
                     "dense_tre_organs_median_mm": organ_all, "dice_organs": float(np.nanmean(list(dice.values()))),
                     "jacobian_min": js["min"], "folding_percent": js["folding_percent"], "mae_hu": agree["mae"],
                     "ncc": agree["ncc"], "time_s": res.wall_time_s if res else 0.0,
                     "status": res.status if res else "-"})
        for organ, r in table.iterrows():
            organ_rows.append({"method": name, "region": organ, "median_mm": r["median_mm"], "p95_mm": r["p95_mm"],
                               "dice": dice.get(str(organ), np.nan)})
    organs = pd.DataFrame(organ_rows).pivot(index="region", columns="method", values="median_mm")
    return BreathingEvaluation(pd.DataFrame(rows).set_index("method"), organs[["before", *results]], errors,
                               jacobians, warped)


# ---- checked metrics -------------------------------------------------------------------------------------------

CHECKED: dict[str, str] = {
    "a_rigid_tre_before_mm": "case (a): landmark TRE before registration (the true CT<->MR offset)",
    "a_rigid_tre_after_mm": "case (a): TRE after rigid MI with a pyramid (target: below one CT voxel)",
    "a_rigid_single_res_tre_mm": "case (a): the same at one resolution",
    "d_mean_squares_tre_mm": "case (d): mean squares on CT<->MR - a wrong metric fails (large TRE)",
    "d_no_init_tre_mm": "case (d): origin 200 mm away, no initialisation - fails (large TRE) or is refused (-1)",
    "d_geometry_init_tre_mm": "case (d): the same images initialised by geometry - recovers",
    "c_mni_tre_before_mm": "case (c): MNI152 brain-point TRE before (the true rigid motion)",
    "c_mni_tre_after_mm": "case (c): after rigid MI despite inverted contrast and a bias field",
    "b_<method>_landmark_tre_mm": "case (b): landmark TRE per method (before, rigid_whole_image, rigid - the stage "
                                  "the deformable methods start from, bone-sampled by default - bspline, demons)",
    "b_<method>_dense_tre_organs_mm": "case (b): median dense TRE over liver, spleen and kidneys",
    "b_<method>_dense_tre_body_mm": "case (b): median dense TRE over the body",
    "b_<method>_dice": "case (b): mean organ Dice of the propagated CT labels",
    "b_<method>_folding_percent": "case (b): % of body voxels where the map folds (Jacobian <= 0)",
    "b_localnet_margin_mm": "case (b): best classical deformable organ median dense TRE minus the LocalNet's "
                            "(> 0: the learned row is better; < 0: worse)",
}


def checked_metrics(data: CaseData, rigid_tre: pd.DataFrame, failure_tre: pd.DataFrame,
                    breathing: BreathingEvaluation, mni: pd.DataFrame | None = None) -> dict[str, float]:
    """The numbers the notebook's checked cell prints (see :data:`CHECKED`)."""
    out: dict[str, float] = {}
    if mni is not None:
        out["c_mni_tre_before_mm"] = float(mni["tre_mean_mm"].iloc[0])
        out["c_mni_tre_after_mm"] = float(mni["tre_mean_mm"].iloc[-1])
    first, single = rigid_tre.index[0], rigid_tre.index[1]
    out["a_rigid_tre_before_mm"] = float(rigid_tre.loc[first, "tre_before_mm"])
    out["a_rigid_tre_after_mm"] = float(rigid_tre.loc[first, "tre_after_mm"])
    out["a_rigid_single_res_tre_mm"] = float(rigid_tre.loc[single, "tre_after_mm"])

    def after(row: str) -> float:
        v = failure_tre.loc[row].get("tre_after_mm", np.nan)
        return -1.0 if pd.isna(v) else float(v)

    names = list(failure_tre.index)
    out["d_mean_squares_tre_mm"] = after(names[0])
    out["d_no_init_tre_mm"] = after(names[1])
    out["d_geometry_init_tre_mm"] = after(names[2])
    for method, r in breathing.table.iterrows():
        if method not in CHECKED_METHODS:
            continue
        out[f"b_{method}_landmark_tre_mm"] = float(r["landmark_tre_mm"])
        out[f"b_{method}_dense_tre_organs_mm"] = float(r["dense_tre_organs_median_mm"])
        out[f"b_{method}_dense_tre_body_mm"] = float(r["dense_tre_body_median_mm"])
        out[f"b_{method}_dice"] = float(r["dice_organs"])
        out[f"b_{method}_folding_percent"] = float(r["folding_percent"])
    if "localnet" in breathing.table.index:
        t = breathing.table["dense_tre_organs_median_mm"]
        best = min(float(t[m]) for m in CLASSICAL_DEFORMABLE if m in t.index)
        out["b_localnet_margin_mm"] = best - float(t["localnet"])
    return out


def targets(rigid_tre: pd.DataFrame, results: Mapping[str, RegistrationResult], breathing: BreathingEvaluation,
            voxel_mm: float) -> pd.DataFrame:
    """The issue's smoke targets, measured in this run: value, target and whether it is met."""
    first = rigid_tre.index[0]
    t = breathing.table
    rigid_organs = float(t.loc["rigid", "dense_tre_organs_median_mm"])
    rows = [
        {"target": "rigid CT<->MR TRE < 1 voxel", "value": float(rigid_tre.loc[first, "tre_after_voxels"]),
         "goal": "< 1 voxel", "met": bool(rigid_tre.loc[first, "tre_after_voxels"] < 1)},
        {"target": "rigid CT<->MR time", "value": float(rigid_tre.loc[first, "time_s"]), "goal": "<= 10 s",
         "met": bool(rigid_tre.loc[first, "time_s"] <= 10)},
    ]
    for m in [k for k in t.index if k != "before" and not str(k).startswith("rigid")]:
        ratio = rigid_organs / max(float(t.loc[m, "dense_tre_organs_median_mm"]), 1e-9)
        rows.append({"target": f"{m}: organ median dense TRE vs the rigid stage alone", "value": ratio,
                     "goal": ">= 3x",
                     "met": bool(ratio >= 3 and t.loc[m, "folding_percent"] == 0)})
    del results, voxel_mm
    return pd.DataFrame(rows).set_index("target")


# ---- display helpers and outputs -------------------------------------------------------------------------------

#: CT display window for overlays (HU): soft tissue.
CT_WINDOW = (-200.0, 300.0)


def rigid_views(data: CaseData, result: RegistrationResult) -> dict[str, Volume]:
    """The CT on the MR grid before (identity: scanner coordinates) and after the rigid result."""
    from medbench.image.resample import resample_to

    c = data.case
    return {"before (scanner coordinates)": resample_to(c.ct, c.t1, None, default=-1024.0),
            "after rigid MI": result.resample(c.ct, default=-1024.0)}


def save_transforms(run: Any, results: Mapping[str, RegistrationResult]) -> dict[str, str]:
    """Write every converged transform into the run folder (``transforms/<name>.tfm`` or ``.h5``); name -> path."""
    out = {}
    for name, res in results.items():
        if not res.ok:
            continue
        stem = "".join(ch if ch.isalnum() else "_" for ch in name).strip("_")
        suffix = ".h5" if any(k in res.method for k in ("demons", "bspline", "localnet")) else ".tfm"
        path = run.save_artifact(f"transforms/{stem}{suffix}", lambda p, r=res: r.save(p), suffix=suffix)
        out[name] = str(path)
    return out


#: Flat parameter overrides for a seconds-long functional run (the notebook re-run test injects them).
QUICK: dict[str, Any] = {
    "data_image_size": [32, 32, 16], "data_spacing": [12.5, 12.5, 16.0], "rigid_iterations": 20,
    "deformable_bspline_iterations": 3, "deformable_demons_iterations": 5, "deformable_elastix": False,
    "mni_spacing_mm": 8.0, "learned_pairs": 1, "learned_val_pairs": 1, "learned_epochs": 1, "learned_channels": 4,
    "learned_levels": 2,
}
