"""medbench.image: the core types every other room stands on.

* :class:`Volume` (``volume.py``): an array on a grid with an LPS affine and a
  role (image, label, vector field); channels last.
* converters (``convert.py``): SimpleITK, NIfTI, torch tensors, MONAI MetaTensor.
* resampling (``resample.py``): role-aware (labels nearest neighbour).
* ground-truth transforms (``transforms.py``): rigid, displacement field,
  analytic deformation, landmarks.
* windowing maths (``windowing.py``): presets, the window function, coverage.
"""

from __future__ import annotations

from medbench.image.transforms import DisplacementField, Landmarks, RigidTransform, SmoothDeformation
from medbench.image.volume import LPS_TO_RAS, Volume

__all__ = ["LPS_TO_RAS", "DisplacementField", "Landmarks", "RigidTransform", "SmoothDeformation", "Volume"]
