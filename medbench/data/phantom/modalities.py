"""Image formation: per-case tissue values, and the noise-free CT, PET and MR images of a rendering.

* CT: unenhanced HU per tissue (portal-venous enhancement for the contrast
  shift) plus a smooth within-tissue texture, lesions blended by their
  partial volume, a 0.4-voxel partial-volume blur. The noise comes later
  from :func:`medbench.physics.simulate_ct`.
* PET: SUV per tissue with a mild texture (bowel with patches of
  physiological uptake, urine in the renal pelvis), lesions blended, the
  system PSF (Gaussian, ``pet_fwhm_mm``), Poisson counting noise on the PET
  grid, and a Gaussian post-filter (``pet_postfilter_mm``) that gives the
  noise its grain.
* MR: 1.5 T spin-echo signal ``PD (1 - exp(-TR/T1)) exp(-TE/T2)`` per tissue
  (T1w TR/TE 500/12 ms, T2w 4000/90 ms), lesions blended, a 0.4-voxel blur,
  a global scale (receiver gain; log-normal, CV about 25 %), a smooth
  multiplicative bias field and Rician noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from medbench.data.phantom.fields import FieldBank
from medbench.data.phantom.labels import (
    MALIGNANT,
    MALIGNANT_ENHANCEMENT_HU,
    PORTAL_VENOUS_ENHANCEMENT_HU,
    STEATOSIS_FRACTION,
    STEATOSIS_HU,
    T1W,
    T2W,
    TISSUES,
    spin_echo,
)
from medbench.data.phantom.lesions import LesionRaster
from medbench.image.volume import Volume

FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))
#: Partial-volume blur of every rendered image (SD, voxels).
PV_SIGMA_VOX = 0.4


@dataclass(frozen=True)
class TissueValues:
    """One case's image values per tissue (index = tissue id)."""

    ct: np.ndarray  # HU, unenhanced
    pet: np.ndarray  # SUV
    t1_ms: np.ndarray
    t2_ms: np.ndarray
    pd: np.ndarray
    steatotic: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "tissues": [t.name for t in TISSUES],
            "ct_hu": [round(float(v), 3) for v in self.ct],
            "pet_suv": [round(float(v), 4) for v in self.pet],
            "t1_ms": [round(float(v), 2) for v in self.t1_ms],
            "t2_ms": [round(float(v), 2) for v in self.t2_ms],
            "pd": [float(v) for v in self.pd],
            "steatotic": self.steatotic,
        }

    def ct_phase(self, contrast: bool) -> np.ndarray:
        """HU per tissue in the unenhanced or the portal-venous phase."""
        if not contrast:
            return self.ct
        out = self.ct.copy()
        for n, t in enumerate(TISSUES):
            out[n] += PORTAL_VENOUS_ENHANCEMENT_HU.get(t.name, 0.0)
        return out


def draw_values(rng: np.random.Generator) -> TissueValues:
    """Per-case tissue values from the literature distributions of :data:`TISSUES` (steatosis in 20 %)."""
    ct = np.array([rng.normal(*t.ct) for t in TISSUES])
    steatotic = bool(rng.uniform() < STEATOSIS_FRACTION)
    names = [t.name for t in TISSUES]
    if steatotic:
        ct[names.index("liver")] = float(np.clip(rng.normal(*STEATOSIS_HU), 12.0, 42.0))
    ct[names.index("liver_vessel")] = ct[names.index("blood")]
    ct[names.index("bowel_hot")] = ct[names.index("bowel_wall")]
    pet = np.array([max(rng.normal(*t.pet), 0.0) for t in TISSUES])
    pet[names.index("liver_vessel")] = pet[names.index("blood")]
    pet[names.index("bowel_hot")] = rng.uniform(2.5, 6.0)
    pet[names.index("urine")] = float(np.clip(pet[names.index("urine")], 4.0, 30.0))
    jitter = np.exp(rng.normal(0.0, 0.08, (2, len(TISSUES))))
    t1 = np.array([t.t1_ms for t in TISSUES]) * jitter[0]
    t2 = np.array([t.t2_ms for t in TISSUES]) * jitter[1]
    pd = np.array([t.pd for t in TISSUES])
    return TissueValues(ct, pet, t1, t2, pd, steatotic)


def _blend(image: np.ndarray, rasters: list[LesionRaster], value: dict[int, float]) -> None:
    flat = image.reshape(-1)
    for r in rasters:
        if len(r.flat):
            v = value[r.lesion.index]
            flat[r.flat] = (1.0 - r.fraction) * flat[r.flat] + r.fraction * v


def texture(fields: FieldBank, points: np.ndarray, tissue: np.ndarray) -> np.ndarray:
    """The smooth texture field (zero mean, unit SD) at every voxel inside the body (0 outside)."""
    body = tissue > 0
    tex = np.zeros(tissue.shape, np.float32)
    tex[body] = fields.sample("texture", points[body])
    return tex


