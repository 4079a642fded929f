"""What a notebook's ``data_source`` parameter selects, loaded in one call.

The tour shows the same things (every modality, labels, windowing) on either
the synthetic phantom cohort or nilearn's bundled MNI152 template, so one
parameter switches between synthetic and real data.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd

from medbench.config import PhantomParams, TourParams
from medbench.data import samples
from medbench.data.phantom import LABELS, Cohort, PhantomSpec, cohort_hash, load_cohort
from medbench.io.volume import Volume
from medbench.repro import hash_path
from medbench.viz.windowing import WINDOW_PRESETS, window_stats

#: MNI152 tissue labels built from nilearn's probability maps.
MNI_LABELS = {0: "background", 1: "grey_matter", 2: "white_matter"}


def phantom_spec(cfg: PhantomParams) -> PhantomSpec:
    """The phantom cohort a notebook's parameters describe."""
    return PhantomSpec(n_cases=cfg.n_cases, shape=tuple(cfg.image_size), spacing=tuple(cfg.spacing), seed=cfg.seed)


@dataclasses.dataclass
class TourData:
    """Images to look at (first case), their labels, a per-case table and a data digest."""

    source: str
    volumes: dict[str, Volume]
    labels: Volume
    label_names: dict[int, str]
    summary: pd.DataFrame
    digest: str
    cohort: Cohort | None = None

    @property
    def reference(self) -> Volume:
        """The volume the labels are drawn on (CT for the phantom, T1 for MNI152)."""
        return next(iter(self.volumes.values()))


def load_tour_data(cfg: TourParams) -> TourData:
    if cfg.data_source == "mni152":
        return _mni152()
    cohort = load_cohort(phantom_spec(cfg))
    case = cohort.case(0)
    volumes = {"CT": case.ct, "PET": case.pet, "MR T1": case.t1, "MR T2": case.t2}
    return TourData("phantom", volumes, case.labels, dict(LABELS), cohort.summary(), cohort_hash(cohort), cohort)


def _mni152() -> TourData:
    t1_path, masks = samples.mni152_t1(), samples.mni152_masks()
    t1 = Volume.from_nifti(t1_path, {"modality": "MR", "name": "MNI152 T1", "units": "a.u."})
    gm = Volume.from_nifti(masks["gm"]).array
    wm = Volume.from_nifti(masks["wm"]).array
    labels = np.zeros(t1.shape, dtype=np.uint8)
    labels[(gm > 0.5) & (gm >= wm)] = 1
    labels[(wm > 0.5) & (wm > gm)] = 2
    label_vol = t1.with_array(labels, name="MNI152 tissues")
    voxel_ml = float(np.prod(t1.spacing)) / 1000.0
    row = {f"{name}_ml": float((labels == k).sum()) * voxel_ml for k, name in MNI_LABELS.items() if k}
    row.update({f"{name}_t1": float(t1.array[labels == k].mean()) for k, name in MNI_LABELS.items() if k})
    summary = pd.DataFrame([row], index=pd.Index(["mni152"], name="case_id"))
    digest = hash_path(t1_path)
    return TourData("mni152", {"MNI152 T1": t1}, label_vol, MNI_LABELS, summary, digest)


def organ_table(data: TourData) -> pd.DataFrame:
    """Per-label voxel count, volume (mL) and mean/std of the reference image, first case."""
    ref, labels = data.reference, data.labels.array
    voxel_ml = float(np.prod(ref.spacing)) / 1000.0
    rows = []
    for value, name in data.label_names.items():
        mask = labels == value
        if value == 0 or not mask.any():
            continue
        vals = ref.array[mask].astype(float)
        rows.append({"label": value, "name": name, "voxels": int(mask.sum()), "volume_ml": mask.sum() * voxel_ml,
                     "mean": vals.mean(), "std": vals.std()})
    return pd.DataFrame(rows).set_index("label")


def tour_metrics(data: TourData) -> dict[str, Any]:
    """The tour's checked numbers: cohort-level statistics and window coverage of the reference image."""
    ref = data.reference
    metrics: dict[str, Any] = {"n_cases": int(len(data.summary))}
    numeric = data.summary.select_dtypes("number")
    for column in numeric.columns:
        metrics[f"mean_{column}"] = float(numeric[column].mean())
    if data.source == "phantom":
        for preset in ("soft_tissue", "lung", "bone"):
            metrics[f"ct_inside_{preset}_window"] = window_stats(ref.array, *WINDOW_PRESETS[preset]).inside
    return metrics
