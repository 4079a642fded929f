"""Registration metrics against known answers: translations, uniform scalings, a folding field."""

from __future__ import annotations

import numpy as np
import pytest

from medbench.errors import GeometryError
from medbench.image.transforms import DisplacementField, RigidTransform
from medbench.image.volume import Volume
from medbench.metrics import (
    dense_error_map,
    intensity_agreement,
    jacobian_determinant,
    jacobian_summary,
    landmark_tre,
    region_errors,
    transform_points,
)


@pytest.fixture
def grid() -> Volume:
    return Volume.from_spacing(np.zeros((12, 10, 8), np.float32), (2.0, 3.0, 4.0), origin=(-10.0, 5.0, 0.0))


def test_landmark_tre_of_a_translation() -> None:
    t = RigidTransform((0.0, 0.0, 0.0), (3.0, 4.0, 0.0))
    pts = np.array([[0.0, 0, 0], [10, 20, 30]])
    assert landmark_tre(t, pts, pts) == pytest.approx({"mean": 5.0, "median": 5.0, "max": 5.0})
    assert landmark_tre(t, pts, t.apply(pts))["max"] == pytest.approx(0.0)
    assert np.allclose(transform_points(t.to_sitk(), pts), t.apply(pts))


def test_dense_error_of_a_translation_is_its_length_everywhere(grid: Volume) -> None:
    t = RigidTransform((0.0, 0.0, 0.0), (0.0, 6.0, 8.0))
    err = dense_error_map(None, t, grid)
    assert err.shape == grid.shape and np.allclose(err.array, 10.0)
    # the same transform as SimpleITK, as a rigid and as a sampled field: no error
    assert np.allclose(dense_error_map(t.to_sitk(), t, grid).array, 0.0, atol=1e-4)
    field = DisplacementField.from_transform(t, grid)
    assert np.allclose(dense_error_map(field, t.to_sitk(), grid).array, 0.0, atol=1e-4)


def test_dense_error_of_a_rotation_grows_with_the_distance_from_its_centre(grid: Volume) -> None:
    rot = RigidTransform((0.0, 0.0, 90.0), (0.0, 0.0, 0.0), tuple(grid.center))  # type: ignore[arg-type]
    err = dense_error_map(rot, None, grid).array
    r = np.linalg.norm((grid.grid_points() - grid.center)[:, :2], axis=1).reshape(grid.shape)
    assert np.allclose(err, np.sqrt(2.0) * r, atol=1e-4)  # a 90 degree turn moves a point by sqrt(2) r


def test_region_errors_per_label(grid: Volume) -> None:
    err = np.zeros(grid.shape, np.float32)
    labels = np.zeros(grid.shape, np.uint8)
    labels[:6] = 1
    labels[6:] = 2
    err[6:] = 4.0
    err[11] = 10.0
    table = region_errors(err, labels, {1: "a", 2: "b", 3: "absent"})
    assert table.loc["a", "median_mm"] == 0.0 and table.loc["a", "n_voxels"] == 6 * 10 * 8
    assert table.loc["b", "median_mm"] == 4.0 and table.loc["b", "max_mm"] == 10.0
    assert table.loc["body", "mean_mm"] == pytest.approx(err.mean())
    assert np.isnan(table.loc["absent", "median_mm"])
    with pytest.raises(GeometryError, match="differ"):
        region_errors(err, labels[:3])


def test_jacobian_of_a_uniform_scaling_and_of_a_fold(grid: Volume) -> None:
    x = grid.grid_points().reshape(*grid.shape, 3) - grid.center
    scaled = DisplacementField.from_array(0.1 * x, grid)  # T(x) = 1.1 x: det = 1.1^3
    jac = jacobian_determinant(scaled)
    inner = jac.array[2:-2, 2:-2, 2:-2]
    assert np.allclose(inner, 1.1**3, atol=1e-4)
    assert jacobian_summary(inner)["folding_percent"] == 0.0
    folded = DisplacementField.from_array(-2.0 * x * np.array([1.0, 0.0, 0.0]), grid)  # x -> -x: det = -1
    s = jacobian_summary(jacobian_determinant(folded))
    assert s["folding_percent"] == pytest.approx(100.0) and s["min"] == pytest.approx(-1.0, abs=1e-4)
    # a rigid transform sampled on the grid preserves volume
    rigid = RigidTransform((10.0, 0.0, 5.0), (3.0, 1.0, 2.0))
    assert np.allclose(jacobian_determinant(rigid, grid).array[1:-1, 1:-1, 1:-1], 1.0, atol=1e-4)


def test_intensity_agreement_known_values(grid: Volume) -> None:
    rng = np.random.default_rng(0)
    a = grid.with_array(rng.normal(100.0, 10.0, grid.shape).astype(np.float32))
    same = intensity_agreement(a, a)
    assert same["mae"] == 0.0 and same["ncc"] == pytest.approx(1.0) and same["nmi"] == pytest.approx(2.0)
    shifted = intensity_agreement(a, a.with_array(a.array + 5.0))
    assert shifted["mae"] == pytest.approx(5.0) and shifted["rmse"] == pytest.approx(5.0)
    assert shifted["ncc"] == pytest.approx(1.0)
    inverted = intensity_agreement(a, a.with_array(-a.array))
    assert inverted["ncc"] == pytest.approx(-1.0)
    noise = intensity_agreement(a, a.with_array(rng.normal(100.0, 10.0, grid.shape).astype(np.float32)))
    assert abs(noise["ncc"]) < 0.1 and noise["nmi"] < 1.2
    with pytest.raises(GeometryError, match="differ"):
        intensity_agreement(a.array, a.array[:5])
