"""Label volumes and per-label intensity statistics.

The single definition of "organ volume in mL": the number of voxels carrying
the label times the voxel volume (|det| of the affine's 3x3 part / 1000).
No partial-volume correction: a label map is a hard partition.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from medbench.errors import GeometryError
from medbench.image.volume import Volume


def _labels(labels: Volume | np.ndarray) -> np.ndarray:
    arr = labels.array if isinstance(labels, Volume) else np.asarray(labels)
    if arr.ndim != 3:
        raise GeometryError(f"a label map must be 3D, got shape {arr.shape}")
    return arr


def label_volumes_ml(
    labels: Volume, names: Mapping[int, str] | None = None, *, include_background: bool = False
) -> dict[str, float]:
    """Volume (mL) of each label: ``{name: mL}`` for every label in ``names`` (0.0 if absent).

    Without ``names`` every label value present is reported under its number.
    Label 0 is background and skipped unless ``include_background``.
    """
    arr = _labels(labels)
    values, counts = np.unique(arr, return_counts=True)
    found = dict(zip(values.tolist(), counts.tolist()))
    names = dict(names) if names is not None else {int(v): str(v) for v in values}
    voxel_ml = labels.voxel_volume_ml
    return {
        name: float(found.get(value, 0)) * voxel_ml
        for value, name in names.items()
        if include_background or value != 0
    }


def label_statistics(image: Volume, labels: Volume, names: Mapping[int, str]) -> pd.DataFrame:
    """Per present label: voxel count, volume (mL), mean and standard deviation of ``image`` inside it.

    ``image`` and ``labels`` must share a grid. Background (0) and labels with
    no voxel are left out. Indexed by label value.
    """
    image.check_same_grid(labels, "label_statistics: labels")
    arr, img = _labels(labels), np.asarray(image.array, dtype=np.float64)
    rows = []
    for value, name in names.items():
        mask = arr == value
        n = int(np.count_nonzero(mask))
        if value == 0 or n == 0:
            continue
        vals = img[mask]
        rows.append({"label": int(value), "name": name, "voxels": n, "volume_ml": n * labels.voxel_volume_ml,
                     "mean": float(vals.mean()), "std": float(vals.std())})
    return pd.DataFrame(rows, columns=["label", "name", "voxels", "volume_ml", "mean", "std"]).set_index("label")
