"""The non-learning baselines on small synthetic inputs with known answers."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from medbench import baselines as B
from medbench.errors import ConfigError
from medbench.image.transforms import RigidTransform
from medbench.image.volume import Volume

LIVER, SPLEEN = 3, 4


def _grid(shape: tuple[int, int, int] = (48, 48, 24), spacing: tuple[float, float, float] = (2.0, 2.0, 3.0)) -> Volume:
    origin = tuple(-(n - 1) / 2 * s for n, s in zip(shape, spacing))
    return Volume.from_spacing(np.zeros(shape, np.float32), spacing, origin)


def _ball(grid: Volume, center: tuple[float, float, float], radius: float) -> np.ndarray:
    pts = grid.grid_points().reshape(*grid.shape, 3)
    return np.linalg.norm(pts - np.asarray(center), axis=-1) <= radius


def _case(grid: Volume, shift: float, rng: np.random.Generator) -> SimpleNamespace:
    """Two touching 'organs' of different HU in fat, moved by ``shift`` mm along x; per-case HU and noise vary."""
    liver = _ball(grid, (-12.0 + shift, 0.0, 0.0), 20.0)
    spleen = _ball(grid, (20.0 + shift, 0.0, 0.0), 12.0) & ~liver
    body = _ball(grid, (0.0, 0.0, 0.0), 44.0)
    hu = np.where(body, -100.0, -1000.0)
    hu[liver], hu[spleen] = 60.0 + rng.normal(0, 3), 120.0 + rng.normal(0, 3)
    lab = np.zeros(grid.shape, np.uint8)
    lab[body] = 2
    lab[liver], lab[spleen] = LIVER, SPLEEN
    ct = grid.with_array((hu + rng.normal(0, 8, grid.shape)).astype(np.float32), name="ct")
    return SimpleNamespace(ct=ct, labels=grid.with_array(lab, role="label"), case_id=f"s{shift:+.0f}")


def test_threshold_rule_segments_separable_organs() -> None:
    grid, rng = _grid(), np.random.default_rng(0)
    train = [_case(grid, s, rng) for s in (-4.0, 0.0, 4.0)]
    rule = B.fit_threshold_rule(train, (LIVER, SPLEEN), erosion_mm=2.0)  # type: ignore[arg-type]
    assert 40 < rule.bands[LIVER][0] < 60 < rule.bands[LIVER][1] < 80  # the interior of a 60 HU organ
    assert rule.classes == (LIVER, SPLEEN)  # largest first
    test = _case(grid, 2.0, rng)
    pred = B.segment_threshold(test.ct, rule)
    scores = B.mean_dice({"t": pred}, {"t": test.labels}, (LIVER, SPLEEN))
    assert scores["liver"] > 0.9 and scores["spleen"] > 0.85
    # the same rule with a band that excludes the organs finds nothing of them
    empty = B.ThresholdRule({LIVER: (300.0, 400.0)}, {LIVER: rule.centroids[LIVER]}, {LIVER: rule.volumes_ml[LIVER]})
    assert not (B.segment_threshold(test.ct, empty).array == LIVER).any()


def test_atlas_is_the_majority_vote() -> None:
    grid = _grid((6, 1, 1), (1.0, 1.0, 1.0))
    maps = [grid.with_array(np.array(v, np.uint8).reshape(6, 1, 1), role="label")
            for v in ([3, 3, 4, 0, 0, 4], [3, 4, 4, 0, 3, 0], [3, 0, 4, 4, 3, 0])]
    vote = B.atlas_vote(maps, grid, (LIVER, SPLEEN))
    assert vote.array.ravel().tolist() == [3, 0, 4, 0, 3, 0]  # index 1: 3/4/0 tie -> background; 4: two 3s
    assert vote.is_label and vote.same_grid(grid)
    with pytest.raises(ConfigError):
        B.atlas_vote([], grid)


def test_best_baseline_is_chosen_on_validation_and_predicts_test() -> None:
    grid, rng = _grid(), np.random.default_rng(1)
    train = [_case(grid, s, rng) for s in (-6.0, 0.0, 6.0)]
    val = [_case(grid, 3.0, rng)]
    test = [_case(grid, -3.0, rng)]
    variants = ({"sigma_mm": 2.0, "percentiles": (5.0, 95.0), "erosion_mm": 2.0},)
    name, preds = B.best_segmentation_baseline(train, test, (LIVER, SPLEEN), val=val, variants=variants)  # type: ignore[arg-type]
    assert name == "threshold"  # the organs differ in HU and move: the image beats the atlas
    assert set(preds) == {test[0].case_id}
    still = [_case(grid, 0.0, rng) for _ in range(3)]
    for c in still:
        c.ct = c.ct.with_array(np.full(grid.shape, 40.0, np.float32))  # an image that shows nothing
    name, _ = B.best_segmentation_baseline(still[:2], still[2:], (LIVER, SPLEEN), val=still[2:], variants=variants)  # type: ignore[arg-type]
    assert name == "atlas"


def test_centre_of_mass_alignment_recovers_a_translation() -> None:
    grid = _grid((48, 48, 24), (2.0, 2.0, 3.0))
    fixed = grid.with_array(np.where(_ball(grid, (4.0, -6.0, 2.0), 20.0), 100.0, 0.0).astype(np.float32))
    moving = grid.with_array(np.where(_ball(grid, (10.0, 2.0, -4.0), 20.0), 300.0, 0.0).astype(np.float32))
    tx = B.centre_of_mass_align(fixed, moving)
    assert isinstance(tx, RigidTransform) and tx.angles_deg == (0.0, 0.0, 0.0)
    np.testing.assert_allclose(tx.translation_mm, (6.0, 8.0, -6.0), atol=0.5)
    np.testing.assert_allclose(tx.apply(np.array([[4.0, -6.0, 2.0]]))[0], (10.0, 2.0, -4.0), atol=0.5)


def test_psnr_gain_known_answer_and_nlm_reduces_white_noise() -> None:
    clean = np.zeros((8, 8, 2))
    noisy = clean + 2.0
    half = clean + 1.0
    assert B.psnr_gain_db(noisy, half, clean) == pytest.approx(10 * np.log10(4.0))
    with pytest.raises(ConfigError):
        B.psnr_gain_db(noisy, clean, clean)
    rng = np.random.default_rng(0)
    flat = np.full((48, 48, 2), 50.0)
    noisy = (flat + rng.normal(0, 10, flat.shape)).astype(np.float32)
    den = B.nlm_denoise(noisy)
    assert isinstance(den, np.ndarray) and B.psnr_gain_db(noisy, den, flat) > 6.0  # a flat image: NLM is excellent
    only = B.nlm_denoise(noisy, slices=[1])
    assert isinstance(only, np.ndarray)
    np.testing.assert_array_equal(only[:, :, 0], noisy[:, :, 0])
