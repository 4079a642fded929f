"""The 00_tour recipe: its checked metrics on a tiny cohort, with answers known from the ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from medbench.data.phantom import LABEL_IDS
from medbench.metrics import contrast_to_noise
from medbench.recipes import tour


@pytest.fixture(scope="module")
def data() -> tour.TourData:
    # a coarse grid over the full 400 x 400 x 256 mm field of view: the whole (mm-sized) anatomy, quickly
    cfg = tour.Params.validate_values({"data_n_cases": 3, "data_image_size": [32, 32, 16],
                                       "data_spacing": [12.5, 12.5, 16.0]})
    return tour.load_tour_data(cfg)


def test_checked_metrics_match_their_definitions(data: tour.TourData) -> None:
    m = tour.checked_metrics(data)
    assert set(m) == {"n_cases", "ct_inside_soft_tissue_window", "ct_inside_lung_window", "ct_inside_bone_window",
                      "cnr_liver_spleen_ct", "cnr_liver_spleen_pet", "cnr_liver_spleen_t1", "cnr_liver_spleen_t2",
                      "mr_misalignment_mean_mm", "lesions_malignant", "lesions_cyst", "lesions_ct_occult",
                      "cases_train", "cases_val", "cases_test", "cases_positive"}
    ct = data.volumes["CT"].array
    assert m["ct_inside_soft_tissue_window"] == pytest.approx(np.mean((ct >= -160) & (ct <= 240)))
    # the landmarks on MR are the CT landmarks moved by the known rigid transform
    case = data.cohort.case(0)  # type: ignore[union-attr]
    moved = case.rigid.apply(data.landmarks.ct)
    assert m["mr_misalignment_mean_mm"] == pytest.approx(np.linalg.norm(moved - data.landmarks.ct, axis=1).mean())
    assert m["mr_misalignment_mean_mm"] >= 10.0  # 10-30 mm translation plus up to 10 degrees
    lesions = data.cohort.lesions()  # type: ignore[union-attr]
    assert m["lesions_malignant"] == int((lesions["class"] == "malignant").sum())
    assert m["lesions_ct_occult"] == int(lesions["ct_occult"].sum())
    assert (m["cases_train"], m["cases_val"], m["cases_test"]) == (1, 1, 1)
    assert m["cases_positive"] == sum(data.cohort.truth(i)["classification"]["label"] for i in range(3))  # type: ignore[union-attr]


def test_cnr_uses_each_modalitys_own_label_map(data: tour.TourData) -> None:
    """MR is moved and PET is on another grid: each image is measured with its own label map."""
    liver, spleen = LABEL_IDS["liver"], LABEL_IDS["spleen"]
    t2, own = data.volumes["MR T2"].array, data.label_maps["MR T2"].array
    assert data.label_maps["PET"].same_grid(data.volumes["PET"]) and data.label_maps["MR T2"].same_grid(data.volumes["MR T2"])
    right = contrast_to_noise(t2, own == liver, own == spleen)
    assert tour.checked_metrics(data)["cnr_liver_spleen_t2"] == pytest.approx(right)


def test_tables(data: tour.TourData) -> None:
    table = tour.contrast_table(data)
    assert list(table.columns) == ["CT", "PET", "MR T1", "MR T2"] and "liver vs lesion_malignant" in table.index
    cohort = tour.cohort_table(data)
    assert list(cohort.columns) == list(tour.COHORT_COLUMNS) and len(cohort) == 3
    lesions = tour.lesion_table(data)
    assert len(lesions) == data.case.n_lesions  # type: ignore[union-attr]


def test_mni152_metrics() -> None:
    data = tour.load_tour_data(tour.Params.validate_values({"data_source": "mni152"}))
    m = tour.checked_metrics(data)
    assert set(m) == {"n_cases", "cnr_grey_white_t1"} and m["cnr_grey_white_t1"] > 1.0
    assert tour.organ_table(data).loc[1, "name"] == "grey_matter"
