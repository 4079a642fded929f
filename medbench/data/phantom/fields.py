"""Smooth random fields defined in world millimetres (textures, bowel layout, uptake patches).

A field is white noise on a fixed lattice in mm, Gaussian-smoothed and
normalised to zero mean and unit SD, then sampled anywhere by trilinear
interpolation. Because the lattice lives in millimetres (not on an image
grid), every modality, the deformed CT and every profile see the *same*
texture at the same anatomical point: profiles change the sampling, never the
tissue.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

#: Lattice extent (mm, symmetric about the origin) and step; covers every grid the phantom renders,
#: including points moved by the CT->MR rigid transform and the breathing deformation.
LATTICE_HALF_MM = np.array([270.0, 270.0, 200.0])
LATTICE_STEP_MM = 6.0


@dataclass(frozen=True, eq=False)
class FieldBank:
    """Named smooth random fields on one lattice; :meth:`sample` evaluates them at world points."""

    names: tuple[str, ...]
    values: np.ndarray  # (nx, ny, nz, C) float32, each channel zero mean, unit SD

    @classmethod
    def draw(cls, rng: np.random.Generator, smoothing_mm: dict[str, float]) -> FieldBank:
        """One field per name, smoothed with a Gaussian of the given SD (mm): larger = coarser features."""
        shape = tuple(int(v) for v in 2 * np.ceil(LATTICE_HALF_MM / LATTICE_STEP_MM) + 1)
        chans = []
        for name in smoothing_mm:
            white = rng.standard_normal(shape, dtype=np.float32)
            smooth = ndimage.gaussian_filter(white, smoothing_mm[name] / LATTICE_STEP_MM, mode="wrap")
            chans.append((smooth - smooth.mean()) / max(float(smooth.std()), 1e-6))
        return cls(tuple(smoothing_mm), np.stack(chans, axis=-1).astype(np.float32))

    def sample(self, name: str, points: np.ndarray) -> np.ndarray:
        """Field ``name`` at world points (N, 3) in mm, trilinear (clamped at the lattice edge)."""
        c = self.names.index(name)
        half = (np.asarray(self.values.shape[:3]) - 1) / 2.0
        idx = np.asarray(points, dtype=np.float32) / np.float32(LATTICE_STEP_MM) + half.astype(np.float32)
        return ndimage.map_coordinates(self.values[..., c], idx.T, order=1, mode="nearest").astype(np.float32)
