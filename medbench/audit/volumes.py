"""Turn an audited folder into volumes: every series loaded, or refused with its reason."""

from __future__ import annotations

import os
import warnings

import pandas as pd

from medbench.errors import MedbenchError
from medbench.io.dicom import ResampledWarning, discover, group_series, load_series
from medbench.io.volume import Volume


def load_all_series(root: str | os.PathLike[str], *, resample: bool = False) -> tuple[dict[str, Volume], pd.DataFrame]:
    """Load every image series under ``root``.

    Returns the volumes that loaded (name → Volume; the name is the series
    description plus its number) and a table with one row per series: name,
    status (``loaded`` / ``resampled`` / ``refused``) and the message, so a
    refused series says exactly why instead of silently becoming a wrong volume.
    """
    volumes: dict[str, Volume] = {}
    rows = []
    for series in group_series(discover(root).files):
        if not series.is_image:
            continue
        name = f"{series.description or series.modality} #{series.series_number}"
        if name in volumes:
            name = f"{name} ({series.key[-8:]})"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResampledWarning)
            try:
                volumes[name] = load_series(series, resample=resample)
            except MedbenchError as exc:
                rows.append({"series": name, "status": "refused", "message": str(exc)})
                continue
        notes = [str(w.message) for w in caught if issubclass(w.category, ResampledWarning)]
        rows.append({"series": name, "status": "resampled" if notes else "loaded",
                     "message": "; ".join(notes) or f"{volumes[name].shape} voxels, spacing "
                     + " x ".join(f"{s:.2f}" for s in volumes[name].spacing) + " mm"})
    return volumes, pd.DataFrame(rows, columns=["series", "status", "message"])
