"""Point-based geometric metrics: distances between corresponding points (TRE)."""

from __future__ import annotations

import numpy as np

from medbench.errors import GeometryError


def point_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distance (mm) between corresponding points of two (N, 3) arrays."""
    pa, pb = np.atleast_2d(np.asarray(a, float)), np.atleast_2d(np.asarray(b, float))
    if pa.shape != pb.shape or pa.shape[-1] != 3:
        raise GeometryError(f"point_distances needs two (N, 3) arrays of equal shape, got {pa.shape} and {pb.shape}")
    return np.linalg.norm(pa - pb, axis=1)


def tre_summary(estimated: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Target registration error between estimated and true positions: mean, median and max (mm)."""
    d = point_distances(estimated, truth)
    if d.size == 0:
        raise GeometryError("tre_summary: no points")
    return {"mean": float(d.mean()), "median": float(np.median(d)), "max": float(d.max())}
