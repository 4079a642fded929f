"""01_data_audit: DICOM/NIfTI ingestion, geometry verdicts, de-identification, DICOMweb."""

from __future__ import annotations

import gzip
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
from pydantic import Field, field_validator

from medbench import config
from medbench.atomic import atomic_dir
from medbench.errors import DataError
from medbench.recipes.sections import PhantomData

NOTEBOOK = "01_data_audit"


class AuditParams(config.Section):
    """The ``audit`` section (flat names ``audit_*``)."""

    include_pydicom_samples: bool = Field(True, description="Also audit the real sample files that ship inside pydicom.")
    dicomweb_url: str = Field("", description="Base URL of a DICOMweb server to audit as well (empty: skip).")

    @field_validator("dicomweb_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if v and not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v


class DeidParams(config.Section):
    """The ``deid`` section (flat names ``deid_*``)."""

    date_shift: bool = Field(True, description="Shift dates per patient during de-identification (intervals kept).")


class Params(config.Params):
    """01_data_audit parameters."""

    notebook: ClassVar[str] = NOTEBOOK

    data: PhantomData = Field(default_factory=PhantomData)
    audit: AuditParams = Field(default_factory=AuditParams)
    deid: DeidParams = Field(default_factory=DeidParams)


#: What the checked-metrics cell prints, and why each number is checked.
CHECKED: dict[str, str] = {
    "<source>_files_found / _files_readable": "every file is a row, readable or not (source: phantom tree, "
    "pydicom samples, PACS)",
    "<source>_failed_<reason>": "failures grouped by reason: a new reader bug or a fixed one moves a count",
    "<source>_series_valid / _series_invalid": "geometry verdicts: a series only becomes a volume when valid",
    "<source>_series_split": "series split off a shared SeriesInstanceUID (different series number, description, "
    "image type, kernel, orientation, echo, MOSAIC ...): each part has its reason; a new or lost split moves it",
    "mosaic_slices": "slices unpacked from nibabel's real Siemens MOSAIC (48): never 1 tiled slice",
    "defects_planted / defects_detected": "the audit finds every defect planted in the tree (equal when truthful)",
    "deid_<status>": "de-identification outcome per file (written, quarantined, failed)",
    "deid_leak_hits": "identifying values found in the de-identified output: must be 0",
}


def checked_metrics(
    counts: Mapping[str, Any],
    findings: pd.DataFrame,
    deid_counts: Mapping[str, int],
    leak_hits: pd.DataFrame,
    *,
    samples_counts: Mapping[str, Any] | None = None,
    pacs_counts: Mapping[str, Any] | None = None,
    mosaic_slices: int | None = None,
) -> dict[str, Any]:
    """The audit notebook's checked numbers (see :data:`CHECKED`)."""
    metrics: dict[str, Any] = {}
    for prefix, c in (("phantom", counts), ("samples", samples_counts), ("pacs", pacs_counts)):
        if c is None:
            continue
        metrics[f"{prefix}_files_found"] = int(c["files_found"])
        metrics[f"{prefix}_files_readable"] = int(c["readable"])
        for reason, n in sorted(dict(c["failed"]).items()):
            metrics[f"{prefix}_failed_{reason}"] = int(n)
        metrics[f"{prefix}_series_valid"] = int(c["series_valid"])
        metrics[f"{prefix}_series_invalid"] = int(c["series_invalid"])
        if "series_split" in c:
            metrics[f"{prefix}_series_split"] = int(c["series_split"])
    metrics["defects_planted"] = int(len(findings))
    metrics["defects_detected"] = int(findings["detected"].sum())
    for status, n in sorted(deid_counts.items()):
        metrics[f"deid_{status}"] = int(n)
    metrics["deid_leak_hits"] = int(len(leak_hits))
    if mosaic_slices is not None:
        metrics["mosaic_slices"] = int(mosaic_slices)
    return metrics


#: nibabel's real Siemens MOSAIC sample: a diffusion volume (b = 0), 48 slices of 128 x 128 in one 896 x 896 image.
MOSAIC_SAMPLE = "siemens_dwi_0.dcm.gz"


def siemens_mosaic(out_dir: str | os.PathLike[str]) -> Path:
    """nibabel's real Siemens MOSAIC sample, unpacked (it ships gzipped) into the new folder ``out_dir``.

    Found inside the installed nibabel package (``nibabel/nicom/tests/data``), never downloaded.
    """
    import nibabel

    src = Path(nibabel.__file__).parent / "nicom" / "tests" / "data" / MOSAIC_SAMPLE
    if not src.is_file():
        raise DataError(f"nibabel's MOSAIC sample {src} is not installed (it ships with nibabel >= 2)")
    out = Path(out_dir)
    with atomic_dir(out) as tmp:
        (tmp / MOSAIC_SAMPLE.removesuffix(".gz")).write_bytes(gzip.decompress(src.read_bytes()))
    return out / MOSAIC_SAMPLE.removesuffix(".gz")