def ct_clean(tissue: np.ndarray, tex: np.ndarray, values: TissueValues, rasters: list[LesionRaster], *,
             contrast: bool = False) -> np.ndarray:
    """Noise-free CT (HU, float32) of a rendering (``tex``: :func:`texture`)."""
    hu = values.ct_phase(contrast).astype(np.float32)[tissue]
    amp = np.array([t.ct_texture for t in TISSUES], np.float32)[tissue]
    hu += amp * tex
    lesion_hu = {r.lesion.index: r.lesion.ct_hu + (MALIGNANT_ENHANCEMENT_HU if contrast and r.lesion.label == MALIGNANT
                                                   else 0.0) for r in rasters}
    _blend(hu, rasters, lesion_hu)
    hu = ndimage.gaussian_filter(hu, PV_SIGMA_VOX, mode="nearest")
    return np.clip(hu, -1024.0, 3071.0).astype(np.float32)


def pet_activity(tissue: np.ndarray, tex: np.ndarray, values: TissueValues,
                 rasters: list[LesionRaster]) -> np.ndarray:
    """True FDG uptake (SUV) on the PET grid, before any blur."""
    suv = values.pet.astype(np.float32)[tissue]
    suv *= 1.0 + 0.08 * tex
    _blend(suv, rasters, {r.lesion.index: r.lesion.pet_suv for r in rasters})
    return np.clip(suv, 0.0, None)


def pet_images(activity: np.ndarray, grid: Volume, rng: np.random.Generator, *, fwhm_mm: float,
               postfilter_mm: float, counts_per_ml: float) -> tuple[np.ndarray, np.ndarray]:
    """(noisy PET, noise-free PET) in SUV: PSF blur, Poisson counts, post-filter (see the module doc)."""
    spacing = np.asarray(grid.spacing)
    psf = ndimage.gaussian_filter(activity, fwhm_mm * FWHM_TO_SIGMA / spacing, mode="constant")
    counts = counts_per_ml * float(np.prod(spacing)) / 1000.0
    noisy = rng.poisson(np.clip(psf, 0.0, None) * counts).astype(np.float32) / np.float32(counts)
    post = postfilter_mm * FWHM_TO_SIGMA / spacing
    pet = ndimage.gaussian_filter(noisy, post, mode="constant")
    clean = ndimage.gaussian_filter(psf, post, mode="constant")
    return pet.astype(np.float32), clean.astype(np.float32)


def mr_signal(tissue: np.ndarray, tex: np.ndarray, values: TissueValues, rasters: list[LesionRaster],
              weighting: str) -> np.ndarray:
    """Noise-free, bias-free spin-echo signal (relative units) of a rendering; ``weighting`` 't1' or 't2'."""
    tr, te = T1W if weighting == "t1" else T2W
    per_tissue = spin_echo(values.pd, values.t1_ms, values.t2_ms, tr, te).astype(np.float32)
    sig = per_tissue[tissue]
    sig *= 1.0 + 0.05 * tex
    lesion_sig = {r.lesion.index: float(spin_echo(r.lesion.pd, r.lesion.t1_ms, r.lesion.t2_ms, tr, te))
                  for r in rasters}
    _blend(sig, rasters, lesion_sig)
    return ndimage.gaussian_filter(sig, PV_SIGMA_VOX, mode="nearest").astype(np.float32)


def bias_field(grid: Volume, rng: np.random.Generator, amplitude: float) -> np.ndarray:
    """Smooth multiplicative field ``1 + amplitude * f`` (``max |f| = 1``): a random quadratic in normalised coordinates.

    ``f = c . (u, v, w, u^2, v^2, u v, v w)`` with ``u, v, w`` in [-1, 1] across the grid.
    """
    u, v, w = ((np.arange(n, dtype=np.float32) - (n - 1) / 2.0) / ((n - 1) / 2.0 + 1e-6) for n in grid.shape)
    c = rng.normal(size=7).astype(np.float32)
    u, v, w = u[:, None, None], v[None, :, None], w[None, None, :]
    f = c[0] * u + c[1] * v + c[2] * w + c[3] * u * u + c[4] * v * v + c[5] * u * v + c[6] * v * w
    peak = float(np.abs(f).max())
    out = 1.0 + amplitude * f / peak if peak > 0 else np.ones(grid.shape, np.float32)
    return np.broadcast_to(out, grid.shape).astype(np.float32)


def rician(rng: np.random.Generator, signal: np.ndarray, sigma: float) -> np.ndarray:
    """Magnitude of the signal plus complex Gaussian noise of SD ``sigma`` per channel."""
    real = signal + rng.normal(0.0, sigma, signal.shape).astype(np.float32)
    imag = rng.normal(0.0, sigma, signal.shape).astype(np.float32)
    return np.hypot(real, imag).astype(np.float32)
