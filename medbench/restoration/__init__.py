"""medbench.restoration: degrading images with known physics and restoring them.

* :mod:`~medbench.restoration.degrade`: low-dose CT through the cohort's own
  acquisition operator (:func:`medbench.physics.simulate_ct`), MRI motion in
  k-space, Rician noise, planted lesions, and paired clean / degraded 2D slices
  and 3D patches for training.
* :mod:`~medbench.restoration.tasks`: the engine tasks that train image-to-image
  models (a pixel-loss task for CNNs / autoencoders and the pix2pix
  conditional GAN with two optimisers), and slice-wise inference.

Layering: above :mod:`medbench.engine` (its tasks plug into
:func:`medbench.engine.fit`), below the recipes.
"""

from __future__ import annotations

from medbench.restoration.degrade import (
    MOTION_TIMINGS,
    Pairs,
    low_dose_ct,
    mri_motion,
    paired_patches,
    paired_slices,
    plant_lesions,
    rician_noise,
)

__all__ = [
    "MOTION_TIMINGS",
    "Pairs",
    "low_dose_ct",
    "mri_motion",
    "paired_patches",
    "paired_slices",
    "plant_lesions",
    "rician_noise",
]
