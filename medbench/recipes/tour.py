"""00_tour: the phantom (or MNI152), every modality, windowing, labels, viewers, profiles.

The tour shows the same things on either the synthetic phantom cohort or
nilearn's bundled MNI152 template, so one parameter (``data_source``)
switches between synthetic and real data.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from medbench import config
from medbench.data import samples
from medbench.data.phantom import LABEL_IDS, LABELS, Cohort, PhantomCase, cohort_hash, load_cohort
from medbench.hashing import hash_path
from medbench.image.volume import Volume
from medbench.metrics import contrast_to_noise, label_statistics, point_distances, window_coverage
from medbench.recipes.sections import PhantomData

NOTEBOOK = "00_tour"

#: MNI152 tissue labels built from nilearn's probability maps.
MNI_LABELS = {0: "background", 1: "grey_matter", 2: "white_matter"}


class TourDataParams(PhantomData):
    """The ``data`` section: where the images come from, and the phantom cohort's size."""

    source: Literal["phantom", "mni152"] = Field(
        "phantom", description="The synthetic phantom, or nilearn's bundled MNI152 T1 template (real data, offline)."
    )


class Params(config.Params):
    """00_tour parameters (flat names: ``seed``, ``data_source``, ``data_n_cases``, ``data_image_size``,
    ``data_spacing``, ``view3d_backend``)."""

    notebook: ClassVar[str] = NOTEBOOK

    data: TourDataParams = Field(default_factory=TourDataParams)
    view3d_backend: Literal["auto", "niivue", "slices", "itk"] = Field(
        "auto", description="3D viewer: auto (offline-safe), niivue, slices or itk (online only, opt-in)."
    )


@dataclasses.dataclass
class TourData:
    """Images to look at (first case), the label map of each, a per-case table and a data digest."""

    source: str
    volumes: dict[str, Volume]
    label_maps: dict[str, Volume]
    label_names: dict[int, str]
    summary: pd.DataFrame
    digest: str
    cohort: Cohort | None = None
    landmarks: Any = None
    case: PhantomCase | None = None

    @property
    def reference(self) -> Volume:
        """The volume the labels are drawn on (CT for the phantom, T1 for MNI152)."""
        return next(iter(self.volumes.values()))

    @property
    def labels(self) -> Volume:
        """The label map of the reference volume."""
        return self.label_maps[next(iter(self.volumes))]


def load_tour_data(cfg: Params) -> TourData:
    """The images the tour shows: the first phantom case, or the MNI152 template."""
    if cfg.data.source == "mni152":
        return _mni152()
    cohort = load_cohort(cfg.data.spec(cfg.seed))
    case = cohort.case(0)
    volumes = {"CT": case.ct, "PET": case.pet, "MR T1": case.t1, "MR T2": case.t2}
    # each modality on its own grid with its own label map; MR shows the anatomy after the known CT->MR motion
    label_maps = {"CT": case.labels, "PET": case.labels_pet, "MR T1": case.labels_mr, "MR T2": case.labels_mr}
    return TourData("phantom", volumes, label_maps, dict(LABELS), cohort.summary(), cohort_hash(cohort), cohort,
                     case.landmarks, case)


def _mni152() -> TourData:
    t1_path, masks = samples.mni152_t1(), samples.mni152_masks()
    t1 = Volume.from_nifti(t1_path, {"modality": "MR", "name": "MNI152 T1", "units": "a.u."})
    gm = Volume.from_nifti(masks["gm"]).array
    wm = Volume.from_nifti(masks["wm"]).array
    labels = np.zeros(t1.shape, dtype=np.uint8)
    labels[(gm > 0.5) & (gm >= wm)] = 1
    labels[(wm > 0.5) & (wm > gm)] = 2
    label_vol = t1.with_array(labels, role="label", name="MNI152 tissues")
    stats = label_statistics(t1, label_vol, MNI_LABELS)
    row = {f"{r['name']}_ml": r["volume_ml"] for _, r in stats.iterrows()}
    row.update({f"{r['name']}_t1": r["mean"] for _, r in stats.iterrows()})
    summary = pd.DataFrame([row], index=pd.Index(["mni152"], name="case_id"))
    return TourData("mni152", {"MNI152 T1": t1}, {"MNI152 T1": label_vol}, MNI_LABELS, summary, hash_path(t1_path))


def organ_table(data: TourData) -> pd.DataFrame:
    """Per label: voxels, volume (mL), mean and std of the reference image (first case)."""
    return label_statistics(data.reference, data.labels, data.label_names)


