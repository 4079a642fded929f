"""Small synthetic volumes for the viz tests (headless: Agg backend)."""

from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np
import pytest

from medbench.image.volume import Volume


@pytest.fixture
def ct() -> Volume:
    """24x20x10 CT-like volume in HU with anisotropic spacing and a non-zero origin."""
    rng = np.random.default_rng(7)
    array = rng.normal(40.0, 300.0, size=(24, 20, 10)).astype(np.float32)
    array[:, :, 0] = -1000.0  # some air
    return Volume.from_spacing(array, (0.5, 1.0, 2.5), origin=(-6.0, 10.0, 100.0),
                               meta={"modality": "CT", "units": "HU", "name": "ct"})


@pytest.fixture
def labels(ct: Volume) -> np.ndarray:
    """Two labels (1 and 3) on the CT grid; slice k=6 has the most labelled voxels."""
    lab = np.zeros(ct.shape, dtype=np.uint8)
    lab[2:8, 3:9, 3:7] = 1
    lab[12:20, 8:16, 6] = 3
    return lab
