"""Classical filters on slices, tuned on validation data only."""

from __future__ import annotations

import numpy as np
import pytest

from medbench.baselines import CLASSICAL_FILTERS, classical_denoise, tune_classical
from medbench.errors import ConfigError
from medbench.metrics import psnr


def _slices(seed: int, n: int = 3, size: int = 32, sigma: float = 40.0) -> tuple[np.ndarray, np.ndarray]:
    ii, jj = np.indices((size, size))
    clean = np.where(np.hypot(ii - size / 2, jj - size / 2) < size / 3, 60.0, -100.0)
    clean = np.repeat(clean[None], n, axis=0).astype(np.float32)
    noisy = clean + np.random.default_rng(seed).normal(0, sigma, clean.shape).astype(np.float32)
    return clean, noisy


@pytest.mark.parametrize("name", CLASSICAL_FILTERS)
def test_every_filter_reduces_noise(name: str) -> None:
    clean, noisy = _slices(0)
    (key, grid), = {"gaussian": {"sigma_px": 1.0}, "median": {"size_px": 3.0}, "tv": {"weight": 0.05},
                    "nlm": {"h_factor": 1.0}, "bm3d": {"sigma_factor": 1.0}}[name].items()
    out = classical_denoise(name, noisy, **{key: grid})
    assert out.shape == noisy.shape and out.dtype == np.float32
    assert psnr(out, clean, 2000.0) > psnr(noisy, clean, 2000.0) + 2.0


def test_tuning_uses_the_given_slices_and_picks_the_best() -> None:
    clean, noisy = _slices(1, sigma=60.0)
    tuned = tune_classical("gaussian", noisy, clean, data_range=2000.0, grid=[0.3, 1.0, 3.0])
    assert list(tuned.table["sigma_px"]) == [0.3, 1.0, 3.0]
    assert tuned.val_psnr == pytest.approx(tuned.table["val_psnr"].max())
    assert tuned.params == {"sigma_px": float(tuned.table.loc[tuned.table["val_psnr"].idxmax(), "sigma_px"])}
    # weaker noise in the tuning data -> a weaker filter is chosen (the choice follows the data it is given)
    c2, n2 = _slices(2, sigma=5.0)
    assert tune_classical("gaussian", n2, c2, data_range=2000.0, grid=[0.3, 1.0, 3.0]).params["sigma_px"] < 3.0
    np.testing.assert_array_equal(tuned(noisy), classical_denoise("gaussian", noisy, **tuned.params))
    with pytest.raises(ConfigError, match="unknown classical filter"):
        tune_classical("wiener", noisy, clean, data_range=2000.0)
    with pytest.raises(ConfigError, match="one parameter"):
        classical_denoise("tv", noisy, sigma_px=1.0)
