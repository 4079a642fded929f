"""Denoising without learning: untuned non-local means, and the PSNR gain it buys.

:func:`nlm_denoise` runs scikit-image's ``denoise_nl_means`` slice by slice
(axial) with the settings of scikit-image's own example — patch 5 x 5,
search distance 6, ``h = 0.8 * sigma`` with ``sigma`` estimated from the
slice by ``estimate_sigma`` (wavelet MAD), fast mode — nothing tuned to the
data. It is the baseline a restoration model must beat.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from medbench.errors import ConfigError
from medbench.image.volume import Volume


def nlm_denoise(image: Volume | np.ndarray, *, slices: Sequence[int] | None = None) -> Volume | np.ndarray:
    """Non-local means, per axial slice (``[i, j, k]``), scikit-image's example settings (module doc).

    ``slices`` restricts the work to some slice indices (the others are
    returned unchanged). Returns the same type as ``image`` (float32).
    """
    from skimage.restoration import denoise_nl_means, estimate_sigma

    arr = image.array if isinstance(image, Volume) else np.asarray(image)
    if arr.ndim != 3:
        raise ConfigError(f"nlm_denoise needs a volume [i, j, k], got shape {arr.shape}")
    out = arr.astype(np.float32).copy()
    for k in (range(arr.shape[2]) if slices is None else slices):
        sl = arr[:, :, k].astype(np.float64)
        sigma = float(estimate_sigma(sl))
        if sigma <= 0:
            continue
        out[:, :, k] = denoise_nl_means(sl, h=0.8 * sigma, sigma=sigma, patch_size=5, patch_distance=6,
                                        fast_mode=True)
    if isinstance(image, Volume):
        return image.with_array(out, name="NLM (untuned)")
    return out


def psnr_gain_db(noisy: np.ndarray, denoised: np.ndarray, clean: np.ndarray, mask: np.ndarray | None = None) -> float:
    """PSNR(denoised) - PSNR(noisy) against ``clean`` (dB) = ``10 log10(MSE_noisy / MSE_denoised)``.

    The peak value cancels, so the gain does not depend on the data range;
    ``mask`` restricts the errors to some voxels (e.g. the body).
    """
    a, b, c = (np.asarray(v, dtype=np.float64) for v in (noisy, denoised, clean))
    if not a.shape == b.shape == c.shape:
        raise ConfigError(f"psnr_gain_db needs three arrays of one shape, got {a.shape}, {b.shape}, {c.shape}")
    m = np.ones(a.shape, bool) if mask is None else np.asarray(mask, bool)
    mse_noisy = float(np.mean((a[m] - c[m]) ** 2))
    mse_den = float(np.mean((b[m] - c[m]) ** 2))
    if mse_den == 0 or mse_noisy == 0:
        raise ConfigError("psnr_gain_db: an image equals the clean one (zero error)")
    return float(10.0 * np.log10(mse_noisy / mse_den))
