"""Two images (or an image and a map) as arrays on one grid, checked: the entry step of paired metrics."""

from __future__ import annotations

import numpy as np

from medbench.errors import GeometryError
from medbench.image.volume import Volume


def paired_arrays(reference: Volume | np.ndarray, other: Volume | np.ndarray, *, context: str,
                  other_name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(reference, other)`` as arrays; :class:`GeometryError` when their shapes differ, or when both are
    Volumes whose grids (shape and affine) differ. ``context`` and ``other_name`` go into the message."""
    x = reference.array if isinstance(reference, Volume) else np.asarray(reference)
    y = other.array if isinstance(other, Volume) else np.asarray(other)
    if x.shape != y.shape:
        raise GeometryError(f"{context}: {other_name} shape {y.shape} and reference shape {x.shape} differ "
                            "(resample onto one grid first)")
    if isinstance(reference, Volume) and isinstance(other, Volume):
        reference.check_same_grid(other, f"{context}: {other_name}")
    return x, y
