"""medbench.registration: rigid, affine, B-spline and dense (demons) registration over SimpleITK.

See :mod:`medbench.registration.core` for the conventions (fixed -> moving
transforms, LPS mm), the result object and how bad input and failed
optimisations are reported.
"""

from __future__ import annotations

from medbench.registration.core import (
    BONE_HU,
    INITIALISATIONS,
    METRICS,
    SAMPLINGS,
    TRANSFORMS,
    RegistrationResult,
    demons,
    initial_transform,
    load_transform,
    map_points,
    register,
    save_transform,
    threshold_mask,
)

__all__ = [
    "BONE_HU",
    "INITIALISATIONS",
    "METRICS",
    "SAMPLINGS",
    "TRANSFORMS",
    "RegistrationResult",
    "demons",
    "initial_transform",
    "load_transform",
    "map_points",
    "register",
    "save_transform",
    "threshold_mask",
]
