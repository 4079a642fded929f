"""PSNR, SSIM, flat-region noise and planted-lesion fidelity: known answers."""

from __future__ import annotations

import numpy as np
import pytest

from medbench.errors import ConfigError
from medbench.metrics import flat_mask, lesion_fidelity, noise_sd, psnr, ssim


def test_psnr_known_answer_and_data_range() -> None:
    ref = np.zeros((10, 10))
    img = ref + 1.0  # MSE 1
    assert psnr(img, ref, data_range=10.0) == pytest.approx(20.0)
    assert psnr(img, ref, data_range=100.0) == pytest.approx(40.0)  # the range is part of the number
    img2 = ref.copy()
    img2[:5] = 2.0  # MSE 2 inside the mask's half, 0 outside
    mask = np.zeros_like(ref, bool)
    mask[:5] = True
    assert psnr(img2, ref, 10.0, mask=mask) == pytest.approx(10 * np.log10(100 / 4))
    assert psnr(ref, ref, 1.0) == float("inf")
    with pytest.raises(ConfigError, match="data_range"):
        psnr(img, ref, 0.0)


def test_ssim_known_answers() -> None:
    rng = np.random.default_rng(0)
    ref = rng.uniform(0, 100, (3, 32, 32))
    assert ssim(ref, ref, 100.0, stack=True) == pytest.approx(1.0)
    noisy = ref + rng.normal(0, 20, ref.shape)
    s = ssim(noisy, ref, 100.0, stack=True)
    assert 0 < s < 0.9
    # a larger stated range shrinks the stabilising constants' relative effect differently: SSIM depends on it
    assert ssim(noisy, ref, 1000.0, stack=True) != pytest.approx(s, abs=1e-3)
    with pytest.raises(ConfigError, match="slices"):
        ssim(ref[0], ref[0], 100.0, stack=True)


def test_flat_mask_and_noise_sd() -> None:
    ref = np.zeros((1, 40, 40))
    ref[:, :, 20:] = 100.0  # an edge at j = 20
    m = flat_mask(ref, tolerance=1.0, size=5)
    assert m[0, 10, 5] and m[0, 10, 30] and not m[0, 10, 19] and not m[0, 10, 21]
    rng = np.random.default_rng(1)
    img = ref + rng.normal(0, 7.0, ref.shape)
    assert noise_sd(img, ref, m) == pytest.approx(7.0, rel=0.08)


def _disc(n: int, ci: int, cj: int, r: float) -> np.ndarray:
    ii, jj = np.indices((n, n))
    return np.hypot(ii - ci, jj - cj) <= r


def test_lesion_fidelity_counts_erased_and_created() -> None:
    n = 48
    lesions = np.zeros((1, n, n), np.int32)
    lesions[0][_disc(n, 15, 15, 3)] = 1
    lesions[0][_disc(n, 32, 30, 3)] = 2
    clean = np.full((1, n, n), 60.0)
    clean[lesions > 0] -= 80.0
    intact = lesion_fidelity(clean, clean, lesions, contrast=-80.0)
    assert intact == {"contrast_recovery": pytest.approx(1.0), "lesions": 2.0, "erased": 0.0, "created": 0.0}
    # erase lesion 2, invent a dark spot elsewhere
    edited = clean.copy()
    edited[lesions == 2] = 60.0
    edited[0][_disc(n, 36, 10, 3)] -= 80.0
    out = lesion_fidelity(edited, clean, lesions, contrast=-80.0)
    assert out["erased"] == 1.0 and out["created"] == 1.0
    assert out["contrast_recovery"] == pytest.approx(0.5, abs=0.05)  # one intact (1), one gone (0)
    with pytest.raises(ConfigError, match="non-zero"):
        lesion_fidelity(clean, clean, lesions, contrast=0.0)
