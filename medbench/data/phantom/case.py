"""One synthetic patient (:class:`PhantomCase`) and how it is generated (:func:`generate_case`).

Every case is a deterministic function of (spec, index): each part draws
from its own ``numpy.random.Generator`` spawned from
``SeedSequence([seed, index])``; the global RNG is never touched. The cohort
plan (split, label, cue, shift) comes from :func:`~medbench.data.phantom.spec.case_plans`.

Volumes and their grids (all :class:`~medbench.image.volume.Volume`, LPS):

* CT grid: ``ct`` (HU as a scanner stores them: integers in [-1024, 3071],
  noise from :func:`medbench.physics.simulate_ct`), ``ct_clean`` (the same
  scan without noise, float), ``labels`` (label map v2), ``lesions``
  (instance map 1..n), ``ct_deformed`` / ``labels_deformed`` (a second scan
  during breathing), optional ``ct_dose<pct>`` (the same scan at other dose
  fractions: 050 = 50 %).
* PET grid: ``pet`` (SUV), ``pet_clean`` (noise-free), ``labels_pet``.
* MR grid: ``t1``, ``t2`` (a.u.), ``labels_mr`` — the anatomy moved by
  ``rigid``.

Ground truth: ``rigid`` maps CT world points to MR world points
(``sitk.Resample(mr, ct, case.rigid.to_sitk())`` aligns MR onto CT);
``displacement`` is u(x) on the CT grid with
``ct_deformed_clean(x) = ct_clean(x + u(x))`` (linear interpolation; labels
nearest; ITK's convention: fixed = deformed CT, moving = CT), sampled from
the analytic ``deformation``; ``landmarks`` are named points in the ``ct``,
``mr`` and ``deformed`` spaces; ``lesion_info`` is the lesion table;
``classification`` the case label with its cause and the planted cue.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage

from medbench.data.phantom import modalities as mod
from medbench.data.phantom.anatomy import Anatomy, Mapping, draw_anatomy, render
from medbench.data.phantom.fields import FieldBank
from medbench.data.phantom.labels import (
    BENCHMARK_ORGANS,
    CYST,
    KIDNEY_L,
    KIDNEY_R,
    LABELS,
    LESION_LABELS,
    LIVER,
    MALIGNANT,
    ORGAN_LABELS,
    SPLEEN,
    TISSUE_IDS,
)
from medbench.data.phantom.lesions import (
    Lesion,
    LesionRaster,
    blob_from_dict,
    blob_to_dict,
    draw_lesions,
    lesion_record,
    partial_volume,
    rasterise,
)
from medbench.data.phantom.motion import BreathingDeformation, draw_rigid
from medbench.data.phantom.shapes import Blob
from medbench.data.phantom.spec import SHIFT_DOSE, SHIFT_SCALE, PhantomSpec, case_plans
from medbench.errors import ConfigError
from medbench.image.transforms import DisplacementField, Landmarks, RigidTransform
from medbench.image.volume import Volume
from medbench.physics import calibrate_photons, ct_noise
from medbench.physics.ct import line_integrals, noise_from_projections

_STREAMS = ("fields", "anatomy", "values", "lesions", "calibration", "ct_noise", "deformed_noise", "dose_noise",
            "pet_noise", "mr", "rigid", "deformation", "identifiers", "acquisition")
#: Smoothing (mm) of the random fields: bowel/fat layout, bowel content, uptake patches, fat gaps, texture.
FIELD_SMOOTHING_MM = {"filler": 14.0, "bowel": 7.0, "hot": 8.0, "perirenal": 8.0, "texture": 5.0}
#: The planted cue: a radio-opaque skin marker of this attenuation (HU); its radius is the spec's ``cue_radius_mm``.
CUE_HU = 900.0
#: Fluorine-18 half-life (s).
F18_HALF_LIFE_S = 6586.2
#: Cause of the classification label.
CAUSE = "has_malignant_lesion"

#: Volume metadata by name (ct_dose<pct> volumes share the ct entry).
VOLUME_META: dict[str, dict[str, str]] = {
    "ct": {"modality": "CT", "units": "HU", "space": "ct"},
    "ct_clean": {"modality": "CT", "units": "HU", "space": "ct", "note": "noise-free"},
    "pet": {"modality": "PT", "units": "SUV", "space": "pet"},
    "pet_clean": {"modality": "PT", "units": "SUV", "space": "pet", "note": "noise-free"},
    "t1": {"modality": "MR", "units": "a.u.", "space": "mr", "sequence": "T1w SE 500/12"},
    "t2": {"modality": "MR", "units": "a.u.", "space": "mr", "sequence": "T2w SE 4000/90"},
    "labels": {"modality": "SEG", "units": "label", "space": "ct"},
    "lesions": {"modality": "SEG", "units": "instance", "space": "ct"},
    "labels_pet": {"modality": "SEG", "units": "label", "space": "pet"},
    "labels_mr": {"modality": "SEG", "units": "label", "space": "mr"},
    "ct_deformed": {"modality": "CT", "units": "HU", "space": "deformed"},
    "labels_deformed": {"modality": "SEG", "units": "label", "space": "deformed"},
}
BASE_VOLUMES = tuple(VOLUME_META)


def dose_name(fraction: float) -> str:
    """Volume name of the CT at a dose fraction: 0.25 -> ``ct_dose025``."""
    return f"ct_dose{int(round(fraction * 100)):03d}"


def volume_meta(name: str) -> dict[str, Any]:
    if name.startswith("ct_dose"):
        return {**VOLUME_META["ct"], "note": f"dose {int(name[7:])} % of the reference"}
    return VOLUME_META[name]


@dataclass(frozen=True, eq=False)
class PhantomCase:
    """One synthetic patient: images on three grids, labels and the ground truth that relates them."""

    case_id: str
    index: int
    spec: PhantomSpec
    split: str
    ct: Volume
    ct_clean: Volume
    pet: Volume
    pet_clean: Volume
    t1: Volume
    t2: Volume
    labels: Volume
    lesions: Volume
    labels_pet: Volume
    labels_mr: Volume
    ct_deformed: Volume
    labels_deformed: Volume
    displacement: DisplacementField  # u(x) on the CT grid, LPS mm: deformed(x) = ct(x + u(x))
    rigid: RigidTransform
    deformation: BreathingDeformation
    landmarks: Landmarks
    lesion_info: tuple[dict[str, Any], ...] = ()
    classification: dict[str, Any] = field(default_factory=dict)
    acquisition: dict[str, Any] = field(default_factory=dict)
    tissue_values: dict[str, Any] = field(default_factory=dict)
    identifiers: dict[str, str] = field(default_factory=dict)
    dose_volumes: dict[str, Volume] = field(default_factory=dict)

    def volumes(self) -> dict[str, Volume]:
        """Every image and label volume by name (the extra dose levels last)."""
        return {**{name: getattr(self, name) for name in BASE_VOLUMES}, **self.dose_volumes}

    @property
    def n_lesions(self) -> int:
        return len(self.lesion_info)

    @property
    def label(self) -> int:
        """The classification label: 1 if the case has a malignant lesion (its cause), else 0."""
        return int(self.classification.get("label", 0))

    def lesion_table(self) -> pd.DataFrame:
        """One row per lesion: class, host, centre (CT, LPS mm), size, per-modality values, CT-occult flag."""
        if not self.lesion_info:
            return pd.DataFrame(columns=["lesion", "class", "diameter_mm", "ct_occult"]).set_index("lesion")
        return pd.DataFrame(list(self.lesion_info)).set_index("lesion")

    def cause_mask(self) -> Volume:
        """Where the label's cause is: every CT voxel a malignant lesion covers, even partly (CT grid)."""
        arr = np.zeros(self.ct.shape, np.uint8)
        for row in self.lesion_info:
            if row["class"] == "malignant":
                flat, _ = partial_volume(blob_from_dict(row["shape"]), self.ct)
                arr.reshape(-1)[flat] = 1
        return self.labels.with_array(arr, role="label", name="cause")

    def cue_mask(self) -> Volume:
        """Where the planted cue is (CT grid; empty without a cue): every voxel the marker covers, even partly."""
        arr = np.zeros(self.ct.shape, np.uint8)
        cue = self.classification.get("cue_center_mm")
        if self.classification.get("cue") and cue is not None:
            shape = Blob(np.asarray(cue), np.full(3, float(self.classification["cue_radius_mm"])))
            flat, _ = partial_volume(shape, self.ct)
            arr.reshape(-1)[flat] = 1
        return self.labels.with_array(arr, role="label", name="cue")

    def displacement_sitk(self) -> Any:
        """The deformation as a ``SimpleITK.DisplacementFieldTransform`` (fixed = deformed CT, moving = CT)."""
        return self.displacement.to_sitk()

    def low_dose_ct(self, dose_fraction: float, seed: int = 0) -> Volume:
        """This scan at ``dose_fraction`` of the reference dose: ``ct_clean`` through the same CT operator."""
        rng = np.random.default_rng(np.random.SeedSequence([self.spec.seed, self.index, 0xD05E, seed]))
        acq = self.acquisition
        noise = ct_noise(self.ct_clean.array, dose_fraction * float(acq["ct_dose"]), rng,
                         spacing_mm=float(self.ct.spacing[0]), photons=float(acq["ct_photons"]),
                         n_angles=int(acq["ct_views"]))
        return self.ct.with_array(_store_ct(self.ct_clean.array + noise), name=dose_name(dose_fraction),
                                  **volume_meta(dose_name(dose_fraction)))

    def stats(self) -> dict[str, Any]:
        """Numbers that summarise the case: split, label, lesions, organ volumes (mL) and mean HU, motion."""
        lab, hu = self.labels.array, self.ct.array
        voxel_ml = float(np.prod(self.ct.spacing)) / 1000.0
        table = self.lesion_table()
        row: dict[str, Any] = {
            "case_id": self.case_id, "split": self.split, "label": self.label, "n_lesions": self.n_lesions,
            "n_malignant": int((table["class"] == "malignant").sum()) if len(table) else 0,
            "n_cyst": int((table["class"] == "cyst").sum()) if len(table) else 0,
            "n_ct_occult": int(table["ct_occult"].sum()) if len(table) else 0,
            "cue": bool(self.classification.get("cue", False)),
        }
        counts = np.bincount(lab.reshape(-1), minlength=len(LABELS))
        sums = np.bincount(lab.reshape(-1), weights=hu.reshape(-1).astype(np.float64), minlength=len(LABELS))
        for value in ORGAN_LABELS + LESION_LABELS:
            row[f"{LABELS[value]}_ml"] = round(float(counts[value]) * voxel_ml, 3)
        for value in BENCHMARK_ORGANS + LESION_LABELS:
            row[f"{LABELS[value]}_hu"] = round(float(sums[value] / counts[value]), 2) if counts[value] else None
        row["ct_noise_hu"] = round(float(self.acquisition.get("ct_noise_target_hu", float("nan"))), 2)
        for axis, angle in zip("xyz", self.rigid.angles_deg):
            row[f"rot_{axis}_deg"] = round(float(angle), 3)
        for axis, t in zip("xyz", self.rigid.translation_mm):
            row[f"t_{axis}_mm"] = round(float(t), 3)
        row["max_displacement_mm"] = round(float(self.displacement.magnitude.max()), 3)
        return row

    def __repr__(self) -> str:
        shape = "x".join(str(v) for v in self.ct.shape)
        spacing = "x".join(f"{v:g}" for v in self.ct.spacing)
        return (f"PhantomCase({self.case_id} [{self.split}], label {self.label}: CT {shape} voxels at {spacing} mm, "
                f"{self.n_lesions} lesion(s), MR rotation {self.rigid.rotation_angle_deg:.1f} deg, "
                f"translation {np.linalg.norm(self.rigid.translation_mm):.1f} mm)")


