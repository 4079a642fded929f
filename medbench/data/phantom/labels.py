"""Label map v2 and the tissue property tables (literature values) the images are made from.

Labels (what a voxel *is*, for segmentation) and tissues (what it is made of,
for image values) are separate: the liver label covers liver parenchyma and
the blood in its vessels; the kidney label covers parenchyma and the urine in
the renal pelvis; the stomach label covers wall, contents and gas.

Label ids are stable: v1 ids keep their meaning where the structure still
exists (1 soft tissue .. 7 bone, 9 aorta); id 8 (v1 "lesion", PET-hot and
CT-hypodense) is now the malignant lesion class; new structures and the
benign cyst class take new ids.

Tissue values are drawn per case from literature distributions
(:data:`TISSUES`): CT in HU without contrast (portal-venous enhancement in
:data:`PORTAL_VENOUS_ENHANCEMENT_HU` for the contrast-phase shift), PET in SUV,
MR as 1.5 T relaxation times (ms) and proton density, turned into T1- and
T2-weighted spin-echo signal by :func:`spin_echo`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Label map v2 (value -> name). Stable across versions where a structure exists.
LABELS: dict[int, str] = {
    0: "background",
    1: "soft_tissue",
    2: "fat",
    3: "liver",
    4: "spleen",
    5: "kidney_left",
    6: "kidney_right",
    7: "bone",
    8: "lesion_malignant",
    9: "aorta",
    10: "lesion_cyst",
    11: "ivc",
    12: "portal_vein",
    13: "pancreas",
    14: "stomach",
    15: "bowel",
    16: "muscle",
    17: "lung",
    18: "spinal_canal",
    19: "gallbladder",
}
LABEL_IDS: dict[str, int] = {name: value for value, name in LABELS.items()}

(BACKGROUND, SOFT, FAT, LIVER, SPLEEN, KIDNEY_L, KIDNEY_R, BONE, MALIGNANT, AORTA, CYST, IVC, PORTAL_VEIN,
 PANCREAS, STOMACH, BOWEL, MUSCLE, LUNG, SPINAL_CANAL, GALLBLADDER) = range(20)

#: Anatomical structures a segmentation model can be trained on (every label but background,
#: the soft-tissue/fat filler and the lesion classes).
ORGAN_LABELS: tuple[int, ...] = (LIVER, SPLEEN, KIDNEY_L, KIDNEY_R, BONE, AORTA, IVC, PORTAL_VEIN, PANCREAS,
                                 STOMACH, BOWEL, MUSCLE, LUNG, SPINAL_CANAL, GALLBLADDER)
#: The organs the benchmark targets are stated for (segmentation baselines, volumes).
BENCHMARK_ORGANS: tuple[int, ...] = (LIVER, SPLEEN, KIDNEY_L, KIDNEY_R)
#: Lesion classes (separate ids): malignant (PET-avid, CT-occult in part) and benign cyst.
LESION_LABELS: tuple[int, ...] = (MALIGNANT, CYST)
LESION_CLASS_NAMES: dict[int, str] = {MALIGNANT: "malignant", CYST: "cyst"}


@dataclass(frozen=True)
class Tissue:
    """Per-case distributions of a tissue's image values.

    ``ct``: (mean, between-case SD) in HU, non-contrast; ``ct_texture``: SD (HU)
    of the smooth within-organ texture. ``pet``: (mean, between-case SD) in SUV.
    ``t1_ms``, ``t2_ms``: relaxation times at 1.5 T; ``pd``: proton density
    (relative); T1/T2 vary +-8 % between cases.
    """

    name: str
    ct: tuple[float, float]
    ct_texture: float
    pet: tuple[float, float]
    t1_ms: float
    t2_ms: float
    pd: float


#: Tissue classes (index = tissue id in the renderer). Sources: CT — typical
#: unenhanced attenuation (e.g. Kodama 2007 liver-spleen, Boyce 2010 steatosis
#: thresholds, renal parenchyma 30-45 HU); PET — FDG SUVmean of normal organs
#: (liver 1.8-2.6, blood pool 1.5-2.0, spleen below liver); MR — 1.5 T relaxation
#: times of abdominal tissue (de Bazelaire 2004: liver T1 586 / T2 46 ms,
#: spleen 1057 / 79, pancreas 584 / 46, renal cortex 966 / 87, muscle ~ 870 / 40,
#: fat ~ 260 / 85, CSF ~ 4000 / 2000).
TISSUES: tuple[Tissue, ...] = (
    Tissue("air", (-1000.0, 0.0), 0.0, (0.0, 0.0), 1000.0, 1.0, 0.0),
    Tissue("fat", (-100.0, 8.0), 8.0, (0.35, 0.08), 260.0, 85.0, 0.95),
    Tissue("muscle", (50.0, 5.0), 4.0, (0.8, 0.15), 870.0, 40.0, 0.75),
    Tissue("liver", (58.0, 9.0), 4.0, (2.2, 0.3), 586.0, 46.0, 0.75),
    Tissue("liver_vessel", (40.0, 4.0), 2.0, (1.7, 0.25), 1441.0, 290.0, 0.12),  # flowing blood: flow void on SE
    Tissue("spleen", (47.0, 4.0), 3.0, (1.8, 0.25), 1057.0, 79.0, 0.85),
    Tissue("kidney", (38.0, 5.0), 4.0, (2.6, 0.5), 1150.0, 85.0, 0.85),
    Tissue("urine", (6.0, 3.0), 2.0, (14.0, 6.0), 3000.0, 1500.0, 1.0),
    Tissue("blood", (40.0, 4.0), 2.0, (1.7, 0.25), 1441.0, 290.0, 0.12),
    Tissue("pancreas", (42.0, 5.0), 4.0, (1.5, 0.2), 584.0, 46.0, 0.75),
    Tissue("stomach_wall", (45.0, 4.0), 4.0, (2.0, 0.6), 900.0, 50.0, 0.75),
    Tissue("stomach_content", (18.0, 10.0), 8.0, (0.5, 0.1), 2500.0, 800.0, 0.95),
    Tissue("gas", (-950.0, 20.0), 20.0, (0.0, 0.0), 1000.0, 1.0, 0.0),
    Tissue("bowel_wall", (40.0, 6.0), 5.0, (1.5, 0.3), 900.0, 60.0, 0.75),
    Tissue("bowel_fluid", (12.0, 6.0), 5.0, (0.8, 0.15), 2500.0, 800.0, 0.95),
    Tissue("lung", (-850.0, 30.0), 25.0, (0.5, 0.1), 1200.0, 40.0, 0.15),
    Tissue("cancellous_bone", (220.0, 40.0), 30.0, (1.8, 0.3), 550.0, 50.0, 0.70),
    Tissue("cortical_bone", (1100.0, 120.0), 60.0, (0.4, 0.1), 1000.0, 1.0, 0.05),
    Tissue("disc", (85.0, 10.0), 6.0, (0.6, 0.1), 1000.0, 120.0, 0.80),
    Tissue("csf", (8.0, 3.0), 2.0, (0.3, 0.05), 4000.0, 2000.0, 1.0),
    Tissue("bile", (8.0, 5.0), 2.0, (0.6, 0.1), 2500.0, 1000.0, 1.0),
    Tissue("marker", (900.0, 0.0), 0.0, (0.0, 0.0), 1000.0, 1.0, 0.0),
    Tissue("bowel_hot", (40.0, 6.0), 5.0, (4.0, 1.0), 900.0, 60.0, 0.75),  # bowel wall with physiological uptake
)
TISSUE_IDS: dict[str, int] = {t.name: n for n, t in enumerate(TISSUES)}
T = TISSUE_IDS  # short alias used by the renderer

#: Liver attenuation of the steatotic subgroup (HU, mean and SD; Boyce 2010: < 40 HU = moderate-severe).
STEATOSIS_HU = (30.0, 7.0)
#: Fraction of cases in the steatotic subgroup.
STEATOSIS_FRACTION = 0.2

#: Portal-venous phase enhancement (HU added to the unenhanced value) for the contrast-phase shift.
PORTAL_VENOUS_ENHANCEMENT_HU: dict[str, float] = {
    "liver": 55.0, "liver_vessel": 130.0, "spleen": 65.0, "kidney": 120.0, "blood": 130.0, "pancreas": 60.0,
    "stomach_wall": 45.0, "bowel_wall": 45.0, "bowel_hot": 45.0, "muscle": 10.0, "urine": 0.0,
}
#: Enhancement of malignant (hypovascular) lesions in the portal-venous phase (HU).
MALIGNANT_ENHANCEMENT_HU = 25.0

#: Spin-echo sequence parameters (ms): T1-weighted (TR, TE) and T2-weighted (TR, TE).
T1W = (500.0, 12.0)
T2W = (4000.0, 90.0)


def spin_echo(pd: np.ndarray | float, t1_ms: np.ndarray | float, t2_ms: np.ndarray | float,
              tr_ms: float, te_ms: float) -> np.ndarray:
    """Spin-echo signal ``PD (1 - exp(-TR/T1)) exp(-TE/T2)`` (relative units)."""
    pd_, t1, t2 = (np.asarray(v, dtype=np.float64) for v in (pd, t1_ms, t2_ms))
    return np.asarray(pd_ * (1.0 - np.exp(-tr_ms / t1)) * np.exp(-te_ms / t2))
