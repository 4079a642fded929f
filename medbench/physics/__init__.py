"""medbench.physics: image-formation operators shared by the phantom and the notebooks.

* :mod:`medbench.physics.ct`: the CT acquisition operator — Hounsfield units ->
  linear attenuation -> parallel-beam projection -> Poisson counting noise at
  a dose fraction -> filtered back-projection -> Hounsfield units
  (:func:`simulate_ct`), with the projector and the FBP it is built from.
* :mod:`medbench.physics.noise`: how CT noise is characterised — the noise
  power spectrum and its peak frequency, and the centre / periphery noise ratio.

The room sits beside :mod:`medbench.metrics` (same layer, independent of it):
it depends only on numpy / scipy and :mod:`medbench.image`, and the phantom
(:mod:`medbench.data.phantom`) and the restoration notebook both use it, so a
low-dose input made by a notebook has exactly the physics of the cohort's CT.
"""

from __future__ import annotations

from medbench.physics.ct import (
    DOSE_LEVELS,
    MU_WATER_PER_MM,
    ParallelBeam,
    calibrate_photons,
    ct_noise,
    hu_to_mu,
    mu_to_hu,
    simulate_ct,
)
from medbench.physics.noise import centre_periphery_sd_ratio, noise_power_spectrum, nps_peak_frequency

__all__ = [
    "DOSE_LEVELS",
    "MU_WATER_PER_MM",
    "ParallelBeam",
    "calibrate_photons",
    "centre_periphery_sd_ratio",
    "ct_noise",
    "hu_to_mu",
    "mu_to_hu",
    "noise_power_spectrum",
    "nps_peak_frequency",
    "simulate_ct",
]
