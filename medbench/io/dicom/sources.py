"""Accept every way a notebook names "a series" and turn it into data sets.

:func:`check_geometry` and :func:`load_series` take a :class:`Series`, a
folder, a file (single- or multi-frame, or a DICOMDIR), a list of paths, a
list of :class:`DicomFile`, or a list of pydicom Datasets (e.g. from a
DICOMweb retrieve). :func:`collect` normalises all of them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

from pydicom.dataset import Dataset

from medbench.errors import DicomError
from medbench.io.dicom.discover import DicomFile, discover, read_full, read_header
from medbench.io.dicom.series import Series, group_series

PathLike: TypeAlias = "str | os.PathLike[str]"
#: Everything that names one series: see the module docstring.
SeriesLike: TypeAlias = "Series | DicomFile | Dataset | PathLike | Sequence[DicomFile | Dataset | PathLike]"


@dataclass(frozen=True)
class Source:
    """One input object: a label for messages, its path (None for in-memory data sets), its header."""

    label: str
    path: Path | None
    dataset: Dataset

    def full(self) -> Dataset:
        """The data set with its Pixel Data (read from disk when only the header is held)."""
        if "PixelData" in self.dataset or self.path is None:
            return self.dataset
        return read_full(self.path)


def _from_folder(path: Path) -> Series:
    found = discover(path)
    images = [s for s in group_series(found.files) if s.is_image]
    if len(images) != 1:
        listing = "; ".join(f"{s.key} ({s.modality} {s.description!r}, {s.n_files} files)" for s in images) or "none"
        raise DicomError(
            f"{path} holds {len(images)} image series, so it does not name one volume; pass one of "
            f"discover(...).series() instead. Series found: {listing}"
        )
    return images[0]


def _from_path(path: Path) -> Source | Series:
    if path.is_dir():
        return _from_folder(path)
    if not path.is_file():
        raise DicomError(f"{path} does not exist")
    ds, reason = read_header(path)
    if ds is None:
        raise DicomError(f"{path}: {reason}")
    if "DirectoryRecordSequence" in ds:
        return _from_folder(path)
    return Source(str(path), path, ds)


def _from_item(item: object, index: int) -> Source | Series:
    if isinstance(item, Series):
        return item
    if isinstance(item, DicomFile):
        return Source(str(item.path), item.path, item.dataset)
    if isinstance(item, Dataset):
        filename = getattr(item, "filename", None)
        path = Path(filename) if isinstance(filename, str) and filename else None
        label = str(path) if path else f"data set {index} (SOP {item.get('SOPInstanceUID', '?')})"
        return Source(label, path, item)
    if isinstance(item, (str, os.PathLike)):
        return _from_path(Path(item))
    raise TypeError(f"cannot read a DICOM series from {type(item).__name__}: {item!r}")


def _series_sources(series: Series) -> list[Source]:
    return [Source(str(f.path), f.path, f.dataset) for f in series.files]


def collect(obj: SeriesLike) -> tuple[str, list[Source]]:
    """(name for messages, sources) for any accepted input; slice order is decided by the geometry."""
    items: list[object] = [obj] if isinstance(obj, (Series, DicomFile, Dataset, str, os.PathLike)) else list(obj)
    if not items:
        raise DicomError("no DICOM input was given (empty list)")
    resolved = [_from_item(item, i) for i, item in enumerate(items)]
    if len(resolved) == 1 and isinstance(resolved[0], Series):
        series = resolved[0]
        return _series_name(series.key, series.description), _series_sources(series)
    sources: list[Source] = []
    for r in resolved:
        sources += _series_sources(r) if isinstance(r, Series) else [r]
    first = sources[0].dataset
    name = _series_name(str(first.get("SeriesInstanceUID", "") or sources[0].label),
                        str(first.get("SeriesDescription", "") or ""))
    return name, sources


def _series_name(key: str, description: str) -> str:
    return f"series {key}" + (f" ({description})" if description else "")
