"""The 00_tour recipe: its checked metrics on a tiny cohort, with answers known from the ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from medbench.data.phantom import LABEL_IDS
from medbench.recipes import tour


@pytest.fixture(scope="module")
def data() -> tour.TourData:
    cfg = tour.Params.validate_values({"data_n_cases": 1, "data_image_size": [32, 32, 16],
                                       "data_spacing": [3.0, 3.0, 6.0]})
    return tour.load_tour_data(cfg)


def test_checked_metrics_match_their_definitions(data: tour.TourData) -> None:
    m = tour.checked_metrics(data)
    assert set(m) == {"n_cases", "ct_inside_soft_tissue_window", "ct_inside_lung_window", "ct_inside_bone_window",
                      "cnr_liver_spleen_ct", "cnr_liver_spleen_pet", "cnr_liver_spleen_t1", "cnr_liver_spleen_t2",
                      "mr_misalignment_mean_mm"}
    ct = data.volumes["CT"].array
    assert m["ct_inside_soft_tissue_window"] == pytest.approx(np.mean((ct >= -160) & (ct <= 240)))
    # the landmarks on MR are the CT landmarks moved by the known rigid transform
    cohort_case = data.cohort.case(0)  # type: ignore[union-attr]
    moved = cohort_case.rigid.apply(data.landmarks.ct)
    assert m["mr_misalignment_mean_mm"] == pytest.approx(np.linalg.norm(moved - data.landmarks.ct, axis=1).mean())
    assert m["mr_misalignment_mean_mm"] > 0.5


def test_cnr_uses_each_modalitys_own_label_map(data: tour.TourData) -> None:
    """MR is in another position: measuring T2 with the CT labels would blur liver and spleen together."""
    liver, spleen = LABEL_IDS["liver"], LABEL_IDS["spleen"]
    t2, own, ct_labels = data.volumes["MR T2"].array, data.label_maps["MR T2"].array, data.labels.array
    from medbench.metrics import contrast_to_noise

    right = contrast_to_noise(t2, own == liver, own == spleen)
    wrong = contrast_to_noise(t2, ct_labels == liver, ct_labels == spleen)
    assert tour.checked_metrics(data)["cnr_liver_spleen_t2"] == pytest.approx(right)
    assert right > wrong


def test_contrast_table_has_every_modality(data: tour.TourData) -> None:
    table = tour.contrast_table(data)
    assert list(table.columns) == ["CT", "PET", "MR T1", "MR T2"] and "liver vs spleen" in table.index


def test_mni152_metrics() -> None:
    data = tour.load_tour_data(tour.Params.validate_values({"data_source": "mni152"}))
    m = tour.checked_metrics(data)
    assert set(m) == {"n_cases", "cnr_grey_white_t1"} and m["cnr_grey_white_t1"] > 1.0
    assert tour.organ_table(data).loc[1, "name"] == "grey_matter"
