"""Characterising CT noise: noise power spectrum (NPS) and the centre / periphery noise ratio.

Both take a *noise-only* image (a noisy scan minus the noise-free truth, HU)
``[i, j, k]`` with the in-plane pixel size in mm.

* :func:`noise_power_spectrum`: the 2D NPS of square ROIs (mean removed),
  ``NPS(f) = dx dy / (Nx Ny) |FFT(roi)|^2`` averaged over ROIs, then averaged
  over rings of radial frequency (ICRU Report 87 / AAPM TG-233 method);
  units HU^2 mm^2, frequencies in mm^-1. Its integral over frequency equals
  the noise variance.
* :func:`nps_peak_frequency`: where that radial NPS peaks (mm^-1). Filtered
  back-projection with a ramp filter gives a peak at a sizeable fraction of
  the Nyquist frequency (1 / (2 dx)); low-pass noise peaks near 0.
* :func:`centre_periphery_sd_ratio`: noise SD near the centre of the body over
  the SD near its surface. Rays through the centre cross the most tissue, so
  real CT noise is higher there (> 1); stationary noise gives 1.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from medbench.errors import ConfigError


def _noise_slices(noise: np.ndarray) -> np.ndarray:
    arr = np.asarray(noise, dtype=np.float64)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3:
        raise ConfigError(f"noise must be [i, j] or [i, j, k], got shape {arr.shape}")
    return arr


def noise_power_spectrum(
    noise: np.ndarray,
    spacing_mm: float,
    *,
    roi_size: int | None = None,
    mask: np.ndarray | None = None,
) -> pd.DataFrame:
    """Radially averaged NPS of the central square ROI of every slice (columns ``frequency_mm``, ``nps``).

    ``roi_size`` defaults to a quarter of the smaller in-plane size (at least
    8 pixels). With ``mask``
    (same shape as ``noise``) only slices whose ROI lies entirely inside the
    mask count. Bins are one frequency step ``1 / (roi_size * spacing_mm)`` wide.
    """
    arr = _noise_slices(noise)
    nx, ny, nz = arr.shape
    n = int(roi_size or max(8, min(nx, ny) // 4))
    if n < 8 or n > min(nx, ny):
        raise ConfigError(f"roi_size must be between 8 and {min(nx, ny)} pixels, got {n}")
    x0, y0 = (nx - n) // 2, (ny - n) // 2
    window = (slice(x0, x0 + n), slice(y0, y0 + n))
    m = None if mask is None else _noise_slices(np.asarray(mask, dtype=float)) > 0.5
    spectra = []
    for k in range(nz):
        if m is not None and not m[window + (k,)].all():
            continue
        roi = arr[window + (k,)]
        roi = roi - roi.mean()
        spectra.append(np.abs(np.fft.fft2(roi)) ** 2)
    if not spectra:
        raise ConfigError("no slice has its central ROI inside the mask; use a smaller roi_size")
    nps2d = np.mean(spectra, axis=0) * spacing_mm**2 / (n * n)
    f = np.fft.fftfreq(n, d=spacing_mm)
    fr = np.hypot(f[:, None], f[None, :])
    step = 1.0 / (n * spacing_mm)
    ring = np.rint(fr / step).astype(int)
    nyquist_ring = n // 2
    sums = np.bincount(ring.ravel(), nps2d.ravel())[: nyquist_ring + 1]
    counts = np.bincount(ring.ravel())[: nyquist_ring + 1]
    rings = np.arange(nyquist_ring + 1)
    return pd.DataFrame({"frequency_mm": rings * step, "nps": sums / np.maximum(counts, 1)})


def nps_peak_frequency(nps: pd.DataFrame, smooth_bins: int = 5) -> float:
    """Radial frequency (mm^-1) where the NPS of :func:`noise_power_spectrum` is largest (DC excluded).

    The radial NPS is first averaged over ``smooth_bins`` neighbouring rings
    (a centred running mean, shorter at the ends), so a broad, noisy plateau
    gives its middle rather than its highest noise spike.
    """
    v = nps["nps"].to_numpy()[1:].astype(float)
    f = nps["frequency_mm"].to_numpy()[1:]
    if smooth_bins > 1 and len(v) > 2:
        kernel = np.ones(int(smooth_bins))
        v = np.convolve(v, kernel, mode="same") / np.convolve(np.ones(len(v)), kernel, mode="same")
    return float(f[int(np.argmax(v))])


def centre_periphery_sd_ratio(
    noise: np.ndarray,
    body_mask: np.ndarray,
    *,
    centre: float = 0.3,
    periphery: tuple[float, float] = (0.7, 0.9),
) -> float:
    """Noise SD in the body's centre over the SD near its surface.

    Per slice the body mask's centroid and second moments define an ellipse
    (half-axes ``2 * sqrt(variance)``, exact for a uniform ellipse) and a
    normalised radius ``r`` (0 at the centroid, 1 on the ellipse). The centre
    is ``r < centre``, the periphery ``periphery[0] <= r < periphery[1]``,
    both inside the mask; voxels of every slice are pooled.
    """
    arr = _noise_slices(noise)
    body = _noise_slices(np.asarray(body_mask, dtype=float)) > 0.5
    if body.shape != arr.shape:
        raise ConfigError(f"body_mask shape {body.shape} differs from the noise shape {arr.shape}")
    inner, outer = [], []
    ii, jj = np.indices(arr.shape[:2], dtype=float)
    for k in range(arr.shape[2]):
        m = body[:, :, k]
        if m.sum() < 50:
            continue
        ci, cj = ii[m].mean(), jj[m].mean()
        ai, aj = 2.0 * ii[m].std(), 2.0 * jj[m].std()
        r = np.hypot((ii - ci) / ai, (jj - cj) / aj)
        inner.append(arr[:, :, k][m & (r < centre)])
        outer.append(arr[:, :, k][m & (r >= periphery[0]) & (r < periphery[1])])
    a, b = np.concatenate(inner) if inner else np.empty(0), np.concatenate(outer) if outer else np.empty(0)
    if a.size < 10 or b.size < 10:
        raise ConfigError("the body mask is too small to measure centre and periphery noise")
    return float(a.std() / b.std())
