"""medbench.metrics: one function per quantity, the one place a metric is defined.

Thin wrappers over MONAI, scikit-image and SimpleITK where those define the
quantity; small numpy code where they do not. Each function documents its
units and its edge cases, and has a test with a known answer.

* :mod:`~medbench.metrics.volumes`: label volumes (mL) and per-label intensity statistics;
* :mod:`~medbench.metrics.intensity`: window coverage and contrast-to-noise ratio;
* :mod:`~medbench.metrics.geometry`: landmark distances (TRE);
* :mod:`~medbench.metrics.segmentation`: Dice, HD95 (mm) and surface Dice per class, pooled Dice;
* :mod:`~medbench.metrics.registration`: landmark and dense TRE, Jacobian determinant, intensity agreement;
* :mod:`~medbench.metrics.stats`: mean with a confidence interval over cases;
* :mod:`~medbench.metrics.image_quality`: PSNR / SSIM (data range stated), noise SD in flat regions,
  planted-lesion fidelity (contrast recovery, lesions erased / created). The noise power spectrum is
  :func:`medbench.physics.noise_power_spectrum`.
"""

from __future__ import annotations

from medbench.metrics.geometry import point_distances, tre_summary
from medbench.metrics.image_quality import flat_mask, lesion_fidelity, noise_sd, psnr, ssim
from medbench.metrics.intensity import contrast_to_noise, window_coverage, window_coverage_table
from medbench.metrics.registration import (
    dense_error_map,
    intensity_agreement,
    jacobian_determinant,
    jacobian_summary,
    landmark_tre,
    region_errors,
    transform_points,
)
from medbench.metrics.segmentation import dice, hd95, pooled_dice, surface_dice
from medbench.metrics.stats import MeanCI, mean_ci
from medbench.metrics.volumes import label_statistics, label_volumes_ml

__all__ = [
    "MeanCI",
    "contrast_to_noise",
    "dense_error_map",
    "intensity_agreement",
    "jacobian_determinant",
    "jacobian_summary",
    "landmark_tre",
    "region_errors",
    "transform_points",
    "dice",
    "flat_mask",
    "lesion_fidelity",
    "noise_sd",
    "psnr",
    "ssim",
    "hd95",
    "mean_ci",
    "pooled_dice",
    "surface_dice",
    "label_statistics",
    "label_volumes_ml",
    "point_distances",
    "tre_summary",
    "window_coverage",
    "window_coverage_table",
]
