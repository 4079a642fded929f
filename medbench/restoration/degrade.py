"""Degradations with known physics, applied to any image: low-dose CT, MRI motion, Rician noise.

Every function takes a :class:`~medbench.image.volume.Volume` (the result is a
Volume on the same grid) or an array, and a numpy ``rng`` (seeded by the
caller: equal seeds give equal results).

* :func:`low_dose_ct` — the CT scan of a noise-free image at a fraction of the
  reference dose. It IS the cohort's acquisition operator
  (:func:`medbench.physics.simulate_ct`): HU -> linear attenuation ->
  parallel-beam projection -> Poisson counts at ``photons * dose_fraction``
  -> filtered back-projection -> HU. The noise variance scales as
  ``1 / dose``, so its SD as ``dose^-1/2``; its texture is the ramp-shaped
  FBP noise of a real scanner (not white), and it is larger in the body's
  centre than at its edge.
* :func:`mri_motion` — rigid motion during a 2D Cartesian acquisition. Each
  axial slice is Fourier transformed (k-space, ``kx`` along the readout axis,
  ``ky`` along the phase-encode axis ``pe_axis``); phase-encode lines are
  acquired sequentially from ``-ky_max`` to ``+ky_max`` (linear ordering,
  one line per repetition time). On ``fraction`` of the lines the patient is
  displaced: those lines are taken from the image rotated by ``rotation_deg``
  and translated by ``shift_mm`` (a translation is a linear phase ramp in
  k-space, exact), optionally with an extra random phase of up to
  ``phase_error_rad`` per line (e.g. B0 drift). ``timing`` places the moved
  lines relative to the k-space centre: ``"after_centre"`` (motion late in
  the scan: only lines with ``ky > 0`` from the outer edge inwards — the
  contrast is intact, ghosts along the phase-encode direction),
  ``"before_centre"`` (the mirror case, early motion, ``ky < 0``),
  ``"centre"`` (a block centred on ``ky = 0``: the low frequencies are
  inconsistent, the worst case) and ``"random"`` (lines drawn at random).
  The magnitude image is returned (what a scanner displays).
* :func:`rician_noise` — magnitude MR noise: ``sqrt((x + n_re)^2 + n_im^2)``
  with ``n_re, n_im ~ N(0, sigma^2)``; biased upwards where the signal is low.
* :func:`plant_lesions` — discs of known contrast planted in a host region,
  with their label map (the ground truth of the hallucination test).
* :func:`paired_slices` / :func:`paired_patches` — clean / degraded training
  pairs: axial slices ``(N, i, j)`` or 3D patches ``(N, a, b, c)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, TypeVar, get_args

import numpy as np

from medbench.errors import ConfigError
from medbench.image.volume import Volume
from medbench.physics.ct import DEFAULT_PHOTONS, simulate_ct

Timing = Literal["after_centre", "before_centre", "centre", "random"]
MOTION_TIMINGS: tuple[str, ...] = get_args(Timing)

ImageT = TypeVar("ImageT", np.ndarray, Volume)


def _array(image: Volume | np.ndarray) -> np.ndarray:
    return np.asarray(image.array if isinstance(image, Volume) else image)


def _wrap(image: Volume | np.ndarray, out: np.ndarray, note: str) -> Any:
    if isinstance(image, Volume):
        return image.with_array(out.astype(np.float32), note=note)
    return out.astype(np.float32)


# -- CT -----------------------------------------------------------------------------------------
def low_dose_ct(
    clean_hu: ImageT,
    dose_fraction: float,
    rng: np.random.Generator,
    *,
    photons: float = DEFAULT_PHOTONS,
    spacing_mm: float | None = None,
    n_angles: int | None = None,
    filter_name: str = "ramp",
) -> ImageT:
    """The scan of the noise-free image ``clean_hu`` (HU) at ``dose_fraction`` of the reference dose.

    ``photons``: unattenuated photons per detector bin and view at the
    reference dose (a phantom case's value is ``case.acquisition["ct_photons"]``
    times ``case.acquisition["ct_dose"]``); ``n_angles`` views per 180 degrees
    (default: the larger in-plane size). A Volume gives its in-plane spacing;
    an array needs ``spacing_mm``. The result is float32 HU, neither rounded
    nor clipped. See :func:`medbench.physics.simulate_ct` for the physics.
    """
    if not 0 < dose_fraction <= 10:
        raise ConfigError(f"dose_fraction must be in (0, 10], got {dose_fraction}")
    if isinstance(clean_hu, Volume):
        result: Any = simulate_ct(clean_hu, dose_fraction, rng, spacing_mm=spacing_mm, photons=photons,
                                  n_angles=n_angles, filter_name=filter_name)
        return result
    result = simulate_ct(np.asarray(clean_hu, np.float32), dose_fraction, rng, spacing_mm=spacing_mm, photons=photons,
                         n_angles=n_angles, filter_name=filter_name)
    return result


# -- MRI ----------------------------------------------------------------------------------------
def motion_lines(n_lines: int, fraction: float, timing: Timing, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask over the ``n_lines`` phase-encode lines (FFT order shifted: index ``n//2`` = ``ky = 0``).

    ``fraction`` of the lines (rounded) are marked, placed as ``timing`` says
    (module doc). Lines are acquired in index order (``ky`` from ``-n/2`` up).
    """
    if not 0 <= fraction <= 1:
        raise ConfigError(f"motion fraction must be in [0, 1], got {fraction}")
    if timing not in MOTION_TIMINGS:
        raise ConfigError(f"unknown motion timing {timing!r}; choose from {', '.join(MOTION_TIMINGS)}")
    n_bad = int(round(fraction * n_lines))
    mask = np.zeros(n_lines, bool)
    if n_bad == 0:
        return mask
    centre = n_lines // 2
    if timing == "after_centre":
        mask[n_lines - n_bad:] = True  # the last lines acquired; past half of them the centre is reached
    elif timing == "before_centre":
        mask[:n_bad] = True
    elif timing == "centre":
        start = max(0, centre - n_bad // 2)
        mask[start:start + n_bad] = True
    else:
        mask[rng.choice(n_lines, size=n_bad, replace=False)] = True
    return mask


def _moved_slice(sl: np.ndarray, shift_px: np.ndarray, rotation_deg: float) -> np.ndarray:
    """k-space (shifted, complex) of ``sl`` rotated about its centre and translated by ``shift_px``."""
    from scipy import ndimage

    img = sl if rotation_deg == 0 else ndimage.rotate(sl, rotation_deg, reshape=False, order=1, mode="nearest")
    k = np.fft.fftshift(np.fft.fft2(img))
    if np.any(shift_px):
        fi = np.fft.fftshift(np.fft.fftfreq(sl.shape[0]))[:, None]
        fj = np.fft.fftshift(np.fft.fftfreq(sl.shape[1]))[None, :]
        k = k * np.exp(-2j * np.pi * (fi * shift_px[0] + fj * shift_px[1]))
    return k


def mri_motion(
    image: ImageT,
    rng: np.random.Generator,
    *,
    shift_mm: float = 5.0,
    rotation_deg: float = 0.0,
    fraction: float = 0.3,
    timing: Timing = "after_centre",
    phase_error_rad: float = 0.0,
    pe_axis: int = 1,
    spacing_mm: tuple[float, float] | None = None,
) -> ImageT:
    """Rigid motion on ``fraction`` of the phase-encode lines of every axial slice (module doc).

    Severity: ``shift_mm`` (length of the in-plane translation; its direction
    is drawn from ``rng`` once per call), ``rotation_deg`` (in-plane rotation),
    ``fraction`` of corrupted lines and their ``timing``; ``phase_error_rad``
    adds a random phase in ``[-phase_error_rad, phase_error_rad]`` to each
    corrupted line. ``pe_axis`` (0 = i, 1 = j) is the phase-encode axis.
    ``image``: ``[i, j]``, ``[i, j, k]`` or a Volume (spacing from its grid);
    an array uses ``spacing_mm`` (default 1 mm pixels). Returns the magnitude
    image (float32). With no motion the image comes back unchanged up to FFT
    round-off (for a non-negative image).
    """
    arr = _array(image).astype(np.float64)
    if arr.ndim not in (2, 3):
        raise ConfigError(f"mri_motion needs [i, j] or [i, j, k], got shape {arr.shape}")
    if pe_axis not in (0, 1):
        raise ConfigError(f"pe_axis must be 0 or 1 (an in-plane axis), got {pe_axis}")
    if shift_mm < 0 or phase_error_rad < 0:
        raise ConfigError("shift_mm and phase_error_rad must be >= 0")
    if isinstance(image, Volume):
        px = np.asarray(image.spacing[:2], float)
    else:
        px = np.asarray(spacing_mm if spacing_mm is not None else (1.0, 1.0), float)
    vol = arr[:, :, None] if arr.ndim == 2 else arr
    angle = rng.uniform(0, 2 * np.pi)
    shift_px = shift_mm * np.array([np.cos(angle), np.sin(angle)]) / px
    lines = motion_lines(vol.shape[pe_axis], fraction, timing, rng)
    phases = rng.uniform(-phase_error_rad, phase_error_rad, size=int(lines.sum())) if phase_error_rad > 0 else None
    out = np.empty_like(vol)
    for k in range(vol.shape[2]):
        sl = vol[:, :, k]
        kspace = np.fft.fftshift(np.fft.fft2(sl))
        if lines.any():
            moved = _moved_slice(sl, shift_px, rotation_deg)
            if phases is not None:
                ramp = np.exp(1j * phases)
                moved[(lines if pe_axis == 0 else slice(None)), (slice(None) if pe_axis == 0 else lines)] *= (
                    ramp[:, None] if pe_axis == 0 else ramp[None, :])
            if pe_axis == 0:
                kspace[lines, :] = moved[lines, :]
            else:
                kspace[:, lines] = moved[:, lines]
        out[:, :, k] = np.abs(np.fft.ifft2(np.fft.ifftshift(kspace)))
    res = out[:, :, 0] if arr.ndim == 2 else out
    note = (f"MR motion: {fraction:g} of lines ({timing}), shift {shift_mm:g} mm, rotation {rotation_deg:g} deg, "
            f"phase error {phase_error_rad:g} rad")
    return _wrap(image, res, note)


def rician_noise(image: ImageT, sigma: float, rng: np.random.Generator) -> ImageT:
    """Magnitude of the image plus complex Gaussian noise of SD ``sigma`` per channel (image units)."""
    if sigma < 0:
        raise ConfigError(f"sigma must be >= 0, got {sigma}")
    arr = _array(image).astype(np.float64)
    re = arr + rng.normal(0.0, sigma, arr.shape)
    im = rng.normal(0.0, sigma, arr.shape)
    return _wrap(image, np.hypot(re, im), f"Rician noise, sigma {sigma:g}")


# -- planted lesions -------------------------------------------------------------------------------
def plant_lesions(
    image: np.ndarray,
    host: np.ndarray,
    rng: np.random.Generator,
    *,
    n: int = 2,
    radius_px: float = 2.0,
    contrast: float = -40.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Plant ``n`` discs of ``radius_px`` (pixels) adding ``contrast`` (image units) in a 2D slice.

    Centres are drawn from ``rng`` among host pixels whose whole disc (plus a
    one-pixel margin) lies inside ``host`` and apart from earlier discs.
    Returns ``(image_with_lesions, labels)``: labels 1..m (m <= n discs that fit)
    on ``image``'s grid, 0 elsewhere.
    """
    from scipy import ndimage

    img = np.asarray(image, dtype=np.float32)
    mask = np.asarray(host, bool)
    if img.ndim != 2 or mask.shape != img.shape:
        raise ConfigError(f"plant_lesions needs a 2D image and a host mask of its shape, got {img.shape}, {mask.shape}")
    r = int(np.ceil(radius_px)) + 1
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    allowed = ndimage.binary_erosion(mask, structure=np.hypot(yy, xx) <= radius_px + 1)
    labels = np.zeros(img.shape, np.int32)
    out = img.copy()
    ii, jj = np.indices(img.shape)
    for lesion in range(1, n + 1):
        candidates = np.flatnonzero(allowed)
        if candidates.size == 0:
            break
        c = candidates[rng.integers(candidates.size)]
        ci, cj = divmod(int(c), img.shape[1])
        region = np.hypot(ii - ci, jj - cj) <= radius_px
        labels[region] = lesion
        out[region] += np.float32(contrast)
        allowed &= np.hypot(ii - ci, jj - cj) > 2 * radius_px + 3
    return out, labels


# -- pairs ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Pairs:
    """Paired clean / degraded samples: ``clean`` and ``degraded`` ``(N, ...)`` float32, and where each came from."""

    clean: np.ndarray
    degraded: np.ndarray
    index: np.ndarray  # (N, d): slice index k, or the patch corner (i, j, k)

    def __len__(self) -> int:
        return int(self.clean.shape[0])


def _check_pair(clean: Volume | np.ndarray, degraded: Volume | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = _array(clean), _array(degraded)
    if a.shape != b.shape or a.ndim != 3:
        raise ConfigError(f"paired samples need two volumes [i, j, k] of one shape, got {a.shape} and {b.shape}")
    if isinstance(clean, Volume) and isinstance(degraded, Volume):
        clean.check_same_grid(degraded, "degraded volume")
    return a.astype(np.float32), b.astype(np.float32)


def paired_slices(
    clean: Volume | np.ndarray,
    degraded: Volume | np.ndarray,
    *,
    mask: np.ndarray | None = None,
    min_fraction: float = 0.0,
) -> Pairs:
    """Axial slices ``(N, i, j)`` of both volumes; with ``mask``, only slices where it covers ``min_fraction``."""
    a, b = _check_pair(clean, degraded)
    ks = np.arange(a.shape[2])
    if mask is not None:
        m = np.asarray(mask, bool)
        ks = ks[m.reshape(-1, a.shape[2]).mean(axis=0) > min_fraction] if m.shape == a.shape else ks
    return Pairs(np.moveaxis(a[:, :, ks], 2, 0).copy(), np.moveaxis(b[:, :, ks], 2, 0).copy(), ks[:, None])


def paired_patches(
    clean: Volume | np.ndarray,
    degraded: Volume | np.ndarray,
    size: tuple[int, int, int],
    n: int,
    rng: np.random.Generator,
) -> Pairs:
    """``n`` random 3D patches ``(n, a, b, c)`` at the same place in both volumes (corners drawn from ``rng``)."""
    a, b = _check_pair(clean, degraded)
    sz = np.asarray(size, int)
    if sz.shape != (3,) or np.any(sz < 1) or np.any(sz > np.asarray(a.shape)):
        raise ConfigError(f"patch size {tuple(size)} does not fit the volume {a.shape}")
    hi = np.asarray(a.shape) - sz + 1
    corners = np.stack([rng.integers(0, h, size=n) for h in hi], axis=1)
    pa = np.stack([a[i:i + sz[0], j:j + sz[1], k:k + sz[2]] for i, j, k in corners])
    pb = np.stack([b[i:i + sz[0], j:j + sz[1], k:k + sz[2]] for i, j, k in corners])
    return Pairs(pa, pb, corners)
