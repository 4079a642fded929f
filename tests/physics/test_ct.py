"""The CT acquisition operator: scikit-image as the reference, physics as known answers."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.transform import iradon, radon

from medbench.errors import ConfigError
from medbench.image.volume import Volume
from medbench.physics import (
    DOSE_LEVELS,
    MU_WATER_PER_MM,
    ParallelBeam,
    calibrate_photons,
    centre_periphery_sd_ratio,
    ct_noise,
    hu_to_mu,
    mu_to_hu,
    noise_power_spectrum,
    nps_peak_frequency,
    simulate_ct,
)


def _ellipse(n: int, nz: int = 1, hu: float = 0.0, axes: tuple[float, float] = (0.42, 0.30)) -> np.ndarray:
    ii, jj = np.indices((n, n))
    r = np.hypot((ii - n / 2) / (axes[0] * n), (jj - n / 2) / (axes[1] * n))
    return np.repeat(np.where(r < 1, hu, -1000.0).astype(np.float32)[:, :, None], nz, axis=2)


def test_hounsfield_scale_definition() -> None:
    # the definition of the Hounsfield scale: water 0 HU, air -1000 HU (no attenuation)
    np.testing.assert_allclose(hu_to_mu(np.array([0.0, -1000.0, 1000.0])), [MU_WATER_PER_MM, 0.0, 2 * MU_WATER_PER_MM],
                               rtol=1e-6)
    np.testing.assert_allclose(mu_to_hu(hu_to_mu(np.array([-500.0, 40.0, 700.0]))), [-500.0, 40.0, 700.0], atol=1e-3)
    assert 0.018 < MU_WATER_PER_MM < 0.021  # NIST XCOM water, 60-80 keV: 0.206-0.184 cm^2/g
    assert DOSE_LEVELS == (1.0, 0.5, 0.25, 0.1)


@pytest.mark.parametrize("filter_name", ["ramp", "shepp-logan", "hann"])
def test_fbp_reproduces_scikit_image_iradon(filter_name: str) -> None:
    geo = ParallelBeam(48, 48, 40)
    sino = np.random.default_rng(0).standard_normal((geo.n_bins, geo.n_angles)).astype(np.float32)
    ref = iradon(sino, geo.theta_deg, output_size=48, circle=False, filter_name=filter_name)
    np.testing.assert_allclose(geo.fbp(sino, filter_name), ref, atol=1e-5 * np.abs(ref).max())


def test_projection_agrees_with_scikit_image_radon() -> None:
    n = 64
    ii, jj = np.indices((n, n))
    img = np.exp(-((ii - 30) ** 2 + (jj - 36) ** 2) / (2 * 7.0**2)).astype(np.float32)
    geo = ParallelBeam(n, n, 60)
    mine, ref = geo.project(img), radon(img, geo.theta_deg, circle=False)
    c1, c2 = geo.n_bins // 2, ref.shape[0] // 2
    w = min(c1, c2) - 1
    a, b = mine[c1 - w:c1 + w], ref[c2 - w:c2 + w]
    assert np.sqrt(np.mean((a - b) ** 2)) / np.sqrt(np.mean(b**2)) < 0.03  # pixel-driven vs rotation-based
    np.testing.assert_allclose(a.sum(axis=0), img.sum(), rtol=1e-4)  # every view integrates the whole image


def test_fbp_inverts_the_projection_of_a_smooth_image() -> None:
    n = 64
    ii, jj = np.indices((n, n))
    img = np.exp(-((ii - 32) ** 2 + (jj - 30) ** 2) / (2 * 9.0**2)).astype(np.float32)
    geo = ParallelBeam(n, n, 96)
    rec = geo.fbp(geo.project(img))
    assert np.abs(rec - img).max() < 0.15 * img.max()
    assert abs(rec.sum() / img.sum() - 1) < 0.05


def test_projection_and_backprojection_are_adjoint() -> None:
    geo = ParallelBeam(20, 16, 12)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((20, 16)).astype(np.float32)
    y = rng.standard_normal((geo.n_bins, geo.n_angles)).astype(np.float32)
    assert float(np.sum(geo.project(x) * y)) == pytest.approx(float(np.sum(x * geo.backproject(y))), rel=1e-4)


def test_noise_variance_is_inverse_to_dose() -> None:
    hu = _ellipse(64, 4)
    inner = np.zeros(hu.shape, bool)
    inner[24:40, 24:40] = True
    sds = {d: ct_noise(hu, d, np.random.default_rng(3), spacing_mm=4.0, photons=2e5)[inner].std() for d in (1.0, 0.25)}
    assert sds[0.25] / sds[1.0] == pytest.approx(2.0, rel=0.12)  # Poisson: SD ~ 1 / sqrt(dose)


def test_noise_is_unbiased_and_higher_in_the_centre() -> None:
    hu = _ellipse(96, 6, hu=0.0)
    noise = ct_noise(hu, 1.0, np.random.default_rng(0), spacing_mm=4.0, photons=1e5)
    body = hu > -500
    assert abs(float(noise[body].mean())) < 0.1 * float(noise[body].std())
    # rays through the centre cross the most water: fewer photons, more noise (TG-233: centre > periphery)
    assert centre_periphery_sd_ratio(noise, body) >= 1.2
    # stationary noise of the same SD does not show it: the check can fail
    flat = np.random.default_rng(1).standard_normal(hu.shape) * noise[body].std()
    assert centre_periphery_sd_ratio(flat, body) < 1.1


def test_ramp_fbp_noise_power_peaks_at_mid_frequency() -> None:
    hu = _ellipse(128, 6, axes=(0.45, 0.42))
    noise = ct_noise(hu, 1.0, np.random.default_rng(0), spacing_mm=1.5625, photons=1e5)
    peak = nps_peak_frequency(noise_power_spectrum(noise, 1.5625, mask=hu > -500))
    nyquist = 1 / (2 * 1.5625)
    assert 0.3 * nyquist < peak < 0.85 * nyquist
    assert 0.15 <= peak <= 0.40  # mm^-1: the range of clinical abdominal kernels (the phantom's full profile)


def test_simulate_ct_on_volumes_and_determinism() -> None:
    vol = Volume.from_spacing(_ellipse(32, 3, hu=40.0), (5.0, 5.0, 8.0))
    a = simulate_ct(vol, 0.5, np.random.default_rng(7), photons=5e4)
    b = simulate_ct(vol, 0.5, np.random.default_rng(7), photons=5e4)
    c = simulate_ct(vol, 0.5, np.random.default_rng(8), photons=5e4)
    assert isinstance(a, Volume) and a.same_grid(vol) and a.array.dtype == np.float32
    np.testing.assert_array_equal(a.array, b.array)
    assert not np.array_equal(a.array, c.array)
    arr = simulate_ct(vol.array[:, :, 0], 1.0, np.random.default_rng(0), spacing_mm=5.0)
    assert arr.shape == (32, 32)


def test_calibrated_photons_give_the_requested_noise() -> None:
    hu = _ellipse(64, 3, hu=50.0)
    mask = np.zeros(hu.shape, bool)
    mask[26:38, 26:38] = True
    photons = calibrate_photons(hu, mask, 15.0, np.random.default_rng(0), spacing_mm=5.0)
    noise = ct_noise(hu, 1.0, np.random.default_rng(1), spacing_mm=5.0, photons=photons)
    assert noise[mask].std() == pytest.approx(15.0, rel=0.1)


@pytest.mark.parametrize(
    "call",
    [
        lambda: simulate_ct(np.zeros((4, 4, 4, 4)), 1.0, np.random.default_rng(0), spacing_mm=1.0),
        lambda: simulate_ct(np.zeros((8, 8)), 1.0, np.random.default_rng(0)),
        lambda: ct_noise(np.zeros((8, 8)), 0.0, np.random.default_rng(0), spacing_mm=1.0),
        lambda: ParallelBeam(8, 8, 4).fbp(np.zeros((3, 3))),
        lambda: ParallelBeam(8, 8, 4).fbp(np.zeros((ParallelBeam(8, 8, 4).n_bins, 4)), "gauss"),
    ],
)
def test_bad_input_is_refused(call: object) -> None:
    with pytest.raises(ConfigError):
        call()  # type: ignore[operator]
