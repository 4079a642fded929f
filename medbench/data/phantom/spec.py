"""The cohort specification (:class:`PhantomSpec`), its grids, and the per-case plan (split, label, cue, shift).

Grids: ``shape``/``spacing`` set the CT grid (centred on the patient origin);
the anatomy is in millimetres, so a profile changes the sampling only. The
PET and MR grids derive from the CT's field of view unless given:

* PET: isotropic voxels of ``clip(2 x CT in-plane spacing, 2, 4)`` mm over the
  CT's field of view (a PET scanner's own 2-4 mm grid);
* MR: in-plane ``1.25 x`` and slices ``1.5625 x`` the CT spacing, over 96 % of
  the CT's field of view in-plane and 94 % along z, centred on the MR frame's
  origin (the anatomy appears moved by the CT->MR rigid transform).

The plan (:func:`case_plans`) decides, before any case is drawn, each case's
split (train / val / test: 60 / 20 / 20 %, at least one of each from three
cases), its classification label (half of each split has a malignant lesion)
and, with ``spurious_cue``, whether it carries the planted cue: in
``cue_split`` the cue goes with the label (present in ``cue_correlation`` of
the positive cases and ``1 - cue_correlation`` of the negative ones), in the
other splits in half of each class (independent of the label). ``shift``
changes the acquisition of the test cases (same patients otherwise):
``noise`` (CT at a quarter of the dose, PET counts quartered), ``contrast``
(portal-venous phase CT) or ``scale`` (patients 15 % smaller).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, ValidationError

from medbench.errors import ConfigError, format_validation_error
from medbench.image.volume import Volume

#: Bumped whenever the generator's output changes; part of every cache key.
PHANTOM_VERSION = 2

SPLITS = ("train", "val", "test")
Split = Literal["train", "val", "test"]
Shift = Literal["none", "noise", "contrast", "scale"]

#: The shift's settings for the test cases.
SHIFT_DOSE = 0.25
SHIFT_SCALE = 0.85


#: Radius (mm) of the planted spurious cue, a radio-opaque skin marker (``cue_radius_mm``).
DEFAULT_CUE_RADIUS_MM = 6.0
#: Fields added after phantom v2's cohorts were first cached, with their defaults (see :meth:`PhantomSpec.to_dict`).
LATE_FIELDS: dict[str, Any] = {"cue_radius_mm": DEFAULT_CUE_RADIUS_MM, "positive_fraction": 0.5,
                               "extra_malignant_mean": 1.0}


class PhantomSpec(BaseModel):
    """Everything that defines a phantom cohort; equal specs give identical data.

    Grids: ``shape`` / ``spacing`` (CT; voxels, mm), ``pet_spacing`` and
    ``mr_spacing`` (None: derived, see the module doc). CT: ``ct_noise_hu``
    (per-case range of the noise SD in the liver at full dose, HU),
    ``ct_dose`` (dose fraction of the stored ``ct``), ``dose_levels`` (extra
    CT volumes at these dose fractions), ``ct_views`` (projection views per
    180 degrees; None: half the in-plane size, at least 64). PET: ``pet_fwhm_mm`` (system
    resolution), ``pet_postfilter_mm`` (reconstruction post-filter, sets the
    noise grain), ``pet_counts`` (detected counts per mL per SUV unit: higher
    = less noise). MR: ``mr_snr`` (per-case range of the liver SNR),
    ``mr_bias`` (per-case range of the bias-field amplitude). Lesions:
    ``max_lesions`` per case; ``positive_fraction`` (share of each split's
    cases that have malignant lesions, the classification label's positives)
    and ``extra_malignant_mean`` (a positive case has 1 + min(Poisson(mean), 3)
    malignant lesions): a lesion-rich cohort raises both. Motion: ``max_rotation_deg`` (each Euler angle),
    ``translation_mm`` (range of the CT->MR translation length),
    ``breathing_mm`` (range of the inferior organ motion). Classification:
    ``spurious_cue``, ``cue_split``, ``cue_correlation``, ``cue_radius_mm`` (the
    marker's size: 6 mm is about one voxel of the 6.25 mm smoke grid). Shifted test set:
    ``shift``.

    Validated by pydantic (unknown keys rejected, strict numbers, frozen);
    lists are accepted for the tuples.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_cases: StrictInt = Field(6, ge=1)
    shape: tuple[StrictInt, StrictInt, StrictInt] = (64, 64, 32)
    spacing: tuple[StrictFloat, StrictFloat, StrictFloat] = (6.25, 6.25, 8.0)
    seed: StrictInt = Field(0, ge=0)
    pet_spacing: tuple[StrictFloat, StrictFloat, StrictFloat] | None = None
    mr_spacing: tuple[StrictFloat, StrictFloat, StrictFloat] | None = None
    ct_noise_hu: tuple[StrictFloat, StrictFloat] = (8.0, 25.0)
    ct_dose: StrictFloat = Field(1.0, gt=0, le=1)
    dose_levels: tuple[StrictFloat, ...] = ()
    ct_views: StrictInt | None = Field(None, ge=16)
    pet_fwhm_mm: StrictFloat = Field(5.0, ge=0)
    pet_postfilter_mm: StrictFloat = Field(5.0, ge=0)
    pet_counts: StrictFloat = Field(300.0, gt=0)
    mr_snr: tuple[StrictFloat, StrictFloat] = (15.0, 35.0)
    mr_bias: tuple[StrictFloat, StrictFloat] = (0.2, 0.4)
    max_lesions: StrictInt = Field(8, ge=0, le=20)
    positive_fraction: StrictFloat = Field(0.5, ge=0, le=1)
    extra_malignant_mean: StrictFloat = Field(1.0, ge=0, le=10)
    max_rotation_deg: StrictFloat = Field(10.0, ge=0, le=30)
    translation_mm: tuple[StrictFloat, StrictFloat] = (10.0, 30.0)
    breathing_mm: tuple[StrictFloat, StrictFloat] = (10.0, 20.0)
    spurious_cue: bool = False
    cue_split: Split = "train"
    cue_correlation: StrictFloat = Field(0.9, ge=0, le=1)
    cue_radius_mm: StrictFloat = Field(DEFAULT_CUE_RADIUS_MM, gt=0, le=30)
    shift: Shift = "none"

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise ConfigError(f"PhantomSpec: {format_validation_error(exc)}") from None
        if min(self.shape) < 8:
            raise ConfigError(f"PhantomSpec: shape must be 3 sizes of at least 8 voxels, got {self.shape!r}")
        for name in ("spacing", "pet_spacing", "mr_spacing"):
            value = getattr(self, name)
            if value is not None and min(value) <= 0:
                raise ConfigError(f"PhantomSpec: {name} must be 3 positive sizes in mm, got {value!r}")
        for name in ("ct_noise_hu", "mr_snr", "mr_bias", "translation_mm", "breathing_mm"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi:
                raise ConfigError(f"PhantomSpec: {name} must be a range (low <= high, >= 0), got {(lo, hi)!r}")
        if self.ct_noise_hu[0] <= 0 or self.mr_snr[0] <= 0:
            raise ConfigError("PhantomSpec: ct_noise_hu and mr_snr must be positive")
        if any(not 0 < d <= 1 for d in self.dose_levels):
            raise ConfigError(f"PhantomSpec: dose_levels must be fractions in (0, 1], got {self.dose_levels!r}")
        if self.mr_bias[1] >= 1:
            raise ConfigError(f"PhantomSpec: mr_bias must stay below 1, got {self.mr_bias!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (tuples become lists, numbers keep their type).

        A field added after cohorts were first cached (:data:`LATE_FIELDS`) is left out while it
        holds its default, so the key, the seeds derived from it and the files of every cohort
        generated before stay exactly as they were.
        """
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.model_dump().items()
                if not (k in LATE_FIELDS and v == LATE_FIELDS[k])}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> PhantomSpec:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        return cls(**values)

    def key(self) -> str:
        """Short stable hash of the spec and the generator version (the cache folder name)."""
        payload = json.dumps({"phantom_version": PHANTOM_VERSION, **self.to_dict()}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]

    @property
    def fov_mm(self) -> np.ndarray:
        """The CT field of view (mm) along i, j, k."""
        return np.asarray(self.shape) * np.asarray(self.spacing)

    def grid(self) -> Volume:
        """An empty Volume on the CT grid (centred on the patient origin)."""
        return _centred(self.shape, self.spacing)

    def pet_grid(self) -> Volume:
        """The PET grid (see the module doc)."""
        if self.pet_spacing is not None:
            spacing = np.asarray(self.pet_spacing, float)
        else:
            spacing = np.full(3, float(np.clip(2.0 * min(self.spacing[:2]), 2.0, 4.0)))
        shape = np.maximum(np.round(self.fov_mm / spacing).astype(int), 4)
        return _centred(tuple(int(v) for v in shape), tuple(float(v) for v in spacing))

    def mr_grid(self) -> Volume:
        """The MR grid (see the module doc)."""
        if self.mr_spacing is not None:
            spacing = np.asarray(self.mr_spacing, float)
        else:
            spacing = np.asarray(self.spacing, float) * np.array([1.25, 1.25, 1.5625])
        fov = self.fov_mm * np.array([0.96, 0.96, 0.94])
        shape = np.maximum(np.round(fov / spacing).astype(int), 4)
        return _centred(tuple(int(v) for v in shape), tuple(float(v) for v in spacing))


def _centred(shape: tuple[int, ...], spacing: tuple[float, ...]) -> Volume:
    sp = [float(v) for v in spacing]
    origin = [float(v) for v in -(np.asarray(shape) - 1) / 2.0 * np.asarray(sp)]
    return Volume.from_spacing(np.zeros(shape, np.uint8), sp, origin)


@dataclass(frozen=True)
class CasePlan:
    """What the cohort decides about a case before drawing it."""

    index: int
    split: str
    label: int  # 1 = has at least one malignant lesion
    cue: bool  # carries the planted spurious cue
    shifted: bool  # acquired with the spec's shift


def split_sizes(n: int) -> dict[str, int]:
    """Cases per split: 20 % validation and 20 % test (at least one each from 3 cases), the rest training."""
    if n < 3:
        return {"train": n - 1 if n > 1 else 1, "val": 0, "test": 1 if n > 1 else 0}
    n_val = max(1, int(round(0.2 * n)))
    n_test = max(1, int(round(0.2 * n)))
    return {"train": n - n_val - n_test, "val": n_val, "test": n_test}


@functools.lru_cache(maxsize=32)
def case_plans(spec: PhantomSpec) -> tuple[CasePlan, ...]:
    """The plan of every case (see the module doc); deterministic for the spec."""
    rng = np.random.default_rng(np.random.SeedSequence([spec.seed, 0x5EED, spec.n_cases]))
    order = rng.permutation(spec.n_cases)
    sizes = split_sizes(spec.n_cases)
    plans: dict[int, CasePlan] = {}
    start = 0
    for split in SPLITS:
        members = order[start:start + sizes[split]]
        start += sizes[split]
        # a share positive_fraction positive, spread evenly (0.5: every other case, the odd one out positive)
        f = spec.positive_fraction
        labels = [int(math.ceil((n + 1) * f) > math.ceil(n * f)) for n in range(len(members))]
        cues = [False] * len(members)
        if spec.spurious_cue:
            for cls in (1, 0):
                idx = [n for n, lab in enumerate(labels) if lab == cls]
                if split == spec.cue_split:
                    frac = spec.cue_correlation if cls == 1 else 1.0 - spec.cue_correlation
                else:
                    frac = 0.5
                k = int(np.floor(frac * len(idx) + rng.uniform()))
                for n in rng.permutation(idx)[:k]:
                    cues[int(n)] = True
        for n, case in enumerate(members):
            plans[int(case)] = CasePlan(int(case), split, labels[n], cues[n],
                                        spec.shift != "none" and split == "test")
    return tuple(plans[i] for i in range(spec.n_cases))
