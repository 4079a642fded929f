"""Image quality against a reference: PSNR, SSIM, noise SD in flat regions, planted-lesion fidelity.

Conventions: ``image`` and ``reference`` are arrays of one shape in the same
units (CT: HU). ``data_range`` is always explicit (the PSNR peak and the SSIM
constants depend on it): for CT the series uses 2000 HU (the range of
[-1000, 1000] HU, air to dense bone), stated wherever a number is shown.
Stacks of 2D slices are ``(N, i, j)``: SSIM is then the mean of the slices'
SSIMs (a 3D window would mix unrelated slices).

* :func:`psnr` — ``10 log10(data_range^2 / MSE)`` (dB), optionally inside a mask;
* :func:`ssim` — scikit-image's SSIM (Wang et al. 2004; 7 x 7 uniform window,
  K1 = 0.01, K2 = 0.03) with the given data range;
* :func:`flat_mask` / :func:`noise_sd` — where the reference is locally flat,
  and the SD of ``image - reference`` there (the noise a reader sees in
  uniform tissue);
* :func:`lesion_fidelity` — planted lesions: contrast recovery per lesion,
  lesions erased (no detection on a planted lesion) and false lesions
  created (detections where the clean image has none), with one detector
  applied identically to every image.
"""

from __future__ import annotations

import numpy as np

from medbench.errors import ConfigError


