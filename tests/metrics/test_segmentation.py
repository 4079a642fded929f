"""medbench.metrics.segmentation and stats: known answers on shapes whose overlaps and distances are exact."""

from __future__ import annotations

import numpy as np
import pytest

from medbench import metrics
from medbench.errors import GeometryError
from medbench.image import Volume

NAMES = {1: "a", 2: "b"}


def _cube(shape: tuple[int, int, int], lo: tuple[int, ...], hi: tuple[int, ...], value: int = 1) -> np.ndarray:
    arr = np.zeros(shape, np.uint8)
    arr[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = value
    return arr


def test_dice_known_answer_and_empty_conventions() -> None:
    truth = _cube((20, 20, 20), (0, 0, 0), (10, 10, 10))                    # 1000 voxels
    pred = _cube((20, 20, 20), (5, 0, 0), (15, 10, 10))                     # 1000, overlap 500
    assert metrics.dice(pred, truth, {1: "a"})["a"] == pytest.approx(0.5)
    assert metrics.dice(truth, truth, {1: "a"})["a"] == pytest.approx(1.0)
    d = metrics.dice(pred, truth, {2: "absent"})
    assert np.isnan(d["absent"]), "both empty: nothing to measure"
    assert metrics.dice(truth * 2, truth, {2: "fp"})["fp"] == 0.0, "a structure that is not there scores 0"
    with pytest.raises(GeometryError):
        metrics.dice(pred[:5], truth, NAMES)


def test_hd95_is_in_millimetres() -> None:
    truth = _cube((30, 30, 30), (5, 5, 5), (15, 15, 15))
    pred = _cube((30, 30, 30), (8, 5, 5), (18, 15, 15))                     # shifted 3 voxels along i
    iso = metrics.hd95(pred, truth, {1: "a"})["a"]
    aniso = metrics.hd95(pred, truth, {1: "a"}, spacing=(2.0, 1.0, 1.0))["a"]
    assert iso == pytest.approx(3.0) and aniso == pytest.approx(6.0)
    t_vol = Volume.from_spacing(truth, (2.0, 1.0, 1.0), role="label")
    assert metrics.hd95(t_vol.with_array(pred), t_vol, {1: "a"})["a"] == pytest.approx(6.0)  # spacing from the Volume
    assert metrics.hd95(np.zeros_like(truth), truth, {1: "a"})["a"] == float("inf")


def test_surface_dice_tolerance() -> None:
    truth = _cube((30, 30, 30), (5, 5, 5), (15, 15, 15))
    pred = _cube((30, 30, 30), (7, 5, 5), (17, 15, 15))                     # faces 2 mm apart along i
    tight = metrics.surface_dice(pred, truth, {1: "a"}, tolerance_mm=1.0)["a"]
    loose = metrics.surface_dice(pred, truth, {1: "a"}, tolerance_mm=2.5)["a"]
    assert loose == pytest.approx(1.0) and 0.3 < tight < 0.95


def test_mean_ci_known_answer() -> None:
    ci = metrics.mean_ci([1.0, 2.0, 3.0, float("nan")])
    # t(0.975, 2) = 4.302652..., sd = 1, n = 3
    assert ci.n == 3 and ci.mean == pytest.approx(2.0)
    assert ci.high - ci.mean == pytest.approx(4.302652729 / np.sqrt(3), rel=1e-6)
    assert metrics.mean_ci([0.7]) == (0.7, 0.7, 0.7, 1)
    assert metrics.mean_ci([]).n == 0


def test_pooled_dice_known_answer() -> None:
    truth = np.zeros((10, 10, 10), np.uint8)
    truth[:5] = 1                                    # 500 voxels of class 1
    truth[9, 9, 9] = 2                               # one voxel of class 2
    pred = truth.copy()
    pred[9, 9, 9] = 0                                # the one-voxel class is missed
    # 2 * 500 / (500 + 500 + 0 + 1): one voxel barely moves the pooled value (the per-class mean would be 0.5)
    assert metrics.pooled_dice(pred, truth, NAMES) == pytest.approx(1000 / 1001)
    assert metrics.pooled_dice(truth, truth, NAMES) == 1.0
    pred[:5] = 2                                     # every class-1 voxel called class 2
    assert metrics.pooled_dice(pred, truth, NAMES) == pytest.approx(0.0)
    assert np.isnan(metrics.pooled_dice(np.zeros_like(truth), np.zeros_like(truth), NAMES))
    with pytest.raises(GeometryError):
        metrics.pooled_dice(pred[:5], truth, NAMES)
