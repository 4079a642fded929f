"""Noise characterisation with known answers: white noise, a known peak, a known SD ratio."""

from __future__ import annotations

import numpy as np
import pytest

from medbench.errors import ConfigError
from medbench.physics import centre_periphery_sd_ratio, noise_power_spectrum, nps_peak_frequency


def test_white_noise_has_a_flat_nps_whose_integral_is_the_variance() -> None:
    sigma, dx = 10.0, 0.5
    noise = np.random.default_rng(0).normal(0, sigma, (128, 128, 40))
    nps = noise_power_spectrum(noise, dx, roi_size=64)
    body = nps["nps"].iloc[1:]
    assert body.mean() == pytest.approx(sigma**2 * dx**2, rel=0.05)  # NPS of white noise: sigma^2 dx dy
    assert body.std() / body.mean() < 0.15
    assert nps["frequency_mm"].iloc[-1] == pytest.approx(1 / (2 * dx))  # up to Nyquist


def test_peak_of_band_limited_noise_is_found() -> None:
    n, dx, f0 = 64, 1.0, 0.25
    rng = np.random.default_rng(0)
    f = np.fft.fftfreq(n, dx)
    ring = np.exp(-((np.hypot(f[:, None], f[None, :]) - f0) ** 2) / (2 * 0.02**2))
    slices = [np.real(np.fft.ifft2(np.fft.fft2(rng.standard_normal((n, n))) * ring)) for _ in range(20)]
    nps = noise_power_spectrum(np.stack(slices, axis=2), dx, roi_size=64)
    assert nps_peak_frequency(nps) == pytest.approx(f0, abs=1 / (n * dx))
    gauss = np.exp(-(f[:, None] ** 2 + f[None, :] ** 2) / 0.005)
    lowpass = [np.real(np.fft.ifft2(np.fft.fft2(rng.standard_normal((n, n))) * gauss)) for _ in range(20)]
    assert nps_peak_frequency(noise_power_spectrum(np.stack(lowpass, axis=2), dx, roi_size=64)) < 0.06


def test_centre_periphery_ratio_known_answer() -> None:
    n = 80
    ii, jj = np.indices((n, n))
    r = np.hypot((ii - 40) / 30, (jj - 40) / 20)
    body = np.repeat((r <= 1)[:, :, None], 10, axis=2)
    rng = np.random.default_rng(0)
    gain = np.where(r < 0.4, 2.0, 1.0)[:, :, None]
    noise = rng.standard_normal(body.shape) * gain
    assert centre_periphery_sd_ratio(noise, body) == pytest.approx(2.0, rel=0.08)
    assert centre_periphery_sd_ratio(rng.standard_normal(body.shape), body) == pytest.approx(1.0, rel=0.08)


def test_bad_inputs() -> None:
    with pytest.raises(ConfigError, match="roi_size"):
        noise_power_spectrum(np.zeros((16, 16, 2)), 1.0, roi_size=4)
    with pytest.raises(ConfigError, match="inside the mask"):
        noise_power_spectrum(np.zeros((32, 32, 2)), 1.0, mask=np.zeros((32, 32, 2), bool))
    with pytest.raises(ConfigError, match="too small"):
        centre_periphery_sd_ratio(np.zeros((16, 16, 2)), np.zeros((16, 16, 2), bool))