def _pair(image: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(image, np.float64), np.asarray(reference, np.float64)
    if a.shape != b.shape:
        raise ConfigError(f"image and reference differ in shape: {a.shape} vs {b.shape}")
    return a, b


def psnr(image: np.ndarray, reference: np.ndarray, data_range: float, mask: np.ndarray | None = None) -> float:
    """Peak signal-to-noise ratio (dB) of ``image`` against ``reference``; ``inf`` when they are equal."""
    a, b = _pair(image, reference)
    if data_range <= 0:
        raise ConfigError(f"data_range must be positive, got {data_range}")
    m = np.ones(a.shape, bool) if mask is None else np.asarray(mask, bool)
    if m.shape != a.shape or not m.any():
        raise ConfigError("psnr: the mask must have the image's shape and select at least one voxel")
    mse = float(np.mean((a[m] - b[m]) ** 2))
    return float("inf") if mse == 0 else float(10.0 * np.log10(data_range**2 / mse))


def ssim(image: np.ndarray, reference: np.ndarray, data_range: float, *, stack: bool = False) -> float:
    """Structural similarity (scikit-image) with ``data_range``; ``stack=True``: mean over 2D slices ``(N, i, j)``."""
    from skimage.metrics import structural_similarity

    a, b = _pair(image, reference)
    if data_range <= 0:
        raise ConfigError(f"data_range must be positive, got {data_range}")
    if stack:
        if a.ndim != 3:
            raise ConfigError(f"ssim(stack=True) needs slices (N, i, j), got shape {a.shape}")
        return float(np.mean([structural_similarity(x, y, data_range=data_range) for x, y in zip(a, b)]))
    return float(structural_similarity(a, b, data_range=data_range))


def flat_mask(reference: np.ndarray, *, tolerance: float = 5.0, size: int = 5, within: np.ndarray | None = None,
              axes: tuple[int, ...] = (-2, -1)) -> np.ndarray:
    """Voxels whose ``size``-wide neighbourhood in ``axes`` varies by at most ``tolerance`` (max - min, image units).

    ``within`` restricts the mask further (e.g. the body). A noise-free
    reference is needed: its flat regions are where the restored image
    should be flat too.
    """
    from scipy import ndimage

    ref = np.asarray(reference, np.float64)
    footprint = np.ones([size if (ax % ref.ndim) in [a % ref.ndim for a in axes] else 1 for ax in range(ref.ndim)],
                        bool)
    spread = ndimage.maximum_filter(ref, footprint=footprint) - ndimage.minimum_filter(ref, footprint=footprint)
    mask = spread <= tolerance
    if within is not None:
        mask &= np.asarray(within, bool)
    return mask


def noise_sd(image: np.ndarray, reference: np.ndarray, mask: np.ndarray) -> float:
    """SD of ``image - reference`` inside ``mask`` (image units; e.g. HU in :func:`flat_mask` regions)."""
    a, b = _pair(image, reference)
    m = np.asarray(mask, bool)
    if m.shape != a.shape or m.sum() < 2:
        raise ConfigError("noise_sd: the mask must have the image's shape and select at least 2 voxels")
    return float(np.std(a[m] - b[m], ddof=1))


def _blobs(image: np.ndarray, contrast: float, sigma_px: float, background_px: float, fraction: float
           ) -> np.ndarray:
    """Detections per 2D slice: smoothed image minus a wide median background beyond ``fraction * contrast``."""
    from scipy import ndimage

    out = np.zeros(image.shape, bool)
    size = int(2 * round(background_px) + 1)
    for n, sl in enumerate(image):
        smooth = ndimage.gaussian_filter(sl, sigma_px)
        local = smooth - ndimage.median_filter(sl, size=size)
        out[n] = local * np.sign(contrast) > abs(contrast) * fraction
    return out


def lesion_fidelity(
    image: np.ndarray,
    clean: np.ndarray,
    lesions: np.ndarray,
    *,
    contrast: float,
    within: np.ndarray | None = None,
    sigma_px: float = 1.0,
    background_px: float = 6.0,
    fraction: float = 0.5,
    min_pixels: int = 3,
) -> dict[str, float]:
    """Planted-lesion fidelity of ``image`` (slices ``(N, i, j)``) against the clean image with the same lesions.

    ``lesions``: planted lesion labels (1..m per slice, 0 elsewhere; ids are
    made unique per slice); ``contrast``: the planted contrast (image units,
    signed). The detector (the same for every image): Gaussian smoothing
    (``sigma_px``) minus a ``2 * background_px + 1`` median background,
    thresholded at ``fraction * |contrast|`` with the lesion's sign, connected
    components of at least ``min_pixels`` pixels, inside ``within``.

    Returns ``contrast_recovery`` (mean over lesions of the lesion's mean
    minus its surrounding ring's mean, over the planted contrast; 1 = intact,
    0 = erased), ``lesions`` (planted count), ``erased`` (planted lesions
    with no detected pixel) and ``created`` (detected components touching no
    planted lesion and no detection of the clean image: false lesions).
    """
    from scipy import ndimage

    img, ref = _pair(image, clean)
    lab = np.asarray(lesions)
    if img.ndim != 3 or lab.shape != img.shape:
        raise ConfigError(f"lesion_fidelity needs slices (N, i, j) and a lesion map of that shape, got {img.shape}, "
                          f"{lab.shape}")
    if contrast == 0:
        raise ConfigError("lesion_fidelity needs a non-zero planted contrast")
    region = np.ones(img.shape, bool) if within is None else np.asarray(within, bool)
    det = _blobs(img, contrast, sigma_px, background_px, fraction) & region
    det_clean = _blobs(ref, contrast, sigma_px, background_px, fraction) & region
    struct = np.zeros((3, 3, 3), bool)
    struct[1] = ndimage.generate_binary_structure(2, 1)
    comps, n_comps = ndimage.label(det, structure=struct)
    sizes = np.bincount(comps.ravel(), minlength=n_comps + 1)
    comps[sizes[comps] < min_pixels] = 0
    recoveries, erased, planted = [], 0, 0
    for n in range(img.shape[0]):
        for value in np.unique(lab[n][lab[n] > 0]):
            m = lab[n] == value
            ring = ndimage.binary_dilation(m, iterations=3) & ~ndimage.binary_dilation(m, iterations=1)
            planted += 1
            recoveries.append((img[n][m].mean() - img[n][ring].mean()) / contrast)
            if not (comps[n][m] > 0).any():
                erased += 1
    near_truth = ndimage.binary_dilation(lab > 0, structure=struct, iterations=1) | det_clean
    touched = np.bincount(comps[near_truth].ravel(), minlength=n_comps + 1) > 0
    kept = np.unique(comps[comps > 0])
    created = int(np.sum(~touched[kept]))
    return {"contrast_recovery": float(np.mean(recoveries)) if recoveries else float("nan"),
            "lesions": float(planted), "erased": float(erased), "created": float(created)}
