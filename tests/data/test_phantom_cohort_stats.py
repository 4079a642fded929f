"""Between-patient variability over a 24-case cohort: volumes, positions, tissue values, acquisition."""

from __future__ import annotations

import numpy as np
import pytest

from medbench.data.phantom import (
    KIDNEY_L,
    KIDNEY_R,
    LIVER,
    SPLEEN,
    PhantomSpec,
    case_anatomy,
    generate_case,
)
from medbench.data.phantom.anatomy import render

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def anatomy_stats() -> dict[int, dict[str, np.ndarray]]:
    """Organ volumes (mL) and centroids (mm) of 24 anatomies rendered at the smoke grid (no images)."""
    spec = PhantomSpec(n_cases=24)
    grid = spec.grid()
    out: dict[int, dict[str, list]] = {o: {"ml": [], "centroid": []} for o in (LIVER, SPLEEN, KIDNEY_L, KIDNEY_R)}
    for i in range(spec.n_cases):
        lab = render(case_anatomy(spec, i), grid).label
        for organ, rec in out.items():
            m = lab == organ
            rec["ml"].append(m.sum() * grid.voxel_volume_ml)
            rec["centroid"].append(grid.world(np.argwhere(m).mean(axis=0))[0])
    return {o: {k: np.asarray(v) for k, v in rec.items()} for o, rec in out.items()}


def test_organ_volumes_vary_like_patients(anatomy_stats: dict[int, dict[str, np.ndarray]]) -> None:
    def cv(organ: int) -> float:
        v = anatomy_stats[organ]["ml"]
        return float(v.std() / v.mean())

    assert 1200 <= np.median(anatomy_stats[LIVER]["ml"]) <= 2000
    assert 100 <= np.median(anatomy_stats[SPLEEN]["ml"]) <= 350
    assert all(100 <= np.median(anatomy_stats[k]["ml"]) <= 200 for k in (KIDNEY_L, KIDNEY_R))
    assert cv(LIVER) >= 0.20 and cv(KIDNEY_L) >= 0.20 and cv(KIDNEY_R) >= 0.20
    assert cv(SPLEEN) >= 0.30


def test_organ_positions_vary_by_5_to_15_mm(anatomy_stats: dict[int, dict[str, np.ndarray]]) -> None:
    for organ, rec in anatomy_stats.items():
        sd = rec["centroid"].std(axis=0)
        assert 5.0 <= np.linalg.norm(sd) <= 25.0, organ  # 3D spread of the organ's position
        assert sd.max() >= 5.0, organ


def test_tissue_values_and_acquisition_vary_per_case() -> None:
    spec = PhantomSpec(n_cases=24, shape=(16, 16, 8), spacing=(25.0, 25.0, 32.0), pet_spacing=(20.0, 20.0, 20.0))
    cases = [generate_case(spec, i) for i in range(spec.n_cases)]
    liver = np.array([c.tissue_values["ct_hu"][c.tissue_values["tissues"].index("liver")] for c in cases])
    steatotic = np.array([c.tissue_values["steatotic"] for c in cases])
    assert 0.05 <= steatotic.mean() <= 0.45  # a steatotic subgroup (design: 20 %)
    assert (liver[steatotic] < 45).all() and 48 <= np.median(liver[~steatotic]) <= 68  # 58 +- 9 HU
    noise = np.array([c.acquisition["ct_noise_target_hu"] for c in cases])
    assert noise.min() >= 8 and noise.max() <= 25 and noise.std() > 3
    gain = np.array([c.acquisition["mr_gain"] for c in cases])
    assert gain.std() / gain.mean() >= 0.15  # MR global scale (receiver gain) CV ~ 25 % by design
    # half of each split (14 / 5 / 5) is positive, the odd one out positive: 7 + 3 + 3
    assert sum(c.label for c in cases) == 13
