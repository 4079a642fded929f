"""Registration without optimisation: align the centres of mass of the two foregrounds.

:func:`centre_of_mass_align` returns the translation that moves the fixed
image's foreground centroid onto the moving image's, as a
:class:`~medbench.image.transforms.RigidTransform` mapping fixed points to
moving points (ITK's convention; no rotation). It is what SimpleITK's
``CenteredTransformInitializer(..., MOMENTS)`` starts from, and the number a
registration method must improve on: it ignores rotation and is biased
whenever the two fields of view cut the body differently.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from medbench.errors import ConfigError
from medbench.image.transforms import RigidTransform
from medbench.image.volume import Volume


def foreground_mask(image: Volume) -> np.ndarray:
    """The largest connected region above Otsu's threshold (the body on CT, PET or MR)."""
    from skimage.filters import threshold_otsu

    arr = np.asarray(image.array, dtype=np.float32)
    if arr.ndim != 3 or arr.size == 0:
        raise ConfigError(f"foreground_mask needs a 3D image, got shape {arr.shape}")
    fg = arr > threshold_otsu(arr)
    comp, n = ndimage.label(fg)
    if not n:
        return fg
    return np.asarray(comp == (int(np.argmax(np.bincount(comp.ravel())[1:])) + 1))


def centre_of_mass_align(fixed: Volume, moving: Volume) -> RigidTransform:
    """Translation ``c_moving - c_fixed`` between the foreground centroids (LPS mm), as a fixed -> moving transform."""
    centres = []
    for vol in (fixed, moving):
        mask = foreground_mask(vol)
        if not mask.any():
            raise ConfigError(f"centre_of_mass_align: no foreground in {vol.meta.get('name', 'an image')}")
        centres.append(vol.world(np.argwhere(mask).mean(axis=0))[0])
    t = centres[1] - centres[0]
    return RigidTransform((0.0, 0.0, 0.0), (float(t[0]), float(t[1]), float(t[2])), (0.0, 0.0, 0.0))
