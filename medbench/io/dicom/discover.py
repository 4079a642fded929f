"""Find every DICOM file under a folder, whatever it is called.

Real exports have files without extensions (``IM000001``), with the wrong
one, DICOMDIR media indexes, stray text files, and files cut short by a
failed copy. :func:`discover` reads every header once with the one reader
(:mod:`medbench.io.dicom.headers`: sniffing, the fast header parse,
integrity checks, the folder walk), keeps every readable DICOM file, and
reports everything else as a row with its reason instead of failing: one bad
file never hides the rest.
"""

from __future__ import annotations

import mmap
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, cast

import pandas as pd
import pydicom
from pydicom.dataset import Dataset, FileDataset

from medbench.errors import DataError, MedbenchError
from medbench.io.dicom.headers import (
    DICOMDIR_SOP_CLASS,
    Header,
    dicomdir_references,
    printable,
    read_tree,
)
from medbench.io.dicom.headers import read_header as _read_one
from medbench.io.dicom.mosaic import MosaicError, is_mosaic, mosaic_layout
from medbench.io.dicom.pixels import n_frames
from medbench.io.dicom.pixels import read_frames as decode_frames

if TYPE_CHECKING:
    from medbench.io.dicom.series import Series

__all__ = [
    "DICOMDIR_SOP_CLASS",
    "DicomFile",
    "DiscoveryResult",
    "dicomdir_references",
    "discover",
    "read_full",
    "read_header",
]


@dataclass(frozen=True)
class DicomFile:
    """One DICOM file: its path and its header (a Dataset read without Pixel Data)."""

    path: Path
    dataset: Dataset
    warnings: tuple[str, ...] = ()  # what pydicom warned about while reading the header

    def _str(self, keyword: str) -> str:
        return str(self.dataset.get(keyword, "") or "")

    @property
    def study_uid(self) -> str:
        return self._str("StudyInstanceUID")

    @property
    def series_uid(self) -> str:
        return self._str("SeriesInstanceUID")

    @property
    def sop_instance_uid(self) -> str:
        return self._str("SOPInstanceUID")

    @property
    def modality(self) -> str:
        return self._str("Modality")

    @property
    def transfer_syntax(self) -> str:
        meta = getattr(self.dataset, "file_meta", None)
        return str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""

    @property
    def is_mosaic(self) -> bool:
        """Whether this is a Siemens MOSAIC image (one image holding a volume as tiles)."""
        return is_mosaic(self.dataset)

    @cached_property
    def n_frames(self) -> int:
        """Number of frames (a MOSAIC counts its slices); 1 when absent or malformed (the pixel reader says why)."""
        if self.is_mosaic:
            try:
                return mosaic_layout(self.dataset).n_slices
            except MosaicError:
                return 1
        try:
            return n_frames(self.dataset)
        except MedbenchError:
            return 1

    @property
    def has_pixels(self) -> bool:
        """Whether the file is an image (it has Rows/Columns; Pixel Data itself is not read)."""
        return "Rows" in self.dataset and "Columns" in self.dataset

    def read(self) -> FileDataset:
        """The full data set including Pixel Data."""
        return read_full(self.path)


