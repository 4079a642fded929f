"""Audit a PACS: download what a DICOMweb server holds, then audit it like a folder.

The download is bounded (``max_series``) and lands in a new folder, written
atomically, so the folder audit (:func:`medbench.audit.run_audit`) sees
exactly the instances the server returned.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from medbench.atomic import atomic_dir
from medbench.io.dicomweb import DicomWebSource

#: Series downloaded at most unless the caller asks for more (a PACS can be huge).
MAX_SERIES = 50


def download_pacs(url: str, out_dir: str | os.PathLike[str], *, max_series: int = MAX_SERIES) -> pd.DataFrame:
    """Download up to ``max_series`` series from the DICOMweb server at ``url`` into ``out_dir``.

    Files go to ``out_dir/<StudyInstanceUID>/<SeriesInstanceUID>/``. Returns one
    row per series: study, series, modality, description, number of files.
    """
    source = DicomWebSource(url)
    rows: list[dict[str, object]] = []
    with atomic_dir(out_dir) as tmp:
        for study in source.search_studies()["StudyInstanceUID"]:
            for series in source.search_series(study).to_dict("records"):
                if len(rows) >= max_series:
                    break
                uid = str(series["SeriesInstanceUID"])
                files = source.download_series(study, uid, tmp / str(study) / uid)
                rows.append({"study_uid": study, "series_uid": uid, "modality": series.get("Modality"),
                             "description": series.get("SeriesDescription"), "n_files": len(files)})
    return pd.DataFrame(rows, columns=["study_uid", "series_uid", "modality", "description", "n_files"])


def audit_pacs(url: str, out_dir: str | os.PathLike[str], *, max_series: int = MAX_SERIES,
               sample_pixels: bool = True):  # -> AuditResult (imported lazily: report imports this package)
    """Download (see :func:`download_pacs`) into ``out_dir/download`` and audit it into ``out_dir/audit``."""
    from medbench.audit.report import run_audit

    out_dir = Path(out_dir)
    download_pacs(url, out_dir / "download", max_series=max_series)
    return run_audit(out_dir / "download", out_dir / "audit", sample_pixels=sample_pixels)
