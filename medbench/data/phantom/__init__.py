"""A seeded synthetic multimodal abdomen cohort: the data every notebook trains and measures on.

The phantom is a benchmark, not a picture (DESIGN §11): its tasks are
designed so that non-learning baselines (:mod:`medbench.baselines`) do not
solve them, while the ground truth stays exact.

* **Anatomy in millimetres** (:mod:`.anatomy`): body 280-380 mm wide with
  subcutaneous fat, muscular wall, spine and ribs, lung bases, liver,
  spleen, kidneys (gapped perirenal fat), stomach, pancreas, gallbladder,
  aorta, IVC, portal/splenic veins, psoas and paraspinal muscles, bowel and
  mesenteric fat. Organ volumes, positions and shapes vary per case
  (liver ~1550 mL, spleen ~190 mL with CV > 0.3, kidneys ~150 mL each);
  profiles change the grids, never the anatomy.
* **Lesions** (:mod:`.lesions`): malignant (PET-avid, a good share CT-occult)
  and benign cysts (water on CT, bright on T2, cold on PET), 0-8 per case,
  5-40 mm, each in the lesion table with its class, size, per-modality
  values and CT-occult flag.
* **Images** (:mod:`.modalities`): CT from the physics operator of
  :mod:`medbench.physics` (per-case noise 8-25 HU, dose levels), PET on its
  own 2-4 mm grid in SUV with PSF, Poisson noise and post-filter, MR T1/T2
  on its own grid and field of view with bias field and Rician noise.
* **Ground truth**: exact CT->MR rigid transform (up to +-10 deg, 10-30 mm),
  breathing deformation CT<->CT (10-20 mm, sliding at the abdominal wall) as
  a dense field plus landmarks, the classification label with its cause and
  an optional planted spurious cue, splits and an optional shifted test set.

Label map v2, tissue tables: :mod:`.labels`. Specification, grids, plan:
:mod:`.spec`. A case: :mod:`.case`; on disk: :mod:`.files`; the cached
cohort: :mod:`.cohort`.
"""

from __future__ import annotations

from medbench.data.phantom.case import PhantomCase, case_anatomy, dose_name, generate_case
from medbench.data.phantom.cohort import COHORT_FILE, Cohort, cohort_hash, cohort_root, load_cohort
from medbench.data.phantom.files import case_paths, read_case, suv_bw, write_case
from medbench.data.phantom.labels import (
    AORTA,
    BACKGROUND,
    BENCHMARK_ORGANS,
    BONE,
    BOWEL,
    CYST,
    FAT,
    GALLBLADDER,
    IVC,
    KIDNEY_L,
    KIDNEY_R,
    LABEL_IDS,
    LABELS,
    LESION_CLASS_NAMES,
    LESION_LABELS,
    LIVER,
    LUNG,
    MALIGNANT,
    MUSCLE,
    ORGAN_LABELS,
    PANCREAS,
    PORTAL_VEIN,
    SOFT,
    SPINAL_CANAL,
    SPLEEN,
    STOMACH,
)
from medbench.data.phantom.spec import PHANTOM_VERSION, SPLITS, CasePlan, PhantomSpec, case_plans, split_sizes

__all__ = [
    "AORTA", "BACKGROUND", "BENCHMARK_ORGANS", "BONE", "BOWEL", "COHORT_FILE", "CYST", "CasePlan", "Cohort", "FAT",
    "GALLBLADDER", "IVC", "KIDNEY_L", "KIDNEY_R", "LABELS", "LABEL_IDS", "LESION_CLASS_NAMES", "LESION_LABELS",
    "LIVER", "LUNG", "MALIGNANT", "MUSCLE", "ORGAN_LABELS", "PANCREAS", "PHANTOM_VERSION", "PORTAL_VEIN",
    "PhantomCase", "PhantomSpec", "SOFT", "SPINAL_CANAL", "SPLEEN", "SPLITS", "STOMACH", "case_anatomy", "case_paths",
    "case_plans", "cohort_hash", "cohort_root", "dose_name", "generate_case", "load_cohort", "read_case", "split_sizes", "suv_bw",
    "write_case",
]
