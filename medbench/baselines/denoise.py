"""Denoising without learning: untuned non-local means, and the PSNR gain it buys.

:func:`nlm_denoise` runs scikit-image's ``denoise_nl_means`` slice by slice
(axial) with the settings of scikit-image's own example — patch 5 x 5,
search distance 6, ``h = 0.8 * sigma`` with ``sigma`` estimated from the
slice by ``estimate_sigma`` (wavelet MAD), fast mode — nothing tuned to the
data. It is the baseline a restoration model must beat.

The classical filters of the restoration notebook — Gaussian, median, total
variation, non-local means and BM3D on stacks of 2D slices
(:func:`classical_denoise`) — are each tuned on validation slices by a grid
search over their one strength parameter (:func:`tune_classical`), never on
the test slices.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

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


# -- classical filters on stacks of 2D slices, tuned on a validation split ------------------------------------------
#: Each filter's tuning grid (the parameter's units in the comment of :func:`classical_denoise`).
CLASSICAL_GRIDS: dict[str, dict[str, list[float]]] = {
    "gaussian": {"sigma_px": [0.3, 0.5, 0.75, 1.0, 1.5]},
    "median": {"size_px": [3.0, 5.0, 7.0]},
    "tv": {"weight": [0.01, 0.02, 0.04, 0.08]},
    "nlm": {"h_factor": [0.8, 1.2, 1.6]},
    "bm3d": {"sigma_factor": [1.0, 1.5, 2.5]},
}
CLASSICAL_FILTERS: tuple[str, ...] = tuple(CLASSICAL_GRIDS)

#: Intensity scale of the filters: HU / 1000 (the TV weight and the noise estimates are in these units).
_SCALE = 1000.0


def _mosaic(slices: np.ndarray) -> tuple[np.ndarray, int]:
    n, h, w = slices.shape
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    out = np.zeros((rows * h, cols * w), slices.dtype)
    for k in range(n):
        r, c = divmod(k, cols)
        out[r * h:(r + 1) * h, c * w:(c + 1) * w] = slices[k]
    return out, cols


def _unmosaic(mosaic: np.ndarray, n: int, h: int, w: int, cols: int) -> np.ndarray:
    return np.stack([mosaic[(k // cols) * h:(k // cols + 1) * h, (k % cols) * w:(k % cols + 1) * w]
                     for k in range(n)])


def _sigma(slices: np.ndarray) -> float:
    from skimage.restoration import estimate_sigma

    return float(np.median([estimate_sigma(s) for s in slices]))


def classical_denoise(name: str, slices_hu: np.ndarray, **params: float) -> np.ndarray:
    """Denoise slices ``(N, i, j)`` (HU) with one classical filter; returns HU (float32).

    Filters and their parameter (working on ``HU / 1000``):
    ``gaussian`` ``sigma_px`` (Gaussian SD, pixels; scipy); ``median``
    ``size_px`` (window width, pixels; scipy); ``tv`` ``weight`` (Chambolle's
    total variation weight, scikit-image; larger = smoother); ``nlm``
    ``h_factor`` (non-local means, scikit-image, patch 5, search distance 6,
    fast mode, ``h = h_factor * sigma`` with ``sigma`` the wavelet estimate of
    each slice); ``bm3d`` ``sigma_factor`` (BM3D of the ``bm3d`` package with
    ``sigma_psd = sigma_factor * sigma``, the median wavelet estimate over
    the slices; the slices are tiled into one mosaic so BM3D runs once).
    """
    from scipy import ndimage
    from skimage.restoration import denoise_nl_means, denoise_tv_chambolle

    arr = np.asarray(slices_hu, np.float64) / _SCALE
    if arr.ndim != 3:
        raise ConfigError(f"classical_denoise needs slices (N, i, j), got shape {arr.shape}")
    if name not in CLASSICAL_GRIDS:
        raise ConfigError(f"unknown classical filter {name!r}; choose from {', '.join(CLASSICAL_FILTERS)}")
    (key,) = CLASSICAL_GRIDS[name]
    if set(params) != {key}:
        raise ConfigError(f"{name} takes one parameter, {key!r}; got {sorted(params)}")
    value = float(params[key])
    if name == "gaussian":
        out = np.stack([ndimage.gaussian_filter(s, value) for s in arr])
    elif name == "median":
        out = np.stack([ndimage.median_filter(s, size=int(value)) for s in arr])
    elif name == "tv":
        out = np.stack([denoise_tv_chambolle(s, weight=value) for s in arr])
    elif name == "nlm":
        from skimage.restoration import estimate_sigma

        out = np.stack([denoise_nl_means(s, h=value * max(float(estimate_sigma(s)), 1e-6),
                                         patch_size=5, patch_distance=6, fast_mode=True) for s in arr])
    else:
        import bm3d

        mosaic, cols = _mosaic(arr)
        den = np.asarray(bm3d.bm3d(mosaic, sigma_psd=value * max(_sigma(arr), 1e-6)))
        n, h, w = arr.shape
        out = _unmosaic(den, n, h, w, cols)
    return (out * _SCALE).astype(np.float32)


@dataclass(frozen=True)
class TunedFilter:
    """A classical filter with its parameter chosen on validation slices, and the tuning table."""

    name: str
    params: dict[str, float]
    val_psnr: float
    table: pd.DataFrame  # one row per grid value: the parameter and validation PSNR (dB)

    def __call__(self, slices_hu: np.ndarray) -> np.ndarray:
        return classical_denoise(self.name, slices_hu, **self.params)


def tune_classical(name: str, noisy_hu: np.ndarray, clean_hu: np.ndarray, *, data_range: float,
                   grid: Sequence[float] | None = None) -> TunedFilter:
    """Pick the filter's parameter that maximises PSNR (``data_range``, HU) on VALIDATION slices ``(N, i, j)``.

    Never pass test slices here: the chosen parameter is then applied to the
    test slices unchanged (that is what makes the comparison fair).
    """
    from medbench.metrics import psnr

    if name not in CLASSICAL_GRIDS:
        raise ConfigError(f"unknown classical filter {name!r}; choose from {', '.join(CLASSICAL_FILTERS)}")
    (key, default), = CLASSICAL_GRIDS[name].items()
    rows = []
    for value in (grid if grid is not None else default):
        out = classical_denoise(name, noisy_hu, **{key: float(value)})
        rows.append({key: float(value), "val_psnr": psnr(out, clean_hu, data_range)})
    table = pd.DataFrame(rows)
    best = table.loc[table["val_psnr"].idxmax()]
    return TunedFilter(name, {key: float(best[key])}, float(best["val_psnr"]), table)
