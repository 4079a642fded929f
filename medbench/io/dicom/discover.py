"""Find every DICOM file under a folder, whatever it is called.

Real exports have files without extensions (``IM000001``), with the wrong
one, DICOMDIR media indexes, stray text files, and files cut short by a
failed copy. :func:`discover` reads only headers (``stop_before_pixels``),
keeps every readable DICOM file, and reports everything else as a row with
its reason instead of failing: one bad file never hides the rest.
"""

from __future__ import annotations

import os
import warnings
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileDataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import DeflatedExplicitVRLittleEndian

from medbench.errors import DataError, MedbenchError
from medbench.io.dicom.pixels import n_frames
from medbench.io.dicom.pixels import read_pixels as decode_pixels

if TYPE_CHECKING:
    from medbench.io.dicom.series import Series

#: Media Storage Directory Storage: the SOP Class of a DICOMDIR.
DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"

#: Transfer syntaxes whose Pixel Data is stored raw, so its length can be checked from the header.
_NATIVE_SYNTAXES = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2"}

#: Groups a DICOM data set without a preamble plausibly starts with (file meta, identification).
_FIRST_GROUPS = {0x0002, 0x0008}


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
    def n_frames(self) -> int:
        """Number of frames; 1 when absent or malformed (the pixel reader reports malformed values)."""
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
    """What :func:`discover` found: DICOM files, DICOMDIR indexes, and skipped paths with reasons."""

    root: Path
    files: list[DicomFile] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    dicomdirs: list[Path] = field(default_factory=list)

    def table(self) -> pd.DataFrame:
        """One row per path seen: status ``dicom`` / ``dicomdir`` / ``skipped``, reason, key header fields."""
        rows = [
            {
                "path": str(f.path),
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
        rows += [{"path": str(p), "status": "dicomdir", "reason": "media directory index"} for p in self.dicomdirs]
        rows += [{"path": str(p), "status": "skipped", "reason": why} for p, why in self.skipped]
        return pd.DataFrame(rows, columns=list(rows[0]) if self.files else ["path", "status", "reason"])

    def series(self) -> list[Series]:
        """Shortcut for :func:`medbench.io.dicom.group_series` on :attr:`files`."""
        from medbench.io.dicom.series import group_series  # series.py imports this module

        return group_series(self.files)

    def __repr__(self) -> str:
        return (
            f"DiscoveryResult(root={str(self.root)!r}, files={len(self.files)}, "
            f"skipped={len(self.skipped)}, dicomdirs={len(self.dicomdirs)})"
        )


def read_full(path: str | os.PathLike[str]) -> FileDataset:
    """Read a whole DICOM file (Pixel Data included); the file is only opened for reading."""
    path = Path(path)
    return pydicom.dcmread(path, force=not _has_dicm_prefix(path))


def _has_dicm_prefix(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(132)
    return len(head) == 132 and head[128:132] == b"DICM"


def _looks_like_raw_dataset(path: Path) -> bool:
    """A file without the DICM prefix that starts with a plausible (group, element) tag."""
    with open(path, "rb") as fh:
        head = fh.read(8)
    if len(head) < 8:
        return False
    little, big = int.from_bytes(head[:2], "little"), int.from_bytes(head[:2], "big")
    return little in _FIRST_GROUPS or big in _FIRST_GROUPS


def _walk(root: Path) -> Iterator[Path]:
    """Every regular file under ``root`` in a stable order (symlinked folders not followed)."""
    for folder, dirs, names in os.walk(root):
        dirs.sort()
        for name in sorted(names):
            path = Path(folder) / name
            if path.is_file():
                yield path


def _native_pixel_shortfall(path: Path, ds: Dataset, pixel_offset: int) -> str | None:
    """For raw Pixel Data, a reason when the file is shorter than the header says it must be."""
    meta = getattr(ds, "file_meta", None)
    syntax = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
    if syntax not in _NATIVE_SYNTAXES or "Rows" not in ds or "BitsAllocated" not in ds:
        return None
    samples = int(ds.get("SamplesPerPixel") or 1)
    if str(ds.get("PhotometricInterpretation", "")).upper() == "YBR_FULL_422":
        samples = 2  # two chroma values shared by each pair of pixels
    try:
        bits = int(ds.Rows) * int(ds.Columns) * samples * int(ds.BitsAllocated)
        expected = (bits * n_frames(ds) + 7) // 8
    except (TypeError, ValueError, MedbenchError):
        return None
    size = path.stat().st_size
    if pixel_offset >= size:
        return "truncated: the header describes an image but the file ends before its Pixel Data"
    tag_and_length = 8 if syntax == "1.2.840.10008.1.2" else 12
    available = size - pixel_offset - tag_and_length
    if available < expected:
        return f"truncated: Pixel Data has {max(available, 0)} of the {expected} bytes the header describes"
    return None


def read_header(path: str | os.PathLike[str]) -> tuple[Dataset | None, str]:
    """Read one file's header; returns (dataset, "") or (None, reason it is not usable).

    Files without the 128-byte preamble and ``DICM`` marker are accepted only
    when they parse as a data set that has a SOP Instance or SOP Class UID.
    """
    ds, reason, _ = _read_header_noting_warnings(Path(path))
    return ds, reason


def _read_header_noting_warnings(path: Path) -> tuple[Dataset | None, str, tuple[str, ...]]:
    """:func:`read_header`, plus pydicom's warnings about the file (kept, not printed)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds, reason = _read_header(path)
    return ds, reason, tuple(dict.fromkeys(str(w.message) for w in caught))


def _read_header(path: Path) -> tuple[Dataset | None, str]:
    try:
        prefixed = _has_dicm_prefix(path)
        if not prefixed and not _looks_like_raw_dataset(path):
            return None, "not DICOM: no 'DICM' marker at byte 128 and no DICOM data set at the start"
        with open(path, "rb") as fh:
            ds = pydicom.dcmread(fh, stop_before_pixels=True, force=not prefixed)
            offset = fh.tell()
    except InvalidDicomError as exc:
        return None, f"not DICOM: {exc}"
    except OSError as exc:
        return None, f"cannot open: {exc.strerror or exc}"
    except (MemoryError, KeyboardInterrupt):
        raise
    except Exception as exc:  # pydicom raises many types on damaged files
        return None, f"unreadable DICOM header ({type(exc).__name__}: {exc})"
    if not prefixed and not ("SOPInstanceUID" in ds or "SOPClassUID" in ds):
        return None, "not DICOM: no 'DICM' marker and no SOP Class/Instance UID in what parses"
    incomplete = _incomplete(ds, offset)
    if incomplete:
        return None, incomplete
    if "PixelData" not in ds and "Rows" in ds:  # stop_before_pixels stops at the Pixel Data tag
        shortfall = _native_pixel_shortfall(path, ds, offset)
        if shortfall:
            return None, shortfall
    return ds, ""


def _incomplete(ds: Dataset, offset: int) -> str:
    """Why a header that parsed is still cut short, or "".

    pydicom stops silently at the end of a file and drops a partly read
    element, so a header cut mid-element looks complete. The tell-tale: the
    last element read ends before the point where reading stopped (the bytes
    in between were a partial element). Deflated files and files ending in a
    sequence cannot be checked this way; a cut exactly at an element boundary
    is indistinguishable from a shorter file.
    """
    if len(ds) == 0:
        return "truncated or empty: no data elements after the file meta information"
    meta = getattr(ds, "file_meta", None)
    if meta is not None and str(meta.get("TransferSyntaxUID", "")) == DeflatedExplicitVRLittleEndian:
        return ""
    last = ds.get_item(max(ds.keys()))
    if not isinstance(last, RawDataElement) or last.value_tell is None or last.length == 0xFFFFFFFF:
        return ""
    end = last.value_tell + last.length
    if end > offset:
        return (
            f"truncated: element {last.tag} declares {last.length} bytes but the file ends "
            f"after {offset - last.value_tell} of them"
        )
    if end < offset:
        return f"truncated: the file ends inside the element after {last.tag} ({offset - end} bytes of it present)"
    return ""


def _is_dicomdir(ds: Dataset) -> bool:
    meta = getattr(ds, "file_meta", None)
    sop = str(meta.get("MediaStorageSOPClassUID", "")) if meta is not None else ""
    return sop == DICOMDIR_SOP_CLASS or "DirectoryRecordSequence" in ds


def _resolve_case_insensitive(base: Path, parts: list[str]) -> Path | None:
    """``base/parts...`` on disk, matching each component without regard to case (media IDs are upper case)."""
    current = base
    for part in parts:
        exact = current / part
        if exact.exists():
            current = exact
            continue
        try:
            matches = [p for p in current.iterdir() if p.name.casefold() == part.casefold()]
        except OSError:
            return None
        if len(matches) != 1:
            return None
        current = matches[0]
    return current if current.is_file() else None


def dicomdir_references(dicomdir: Path, ds: Dataset) -> tuple[list[Path], list[str]]:
    """Files a DICOMDIR references: (found paths, the File IDs it names that are missing)."""
    found: list[Path] = []
    missing: list[str] = []
    for record in ds.get("DirectoryRecordSequence", []):
        file_id = record.get("ReferencedFileID")
        if not file_id:
            continue
        parts = [str(file_id)] if isinstance(file_id, str) else [str(p) for p in file_id]
        path = _resolve_case_insensitive(dicomdir.parent, parts)
        if path is None:
            missing.append("/".join(parts))
        else:
            found.append(path)
    return found, missing


def discover(src: str | os.PathLike[str], *, read_pixels: bool = False) -> DiscoveryResult:
    """Find all DICOM files under ``src`` (a folder, a single file, or a DICOMDIR).

    Every regular file is tried, whatever its name. A DICOMDIR is recognised
    by its SOP Class, listed in ``dicomdirs`` (it is an index, not an image),
    and the files it references are included; references to absent files are
    reported in ``skipped``. Given a DICOMDIR path as ``src``, only the files
    it references are read. With ``read_pixels=True`` each image's Pixel Data
    is also decoded once (then discarded) and files that fail go to
    ``skipped`` with the decoder's reason.
    """
    root = Path(src)
    if not root.exists():
        raise DataError(f"cannot discover DICOM files: {root} does not exist")
    result = DiscoveryResult(root=root)
    queue = deque([root] if root.is_file() else _walk(root))
    seen: set[Path] = set()
    missing_refs: dict[Path, list[Path]] = {}
    while queue:
        path = queue.popleft()
        key = path.resolve()
        if key in seen:
            continue
        seen.add(key)
        ds, reason, noted = _read_header_noting_warnings(path)
        if ds is None:
            result.skipped.append((path, reason))
        elif _is_dicomdir(ds):
            result.dicomdirs.append(path)
            found, missing = dicomdir_references(path, ds)
            queue.extend(p for p in found if p.resolve() not in seen)
            for file_id in missing:
                missing_refs.setdefault(path.parent / file_id, []).append(path)
        else:
            problem = _pixel_problem(path) if read_pixels and "Rows" in ds else ""
            if problem:
                result.skipped.append((path, problem))
            else:
                result.files.append(DicomFile(path, ds, noted))
    for path, indexes in missing_refs.items():
        names = ", ".join(str(p) for p in indexes)
        result.skipped.append((path, f"missing: referenced by DICOMDIR {names} but not on disk"))
    return result


def _pixel_problem(path: Path) -> str:
    """Empty when the file's pixels decode, else the reason they do not."""
    try:
        decode_pixels(read_full(path))
    except MedbenchError as exc:
        return str(exc)
    except (MemoryError, KeyboardInterrupt):
        raise
    except Exception as exc:
        return f"cannot read {path}: {type(exc).__name__}: {exc}"
    return ""
