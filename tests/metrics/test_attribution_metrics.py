"""Known-answer tests of the attribution scores (medbench.metrics.attribution, medbench.metrics.classification)."""

from __future__ import annotations

import numpy as np
import pytest

from medbench.metrics.attribution import (
    curve_auc,
    dilate,
    map_ssim,
    mask_fraction,
    pointing_game,
    rank_correlation,
    relevance_mass,
    relevance_rank,
)
from medbench.metrics.classification import accuracy, auroc


def _lesion(shape: tuple[int, int, int] = (24, 24, 12)) -> np.ndarray:
    m = np.zeros(shape, bool)
    m[5:9, 10:14, 3:6] = True
    return m


def test_map_equal_to_mask_scores_one() -> None:
    m = _lesion()
    r = m.astype(float)
    assert relevance_mass(r, m) == 1.0
    assert relevance_rank(r, m) == 1.0
    assert pointing_game(r, m) == 1.0


def test_random_map_scores_near_chance() -> None:
    m = _lesion((40, 40, 20))
    rng = np.random.default_rng(0)
    masses, ranks, hits = [], [], []
    for _ in range(60):
        r = rng.random(m.shape)
        masses.append(relevance_mass(r, m))
        ranks.append(relevance_rank(r, m))
        hits.append(pointing_game(r, m, tolerance=1))
    chance = mask_fraction(m)
    assert abs(np.mean(masses) - chance) < 0.1 * chance
    assert abs(np.mean(ranks) - chance) < 0.3 * chance
    assert abs(np.mean(hits) - mask_fraction(dilate(m, 1))) < 0.03


def test_map_outside_mask_scores_zero_and_is_scale_invariant() -> None:
    m = _lesion()
    r = (~m).astype(float)
    r[0, 0, 0] = 5.0
    assert relevance_mass(r, m) == 0.0
    assert pointing_game(r, m) == 0.0
    half = m.astype(float) + 0.0
    half[0:2, 0:2, 0:2] = 1.0  # 8 voxels outside, 48 inside
    assert relevance_mass(half, m) == pytest.approx(48 / 56)
    assert relevance_mass(7 * half, m) == pytest.approx(48 / 56)


def test_pointing_game_tolerance() -> None:
    m = _lesion()
    r = np.zeros(m.shape)
    r[4, 11, 4] = 1.0  # one voxel next to the lesion
    assert pointing_game(r, m, tolerance=0) == 0.0
    assert pointing_game(r, m, tolerance=1) == 1.0


def test_degenerate_inputs() -> None:
    m = _lesion()
    assert np.isnan(relevance_mass(np.zeros(m.shape), m))
    assert np.isnan(pointing_game(np.ones(m.shape), np.zeros(m.shape, bool)))
    with pytest.raises(ValueError, match="non-negative"):
        relevance_mass(-np.ones(m.shape), m)
    with pytest.raises(ValueError, match="shape"):
        relevance_mass(np.ones((2, 2, 2)), m)


def test_curve_auc_known_values() -> None:
    assert curve_auc(np.ones(5)) == pytest.approx(1.0)
    assert curve_auc(np.linspace(1, 0, 11)) == pytest.approx(0.5)
    assert curve_auc(np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.5, 1.0])) == pytest.approx(0.25)
    with pytest.raises(ValueError):
        curve_auc(np.array([1.0]))


def test_similarity_of_maps() -> None:
    rng = np.random.default_rng(1)
    a = rng.random((16, 16, 8))
    assert rank_correlation(a, a) == pytest.approx(1.0)
    assert rank_correlation(a, 3 * a + 1) == pytest.approx(1.0)
    assert rank_correlation(a, -a) == pytest.approx(-1.0)
    assert abs(rank_correlation(a, rng.random(a.shape))) < 0.1
    assert map_ssim(a, a) == pytest.approx(1.0)
    assert map_ssim(a, rng.random(a.shape)) < 0.2
    assert np.isnan(rank_correlation(a, np.zeros(a.shape)))


def test_auroc_and_accuracy() -> None:
    y = np.array([0, 0, 1, 1])
    assert auroc(np.array([0.1, 0.2, 0.8, 0.9]), y) == 1.0
    assert auroc(np.array([0.9, 0.8, 0.2, 0.1]), y) == 0.0
    assert auroc(np.array([0.5, 0.5, 0.5, 0.5]), y) == 0.5
    assert auroc(np.array([0.1, 0.4, 0.35, 0.8]), y) == 0.75
    assert auroc(np.array([0.3, 0.4]), np.array([1, 1])) == 0.5
    assert accuracy(np.array([1, 0, 1]), np.array([1, 1, 1])) == pytest.approx(2 / 3)