def contrast_table(data: TourData, pairs: tuple[tuple[str, str], ...] | None = None) -> pd.DataFrame:
    """Contrast-to-noise ratio of tissue pairs in every modality (rows: pairs, columns: modalities).

    Which modality tells two tissues apart: CNR near 0 means no threshold
    can; each modality is measured with its own label map (the MR images
    are in another position).
    """
    if pairs is None:
        pairs = (("grey_matter", "white_matter"),) if data.source == "mni152" else (
            ("liver", "spleen"), ("liver", "lesion_malignant"), ("liver", "lesion_cyst"), ("kidney_left", "muscle"),
            ("fat", "soft_tissue"))
    ids = {name: value for value, name in data.label_names.items()}
    rows = {}
    for a, b in pairs:
        rows[f"{a} vs {b}"] = {
            name: contrast_to_noise(vol.array, data.label_maps[name].array == ids[a],
                                    data.label_maps[name].array == ids[b])
            if (data.label_maps[name].array == ids[a]).sum() > 1 and (data.label_maps[name].array == ids[b]).sum() > 1
            else float("nan")
            for name, vol in data.volumes.items()
        }
    return pd.DataFrame(rows).T


#: Columns of :func:`cohort_table` (the per-case summary the tour shows).
COHORT_COLUMNS = ("split", "label", "n_malignant", "n_ct_occult", "n_cyst", "liver_ml", "spleen_ml", "kidney_left_ml",
                  "kidney_right_ml", "liver_hu", "ct_noise_hu")


def cohort_table(data: TourData) -> pd.DataFrame:
    """Per case: split, classification label, lesion counts, organ volumes (mL), liver HU, CT noise (HU)."""
    if data.source != "phantom":
        return data.summary
    return data.summary[list(COHORT_COLUMNS)]


def lesion_table(data: TourData) -> pd.DataFrame:
    """The first case's lesions: class, host organ, size, CT contrast (occult or not), PET and T2 contrast."""
    if data.case is None or not data.case.n_lesions:
        return pd.DataFrame()
    table = data.case.lesion_table()
    table = table.assign(host=[LABELS[int(h)] for h in table["host"]])
    return table[["class", "host", "diameter_mm", "ct_delta_hu", "ct_occult", "pet_peak_to_liver", "t2_to_host"]]


#: What the checked-metrics cell prints, and why each number is checked.
CHECKED: dict[str, str] = {
    "n_cases": "the cohort size the run used (a profile or parameter change shows here first)",
    "ct_inside_<preset>_window": "fraction of CT voxels a preset displays in grey (soft tissue, lung, bone): "
    "the numeric companion of the window figure",
    "cnr_liver_spleen_<modality>": "contrast-to-noise between liver and spleen on CT, PET, T1 and T2: which "
    "modality separates the two organs (the reason for multimodal imaging)",
    "mr_misalignment_mean_mm": "mean distance between the same landmarks on CT and MR before any registration: "
    "why 02_registration exists",
    "lesions_malignant / lesions_cyst / lesions_ct_occult": "lesion counts over the cohort: how many malignant "
    "lesions a CT alone cannot see (the reason for PET)",
    "cases_train / cases_val / cases_test, cases_positive": "the split sizes and how many cases have a malignant "
    "lesion (the classification label)",
    "cnr_grey_white_t1 (mni152)": "grey/white matter contrast of the real template",
}


def checked_metrics(data: TourData) -> dict[str, Any]:
    """The tour's checked numbers (see :data:`CHECKED`)."""
    metrics: dict[str, Any] = {"n_cases": int(len(data.summary))}
    if data.source == "mni152":
        t1, lab = data.reference, data.labels.array
        metrics["cnr_grey_white_t1"] = contrast_to_noise(t1.array, lab == 1, lab == 2)
        return metrics
    ct = data.volumes["CT"]
    for preset in ("soft_tissue", "lung", "bone"):
        metrics[f"ct_inside_{preset}_window"] = window_coverage(ct.array, preset).inside
    liver, spleen = LABEL_IDS["liver"], LABEL_IDS["spleen"]
    for name, vol in data.volumes.items():
        lab = data.label_maps[name].array
        key = name.lower().replace("mr ", "").replace(" ", "_")
        metrics[f"cnr_liver_spleen_{key}"] = contrast_to_noise(vol.array, lab == liver, lab == spleen)
    if data.landmarks is not None:
        metrics["mr_misalignment_mean_mm"] = float(point_distances(data.landmarks.ct, data.landmarks.mr).mean())
    s = data.summary
    metrics["lesions_malignant"] = int(s["n_malignant"].sum())
    metrics["lesions_cyst"] = int(s["n_cyst"].sum())
    metrics["lesions_ct_occult"] = int(s["n_ct_occult"].sum())
    for split in ("train", "val", "test"):
        metrics[f"cases_{split}"] = int((s["split"] == split).sum())
    metrics["cases_positive"] = int(s["label"].sum())
    return metrics
