"""Lesion classes that need two modalities, their placement inside organs, and their rasterisation.

* **malignant** (label :data:`~medbench.data.phantom.labels.MALIGNANT`):
  metastasis-like, in the liver (85 %) or spleen, 8-40 mm. FDG-avid: true
  uptake 3-6x the liver's, raised where partial volume would otherwise pull
  the expected (noise-free) peak below :data:`MIN_PET_PEAK_RATIO` x the liver.
  On unenhanced CT about :data:`OCCULT_FRACTION` of them are *occult*
  (|lesion - organ| <= 5 HU); the others are hypodense by 12-40 HU. On MR:
  mildly T2-bright, T1-dark (T1 ~1100 ms, T2 ~85 ms).
* **cyst** (label :data:`~medbench.data.phantom.labels.CYST`): simple cysts
  in the liver or the kidneys, 5-30 mm: water-like on CT (0-15 HU), very
  bright on T2 (T2 ~1500 ms), at or below background on PET.

So CT alone confuses occult metastases with normal liver and hypodense ones
with cysts and vessels; PET alone confuses them with the renal pelvis, bowel
and stomach uptake; CT + PET (or T2 + PET) tells them apart.

A lesion is an ellipsoid (axis ratios 0.8-1.2, random orientation, slight
lobulation if malignant) placed with a margin inside its host organ as
rendered (probed at its centre and 26 points around it), never overlapping
another lesion. It is rasterised with its exact partial volume (supersampled
at <= 1.25 mm), labelled where at least half of a voxel is lesion and the
voxel belongs to the host, and blended into every modality by that fraction.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import erf, exp, pi, sqrt
from typing import Any

import numpy as np

from medbench.data.phantom.anatomy import Anatomy, Mapping, classify
from medbench.data.phantom.labels import CYST, KIDNEY_L, KIDNEY_R, LIVER, MALIGNANT, SPLEEN
from medbench.data.phantom.shapes import Blob, perturbation
from medbench.image.transforms import euler_zxy
from medbench.image.volume import Volume

#: Fraction of malignant lesions that are CT-occult (|delta HU| <= 5), decided per case by stratified rounding.
OCCULT_FRACTION = 0.45
#: The expected (noise-free) PET peak of every malignant lesion is at least this many times the liver mean.
MIN_PET_PEAK_RATIO = 2.9
#: Diameter ranges (mm, log-uniform).
DIAMETER_MM = {MALIGNANT: (8.0, 40.0), CYST: (5.0, 30.0)}
#: Host organs and their probabilities.
HOSTS = {MALIGNANT: ((LIVER, 0.85), (SPLEEN, 0.15)), CYST: ((LIVER, 0.55), (KIDNEY_L, 0.225), (KIDNEY_R, 0.225))}
SUPERSAMPLE_MM = 1.25

_DIRS = np.array([d for d in np.ndindex(3, 3, 3) if d != (1, 1, 1)], dtype=float) - 1.0
_DIRS /= np.linalg.norm(_DIRS, axis=1, keepdims=True)


@dataclass(frozen=True, eq=False)
class Lesion:
    """One lesion: class, host organ, shape (world mm) and per-modality values."""

    index: int  # 1..n (the instance id in the lesion map)
    label: int  # MALIGNANT or CYST
    host: int  # host organ label
    shape: Blob
    ct_hu: float  # unenhanced attenuation (HU)
    host_ct_hu: float
    pet_suv: float  # true uptake (SUV)
    t1_ms: float
    t2_ms: float
    pd: float

    @property
    def kind(self) -> str:
        return "malignant" if self.label == MALIGNANT else "cyst"

    @property
    def diameter_mm(self) -> float:
        """Diameter of the sphere of equal volume."""
        return float(2.0 * np.prod(self.shape.half) ** (1.0 / 3.0))

    @property
    def ct_occult(self) -> bool:
        return abs(self.ct_hu - self.host_ct_hu) <= 5.0


def recovery_coefficient(diameter_mm: float, fwhm_mm: float) -> float:
    """Peak of a uniform sphere of diameter D blurred by a Gaussian of FWHM F, over the sphere's value.

    ``erf(r / (s sqrt 2)) - sqrt(2/pi) (r/s) exp(-r^2 / (2 s^2))`` with
    ``r = D/2``, ``s = F / 2.355`` (the value at the centre).
    """
    r, s = diameter_mm / 2.0, fwhm_mm / (2.0 * sqrt(2.0 * np.log(2.0)))
    return float(erf(r / (s * sqrt(2.0))) - sqrt(2.0 / pi) * (r / s) * exp(-r * r / (2.0 * s * s)))


def draw_lesions(
    rng: np.random.Generator,
    anatomy: Anatomy,
    *,
    n_malignant: int,
    n_cyst: int,
    host_ct: dict[int, float],
    liver_suv: float,
    host_suv: dict[int, float],
    pet_fwhm_mm: float,
) -> tuple[Lesion, ...]:
    """Place ``n_malignant`` + ``n_cyst`` lesions (fewer if the organs have no room) and give them values.

    ``host_ct`` / ``host_suv``: the case's unenhanced HU and SUV of each host
    organ; ``pet_fwhm_mm``: the PET image's total resolution (system and
    post-filter, plus the voxel), used for the partial-volume check.
    """
    kinds = [MALIGNANT] * n_malignant + [CYST] * n_cyst
    n_occult = int(np.floor(OCCULT_FRACTION * n_malignant + rng.uniform()))
    occult = set(rng.permutation(n_malignant)[:n_occult].tolist())
    placed: list[Lesion] = []
    for n, label in enumerate(kinds):
        lesion = _place(rng, anatomy, label, placed)
        if lesion is None:
            continue
        host, shape = lesion
        d = float(2.0 * np.prod(shape.half) ** (1.0 / 3.0))
        if label == MALIGNANT:
            delta = rng.uniform(-5.0, 5.0) if n in occult else -rng.uniform(12.0, 40.0)
            ct_hu = host_ct[host] + delta
            ratio = rng.uniform(3.0, 6.0)
            suv = ratio * liver_suv
            rc = recovery_coefficient(d, pet_fwhm_mm)
            need = host_suv[host] + (MIN_PET_PEAK_RATIO * liver_suv - host_suv[host]) / max(rc, 0.05)
            suv = float(min(max(suv, need), 40.0))
            t1, t2, pd = 1100.0 * np.exp(rng.normal(0, 0.12)), 85.0 * np.exp(rng.normal(0, 0.15)), 0.85
        else:
            ct_hu = rng.uniform(0.0, 15.0)
            suv = rng.uniform(0.3, 0.7)
            t1, t2, pd = 3000.0 * np.exp(rng.normal(0, 0.1)), 1500.0 * np.exp(rng.normal(0, 0.1)), 1.0
        placed.append(Lesion(len(placed) + 1, label, host, shape, float(ct_hu), float(host_ct[host]), float(suv),
                             float(t1), float(t2), float(pd)))
    return tuple(placed)


def _place(rng: np.random.Generator, anatomy: Anatomy, label: int,
           placed: list[Lesion]) -> tuple[int, Blob] | None:
    hosts, probs = zip(*HOSTS[label])
    lo_d, hi_d = DIAMETER_MM[label]
    for attempt in range(6):
        host = int(rng.choice(hosts, p=np.asarray(probs) / sum(probs)))
        d = float(np.exp(rng.uniform(np.log(lo_d), np.log(hi_d)))) * (0.8 ** attempt)
        d = max(d, lo_d)
        ratios = rng.uniform(0.8, 1.2, 3)
        half = d / 2.0 * ratios / np.prod(ratios) ** (1.0 / 3.0)
        box_lo, box_hi = anatomy.host_shape(host).aabb()
        centers = rng.uniform(box_lo, box_hi, (48, 3))
        reach = float(half.max()) + 3.0
        probes = (centers[:, None, :] + np.concatenate([np.zeros((1, 3)), reach * _DIRS])[None]).reshape(-1, 3)
        labels, _ = classify(anatomy, probes)
        ok = np.all(labels.reshape(len(centers), 27) == host, axis=1)
        for c in centers[ok]:
            if any(np.linalg.norm(c - o.shape.center) < reach + float(o.shape.half.max()) + 2.0 for o in placed):
                continue
            rot = euler_zxy(rng.uniform(-180, 180, 3))
            amp = 0.08 if label == MALIGNANT else 0.02
            return host, Blob(c, half, rot, **perturbation(rng, amp, k=4))
    return None


@dataclass(frozen=True)
class LesionRaster:
    """Where one lesion covers a grid: flat voxel indices and the covered fraction of each voxel."""

    lesion: Lesion
    flat: np.ndarray
    fraction: np.ndarray


def partial_volume(shape: Blob, grid: Volume, mapping: Mapping | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(flat voxel indices, covered fraction) of ``shape`` on ``grid``, supersampled at <= 1.25 mm per axis."""
    vox_to_anat = (mapping or Mapping()).matrix() @ grid.affine
    spacing = np.asarray(grid.spacing)
    ns = np.clip(np.ceil(spacing / SUPERSAMPLE_MM).astype(int), 1, 8)
    offsets = [(np.arange(n) + 0.5) / n - 0.5 for n in ns]
    sub = np.stack(np.meshgrid(*offsets, indexing="ij"), axis=-1).reshape(-1, 3)
    lo, hi = shape.aabb()
    corners = np.array([[x, y, z, 1.0] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    ijk = (corners @ np.linalg.inv(vox_to_anat).T)[:, :3]
    a = np.maximum(np.floor(ijk.min(axis=0)).astype(int), 0)
    b = np.minimum(np.ceil(ijk.max(axis=0)).astype(int) + 1, np.asarray(grid.shape))
    if np.any(b <= a):
        return np.zeros(0, np.intp), np.zeros(0, np.float32)
    vox = np.stack(np.meshgrid(*(np.arange(a[n], b[n]) for n in range(3)), indexing="ij"), axis=-1).reshape(-1, 3)
    samples = (vox[:, None, :] + sub[None]).reshape(-1, 3)
    pts = samples @ vox_to_anat[:3, :3].T + vox_to_anat[:3, 3]
    frac = shape.mask(pts).reshape(len(vox), len(sub)).mean(axis=1).astype(np.float32)
    keep = frac > 0
    return np.ravel_multi_index(tuple(vox[keep].T), grid.shape), frac[keep]


def rasterise(lesions: tuple[Lesion, ...], grid: Volume, mapping: Mapping | None = None) -> list[LesionRaster]:
    """Partial-volume fraction of every lesion on ``grid`` (see :func:`partial_volume`)."""
    return [LesionRaster(les, *partial_volume(les.shape, grid, mapping)) for les in lesions]


def lesion_record(les: Lesion) -> dict[str, Any]:
    """The lesion's ground truth as JSON-ready values (per-modality values, geometry, class, CT-occult flag)."""
    return {
        "lesion": les.index,
        "class": les.kind,
        "label": les.label,
        "host": les.host,
        **{f"center_{a}_mm": round(float(les.shape.center[i]), 4) for i, a in enumerate("xyz")},
        **{f"half_axis_{i}_mm": round(float(h), 4) for i, h in enumerate(les.shape.half)},
        "diameter_mm": round(les.diameter_mm, 3),
        "ct_hu": round(les.ct_hu, 3),
        "host_ct_hu": round(les.host_ct_hu, 3),
        "ct_delta_hu": round(les.ct_hu - les.host_ct_hu, 3),
        "ct_occult": bool(les.ct_occult),
        "pet_suv": round(les.pet_suv, 4),
        "t1_ms": round(les.t1_ms, 2),
        "t2_ms": round(les.t2_ms, 2),
        "pd": les.pd,
        "shape": blob_to_dict(les.shape),
    }


def blob_to_dict(blob: Blob) -> dict[str, Any]:
    """A :class:`Blob`'s parameters as JSON-ready lists (world mm)."""
    return {"center_mm": [float(v) for v in blob.center], "half_mm": [float(v) for v in blob.half],
            "rotation": np.asarray(blob.rotation).tolist(), "modes": np.asarray(blob.modes).tolist(),
            "amps": np.asarray(blob.amps).tolist(), "phases": np.asarray(blob.phases).tolist()}


def blob_from_dict(d: dict[str, Any], scale: float = 1.0) -> Blob:
    """Inverse of :func:`blob_to_dict` (``scale`` multiplies centre and half-axes)."""
    return Blob(np.asarray(d["center_mm"], float) * scale, np.asarray(d["half_mm"], float) * scale,
                np.asarray(d["rotation"], float), modes=np.asarray(d["modes"], float).reshape(-1, 3),
                amps=np.asarray(d["amps"], float), phases=np.asarray(d["phases"], float))