def _streams(spec: PhantomSpec, index: int) -> dict[str, np.random.Generator]:
    seqs = np.random.SeedSequence([spec.seed, index]).spawn(len(_STREAMS))
    return {name: np.random.default_rng(seq) for name, seq in zip(_STREAMS, seqs)}


def _store_ct(hu: np.ndarray) -> np.ndarray:
    """HU as a scanner stores them: rounded, clipped to [-1024, 3071], float32."""
    return np.clip(np.round(hu), -1024, 3071).astype(np.float32)


def _identifiers(rng: np.random.Generator, spec: PhantomSpec, index: int) -> dict[str, str]:
    """Synthetic but realistic-looking identifying values, unique per case (planted for de-id tests)."""
    birth = np.datetime64("1940-01-01") + np.timedelta64(int(rng.integers(0, 365 * 50)), "D")
    study = np.datetime64("2020-01-01") + np.timedelta64(int(rng.integers(0, 365 * 5)), "D")
    age = int((study - birth).astype(int) // 365.25)
    return {
        "PatientName": f"PHANTOM^CASE{index:03d}",
        "PatientID": f"PH-{spec.seed}-{index:03d}",
        "PatientBirthDate": str(birth).replace("-", ""),
        "PatientSex": str(rng.choice(["F", "M"])),
        "PatientAge": f"{age:03d}Y",
        "StudyDate": str(study).replace("-", ""),
        "StudyTime": f"{int(rng.integers(7, 19)):02d}{int(rng.integers(0, 60)):02d}{int(rng.integers(0, 60)):02d}",
        "AccessionNumber": f"A{spec.seed % 10**6:06d}{index:03d}",
        "StudyID": f"{index + 1}",
        "ReferringPhysicianName": f"REFERRER^CASE{index:03d}",
        "InstitutionName": "medbench phantom hospital",
        "OtherPatientIDs": f"MRN{spec.seed % 10**6:06d}{index:04d}",
    }


def _cue_center(anatomy: Anatomy, radius_mm: float) -> np.ndarray:
    """On the anterior skin, left of the midline, mid-abdomen (anatomy mm)."""
    t = anatomy.torso
    z = float(anatomy.dome.apex[0] - 100.0)
    x = float(t.center[0] + 0.35 * t.half[0])
    lo, hi = float(t.center[1] - 2 * t.half[1]), float(t.center[1])
    for _ in range(40):  # bisection for the skin (body radius 1) in front of the centre
        mid = 0.5 * (lo + hi)
        inside = t.body_radius(np.array([[x, mid, z]], np.float32))[0] <= 1.0
        lo, hi = (lo, mid) if inside else (mid, hi)
    return np.array([x, hi - 0.7 * radius_mm, z])


def _source_indices(grid: Volume, u: np.ndarray) -> np.ndarray:
    """Fractional voxel indices (3, N) of x + u(x) for every voxel x of ``grid`` (``u`` [i, j, k, 3] mm)."""
    inv = np.linalg.inv(grid.affine[:3, :3]).astype(np.float32)
    out = np.empty((3, int(np.prod(grid.shape))), np.float32)
    axes = np.indices(grid.shape, dtype=np.float32).reshape(3, -1)
    uu = u.reshape(-1, 3)
    for c in range(3):
        out[c] = axes[c] + uu @ inv[c]
    return out


def _lesion_labels(labels: np.ndarray, instances: np.ndarray | None, rasters: list[LesionRaster]) -> None:
    """Label voxels at least half covered by a lesion that belong to its host organ."""
    flat_lab = labels.reshape(-1)
    flat_inst = instances.reshape(-1) if instances is not None else None
    for r in rasters:
        on = r.flat[(r.fraction >= 0.5) & (flat_lab[r.flat] == r.lesion.host)]
        flat_lab[on] = r.lesion.label
        if flat_inst is not None:
            flat_inst[on] = r.lesion.index


def case_anatomy(spec: PhantomSpec, index: int) -> Anatomy:
    """The analytic anatomy of case ``index`` (what :func:`generate_case` renders), without any image."""
    if not 0 <= index < spec.n_cases:
        raise ConfigError(f"case index must be in [0, {spec.n_cases}) for this spec, got {index}")
    rng = _streams(spec, index)
    return draw_anatomy(rng["anatomy"], FieldBank.draw(rng["fields"], FIELD_SMOOTHING_MM))


def generate_case(spec: PhantomSpec, index: int) -> PhantomCase:
    """Generate case ``index`` of ``spec`` (deterministic for the pair)."""
    if not 0 <= index < spec.n_cases:
        raise ConfigError(f"case index must be in [0, {spec.n_cases}) for this spec, got {index}")
    plan = case_plans(spec)[index]
    rng = _streams(spec, index)
    shifted = plan.shifted
    scale = SHIFT_SCALE if shifted and spec.shift == "scale" else 1.0
    contrast = shifted and spec.shift == "contrast"
    dose = spec.ct_dose * (SHIFT_DOSE if shifted and spec.shift == "noise" else 1.0)
    identity = Mapping(scale=scale)

    fields = FieldBank.draw(rng["fields"], FIELD_SMOOTHING_MM)
    anatomy = draw_anatomy(rng["anatomy"], fields)
    values = mod.draw_values(rng["values"])
    acq_rng = rng["acquisition"]
    pet_grid, mr_grid, grid = spec.pet_grid(), spec.mr_grid(), spec.grid()
    pet_res = float(np.sqrt(spec.pet_fwhm_mm**2 + spec.pet_postfilter_mm**2 + float(np.mean(pet_grid.spacing)) ** 2))

    # ---- lesions ------------------------------------------------------------------------
    lrng = rng["lesions"]
    n_mal = 1 + min(int(lrng.poisson(spec.extra_malignant_mean)), 3) if plan.label else 0
    n_cyst = min(int(lrng.poisson(1.2)), 4)
    n_mal = min(n_mal, spec.max_lesions)
    n_cyst = min(n_cyst, spec.max_lesions - n_mal)
    tid = TISSUE_IDS
    hosts = ((LIVER, "liver"), (SPLEEN, "spleen"), (KIDNEY_L, "kidney"), (KIDNEY_R, "kidney"))
    host_ct = {h: float(values.ct_phase(False)[tid[t]]) for h, t in hosts}
    host_suv = {h: float(values.pet[tid[t]]) for h, t in hosts}
    lesions: tuple[Lesion, ...] = draw_lesions(lrng, anatomy, n_malignant=n_mal, n_cyst=n_cyst, host_ct=host_ct,
                                               liver_suv=host_suv[LIVER], host_suv=host_suv, pet_fwhm_mm=pet_res)

    # ---- CT ---------------------------------------------------------------------------------
    ct_r = render(anatomy, grid, identity)
    ct_rasters = rasterise(lesions, grid, identity)
    labels = ct_r.label
    instances = np.zeros(grid.shape, np.uint8)
    _lesion_labels(labels, instances, ct_rasters)
    clean = mod.ct_clean(ct_r.tissue, mod.texture(fields, ct_r.points, ct_r.tissue), values, ct_rasters,
                         contrast=contrast)
    cue_center = None
    if plan.cue:
        cue_center = _cue_center(anatomy, spec.cue_radius_mm) * scale
        flat, frac = partial_volume(Blob(cue_center, np.full(3, spec.cue_radius_mm)), grid)
        clean.reshape(-1)[flat] = (1 - frac) * clean.reshape(-1)[flat] + frac * CUE_HU
    noise_target = float(acq_rng.uniform(*spec.ct_noise_hu))
    views = int(spec.ct_views or max(64, max(grid.shape[:2]) // 2))
    spacing_xy = float(grid.spacing[0])
    liver = labels == LIVER
    kz = int(np.clip(np.round(np.argwhere(liver)[:, 2].mean()) if liver.any() else grid.shape[2] // 2, 1,
                     grid.shape[2] - 2))
    ks = slice(kz - 1, kz + 2)
    calib_mask = liver[:, :, ks] if liver[:, :, ks].sum() >= 10 else (labels[:, :, ks] > 0)
    photons = calibrate_photons(clean[:, :, ks], calib_mask, noise_target, rng["calibration"],
                                spacing_mm=spacing_xy, n_angles=views)

    def scan(image: np.ndarray, p: np.ndarray, fraction: float, stream: np.random.Generator) -> np.ndarray:
        return _store_ct(image + noise_from_projections(p, image.shape[:2], fraction, stream, spacing_mm=spacing_xy,
                                                        photons=photons))

    p_clean = line_integrals(clean, spacing_mm=spacing_xy, n_angles=views)
    ct = scan(clean, p_clean, dose, rng["ct_noise"])
    dose_volumes = {dose_name(d): scan(clean, p_clean, d * dose, rng["dose_noise"]) for d in spec.dose_levels}
    del p_clean

    # ---- breathing: the deformed CT -------------------------------------------------------------
    deformation = BreathingDeformation.draw(rng["deformation"], anatomy.torso, float(anatomy.dome.apex[0]), scale,
                                            spec.breathing_mm)
    disp = deformation.sample(grid)
    src = _source_indices(grid, disp.array)
    deformed_clean = ndimage.map_coordinates(clean, src, order=1, mode="nearest").reshape(grid.shape)
    labels_deformed = ndimage.map_coordinates(labels, src, order=0, mode="nearest").reshape(grid.shape)
    del src
    deformed_clean = deformed_clean.astype(np.float32)
    ct_deformed = scan(deformed_clean, line_integrals(deformed_clean, spacing_mm=spacing_xy, n_angles=views), dose,
                       rng["deformed_noise"])

    # ---- PET -----------------------------------------------------------------------------------
    pet_r = render(anatomy, pet_grid, identity)
    pet_rasters = rasterise(lesions, pet_grid, identity)
    activity = mod.pet_activity(pet_r.tissue, mod.texture(fields, pet_r.points, pet_r.tissue), values, pet_rasters)
    weight_kg = round(float(np.clip(72.0 * (float(anatomy.torso.half[0]) * scale / 165.0) ** 2
                                    * np.exp(acq_rng.normal(0.0, 0.1)), 40.0, 150.0)), 1)  # as a scale reads it
    injected_bq = float(np.round(3.7e6 * weight_kg * acq_rng.uniform(0.85, 1.15), -5))
    uptake_s = float(np.round(acq_rng.uniform(55.0, 75.0) * 60.0))
    count_factor = float(acq_rng.uniform(0.6, 1.6)) * (SHIFT_DOSE if shifted and spec.shift == "noise" else 1.0)
    pet, pet_clean = mod.pet_images(activity, pet_grid, rng["pet_noise"], fwhm_mm=spec.pet_fwhm_mm,
                                    postfilter_mm=spec.pet_postfilter_mm, counts_per_ml=spec.pet_counts * count_factor)
    labels_pet = pet_r.label
    _lesion_labels(labels_pet, None, pet_rasters)

    # ---- MR --------------------------------------------------------------------------------------
    rigid = draw_rigid(rng["rigid"], spec.max_rotation_deg, spec.translation_mm)
    mr_map = Mapping(rigid=rigid, scale=scale)
    mr_r = render(anatomy, mr_grid, mr_map)
    mr_rasters = rasterise(lesions, mr_grid, mr_map)
    labels_mr = mr_r.label
    _lesion_labels(labels_mr, None, mr_rasters)
    mr_rng = rng["mr"]
    gain = float(1000.0 * np.exp(mr_rng.normal(0.0, 0.25)))
    bias_amp = float(mr_rng.uniform(*spec.mr_bias))
    bias = mod.bias_field(mr_grid, mr_rng, bias_amp)
    mr: dict[str, np.ndarray] = {}
    snr: dict[str, float] = {}
    mr_tex = mod.texture(fields, mr_r.points, mr_r.tissue)
    for w in ("t1", "t2"):
        sig = mod.mr_signal(mr_r.tissue, mr_tex, values, mr_rasters, w) * np.float32(gain) * bias
        ref = float(np.median(sig[labels_mr == LIVER])) if (labels_mr == LIVER).any() else float(sig.max())
        snr[w] = float(mr_rng.uniform(*spec.mr_snr))
        mr[w] = mod.rician(mr_rng, sig, ref / snr[w])

    # ---- ground truth: landmarks, lesion table, classification --------------------------------------
    names = list(anatomy.landmarks)
    points = [anatomy.landmarks[n] for n in names]
    names += [f"lesion_{les.index}" for les in lesions]
    points += [les.shape.center for les in lesions]
    ct_pts = np.asarray(points, dtype=float) * scale
    landmarks = Landmarks(tuple(names), {"ct": ct_pts, "mr": rigid.apply(ct_pts),
                                         "deformed": deformation.apply_inverse(ct_pts)})
    voxel_ml = float(np.prod(grid.spacing)) / 1000.0
    liver_pet = float(pet_clean[labels_pet == LIVER].mean()) if (labels_pet == LIVER).any() else float("nan")
    info = []
    for les, r_ct, r_pet in zip(lesions, ct_rasters, pet_rasters):
        rec = lesion_record(les)
        for key in ("center_x_mm", "center_y_mm", "center_z_mm", "half_axis_0_mm", "half_axis_1_mm", "half_axis_2_mm",
                    "diameter_mm"):
            rec[key] = round(rec[key] * scale, 4)
        rec["shape"] = blob_to_dict(les.shape.scaled(scale, np.zeros(3)))  # world (CT) mm
        rec["volume_ml"] = round(float((instances == les.index).sum()) * voxel_ml, 4)
        rec["volume_exact_ml"] = round(float(r_ct.fraction.sum()) * voxel_ml, 4)
        peak = float(pet_clean.reshape(-1)[r_pet.flat].max()) if len(r_pet.flat) else float("nan")
        rec["pet_peak_suv"] = round(peak, 4)
        rec["pet_peak_to_liver"] = round(peak / liver_pet, 4) if liver_pet > 0 else None
        rec["t2_to_host"] = round(float(mod.spin_echo(les.pd, les.t1_ms, les.t2_ms, *mod.T2W))
                                  / float(mod.spin_echo(values.pd[tid["liver"]], values.t1_ms[tid["liver"]],
                                                        values.t2_ms[tid["liver"]], *mod.T2W)), 4)
        info.append(rec)
    n_malignant = sum(1 for les in lesions if les.label == MALIGNANT)
    classification = {
        "label": int(n_malignant > 0),
        "cause": CAUSE,
        "n_malignant": n_malignant,
        "n_cyst": sum(1 for les in lesions if les.label == CYST),
        "planned_label": plan.label,
        "cue": bool(plan.cue),
        "cue_description": "radio-opaque skin marker on the anterior abdominal wall (CT only)",
        "cue_center_mm": None if cue_center is None else [float(v) for v in cue_center],
        "cue_radius_mm": spec.cue_radius_mm,
        "cue_split": spec.cue_split if spec.spurious_cue else None,
        "cue_correlation": spec.cue_correlation if spec.spurious_cue else None,
    }
    acquisition = {
        "ct_dose": dose,
        "ct_photons": photons,
        "ct_views": views,
        "ct_noise_target_hu": noise_target,
        "contrast_phase": "portal_venous" if contrast else "unenhanced",
        "anatomy_scale": scale,
        "shifted": shifted,
        "shift": spec.shift if shifted else "none",
        "pet_counts_per_ml": spec.pet_counts * count_factor,
        "patient_weight_kg": weight_kg,
        "pet_injected_activity_bq": injected_bq,
        "pet_uptake_time_s": uptake_s,
        "pet_half_life_s": F18_HALF_LIFE_S,
        "pet_resolution_fwhm_mm": pet_res,
        "mr_gain": gain,
        "mr_bias_amplitude": bias_amp,
        "mr_snr_t1": snr["t1"],
        "mr_snr_t2": snr["t2"],
    }

    def vol(base: Volume, arr: np.ndarray, name: str, dtype: Any = np.float32) -> Volume:
        role = "label" if volume_meta(name)["modality"] == "SEG" else "image"
        return base.with_array(np.asarray(arr).astype(dtype), role=role, name=name,  # type: ignore[arg-type]
                               **volume_meta(name))

    return PhantomCase(
        case_id=f"case{index:03d}",
        index=index,
        spec=spec,
        split=plan.split,
        ct=vol(grid, ct, "ct"),
        ct_clean=vol(grid, clean, "ct_clean"),
        pet=vol(pet_grid, pet, "pet"),
        pet_clean=vol(pet_grid, pet_clean, "pet_clean"),
        t1=vol(mr_grid, mr["t1"], "t1"),
        t2=vol(mr_grid, mr["t2"], "t2"),
        labels=vol(grid, labels, "labels", np.uint8),
        lesions=vol(grid, instances, "lesions", np.uint8),
        labels_pet=vol(pet_grid, labels_pet, "labels_pet", np.uint8),
        labels_mr=vol(mr_grid, labels_mr, "labels_mr", np.uint8),
        ct_deformed=vol(grid, ct_deformed, "ct_deformed"),
        labels_deformed=vol(grid, labels_deformed, "labels_deformed", np.uint8),
        displacement=disp,
        rigid=rigid,
        deformation=deformation,
        landmarks=landmarks,
        lesion_info=tuple(info),
        classification=classification,
        acquisition=acquisition,
        tissue_values=values.to_dict(),
        identifiers=_identifiers(rng["identifiers"], spec, index),
        dose_volumes={name: vol(grid, arr, name) for name, arr in dose_volumes.items()},
    )
