"""medbench.metrics.calibration: ECE, reliability, entropy and uncertainty/error AUROC with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from medbench.errors import DataError
from medbench.metrics.calibration import (
    expected_calibration_error,
    predictive_entropy,
    reliability_table,
    uncertainty_error_auroc,
)


def _two_class(conf: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    p = np.where(predicted == 1, conf, 1 - conf)
    return np.stack([1 - p, p])


def test_perfect_calibration_has_zero_ece() -> None:
    rng = np.random.default_rng(0)
    n = 200_000
    conf = rng.choice([0.6, 0.9], n)
    pred = np.ones(n, int)
    labels = np.where(rng.random(n) < conf, 1, 0)  # correct with probability = confidence
    assert expected_calibration_error(_two_class(conf, pred), labels, n_bins=10) < 0.01


def test_overconfidence_known_answer() -> None:
    conf = np.full(1000, 0.95)
    labels = np.r_[np.ones(700, int), np.zeros(300, int)]  # 70 % accurate at 95 % confidence
    probs = _two_class(conf, np.ones(1000, int))
    assert expected_calibration_error(probs, labels) == pytest.approx(0.25)
    table = reliability_table(probs, labels, n_bins=10)
    row = table[table["count"] > 0].iloc[0]
    assert (row["count"], row["confidence"], row["accuracy"]) == (1000, pytest.approx(0.95), pytest.approx(0.7))


def test_mask_restricts_voxels_and_shapes_are_checked() -> None:
    probs = _two_class(np.full(4, 0.9), np.array([1, 1, 0, 0]))
    labels = np.array([1, 0, 0, 0])
    assert expected_calibration_error(probs, labels, mask=np.array([1, 0, 1, 1], bool)) == pytest.approx(0.1)
    with pytest.raises(DataError, match="do not match"):
        expected_calibration_error(probs, labels[:3])
    with pytest.raises(DataError, match="empty mask"):
        expected_calibration_error(probs, labels, mask=np.zeros(4, bool))


def test_entropy_known_answers() -> None:
    probs = np.array([[1.0, 0.5, 0.25], [0.0, 0.5, 0.75]])
    np.testing.assert_allclose(predictive_entropy(probs),
                               [0.0, np.log(2), -(0.25 * np.log(0.25) + 0.75 * np.log(0.75))], atol=1e-9)


def test_uncertainty_error_auroc() -> None:
    err = np.array([0, 0, 1, 1, 0, 1], bool)
    assert uncertainty_error_auroc(np.array([0.1, 0.2, 0.9, 0.8, 0.3, 0.7]), err) == pytest.approx(1.0)
    assert uncertainty_error_auroc(np.array([0.9, 0.8, 0.1, 0.2, 0.7, 0.3]), err) == pytest.approx(0.0)
    assert np.isnan(uncertainty_error_auroc(np.ones(3), np.zeros(3, bool)))
