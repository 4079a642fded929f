"""Helpers for the audit tests: small series written with the project's writer, then damaged copies.

Every defect is made on files written into ``tmp_path``; pydicom's bundled
test files are only read.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pydicom

from medbench.image.volume import Volume
from medbench.io.dicom.write import write_series

#: Slices per test series and their in-plane size.
N_SLICES, SIZE = 8, 16
SPACING = (0.8, 0.8, 2.0)

PYDICOM_TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"


def ramp_volume(offset: float = 0.0, n_slices: int = N_SLICES, spacing: tuple[float, float, float] = SPACING) -> Volume:
    """Integer HU values: slice k holds ``offset + 10 k + (i + j)``, so sampled statistics are known exactly."""
    i, j, k = np.meshgrid(np.arange(SIZE), np.arange(SIZE), np.arange(n_slices), indexing="ij")
    return Volume.from_spacing((offset + 10.0 * k + i + j).astype(np.float32), spacing=spacing)


def write(folder: Path, seed: str, *, volume: Volume | None = None, **kwargs: object) -> list[Path]:
    """Write a test series (default: the ramp volume) into the new folder ``folder``."""
    return write_series(volume if volume is not None else ramp_volume(), folder, uid_seed=seed, **kwargs)


def truncate(path: Path, n_bytes: int) -> None:
    """Cut ``n_bytes`` off the end of ``path``."""
    data = path.read_bytes()
    path.write_bytes(data[:-n_bytes])


def tree_hashes(root: Path) -> dict[str, str]:
    """SHA-256 of every regular file under ``root`` (to prove sources are untouched)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }
