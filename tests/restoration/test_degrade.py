"""Degradations: known physics as known answers (dose scaling, no motion, round trip, Rician bias)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from medbench.errors import ConfigError
from medbench.image.volume import Volume
from medbench.physics import ParallelBeam, hu_to_mu, mu_to_hu
from medbench.restoration import (
    low_dose_ct,
    mri_motion,
    paired_patches,
    paired_slices,
    plant_lesions,
    rician_noise,
)
from medbench.restoration.degrade import motion_lines


def _body(n: int = 64, nz: int = 4) -> np.ndarray:
    ii, jj = np.indices((n, n))
    r = np.hypot((ii - n / 2) / (0.42 * n), (jj - n / 2) / (0.30 * n))
    sl = np.where(r < 1, 40.0, -1000.0).astype(np.float32)
    return np.repeat(sl[:, :, None], nz, axis=2)


def _volume(arr: np.ndarray, spacing: float = 4.0) -> Volume:
    affine = np.diag([spacing, spacing, 5.0, 1.0])
    return Volume(arr, affine)


def test_lower_dose_more_noise_and_sd_scales_as_inverse_sqrt_dose() -> None:
    clean = _volume(_body())
    inner = np.hypot(*(np.indices((64, 64)) - 32) / np.array([0.3 * 64, 0.2 * 64])[:, None, None]) < 1
    mask = np.repeat(inner[:, :, None], 4, axis=2)
    sds = {}
    for dose in (1.0, 0.5, 0.25, 0.1):
        noisy = low_dose_ct(clean, dose, np.random.default_rng(1), photons=2e5)
        assert isinstance(noisy, Volume) and noisy.same_grid(clean)
        sds[dose] = float((noisy.array - clean.array)[mask].std())
    assert sds[1.0] < sds[0.5] < sds[0.25] < sds[0.1]
    for dose in (0.5, 0.25, 0.1):  # Poisson: variance ~ 1 / dose, so SD ~ dose^-1/2
        expected = sds[1.0] * dose**-0.5
        assert abs(sds[dose] / expected - 1) < 0.10, (dose, sds[dose], expected)


def test_low_dose_is_seeded_and_insert_only_noise() -> None:
    body = _body(nz=2)
    a = low_dose_ct(body, 0.25, np.random.default_rng(3), spacing_mm=4.0)
    b = low_dose_ct(body, 0.25, np.random.default_rng(3), spacing_mm=4.0)
    np.testing.assert_array_equal(a, b)
    # at an enormous photon count the scan is the clean image (projection-domain noise insertion)
    quiet = low_dose_ct(body, 1.0, np.random.default_rng(0), spacing_mm=4.0, photons=1e14)
    assert np.abs(quiet - body).max() < 0.5
    with pytest.raises(ConfigError, match="spacing_mm"):
        low_dose_ct(body, 0.5, np.random.default_rng(0))
    with pytest.raises(ConfigError, match="dose_fraction"):
        low_dose_ct(body, 0.0, np.random.default_rng(0), spacing_mm=4.0)


def test_projection_backprojection_round_trip_on_a_noiseless_phantom() -> None:
    # Stated error: with 2n views over 180 degrees (above the pi/2 * n sampling requirement) the FBP of the
    # noiseless projections reproduces a 64 x 64 water ellipse with a 300 HU insert to: mean absolute error
    # < 25 HU (2.5 % of water's attenuation) in the flat interior, insert mean within 6 % of its 260 HU contrast,
    # relative L2 error < 10 %. The residual is the discretisation of a linear-interpolation projector.
    n = 64
    hu = _body(n, 1)[:, :, 0]
    ii, jj = np.indices((n, n))
    insert = np.hypot(ii - 32, jj - 36) < 5
    hu[insert] = 300.0
    geo = ParallelBeam(n, n, 2 * n)
    rec = mu_to_hu(geo.fbp(geo.project(hu_to_mu(hu))))
    r = np.hypot((ii - n / 2) / (0.42 * n), (jj - n / 2) / (0.30 * n))
    flat = (r < 0.85) & ~ndimage.binary_dilation(insert, iterations=2)
    err = rec - hu
    assert np.abs(err[flat]).mean() < 25.0
    assert abs(rec[insert].mean() - 300.0) < 0.06 * 260.0
    assert np.linalg.norm(err) / np.linalg.norm(hu) < 0.10
    # and undersampled views (n / 4) are visibly worse: the test can fail
    coarse = ParallelBeam(n, n, n // 4)
    rec_c = mu_to_hu(coarse.fbp(coarse.project(hu_to_mu(hu))))
    assert np.abs((rec_c - hu)[flat]).mean() > 2 * np.abs(err[flat]).mean()


def _mr(n: int = 64) -> np.ndarray:
    ii, jj = np.indices((n, n))
    img = np.where(np.hypot(ii - 30, jj - 33) < 22, 100.0, 0.0)
    img[np.hypot(ii - 25, jj - 40) < 6] = 180.0
    return np.repeat(img[:, :, None], 3, axis=2).astype(np.float32)


def test_zero_motion_leaves_the_image_unchanged() -> None:
    img = _mr()
    for kwargs in ({"shift_mm": 0.0, "rotation_deg": 0.0}, {"shift_mm": 8.0, "fraction": 0.0}):
        out = mri_motion(img, np.random.default_rng(0), **kwargs)  # type: ignore[arg-type]
        np.testing.assert_allclose(out, img, atol=1e-3)


def test_motion_severity_and_timing() -> None:
    img = _mr()
    vol = _volume(img, 2.0)

    def err(**kw: object) -> float:
        out = mri_motion(vol, np.random.default_rng(5), **kw)  # type: ignore[arg-type]
        assert isinstance(out, Volume)
        return float(np.abs(out.array - img).mean())

    assert 0 < err(shift_mm=2.0, timing="centre") < err(shift_mm=6.0, timing="centre")  # larger motion, more artefact
    assert err(shift_mm=3.0, fraction=0.1) < err(shift_mm=3.0, fraction=0.4)
    assert err(shift_mm=6.0, timing="after_centre") < err(shift_mm=6.0, timing="centre")  # centre matters most
    assert err(shift_mm=0.0, phase_error_rad=0.5) > 0.5
    assert err(shift_mm=0.0, rotation_deg=5.0) > 0.5
    # the corrupted block sits where the timing says (index n//2 = ky 0)
    assert motion_lines(10, 0.3, "after_centre", np.random.default_rng(0)).nonzero()[0].tolist() == [7, 8, 9]
    assert motion_lines(10, 0.3, "before_centre", np.random.default_rng(0)).nonzero()[0].tolist() == [0, 1, 2]
    assert motion_lines(10, 0.3, "centre", np.random.default_rng(0)).nonzero()[0].tolist() == [4, 5, 6]
    with pytest.raises(ConfigError, match="timing"):
        mri_motion(img, np.random.default_rng(0), timing="sometimes")  # type: ignore[arg-type]


def test_rician_noise_known_moments() -> None:
    rng = np.random.default_rng(0)
    zero = rician_noise(np.zeros((200, 200)), 10.0, rng)
    assert abs(zero.mean() - 10.0 * np.sqrt(np.pi / 2)) < 0.2  # Rayleigh mean where there is no signal
    bright = rician_noise(np.full((200, 200), 500.0), 10.0, rng)
    assert abs(bright.mean() - 500.0) < 0.5 and abs(bright.std() - 10.0) < 0.3  # ~Gaussian at high SNR


def test_pairs_and_planted_lesions() -> None:
    clean = _volume(_body(32, 6))
    noisy = low_dose_ct(clean, 0.5, np.random.default_rng(0))
    body = clean.array > -500
    body[:, :, :2] = False
    pairs = paired_slices(clean, noisy, mask=body, min_fraction=0.1)
    assert pairs.clean.shape == (4, 32, 32) and pairs.index[:, 0].tolist() == [2, 3, 4, 5]
    np.testing.assert_array_equal(pairs.degraded[0], noisy.array[:, :, 2])
    patches = paired_patches(clean, noisy, (8, 8, 2), 5, np.random.default_rng(1))
    assert patches.clean.shape == (5, 8, 8, 2)
    i, j, k = patches.index[0]
    np.testing.assert_array_equal(patches.degraded[0], noisy.array[i:i + 8, j:j + 8, k:k + 2])
    with pytest.raises(ConfigError, match="does not fit"):
        paired_patches(clean, noisy, (40, 8, 2), 1, np.random.default_rng(1))

    sl = clean.array[:, :, 0]
    out, labels = plant_lesions(sl, sl > -500, np.random.default_rng(2), n=2, radius_px=2.0, contrast=-50.0)
    assert set(np.unique(labels)) == {0, 1, 2}
    np.testing.assert_allclose((out - sl)[labels > 0], -50.0)
    assert np.all(out[labels == 0] == sl[labels == 0])
