"""medbench.metrics: label volumes, per-label statistics, window coverage, CNR, TRE — known answers."""

from __future__ import annotations

import numpy as np
import pytest

from medbench import metrics
from medbench.errors import DataError, GeometryError
from medbench.image import Volume


def _labels() -> Volume:
    arr = np.zeros((10, 10, 10), np.uint8)
    arr[:5] = 1          # 500 voxels
    arr[5:, :2] = 2      # 5 * 2 * 10 = 100 voxels
    return Volume.from_spacing(arr, (2.0, 2.0, 2.5), role="label")  # 10 mm^3 per voxel


def test_label_volumes_ml_known_answer() -> None:
    vols = metrics.label_volumes_ml(_labels(), {0: "bg", 1: "liver", 2: "spleen", 3: "kidney"})
    assert vols == {"liver": pytest.approx(5.0), "spleen": pytest.approx(1.0), "kidney": 0.0}
    assert metrics.label_volumes_ml(_labels(), {0: "bg", 1: "liver"}, include_background=True)["bg"] == pytest.approx(4.0)
    assert set(metrics.label_volumes_ml(_labels())) == {"1", "2"}


def test_label_statistics_known_answer_and_grid_check() -> None:
    lab = _labels()
    img = lab.with_array(np.where(lab.array == 1, 50.0, np.where(lab.array == 2, 10.0, -1000.0)), role="image")
    img.array[0, 0, 0] = 150.0  # one liver voxel differs: mean 50.2, std known
    table = metrics.label_statistics(img, lab, {1: "liver", 2: "spleen", 7: "absent"})
    assert list(table.index) == [1, 2]
    liver = table.loc[1]
    assert liver["voxels"] == 500 and liver["volume_ml"] == pytest.approx(5.0)
    assert liver["mean"] == pytest.approx(50.2)
    assert liver["std"] == pytest.approx(np.sqrt((100 - 0.2) ** 2 / 500 + 499 * 0.2**2 / 500))
    other = Volume.from_spacing(img.array, (1.0, 1.0, 1.0))
    with pytest.raises(GeometryError, match="affine differs"):
        metrics.label_statistics(other, lab, {1: "liver"})


def test_window_coverage_known_answer() -> None:
    values = np.array([-1000.0, -200.0, 0.0, 40.0, 240.0, 1000.0])
    cov = metrics.window_coverage(values, "soft_tissue")  # 40/400: [-160, 240]
    assert (cov.below, cov.inside, cov.above) == pytest.approx((2 / 6, 3 / 6, 1 / 6))
    table = metrics.window_coverage_table(values, ["soft_tissue", (0, 100)])
    assert table.loc["C0 W100", "inside"] == pytest.approx(2 / 6)


def test_contrast_to_noise_known_answer() -> None:
    img = np.array([1.0, 3.0, 1.0, 3.0, 11.0, 13.0, 11.0, 13.0])
    a = np.arange(8) < 4
    assert metrics.contrast_to_noise(img, a, ~a) == pytest.approx(10.0)  # means 2 vs 12, both std 1
    assert metrics.contrast_to_noise(np.r_[np.zeros(4), np.ones(4)], a, ~a) == float("inf")
    with pytest.raises(DataError, match="at least 2 voxels"):
        metrics.contrast_to_noise(img, np.zeros(8, bool), a)


def test_tre_known_answer() -> None:
    truth = np.zeros((3, 3))
    est = np.array([[3.0, 4.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    np.testing.assert_allclose(metrics.point_distances(est, truth), [5.0, 1.0, 0.0])
    assert metrics.tre_summary(est, truth) == {"mean": pytest.approx(2.0), "median": 1.0, "max": 5.0}
    with pytest.raises(GeometryError):
        metrics.point_distances(est[:2], truth)