@dataclass
class DiscoveryResult:
    """What :func:`discover` found: DICOM files, DICOMDIR indexes, and skipped paths with reasons.

    ``headers`` holds every path seen as read by the one reader (a
    :class:`~medbench.io.dicom.headers.Header` each, in walk order): the
    audit builds its per-file table from it without reading anything again.
    """

    root: Path
    files: list[DicomFile] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    dicomdirs: list[Path] = field(default_factory=list)
    headers: list[Header] = field(default_factory=list, repr=False)

    def table(self) -> pd.DataFrame:
        """One row per path seen: status ``dicom`` / ``dicomdir`` / ``skipped``, reason, key header fields.

        Paths are shown with :func:`~medbench.io.dicom.headers.printable`, so the table can always be written.
        """
        rows = [
            {
                "path": printable(str(f.path)),
                "status": "dicom",
                "reason": "",
                "modality": f.modality,
                "study_uid": f.study_uid,
                "series_uid": f.series_uid,
                "sop_instance_uid": f.sop_instance_uid,
                "transfer_syntax": f.transfer_syntax,
                "rows": f.dataset.get("Rows"),
                "columns": f.dataset.get("Columns"),
                "frames": f.n_frames,
            }
            for f in self.files
        ]
        rows += [{"path": printable(str(p)), "status": "dicomdir", "reason": "media directory index"}
                 for p in self.dicomdirs]
        rows += [{"path": printable(str(p)), "status": "skipped", "reason": why} for p, why in self.skipped]
        return pd.DataFrame(rows, columns=list(rows[0]) if self.files else ["path", "status", "reason"])

    def series(self) -> list[Series]:
        """Shortcut for :func:`medbench.io.dicom.group_series` on :attr:`files`."""
        from medbench.io.dicom.series import group_series  # series.py imports this module

        return group_series(self.files)

    def __repr__(self) -> str:
        return (
            f"DiscoveryResult(root={printable(str(self.root))!r}, files={len(self.files)}, "
            f"skipped={len(self.skipped)}, dicomdirs={len(self.dicomdirs)})"
        )


def read_full(path: str | os.PathLike[str]) -> FileDataset:
    """Read a whole DICOM file (Pixel Data included); the file is only opened for reading.

    Files are expected to have passed :func:`read_header` (which refuses
    deflated data sets above the inflation limit before this would hold them).
    An empty file raises :class:`ValueError`.
    """
    path = Path(path)
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        # Through a memory map no read can ask for more than the file holds, whatever a damaged length says.
        prefixed = mm[128:132] == b"DICM"
        ds = pydicom.dcmread(cast(BinaryIO, mm), force=not prefixed)
        ds.buffer = None
    ds.filename = str(path)
    return ds


def read_header(path: str | os.PathLike[str]) -> tuple[Dataset | None, str]:
    """Read one file's header; returns (dataset, "") or (None, the reason it is not usable).

    The one reader's verdict (:func:`medbench.io.dicom.headers.read_header`),
    reduced to the data set and a reason.
    """
    header = _read_one(path)
    return (header.dataset, "") if header.ok else (None, header.error)


def discover(src: str | os.PathLike[str], *, read_pixels: bool = False) -> DiscoveryResult:
    """Find all DICOM files under ``src`` (a folder, a single file, or a DICOMDIR).

    Every file is read once (:func:`medbench.io.dicom.headers.read_tree`),
    whatever its name. A DICOMDIR is recognised by its SOP Class, listed in
    ``dicomdirs`` (it is an index, not an image), and the files it references
    are included; references to absent files are reported in ``skipped``.
    Given a DICOMDIR path as ``src``, only the files it references are read.
    Folders that cannot be listed, symbolic-link loops and links to folders
    (not followed) are in ``skipped`` with their reason. A second path to a
    file already read (a link) is skipped, so no slice is counted twice. With
    ``read_pixels=True`` each image's Pixel Data is also decoded once (then
    discarded) and files that fail go to ``skipped`` with the decoder's reason.
    """
    try:
        tree = read_tree(src)
    except FileNotFoundError as exc:
        raise DataError(f"cannot discover DICOM files: {exc}") from None
    result = DiscoveryResult(root=Path(src), headers=tree.headers)
    for header in tree.headers:
        if not header.ok:
            result.skipped.append((header.path, header.error))
        elif header.is_dicomdir:
            result.dicomdirs.append(header.path)
        else:
            assert header.dataset is not None
            problem = _pixel_problem(header.path) if read_pixels and "Rows" in header.dataset else ""
            if problem:
                result.skipped.append((header.path, problem))
            else:
                result.files.append(DicomFile(header.path, header.dataset, header.warnings))
    return result


def _pixel_problem(path: Path) -> str:
    """Empty when the file's pixels decode, else the reason they do not."""
    try:
        decode_frames(read_full(path))
    except MedbenchError as exc:
        return printable(str(exc))
    except (MemoryError, KeyboardInterrupt):
        raise
    except Exception as exc:
        return printable(f"cannot read {path}: {type(exc).__name__}: {exc}")
    return ""
