"""A seeded synthetic multimodal abdomen cohort: the data every notebook runs on.

Each case is an abdomen-like cross-section extruded along z with smooth
variation: a body outline of soft tissue in air with a subcutaneous fat
layer, a liver (tapered superquadric), a spleen, two kidneys, a lumbar spine
(vertebral bodies with cortical rim, end plates and discs, a spinal canal,
posterior arch and spinous process), the aorta, and 0..``max_lesions``
ellipsoid lesions inside the liver. Sizes, positions, rotations and lesion
count vary from case to case. The anatomy is defined analytically in world
millimetres and scaled to the field of view (at the smoke size, 64x64x32 at
1.5x1.5x3 mm, it is a roughly 1:4 miniature of a real abdomen).

Conventions (all geometry is LPS millimetres, like DICOM and SimpleITK):

* Every volume is a :class:`~medbench.image.volume.Volume` on the same grid:
  identity direction, origin chosen so the grid is centred on the patient
  origin (0, 0, 0). PET and MR use the CT grid too (PET is low resolution
  through blur, not through a coarser grid) so that fusion models can stack
  them; the MR *content* is moved (below).
* ``ct``: Hounsfield units, whole numbers as a scanner stores them, clipped to
  [-1024, 3071]; non-contrast (kidneys 35 HU, aorta 45 HU). ``ct_clean`` is the
  same image before noise (float), ground truth for denoising.
* ``pet``: SUV-like uptake, Gaussian blur of ``pet_fwhm_mm`` then Poisson
  counting noise (``pet_counts`` expected counts per SUV unit and voxel) and a
  light post-filter (0.5 voxel), like a reconstructed PET.
* ``t1``/``t2``: MR-like contrasts in arbitrary units (fat bright on T1, fluid
  and lesions bright on T2, cortical bone and flowing blood dark, air 0) with a
  smooth multiplicative bias field and Rician noise.
* Rigid offset: the MR volumes show the anatomy moved by ``case.rigid``, which
  **maps CT world points (LPS mm) to MR world points**:
  ``p_mr = R (p_ct - c) + c + t``. It is exactly the transform a SimpleITK
  registration with fixed=CT and moving=MR should recover
  (``case.rigid.to_sitk()``; ``sitk.Resample(mr, ct, case.rigid.to_sitk())``
  aligns the MR to the CT).
* Deformation: ``displacement[i, j, k]`` is u(x) in mm (LPS components) at the
  CT voxel x, and ``ct_deformed(x) = ct_clean(x + u(x))`` plus a fresh noise
  realisation (a second scan of the warped anatomy). This is ITK's
  displacement-field convention: ``case.displacement_sitk()`` resampling the CT
  onto the CT grid reproduces ``ct_deformed``'s anatomy.
* Landmarks: named points in CT space and their MR (``rigid.apply``) and
  deformed-CT (the q with q + u(q) = p) counterparts, for TRE.

Label map (``LABELS``, stable across versions): 0 background (air),
1 soft tissue (muscle, bowel, discs, spinal canal), 2 fat, 3 liver, 4 spleen,
5 kidney_left, 6 kidney_right, 7 bone, 8 lesion, 9 aorta. ``lesions`` numbers
the lesions 1..n (0 = none); ``labels_mr`` and ``labels_deformed`` are the
label maps of the MR and deformed-CT anatomy.

Every case is a deterministic function of (spec, index): each part (anatomy,
lesions, noise, transforms, identifiers) draws from its own
``numpy.random.Generator`` spawned from ``SeedSequence([seed, index])``;
the global RNG is never touched.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, ValidationError
from scipy import ndimage

from medbench.atomic import atomic_dir, write_text
from medbench.data.cache import build_entry, cache_root, is_complete
from medbench.errors import ConfigError, DataError, format_validation_error
from medbench.image.transforms import DisplacementField, Landmarks, RigidTransform, SmoothDeformation, euler_zxy
from medbench.image.volume import Volume
from medbench.io.dicom.write import write_series

#: Bumped whenever the generator's output changes; part of every cache key.
PHANTOM_VERSION = 1

#: Organ label map values (stable).
LABELS: dict[int, str] = {
    0: "background",
    1: "soft_tissue",
    2: "fat",
    3: "liver",
    4: "spleen",
    5: "kidney_left",
    6: "kidney_right",
    7: "bone",
    8: "lesion",
    9: "aorta",
}
LABEL_IDS: dict[str, int] = {name: value for value, name in LABELS.items()}

AIR, SOFT, FAT, LIVER, SPLEEN, KIDNEY_L, KIDNEY_R, BONE, LESION, AORTA = range(10)
#: Internal tissue class for cortical bone (labelled BONE, brighter on CT).
_CORTEX = 10

#: Per-tissue signal (index = tissue id; bone = cancellous marrow, last = cortex).
#: Lesions use per-lesion values drawn from ``_LESION_RANGES`` instead.
TISSUE_VALUES: dict[str, tuple[float, ...]] = {
    #      air     soft   fat    liver  spleen kidL   kidR   bone   lesion aorta  cortex
    "ct": (-1000.0, 40.0, -100.0, 60.0, 50.0, 35.0, 35.0, 400.0, 20.0, 45.0, 1000.0),
    "pet": (0.0, 0.7, 0.4, 2.0, 1.8, 3.0, 3.0, 1.0, 8.0, 1.6, 0.3),
    "t1": (0.0, 300.0, 900.0, 480.0, 360.0, 380.0, 380.0, 560.0, 220.0, 60.0, 40.0),
    "t2": (0.0, 160.0, 650.0, 250.0, 520.0, 560.0, 560.0, 380.0, 900.0, 60.0, 40.0),
}
_LESION_RANGES: dict[str, tuple[float, float]] = {
    "ct": (10.0, 30.0),
    "pet": (5.0, 15.0),
    "t1": (180.0, 260.0),
    "t2": (800.0, 1000.0),
}
_STREAMS = ("anatomy", "lesions", "ct_noise", "pet_noise", "mr", "rigid", "deformation", "identifiers")

#: Files written per case (name -> file name inside the case folder).
VOLUME_FILES: dict[str, str] = {
    "ct": "ct.nii.gz",
    "ct_clean": "ct_clean.nii.gz",
    "pet": "pet.nii.gz",
    "t1": "t1.nii.gz",
    "t2": "t2.nii.gz",
    "labels": "labels.nii.gz",
    "lesions": "lesions.nii.gz",
    "labels_mr": "labels_mr.nii.gz",
    "ct_deformed": "ct_deformed.nii.gz",
    "labels_deformed": "labels_deformed.nii.gz",
}
_VOLUME_META: dict[str, dict[str, str]] = {
    "ct": {"modality": "CT", "units": "HU", "space": "ct"},
    "ct_clean": {"modality": "CT", "units": "HU", "space": "ct", "note": "noise-free"},
    "pet": {"modality": "PT", "units": "SUV (a.u.)", "space": "ct"},
    "t1": {"modality": "MR", "units": "a.u.", "space": "mr", "sequence": "T1w"},
    "t2": {"modality": "MR", "units": "a.u.", "space": "mr", "sequence": "T2w"},
    "labels": {"modality": "SEG", "units": "label", "space": "ct"},
    "lesions": {"modality": "SEG", "units": "instance", "space": "ct"},
    "labels_mr": {"modality": "SEG", "units": "label", "space": "mr"},
    "ct_deformed": {"modality": "CT", "units": "HU", "space": "deformed"},
    "labels_deformed": {"modality": "SEG", "units": "label", "space": "deformed"},
}
DISPLACEMENT_FILE = "displacement.nii.gz"
TRUTH_FILE = "truth.json"
DICOM_DIR = "dicom/ct"
COHORT_FILE = "cohort.json"


# --------------------------------------------------------------------------
# specification
# --------------------------------------------------------------------------
class PhantomSpec(BaseModel):
    """Everything that defines a phantom cohort; equal specs give identical data.

    ``shape``/``spacing`` set the grid (the anatomy scales with the field of
    view). Noise: ``noise_hu`` (CT std, mildly correlated in-plane),
    ``pet_counts`` (Poisson counts per SUV unit per voxel: higher = less
    noise), ``mr_noise`` (Rician sigma, a.u.), ``mr_bias`` (bias-field
    amplitude, fraction). Ground-truth motion: ``max_rotation_deg`` (each
    Euler angle), ``max_translation_mm`` (vector length) and
    ``max_deformation_mm`` (largest displacement on the grid).

    Validated by pydantic like every parameter schema (unknown keys rejected,
    strict numbers, frozen); lists are accepted for the tuples.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_cases: StrictInt = Field(2, ge=1)
    shape: tuple[StrictInt, StrictInt, StrictInt] = Field((64, 64, 32))
    spacing: tuple[StrictFloat, StrictFloat, StrictFloat] = (1.5, 1.5, 3.0)
    seed: StrictInt = Field(0, ge=0)
    noise_hu: StrictFloat = Field(12.0, ge=0)
    max_lesions: StrictInt = Field(3, ge=0, le=20)
    pet_fwhm_mm: StrictFloat = Field(8.0, ge=0)
    pet_counts: StrictFloat = Field(40.0, gt=0)
    mr_noise: StrictFloat = Field(15.0, ge=0)
    mr_bias: StrictFloat = Field(0.15, ge=0, lt=1)
    max_rotation_deg: StrictFloat = Field(5.0, ge=0, le=30)
    max_translation_mm: StrictFloat = Field(10.0, ge=0)
    max_deformation_mm: StrictFloat = Field(4.0, ge=0)

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise ConfigError(f"PhantomSpec: {format_validation_error(exc)}") from None
        if min(self.shape) < 8:
            raise ConfigError(f"PhantomSpec: shape must be 3 sizes of at least 8 voxels, got {self.shape!r}")
        if min(self.spacing) <= 0:
            raise ConfigError(f"PhantomSpec: spacing must be 3 positive sizes in mm, got {self.spacing!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (tuples become lists, numbers keep their type)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.model_dump().items()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> PhantomSpec:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        return cls(**values)

    def key(self) -> str:
        """Short stable hash of the spec and the generator version (the cache folder name)."""
        payload = json.dumps({"phantom_version": PHANTOM_VERSION, **self.to_dict()}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]

    def grid(self) -> Volume:
        """An empty Volume on the phantom grid (centred on the patient origin)."""
        spacing = np.asarray(self.spacing)
        origin = -(np.asarray(self.shape) - 1) / 2.0 * spacing
        return Volume.from_spacing(np.zeros(self.shape, np.uint8), self.spacing, tuple(origin))


# --------------------------------------------------------------------------
# analytic anatomy
# --------------------------------------------------------------------------
def _rot_z(deg: float) -> np.ndarray:
    return euler_zxy(np.array([0.0, 0.0, deg]))


@dataclass(frozen=True, eq=False)
class _Shape:
    """Superquadric |q0|^e + |q1|^e + |q2|^e <= 1 in the shape's own frame."""

    center: np.ndarray
    half_axes: np.ndarray
    rotation: np.ndarray  # columns: the shape's axes in LPS
    exponent: float = 2.0
    taper: float = 0.0  # thickness along axis 1 shrinks by this fraction towards +axis 0

    def contains(self, pts: np.ndarray) -> np.ndarray:
        d = pts - self.center
        extent = np.abs(self.rotation) @ self.half_axes  # bounding box: evaluate only near points
        near = np.flatnonzero(np.all(np.abs(d) <= extent, axis=1))
        q = d[near] @ self.rotation / self.half_axes
        if self.taper:
            q[:, 1] /= 1.0 - self.taper * np.clip((q[:, 0] + 1.0) / 2.0, 0.0, 1.0)
        inside = np.zeros(len(pts), dtype=bool)
        inside[near] = np.sum(np.abs(q) ** self.exponent, axis=1) <= 1.0
        return inside


@dataclass(frozen=True, eq=False)
class _Body:
    """Superelliptic outline extruded along z with a smooth size wobble."""

    half: np.ndarray  # (x, y) mm
    fat: np.ndarray  # subcutaneous fat thickness (x, y) mm
    exponent: float
    wobble: float
    period: float
    phase: float

    def masks(self, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        scale = 1.0 + self.wobble * np.sin(2 * np.pi * pts[:, 2] / self.period + self.phase)
        ax, ay = self.half[0] * scale, self.half[1] * scale
        x, y, e = np.abs(pts[:, 0]), np.abs(pts[:, 1]), self.exponent
        outer = (x / ax) ** e + (y / ay) ** e <= 1.0
        inner = (x / (ax - self.fat[0])) ** e + (y / (ay - self.fat[1])) ** e <= 1.0
        return outer, inner


@dataclass(frozen=True, eq=False)
class _Spine:
    """Vertebral bodies (cortical rim, end plates) with discs, canal, arch and spinous process."""

    center: np.ndarray  # (x, y) of the vertebral body
    half: np.ndarray  # (x, y) vertebral body half-axes
    cortex: float
    period: float
    disc: float
    phase: float
    canal: float  # spinal canal radius
    process: float  # spinous process length

    def masks(self, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(bone, cortex, disc) masks."""
        dx, dy = pts[:, 0] - self.center[0], pts[:, 1] - self.center[1]
        vb = (dx / self.half[0]) ** 2 + (dy / self.half[1]) ** 2 <= 1.0
        inner = (dx / (self.half[0] - self.cortex)) ** 2 + (dy / (self.half[1] - self.cortex)) ** 2 <= 1.0
        zz = np.mod(pts[:, 2] - self.phase, self.period)
        disc = vb & (zz < self.disc)
        plate = (zz < self.disc + self.cortex) | (zz > self.period - self.cortex)
        body_bone = vb & ~disc
        cy = self.center[1] + self.half[1] + self.canal
        r = np.hypot(dx, pts[:, 1] - cy)
        arch = (r >= self.canal) & (r <= self.canal + 1.5 * self.cortex) & (pts[:, 1] >= cy - 0.3 * self.canal)
        top = cy + self.canal
        spinous = (np.abs(dx) <= self.cortex) & (pts[:, 1] >= top) & (pts[:, 1] <= top + self.process)
        cortex = (body_bone & (~inner | plate)) | arch | spinous
        return body_bone | arch | spinous, cortex, disc


@dataclass(frozen=True, eq=False)
class _Lesion:
    shape: _Shape
    values: dict[str, float]  # per-modality signal (ct, pet, t1, t2)


@dataclass(frozen=True, eq=False)
class _Anatomy:
    body: _Body
    organs: tuple[tuple[int, _Shape], ...]  # painted in order (later wins)
    aorta_center: np.ndarray
    aorta_radius: float
    spine: _Spine
    lesions: tuple[_Lesion, ...] = ()

    def render(self, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Tissue class (0..10, cortex = 10) and lesion id (0..n) at world points (N, 3)."""
        tissue = np.zeros(len(pts), np.uint8)
        outer, inner = self.body.masks(pts)
        tissue[outer] = FAT
        tissue[inner] = SOFT
        for tid, shape in self.organs:
            tissue[inner & shape.contains(pts)] = tid
        aorta = np.hypot(pts[:, 0] - self.aorta_center[0], pts[:, 1] - self.aorta_center[1]) <= self.aorta_radius
        tissue[inner & aorta] = AORTA
        bone, cortex, disc = self.spine.masks(pts)
        tissue[outer & disc] = SOFT
        tissue[outer & bone] = BONE
        tissue[outer & cortex] = _CORTEX
        lesion = np.zeros(len(pts), np.uint8)
        is_liver = tissue == LIVER
        for n, les in enumerate(self.lesions, start=1):
            hit = is_liver & les.shape.contains(pts)
            lesion[hit] = n
            tissue[hit] = LESION
        return tissue, lesion

    def signal(self, tissue: np.ndarray, lesion: np.ndarray, modality: str) -> np.ndarray:
        """Noise-free signal of one modality for rendered tissue/lesion ids."""
        values = np.asarray(TISSUE_VALUES[modality], dtype=np.float64)[tissue]
        for n, les in enumerate(self.lesions, start=1):
            values[lesion == n] = les.values[modality]
        return values


def _draw_anatomy(rng: np.random.Generator, s: float) -> _Anatomy:
    """Random case anatomy; ``s`` is the scale (mm per body unit, ~ body half-width)."""

    def u(lo: float, hi: float) -> float:
        return float(rng.uniform(lo, hi))

    def organ(center: tuple[float, float, float], half: tuple[float, float, float], angle: float, **kw: float) -> _Shape:
        c = (np.asarray(center) + rng.uniform(-0.04, 0.04, 3)) * s
        h = np.asarray(half) * rng.uniform(0.88, 1.12, 3) * s
        return _Shape(c, h, _rot_z(angle + u(-8, 8)), **kw)

    half_x = u(0.88, 0.98)
    fat = u(0.09, 0.15)
    body = _Body(
        half=np.array([half_x, half_x * u(0.70, 0.78)]) * s,
        fat=np.array([fat, fat * u(0.8, 1.2)]) * s,
        exponent=u(2.0, 2.6),
        wobble=u(0.02, 0.05),
        period=u(1.5, 2.5) * s,
        phase=u(0.0, 2 * np.pi),
    )
    kidney_l = organ((0.36, 0.22, -0.35), (0.13, 0.20, 0.50), -25.0)
    kidney_r = organ((-0.36, 0.22, -0.45), (0.13, 0.20, 0.50), 25.0)
    organs = (
        (LIVER, organ((-0.38, -0.08, 0.15), (0.45, 0.40, 0.80), -10.0, exponent=2.6, taper=0.4)),
        (SPLEEN, organ((0.50, 0.20, 0.35), (0.16, 0.25, 0.45), 30.0)),
        (FAT, _Shape(kidney_l.center, kidney_l.half_axes * 1.35, kidney_l.rotation)),  # perirenal fat
        (FAT, _Shape(kidney_r.center, kidney_r.half_axes * 1.35, kidney_r.rotation)),
        (KIDNEY_L, kidney_l),
        (KIDNEY_R, kidney_r),
    )
    period = u(0.55, 0.70) * s
    spine = _Spine(
        center=np.array([u(-0.02, 0.02), u(0.23, 0.27)]) * s,
        half=np.array([u(0.15, 0.18), u(0.12, 0.15)]) * s,
        cortex=0.04 * s,
        period=period,
        disc=0.22 * period,
        phase=u(0.0, period),
        canal=u(0.07, 0.09) * s,
        process=u(0.06, 0.10) * s,
    )
    return _Anatomy(
        body=body,
        organs=organs,
        aorta_center=np.array([u(0.04, 0.09), u(0.01, 0.05)]) * s,
        aorta_radius=u(0.055, 0.075) * s,
        spine=spine,
    )


#: 26 unit directions (cube neighbours) used to probe that a lesion lies inside the liver.
_PROBE_DIRS = np.array([d for d in np.ndindex(3, 3, 3) if d != (1, 1, 1)], dtype=float) - 1.0
_PROBE_DIRS /= np.linalg.norm(_PROBE_DIRS, axis=1, keepdims=True)


def _draw_lesions(rng: np.random.Generator, anatomy: _Anatomy, spec: PhantomSpec, s: float) -> tuple[_Lesion, ...]:
    """0..max_lesions non-overlapping ellipsoids inside the rendered liver (probed at 27 points)."""
    count = int(rng.integers(0, spec.max_lesions + 1))
    liver = next(shape for tid, shape in anatomy.organs if tid == LIVER)
    extent = np.abs(liver.rotation) @ liver.half_axes
    min_radius = 1.2 * max(spec.spacing)
    lesions: list[_Lesion] = []
    for _ in range(200 * max(count, 1)):
        if len(lesions) == count:
            break
        half = max(float(rng.uniform(0.08, 0.16)) * s, min_radius) * rng.uniform(0.8, 1.2, 3)
        center = liver.center + rng.uniform(-1.0, 1.0, 3) * extent
        reach = float(half.max()) + 1.0
        if any(np.linalg.norm(center - o.shape.center) < reach + o.shape.half_axes.max() + 1.0 for o in lesions):
            continue
        probes = np.vstack([center, center + reach * _PROBE_DIRS])
        tissue, _ = anatomy.render(probes)
        if np.all(tissue == LIVER):
            values = {m: float(rng.uniform(*_LESION_RANGES[m])) for m in _LESION_RANGES}
            lesions.append(_Lesion(_Shape(center, half, _rot_z(float(rng.uniform(0, 180)))), values))
    return tuple(lesions)


# --------------------------------------------------------------------------
# the case
# --------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class PhantomCase:
    """One synthetic patient: images, labels and the ground truth that relates them."""

    case_id: str
    index: int
    spec: PhantomSpec
    ct: Volume
    ct_clean: Volume
    pet: Volume
    t1: Volume
    t2: Volume
    labels: Volume
    lesions: Volume
    labels_mr: Volume
    ct_deformed: Volume
    labels_deformed: Volume
    displacement: DisplacementField  # u(x) on the CT grid, LPS mm: deformed(x) = ct(x + u(x))
    rigid: RigidTransform
    deformation: SmoothDeformation
    landmarks: Landmarks
    lesion_info: tuple[dict[str, Any], ...] = ()
    identifiers: dict[str, str] = field(default_factory=dict)

    def volumes(self) -> dict[str, Volume]:
        """All image volumes by name (for viewers and loops)."""
        return {name: getattr(self, name) for name in VOLUME_FILES}

    @property
    def n_lesions(self) -> int:
        return len(self.lesion_info)

    def lesion_table(self) -> pd.DataFrame:
        """One row per lesion: centre (CT, LPS mm), half-axes, per-modality values, volume."""
        return pd.DataFrame(list(self.lesion_info)).set_index("lesion") if self.lesion_info else pd.DataFrame()

    def displacement_sitk(self) -> Any:
        """The deformation as a ``SimpleITK.DisplacementFieldTransform`` (fixed = deformed CT, moving = CT)."""
        return self.displacement.to_sitk()

    def stats(self) -> dict[str, Any]:
        """Numbers that summarise the case (organ volumes in mL, mean HU per organ, transforms)."""
        lab, hu = self.labels.array, self.ct.array
        voxel_ml = float(np.prod(self.ct.spacing)) / 1000.0
        row: dict[str, Any] = {"case_id": self.case_id, "n_lesions": self.n_lesions}
        for value, name in LABELS.items():
            if value in (AIR, SOFT, FAT):
                continue
            mask = lab == value
            row[f"{name}_ml"] = round(float(mask.sum()) * voxel_ml, 3)
            row[f"{name}_hu"] = round(float(hu[mask].mean()), 2) if mask.any() else None
        for axis, angle in zip("xyz", self.rigid.angles_deg):
            row[f"rot_{axis}_deg"] = round(float(angle), 3)
        for axis, t in zip("xyz", self.rigid.translation_mm):
            row[f"t_{axis}_mm"] = round(float(t), 3)
        row["max_displacement_mm"] = round(float(self.displacement.magnitude.max()), 3)
        return row

    def __repr__(self) -> str:
        shape = "x".join(str(v) for v in self.ct.shape)
        spacing = "x".join(f"{v:g}" for v in self.ct.spacing)
        rot = ", ".join(f"{a:.1f}" for a in self.rigid.angles_deg)
        tr = ", ".join(f"{t:.1f}" for t in self.rigid.translation_mm)
        return (
            f"PhantomCase({self.case_id}: {shape} voxels at {spacing} mm, {self.n_lesions} lesion(s), "
            f"MR rotation ({rot}) deg, translation ({tr}) mm)"
        )


def _streams(spec: PhantomSpec, index: int) -> dict[str, np.random.Generator]:
    seqs = np.random.SeedSequence([spec.seed, index]).spawn(len(_STREAMS))
    return {name: np.random.default_rng(seq) for name, seq in zip(_STREAMS, seqs)}


def _grid_points(grid: Volume) -> np.ndarray:
    ijk = np.indices(grid.shape).reshape(3, -1).T
    return grid.world(ijk)


def _blur(arr: np.ndarray, sigma_vox: np.ndarray | float) -> np.ndarray:
    return ndimage.gaussian_filter(arr, sigma_vox, mode="nearest")


def _ct_noise(rng: np.random.Generator, shape: tuple[int, ...], std: float) -> np.ndarray:
    """Gaussian noise with mild in-plane correlation, scaled to ``std``."""
    noise = _blur(rng.standard_normal(shape), np.array([0.8, 0.8, 0.0]))
    return noise * (std / noise.std()) if std > 0 else np.zeros(shape)


def _finish_ct(clean: np.ndarray, rng: np.random.Generator, std: float) -> np.ndarray:
    return np.clip(np.round(clean + _ct_noise(rng, clean.shape, std)), -1024, 3071).astype(np.float32)


def _bias_field(rng: np.random.Generator, pts: np.ndarray, half_fov: np.ndarray, amplitude: float) -> np.ndarray:
    """Smooth multiplicative field 1 +- amplitude from a random low-order polynomial."""
    n = pts / half_fov
    basis = np.stack([n[:, 0], n[:, 1], n[:, 2], n[:, 0] ** 2, n[:, 1] ** 2, n[:, 0] * n[:, 1]], axis=1)
    f = basis @ rng.normal(size=basis.shape[1])
    peak = float(np.abs(f).max())
    return 1.0 + amplitude * f / peak if peak > 0 else np.ones(len(pts))


def _rician(rng: np.random.Generator, signal: np.ndarray, sigma: float) -> np.ndarray:
    real = signal + rng.normal(0.0, sigma, signal.shape)
    imag = rng.normal(0.0, sigma, signal.shape)
    return np.hypot(real, imag).astype(np.float32)


def _draw_rigid(rng: np.random.Generator, spec: PhantomSpec) -> RigidTransform:
    angles = rng.uniform(-spec.max_rotation_deg, spec.max_rotation_deg, 3)
    direction = rng.normal(size=3)
    direction /= np.linalg.norm(direction)
    translation = direction * rng.uniform(0.3, 1.0) * spec.max_translation_mm
    return RigidTransform(
        tuple(float(a) for a in angles),  # type: ignore[arg-type]
        tuple(float(t) for t in translation),  # type: ignore[arg-type]
        (0.0, 0.0, 0.0),
    )


def _draw_deformation(rng: np.random.Generator, spec: PhantomSpec, s: float, pts: np.ndarray) -> SmoothDeformation:
    """Three Gaussian bumps inside the body, scaled so max |u| on the grid is ~max_deformation_mm."""
    k = 3
    centers = rng.uniform(-1, 1, (k, 3)) * np.array([0.5, 0.35, 0.4]) * s
    sigmas = rng.uniform(0.5, 0.9, k) * s
    amps = rng.normal(size=(k, 3))
    amps *= rng.uniform(0.5, 1.0, (k, 1)) / np.linalg.norm(amps, axis=1, keepdims=True)
    raw = SmoothDeformation(centers, sigmas, amps)
    peak = float(np.linalg.norm(raw.displacement(pts), axis=1).max())
    target = spec.max_deformation_mm * rng.uniform(0.75, 1.0)
    return SmoothDeformation(centers, sigmas, amps * (target / peak if peak > 0 else 0.0))


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


def generate_case(spec: PhantomSpec, index: int) -> PhantomCase:
    """Generate case ``index`` of ``spec`` (deterministic for the pair)."""
    if index < 0:
        raise ConfigError(f"case index must be non-negative, got {index}")
    rng = _streams(spec, index)
    grid = spec.grid()
    shape = grid.shape
    spacing = np.asarray(spec.spacing)
    half_fov = np.asarray(shape) * spacing / 2.0
    s = 0.38 * 2.0 * float(min(half_fov[:2]))  # mm per body unit
    pts = _grid_points(grid)

    anatomy = _draw_anatomy(rng["anatomy"], s)
    lesions = _draw_lesions(rng["lesions"], anatomy, spec, s)
    anatomy = replace(anatomy, lesions=lesions)
    pv = 0.5  # partial-volume blur, voxels

    def vol(arr: np.ndarray, name: str, dtype: Any = np.float32) -> Volume:
        role = "label" if _VOLUME_META[name]["modality"] == "SEG" else "image"
        return grid.with_array(np.asarray(arr).reshape(shape).astype(dtype), role=role,  # type: ignore[arg-type]
                               name=name, **_VOLUME_META[name])

    # CT space: CT, PET, labels
    tissue, lesion = anatomy.render(pts)
    labels = np.where(tissue == _CORTEX, BONE, tissue).astype(np.uint8)
    ct_clean = np.clip(_blur(anatomy.signal(tissue, lesion, "ct").reshape(shape), pv), -1024, 3071)
    ct = _finish_ct(ct_clean, rng["ct_noise"], spec.noise_hu)
    pet_sigma = spec.pet_fwhm_mm / (2.0 * np.sqrt(2.0 * np.log(2.0))) / spacing
    activity = np.clip(_blur(anatomy.signal(tissue, lesion, "pet").reshape(shape), pet_sigma), 0, None)
    pet = _blur(rng["pet_noise"].poisson(activity * spec.pet_counts) / spec.pet_counts, 0.5)

    # MR space: the anatomy moved by the rigid transform (CT -> MR)
    rigid = _draw_rigid(rng["rigid"], spec)
    tissue_mr, lesion_mr = anatomy.render(rigid.apply_inverse(pts))
    bias = _bias_field(rng["mr"], pts, half_fov, spec.mr_bias).reshape(shape)
    mr = {
        m: _rician(rng["mr"], _blur(anatomy.signal(tissue_mr, lesion_mr, m).reshape(shape), pv) * bias, spec.mr_noise)
        for m in ("t1", "t2")
    }

    # deformed CT: deformed(x) = ct_clean(x + u(x)) + fresh noise
    deformation = _draw_deformation(rng["deformation"], spec, s, pts)
    u = deformation.displacement(pts)
    src = pts + u
    tissue_def, _ = anatomy.render(src)
    src_ijk = (src - np.asarray(grid.origin)) @ np.linalg.inv(grid.affine[:3, :3]).T
    warped = ndimage.map_coordinates(ct_clean, src_ijk.T, order=1, mode="nearest").reshape(shape)
    ct_deformed = _finish_ct(warped, rng["ct_noise"], spec.noise_hu)

    named = (LIVER, SPLEEN, KIDNEY_L, KIDNEY_R)
    names = [LABELS[t] for t in named]
    organ_centers = [next(shp.center for tid, shp in anatomy.organs if tid == t) for t in named]
    points = organ_centers + [  # spine and aorta: on the mid slice (z = 0)
        np.array([anatomy.spine.center[0], anatomy.spine.center[1], 0.0]),
        np.array([anatomy.aorta_center[0], anatomy.aorta_center[1], 0.0]),
    ]
    names += ["vertebral_body", "aorta"]
    points += [les.shape.center for les in lesions]
    names += [f"lesion_{n}" for n in range(1, len(lesions) + 1)]
    ct_pts = np.asarray(points, dtype=float)
    landmarks = Landmarks(tuple(names), {"ct": ct_pts, "mr": rigid.apply(ct_pts),
                                         "deformed": deformation.deformed_points(ct_pts)})

    voxel_ml = float(np.prod(spacing)) / 1000.0
    lesion_info = tuple(
        {
            "lesion": n,
            **{f"center_{a}_mm": float(les.shape.center[i]) for i, a in enumerate("xyz")},
            **{f"half_axis_{i}_mm": float(h) for i, h in enumerate(les.shape.half_axes)},
            **{f"{m}_value": les.values[m] for m in ("ct", "pet", "t1", "t2")},
            "volume_ml": round(float(np.count_nonzero(lesion == n)) * voxel_ml, 4),
        }
        for n, les in enumerate(lesions, start=1)
    )
    return PhantomCase(
        case_id=f"case{index:03d}",
        index=index,
        spec=spec,
        ct=vol(ct, "ct"),
        ct_clean=vol(ct_clean, "ct_clean"),
        pet=vol(pet, "pet"),
        t1=vol(mr["t1"], "t1"),
        t2=vol(mr["t2"], "t2"),
        labels=vol(labels, "labels", np.uint8),
        lesions=vol(lesion, "lesions", np.uint8),
        labels_mr=vol(np.where(tissue_mr == _CORTEX, BONE, tissue_mr), "labels_mr", np.uint8),
        ct_deformed=vol(ct_deformed, "ct_deformed"),
        labels_deformed=vol(np.where(tissue_def == _CORTEX, BONE, tissue_def), "labels_deformed", np.uint8),
        displacement=DisplacementField.from_array(u.reshape(*shape, 3), grid, name="displacement"),
        rigid=rigid,
        deformation=deformation,
        landmarks=landmarks,
        lesion_info=lesion_info,
        identifiers=_identifiers(rng["identifiers"], spec, index),
    )


# --------------------------------------------------------------------------
# files
# --------------------------------------------------------------------------
def _truth(case: PhantomCase) -> dict[str, Any]:
    return {
        "phantom_version": PHANTOM_VERSION,
        "case_id": case.case_id,
        "index": case.index,
        "spec": case.spec.to_dict(),
        "spec_key": case.spec.key(),
        "frame": "LPS mm; NIfTI files store the equivalent RAS affine",
        "labels": {str(k): v for k, v in LABELS.items()},
        "tissue_values": {m: list(v) for m, v in TISSUE_VALUES.items()},
        "tissue_value_order": [*LABELS.values(), "cortical_bone"],
        "volumes": {name: {"file": VOLUME_FILES[name], **_VOLUME_META[name]} for name in VOLUME_FILES},
        "displacement": {"file": DISPLACEMENT_FILE, "layout": "[i, j, k, 1, 3] NIfTI vector, LPS mm",
                         "fixed": "deformed CT", "moving": "CT"},
        "rigid": {**case.rigid.to_dict(), "fixed": "CT", "moving": "MR"},
        "deformation": case.deformation.to_dict(),
        "landmarks": case.landmarks.to_dict(),
        "lesions": list(case.lesion_info),
        "identifiers": case.identifiers,
        "stats": case.stats(),
    }


def case_paths(case_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Paths of every file of a written case folder, by name."""
    root = Path(case_dir)
    paths = {name: root / file for name, file in VOLUME_FILES.items()}
    paths["displacement"] = root / DISPLACEMENT_FILE
    paths["truth"] = root / TRUTH_FILE
    paths["dicom_ct"] = root / DICOM_DIR
    return paths


def write_case(case: PhantomCase, out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Write a case into the new folder ``out_dir`` (NIfTI, truth.json, CT DICOM series).

    The folder is assembled under a temporary name and renamed when complete;
    ``out_dir`` must not exist. Returns the final paths by name.
    """
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        for name, vol in case.volumes().items():
            vol.to_nifti(tmp / VOLUME_FILES[name])
        case.displacement.field.to_nifti(tmp / DISPLACEMENT_FILE)
        write_series(
            case.ct,
            tmp / DICOM_DIR,
            modality="CT",
            uid_seed=f"medbench-phantom/v{PHANTOM_VERSION}/{case.spec.key()}/{case.case_id}",
            series_description=f"phantom CT {case.case_id}",
            patient=case.identifiers,
        )
        write_text(tmp / TRUTH_FILE, json.dumps(_truth(case), indent=1) + "\n")
    return case_paths(out_dir)


def _read_nifti(path: Path, name: str) -> Volume:
    if not path.is_file():
        raise DataError(f"phantom file {path} is missing; regenerate with load_cohort(spec, refresh=True)")
    role = "label" if _VOLUME_META[name]["modality"] == "SEG" else "image"
    vol = Volume.from_nifti(path, role=role)  # type: ignore[arg-type]
    return Volume(vol.array, vol.affine, {"name": name, **_VOLUME_META[name], "source": os.fspath(path)}, role=vol.role)


def read_case(case_dir: str | os.PathLike[str]) -> PhantomCase:
    """Load a case folder written by :func:`write_case` (arrays identical to the generated ones)."""
    paths = case_paths(case_dir)
    try:
        truth = json.loads(paths["truth"].read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise DataError(f"cannot read phantom truth file {paths['truth']}: {err}") from None
    vols = {name: _read_nifti(paths[name], name) for name in VOLUME_FILES}
    if not paths["displacement"].is_file():
        raise DataError(f"phantom file {paths['displacement']} is missing; regenerate with refresh=True")
    disp = DisplacementField(Volume.from_nifti(paths["displacement"], {"name": "displacement"}, role="vector"))
    return PhantomCase(
        case_id=truth["case_id"],
        index=int(truth["index"]),
        spec=PhantomSpec.from_dict(truth["spec"]),
        displacement=disp,
        rigid=RigidTransform.from_dict(truth["rigid"]),
        deformation=SmoothDeformation.from_dict(truth["deformation"]),
        landmarks=Landmarks.from_dict(truth["landmarks"]),
        lesion_info=tuple(truth["lesions"]),
        identifiers=dict(truth["identifiers"]),
        **vols,
    )


# --------------------------------------------------------------------------
# cohort
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class Cohort:
    """A generated cohort on disk; cases are read from ``root`` when asked for."""

    spec: PhantomSpec
    root: Path
    case_ids: tuple[str, ...]
    from_cache: bool = False

    def __len__(self) -> int:
        return len(self.case_ids)

    def _case_dir(self, i: int | str) -> Path:
        if isinstance(i, str):
            if i not in self.case_ids:
                raise ConfigError(f"cohort {self.root} has no case {i!r}; cases: {list(self.case_ids)}")
            return self.root / i
        if not -len(self) <= i < len(self):
            raise ConfigError(f"cohort {self.root} has {len(self)} cases; index {i} is out of range")
        return self.root / self.case_ids[i]

    def case(self, i: int | str) -> PhantomCase:
        """Load case ``i`` (index or case id) from disk."""
        return read_case(self._case_dir(i))

    @property
    def cases(self) -> list[PhantomCase]:
        """Every case, loaded (each access reads the files again)."""
        return [self.case(i) for i in range(len(self))]

    def __iter__(self) -> Iterator[PhantomCase]:
        return (self.case(i) for i in range(len(self)))

    def paths(self, i: int | str) -> dict[str, Path]:
        """File paths of case ``i`` by name (volumes, displacement, truth, dicom_ct)."""
        return case_paths(self._case_dir(i))

    def truth(self, i: int | str) -> dict[str, Any]:
        """The parsed truth.json of case ``i``."""
        return json.loads(self.paths(i)["truth"].read_text(encoding="utf-8"))

    def summary(self) -> pd.DataFrame:
        """One row per case: lesion count, organ volumes (mL), mean HU per organ, rigid parameters."""
        return pd.DataFrame([self.truth(i)["stats"] for i in range(len(self))]).set_index("case_id")

    def __repr__(self) -> str:
        return f"Cohort({len(self)} cases, spec key {self.spec.key()}, root {self.root})"


def cohort_root(spec: PhantomSpec, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The cache folder of ``spec``: ``<cache>/phantom/<spec.key()>``."""
    return cache_root(cache_dir) / "phantom" / spec.key()


def _cohort_record(spec: PhantomSpec) -> dict[str, Any]:
    return {
        "phantom_version": PHANTOM_VERSION,
        "spec": spec.to_dict(),
        "key": spec.key(),
        "case_ids": [f"case{i:03d}" for i in range(spec.n_cases)],
    }


def _build_cohort(spec: PhantomSpec, tmp: Path) -> None:
    for i in range(spec.n_cases):
        case = generate_case(spec, i)
        write_case(case, tmp / case.case_id)
    write_text(tmp / COHORT_FILE, json.dumps(_cohort_record(spec), indent=1, sort_keys=True) + "\n")


def _matches(root: Path, spec: PhantomSpec) -> bool:
    try:
        return json.loads((root / COHORT_FILE).read_text(encoding="utf-8")) == _cohort_record(spec)
    except (OSError, ValueError):
        return False


def load_cohort(
    spec: PhantomSpec | None = None,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    refresh: bool = False,
) -> Cohort:
    """The cohort of ``spec`` (default: the smoke spec), generated into the cache on first use.

    The cache folder is ``cache_dir``, else ``$MEDBENCH_CACHE``, else
    ``~/.cache/medbench``; the cohort lives in ``phantom/<spec.key()>/``. A
    later call finds it there and generates nothing; ``refresh=True``
    rebuilds it (the old copy is replaced only once the new one is whole).
    """
    spec = spec or PhantomSpec()
    root = cohort_root(spec, cache_dir)
    stale = is_complete(root, COHORT_FILE) and not _matches(root, spec)
    built = build_entry(root, lambda tmp: _build_cohort(spec, tmp), marker=COHORT_FILE, refresh=refresh or stale)
    return Cohort(spec, root, tuple(_cohort_record(spec)["case_ids"]), from_cache=not built)


def cohort_hash(cohort: Cohort | str | os.PathLike[str]) -> str:
    """sha256 over every file of the cohort (relative path and content), for run records."""
    root = cohort.root if isinstance(cohort, Cohort) else Path(cohort)
    if not root.is_dir():
        raise DataError(f"cohort folder {root} does not exist")
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        digest.update(rel.encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()
