"""Header-only scan of a folder of DICOM files: one row per file, never a crash.

:func:`scan_headers` walks a tree (any file name, any extension), reads each
file's header up to the pixel data and records what an audit needs: identity,
encoding, image shape, geometry, which identifying attributes are present, and
— without decoding pixels — whether the file is whole. Every failure becomes a
row with ``readable=False``, an ``error_kind`` category and a human-readable
``error``.

Speed: the usual file (``DICM`` marker, file meta with a known, non-deflated
transfer syntax) is parsed with pydicom's own element parser,
:func:`pydicom.filereader.data_element_generator`, stopped at the pixel data,
and only the ~25 attributes the audit reports are decoded from their raw
bytes. That skips building a full :class:`~pydicom.dataset.Dataset` and
pydicom's per-element value conversion, which for small images cost more than
reading their pixels (measured on 64x64 slices on 2 cores: ``dcmread`` plus
converting these attributes ~1,700 files/s, a full pixel read ~1,900, this
path ~4,000). Every other file (no marker, no transfer syntax, deflated,
anything the fast path cannot parse) goes through :func:`pydicom.dcmread`
with ``stop_before_pixels=True``; a test checks both paths give identical rows.

Integrity checks that cost no pixel decoding:

* the pixel data element's declared length is compared with the bytes left in
  the file, and (uncompressed) with ``Rows x Columns x Frames x Samples x
  BitsAllocated / 8``;
* encapsulated (compressed) pixel data is walked item by item using only the
  item headers, so a cut-off fragment or a missing sequence delimiter is found;
* a file without pixel data must end exactly where its last element ends;
  an image header (Rows, Columns, BitsAllocated) without pixel data is flagged.

Files without the ``DICM`` marker are read with ``force=True`` only when their
first bytes look like a DICOM data element (an even group between 0002 and
0010, then a valid VR or a plausible implicit length); anything else is
``"not a DICOM file"``.
"""

from __future__ import annotations

import os
import stat
import struct
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import pandas as pd
import pydicom
from pydicom.charset import convert_encodings, decode_bytes
from pydicom.datadict import tag_for_keyword
from pydicom.filereader import data_element_generator
from pydicom.multival import MultiValue
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

#: Identifying attributes reported in ``phi_present`` when present with a
#: non-blank value: the patient's names, IDs, birth data, contact details and
#: relatives; the accession number; people (physicians, operators), stations
#: and institutions named in the study. A subset of the direct identifiers of
#: the DICOM PS3.15 Basic Application Level Confidentiality Profile; study
#: dates and UIDs are left out because the audit itself needs them.
PHI_KEYWORDS: tuple[str, ...] = (
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "PatientBirthDate",
    "PatientBirthTime",
    "PatientBirthName",
    "PatientMotherBirthName",
    "OtherPatientIDs",
    "OtherPatientIDsSequence",
    "OtherPatientNames",
    "PatientAddress",
    "PatientTelephoneNumbers",
    "MedicalRecordLocator",
    "MilitaryRank",
    "AccessionNumber",
    "InstitutionName",
    "InstitutionAddress",
    "InstitutionalDepartmentName",
    "ReferringPhysicianName",
    "ReferringPhysicianAddress",
    "ReferringPhysicianTelephoneNumbers",
    "PerformingPhysicianName",
    "NameOfPhysiciansReadingStudy",
    "PhysiciansOfRecord",
    "RequestingPhysician",
    "OperatorsName",
    "StationName",
    "DeviceSerialNumber",
)

#: Columns of the scan table, in order (an empty scan still has them all).
COLUMNS: tuple[str, ...] = (
    "path",
    "size_bytes",
    "readable",
    "error_kind",
    "error",
    "sop_class_uid",
    "sop_class_name",
    "modality",
    "manufacturer",
    "model",
    "transfer_syntax",
    "transfer_syntax_name",
    "is_compressed",
    "rows",
    "columns",
    "frames",
    "samples_per_pixel",
    "bits_allocated",
    "bits_stored",
    "pixel_representation",
    "photometric",
    "pixel_spacing_row",
    "pixel_spacing_col",
    "slice_thickness",
    "image_position_x",
    "image_position_y",
    "image_position_z",
    "image_orientation",
    "study_uid",
    "series_uid",
    "sop_instance_uid",
    "instance_number",
    "series_description",
    "phi_present",
)

#: Attributes decoded for a row, with how their raw bytes are decoded.
_FIELDS: dict[str, str] = {
    "SOPClassUID": "text",
    "Modality": "text",
    "Manufacturer": "text",
    "ManufacturerModelName": "text",
    "Rows": "us",
    "Columns": "us",
    "NumberOfFrames": "is",
    "SamplesPerPixel": "us",
    "BitsAllocated": "us",
    "BitsStored": "us",
    "PixelRepresentation": "us",
    "PhotometricInterpretation": "text",
    "PixelSpacing": "ds",
    "SliceThickness": "ds",
    "ImagePositionPatient": "ds",
    "ImageOrientationPatient": "ds",
    "StudyInstanceUID": "text",
    "SeriesInstanceUID": "text",
    "SOPInstanceUID": "text",
    "InstanceNumber": "is",
    "SeriesDescription": "text",
}
_FIELD_TAGS: dict[str, int] = {keyword: int(tag_for_keyword(keyword) or 0) for keyword in _FIELDS}
_PHI_TAGS: dict[str, int] = {keyword: int(tag_for_keyword(keyword) or 0) for keyword in PHI_KEYWORDS}
_CHARSET = 0x00080005
_META_SOP_CLASS, _META_SYNTAX = 0x00020002, 0x00020010

_PIXEL_TAGS = frozenset({0x7FE00010, 0x7FE00009, 0x7FE00008})  # PixelData, DoubleFloat..., Float...
_ITEM, _SEQ_DELIM = 0xFFFEE000, 0xFFFEE0DD
_UNDEFINED = 0xFFFFFFFF
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT"}
_ALL_VRS = _LONG_VRS | {
    b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT",
    b"PN", b"SH", b"SL", b"SS", b"ST", b"SV", b"TM", b"UI", b"UL", b"US", b"UV",
}  # fmt: skip


class _Finding(Exception):
    """A per-file problem: ``kind`` is the category, the message the reason."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass
class _Header:
    """What a header read yields, whichever reader produced it."""

    elements: Mapping[int, Any]  # tag -> RawDataElement or DataElement
    syntax: UID | None
    implicit: bool
    little: bool
    pixel_pos: int | None  # file offset of the pixel data element, if the read stopped there
    last_end: int | None  # where the last top-level element ends, when known
    checkable: bool  # False when file offsets do not apply (deflated data sets)
    meta_sop_class: str | None


# -- walking -------------------------------------------------------------------


def iter_files(root_or_paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> Iterator[Path]:
    """Every non-directory path under a root (or a list of roots/files), sorted per folder.

    Directories are descended whatever their name (``scan.dcm/`` is a folder,
    not a file); symbolic links to directories are not followed (no loops);
    everything else — regular files, broken links, FIFOs — is yielded so the
    scan can give it a row.
    """
    roots = [root_or_paths] if isinstance(root_or_paths, (str, os.PathLike)) else list(root_or_paths)
    for root in roots:
        root = Path(root)
        if root.is_dir() and not root.is_symlink():
            for folder, dirs, files in os.walk(root):
                dirs.sort()
                for name in sorted(files):
                    yield Path(folder) / name
        else:
            yield root


# -- reading headers -----------------------------------------------------------


def _looks_like_dicom(head: bytes, size: int) -> bool:
    """Whether bytes without a ``DICM`` marker plausibly start a DICOM data set."""
    if len(head) < 8:
        return False
    for order in "<>":
        group, _element = struct.unpack(order + "HH", head[:4])
        if group % 2 or not 0x0002 <= group <= 0x0010:
            continue
        if head[4:6] in _ALL_VRS:
            return True
        (length,) = struct.unpack(order + "I", head[4:8])
        if length <= size - 8:
            return True
    return False


def _text_of(raw: bytes) -> str:
    return raw.decode("ascii", "replace").strip(" \0")


def _read_fast(fp: BinaryIO) -> _Header | None:
    """Parse a ``DICM`` file with pydicom's element generator; None to defer to dcmread.

    The file position is just after the ``DICM`` marker.
    """
    past_meta = lambda tag, vr, length: tag >> 16 != 2  # noqa: E731
    meta: dict[int, Any] = {int(el.tag): el for el in data_element_generator(fp, False, True, stop_when=past_meta)}
    raw_syntax = meta.get(_META_SYNTAX)
    if raw_syntax is None or not isinstance(raw_syntax.value, bytes):
        return None
    syntax = UID(_text_of(raw_syntax.value))
    if not syntax.is_transfer_syntax or syntax.is_deflated:
        return None
    little = syntax.is_little_endian
    start = fp.tell()
    peek = fp.read(6)
    fp.seek(start)
    # Like pydicom: trust the bytes over the declared syntax when the first VR is not two capitals.
    implicit = len(peek) < 6 or not (0x40 < peek[4] < 0x5B and 0x40 < peek[5] < 0x5B)
    at_pixels = lambda tag, vr, length: tag in _PIXEL_TAGS  # noqa: E731
    elements: dict[int, Any] = {int(el.tag): el for el in data_element_generator(fp, implicit, little, stop_when=at_pixels)}
    pixel_pos = fp.tell() if _pixel_tag_at(fp, little) else None
    raw_sop = meta.get(_META_SOP_CLASS)
    return _Header(
        elements=elements,
        syntax=syntax,
        implicit=implicit,
        little=little,
        pixel_pos=pixel_pos,
        last_end=_last_end(elements) if pixel_pos is None else None,
        checkable=True,
        meta_sop_class=_text_of(raw_sop.value) or None if raw_sop is not None and raw_sop.value else None,
    )


def _read_pydicom(fp: BinaryIO, force: bool) -> _Header:
    """Parse the header with :func:`pydicom.dcmread` (unusual files)."""
    fp.seek(0)
    ds = pydicom.dcmread(fp, stop_before_pixels=True, force=force)
    implicit, little = ds.original_encoding
    meta = getattr(ds, "file_meta", None) or {}
    syntax = UID(str(meta["TransferSyntaxUID"].value)) if "TransferSyntaxUID" in meta else None
    if syntax is None and implicit is not None:
        syntax = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian if little else ExplicitVRBigEndian
    elements = {int(tag): ds.get_item(tag) for tag in ds.keys()}
    pixel_pos = fp.tell() if _pixel_tag_at(fp, little is not False) else None
    sop = meta.get("MediaStorageSOPClassUID") if hasattr(meta, "get") else None
    return _Header(
        elements=elements,
        syntax=syntax,
        implicit=bool(implicit),
        little=little is not False,
        pixel_pos=pixel_pos,
        last_end=_last_end(elements) if pixel_pos is None else None,
        checkable=not (syntax is not None and syntax.is_transfer_syntax and syntax.is_deflated),
        meta_sop_class=str(sop) if sop else None,
    )


def _last_end(elements: Mapping[int, Any]) -> int | None:
    """File offset where the last element read ends, when its length is defined."""
    if not elements:
        return None
    last = next(reversed(list(elements.values())))
    tell, length = getattr(last, "value_tell", None), getattr(last, "length", None)
    if tell is None or length is None or length == _UNDEFINED:
        return None
    return tell + length


def _pixel_tag_at(fp: BinaryIO, little: bool) -> bool:
    """Whether a pixel data tag starts at the file position (position unchanged)."""
    pos = fp.tell()
    head = fp.read(4)
    fp.seek(pos)
    if len(head) < 4:
        return False
    group, element = struct.unpack(("<" if little else ">") + "HH", head)
    return (group << 16 | element) in _PIXEL_TAGS


def _read_header(fp: BinaryIO, size: int) -> _Header:
    """Read a header up to the pixel data, by the fast path when possible."""
    if size == 0:
        raise _Finding("empty", "empty file (0 bytes)")
    head = fp.read(132)
    has_marker = head[128:132] == b"DICM"
    if not has_marker and not _looks_like_dicom(head, size):
        raise _Finding("not_dicom", "not a DICOM file")
    try:
        header = _read_fast(fp) if has_marker else None
    except Exception:  # malformed input: let dcmread give its own verdict below
        header = None
    if header is not None:
        return header
    try:
        return _read_pydicom(fp, force=not has_marker)
    except Exception as exc:  # pydicom raises many types on malformed input
        raise _Finding("unreadable", f"unreadable header: {type(exc).__name__}: {exc}") from exc


# -- integrity -----------------------------------------------------------------


def _expected_native_bytes(fields: Mapping[str, Any]) -> int | None:
    """Bytes that uncompressed pixel data must hold, from the image attributes."""
    rows, cols, bits = fields["Rows"], fields["Columns"], fields["BitsAllocated"]
    if not (rows and cols and bits):
        return None
    samples = fields["SamplesPerPixel"] or 1
    if str(fields["PhotometricInterpretation"] or "").startswith("YBR_FULL_422"):
        samples = 2  # two chroma values shared by each pair of pixels
    n_values = rows * cols * (fields["NumberOfFrames"] or 1) * samples
    return (n_values + 7) // 8 if bits == 1 else n_values * bits // 8


def _check_pixel_element(fp: BinaryIO, header: _Header, fields: Mapping[str, Any], size: int) -> None:
    """Compare the pixel data element at ``header.pixel_pos`` with the file and the image attributes."""
    order = "<" if header.little else ">"
    assert header.pixel_pos is not None, "called only when the read stopped at the pixel data"
    fp.seek(header.pixel_pos)
    head = fp.read(12)
    # Trust the bytes when they contradict the data set's encoding: some writers switch VR mode mid-file.
    explicit_here = head[4:6] in _LONG_VRS and head[6:8] == b"\0\0" if header.implicit else head[4:6] in _ALL_VRS
    if not explicit_here:
        (length,), header_len = struct.unpack(order + "I", head[4:8]), 8
    elif head[4:6] in _LONG_VRS:
        (length,), header_len = struct.unpack(order + "I", head[8:12]), 12
    else:
        (length,), header_len = struct.unpack(order + "H", head[6:8]), 8
    value_start = header.pixel_pos + header_len
    if length == _UNDEFINED:
        _walk_fragments(fp, value_start, size)
        return
    remaining = size - value_start
    if length > remaining:
        raise _Finding(
            "truncated", f"truncated: pixel data declares {length} bytes but only {max(remaining, 0)} remain in the file"
        )
    expected = _expected_native_bytes(fields)
    if expected is not None and not (header.syntax is not None and header.syntax.is_encapsulated) and length < expected:
        raise _Finding(
            "truncated",
            f"truncated: pixel data holds {length} bytes but Rows x Columns x Frames x Samples x BitsAllocated needs {expected}",
        )


def _walk_fragments(fp: BinaryIO, pos: int, size: int) -> None:
    """Follow encapsulated pixel data item headers to the sequence delimiter."""
    fp.seek(pos)
    index = 0
    while True:
        head = fp.read(8)
        if len(head) < 8:
            raise _Finding("truncated", f"truncated: encapsulated pixel data ends after {index} items, before its delimiter")
        group, element, length = struct.unpack("<HHI", head)
        tag = group << 16 | element
        if tag == _SEQ_DELIM:
            return
        if tag != _ITEM:
            raise _Finding("corrupt", f"corrupt pixel data: unexpected tag ({group:04X},{element:04X}) in item {index}")
        end = fp.tell() + length
        if end > size:
            raise _Finding(
                "truncated",
                f"truncated: pixel data item {index} declares {length} bytes but only {size - fp.tell()} remain in the file",
            )
        fp.seek(end)
        index += 1


def _check_integrity(fp: BinaryIO, header: _Header, fields: Mapping[str, Any], size: int) -> None:
    """Header-only integrity checks (see the module docstring); raise a :class:`_Finding`."""
    if not header.elements:
        raise _Finding("truncated", f"truncated: the file ends at byte {size}, before any data set element")
    if not header.checkable:
        return  # offsets refer to the inflated stream; zlib reports damage itself
    if header.pixel_pos is not None:
        if header.syntax is not None and not header.syntax.is_transfer_syntax:
            raise _Finding("unknown_syntax", f"unknown transfer syntax {header.syntax}: the pixel data cannot be interpreted")
        _check_pixel_element(fp, header, fields, size)
        return
    if header.last_end is not None and header.last_end > size:
        raise _Finding("truncated", f"truncated: the last data element ends at byte {header.last_end} but the file has {size}")
    if header.last_end is not None and header.last_end < size:
        raise _Finding("truncated", f"truncated: {size - header.last_end} trailing bytes do not form a complete data element")
    sop = fields["SOPClassUID"] or header.meta_sop_class
    if sop and UID(sop).name.endswith("Image Storage"):
        raise _Finding(
            "missing_pixel_data",
            f"no pixel data: a {UID(sop).name} object ends at byte {size} without a (7FE0,0010) element (truncated?)",
        )
    if fields["Rows"] and fields["Columns"] and fields["BitsAllocated"]:
        raise _Finding(
            "missing_pixel_data",
            f"no pixel data: Rows, Columns and BitsAllocated are set but the file ends at byte {size} "
            "without a (7FE0,0010) element (truncated?)",
        )


# -- decoding values -------------------------------------------------------------


def _encodings(elements: Mapping[int, Any]) -> list[str]:
    """Python codecs for the data set's Specific Character Set (default: ASCII/latin-1 superset)."""
    charset = elements.get(_CHARSET)
    value = charset.value if charset is not None else None
    if not value:
        return ["iso8859"]
    if isinstance(value, bytes):
        terms = _text_of(value).split("\\")
    else:  # converted by pydicom: a str or a MultiValue of str
        terms = [value] if isinstance(value, str) else list(value)
    try:
        return convert_encodings([str(t).strip() for t in terms])
    except LookupError:  # pydicom could not map any term to a codec
        return ["iso8859"]


def _decode(el: Any, kind: str, little: bool, encodings: list[str]) -> Any:
    """The value of one element as str / int / list[float]; None when empty or malformed."""
    value = el.value
    if value is None or value == b"" or value == "":
        return None
    if not isinstance(value, bytes):  # already converted by pydicom (fallback path)
        if kind == "ds":
            return [float(v) for v in value] if isinstance(value, (list, tuple, MultiValue)) else [float(value)]
        return int(value) if kind in ("us", "is") else str(value).strip()
    if kind == "us":
        return struct.unpack(("<" if little else ">") + "H", value[:2])[0] if len(value) >= 2 else None
    if kind == "is":
        return int(_text_of(value).split("\\")[0])
    if kind == "ds":
        return [float(v) for v in _text_of(value).split("\\")]
    text = decode_bytes(value, encodings, set()) if b"\x1b" in value else value.decode(encodings[0], "replace")
    return text.strip(" \0") or None


def _fields(header: _Header, encodings: list[str]) -> dict[str, Any]:
    """Every :data:`_FIELDS` keyword -> decoded value (None when absent or malformed)."""
    out: dict[str, Any] = {}
    for keyword, kind in _FIELDS.items():
        el = header.elements.get(_FIELD_TAGS[keyword])
        try:
            out[keyword] = None if el is None else _decode(el, kind, header.little, encodings)
        except (TypeError, ValueError, UnicodeDecodeError, LookupError):
            out[keyword] = None
    return out


def _non_blank(el: Any) -> bool:
    value = el.value
    if isinstance(value, bytes):
        return bool(value.strip(b" \0"))
    if isinstance(value, str):
        return bool(value.strip(" \0"))
    return bool(value)


def phi_present(elements: Mapping[int, Any]) -> list[str]:
    """The :data:`PHI_KEYWORDS` present with a non-blank value among ``elements`` (tag -> element)."""
    return [k for k, tag in _PHI_TAGS.items() if tag in elements and _non_blank(elements[tag])]


def _vector(values: list[float] | None, n: int) -> list[float | None]:
    return list(values) if values is not None and len(values) == n else [None] * n


def _row_fields(header: _Header, fields: Mapping[str, Any]) -> dict[str, Any]:
    """The audit columns from decoded header fields."""
    syntax = header.syntax
    try:
        compressed = bool(syntax.is_compressed) if syntax is not None else None
    except ValueError:  # a private or unknown transfer syntax
        compressed = None
    sop = fields["SOPClassUID"] or header.meta_sop_class
    spacing = _vector(fields["PixelSpacing"], 2)
    position = _vector(fields["ImagePositionPatient"], 3)
    orientation = fields["ImageOrientationPatient"]
    rows = fields["Rows"]
    return {
        "sop_class_uid": sop,
        "sop_class_name": UID(sop).name if sop else None,
        "modality": fields["Modality"],
        "manufacturer": fields["Manufacturer"],
        "model": fields["ManufacturerModelName"],
        "transfer_syntax": str(syntax) if syntax is not None else None,
        "transfer_syntax_name": syntax.name if syntax is not None else None,
        "is_compressed": compressed,
        "rows": rows,
        "columns": fields["Columns"],
        "frames": fields["NumberOfFrames"] or (1 if rows else None),
        "samples_per_pixel": fields["SamplesPerPixel"],
        "bits_allocated": fields["BitsAllocated"],
        "bits_stored": fields["BitsStored"],
        "pixel_representation": fields["PixelRepresentation"],
        "photometric": fields["PhotometricInterpretation"],
        "pixel_spacing_row": spacing[0],
        "pixel_spacing_col": spacing[1],
        "slice_thickness": _vector(fields["SliceThickness"], 1)[0],
        "image_position_x": position[0],
        "image_position_y": position[1],
        "image_position_z": position[2],
        "image_orientation": tuple(orientation) if orientation is not None and len(orientation) == 6 else None,
        "study_uid": fields["StudyInstanceUID"],
        "series_uid": fields["SeriesInstanceUID"],
        "sop_instance_uid": fields["SOPInstanceUID"],
        "instance_number": fields["InstanceNumber"],
        "series_description": fields["SeriesDescription"],
        "phi_present": ";".join(phi_present(header.elements)),
    }


# -- public API ------------------------------------------------------------------


def scan_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """One scan row (a dict keyed by :data:`COLUMNS`) for ``path``; never raises for a bad file.

    ``readable`` is True only for a file whose header parsed, that has a SOP
    Class UID and that passed the integrity checks; otherwise ``error_kind``
    (``empty``, ``not_dicom``, ``unreadable``, ``truncated``, ``corrupt``,
    ``missing_pixel_data``, ``unknown_syntax``, ``missing_sop_class``, ``permission_denied``,
    ``not_regular``, ``broken_link``, ``missing``, ``os_error``) and ``error``
    say why. Header columns are filled whenever the header parsed, so a
    truncated file still shows its series.
    """
    path = Path(path)
    row: dict[str, Any] = dict.fromkeys(COLUMNS)
    row.update(path=str(path), readable=False)
    try:
        st = path.stat()
        row["size_bytes"] = st.st_size
        if not stat.S_ISREG(st.st_mode):
            raise _Finding("not_regular", "not a regular file (device, FIFO or socket)")
        with open(path, "rb") as fp:
            header = _read_header(fp, st.st_size)
            fields = _fields(header, _encodings(header.elements))
            row.update(_row_fields(header, fields))
            _check_integrity(fp, header, fields, st.st_size)
        if not row["sop_class_uid"]:
            raise _Finding("missing_sop_class", "missing SOP Class UID (0008,0016)")
        row["readable"] = True
    except _Finding as finding:
        row.update(error_kind=finding.kind, error=str(finding))
    except PermissionError:
        row.update(error_kind="permission_denied", error="permission denied")
    except FileNotFoundError:
        broken = path.is_symlink()
        row.update(
            error_kind="broken_link" if broken else "missing",
            error="broken symbolic link" if broken else "file vanished during the scan",
        )
    except OSError as exc:
        row.update(error_kind="os_error", error=f"cannot read: {exc.strerror or exc}")
    except Exception as exc:  # a malformed value no check anticipated: still a row, not a crash
        row.update(error_kind="unreadable", error=f"unreadable header: {type(exc).__name__}: {exc}")
    return row


def scan_headers(root_or_paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> pd.DataFrame:
    """Header-only scan of every file under ``root_or_paths``: one row per file.

    ``root_or_paths`` is a folder (scanned recursively, any name or
    extension), a single file, or an iterable of either. Columns are
    :data:`COLUMNS` (see :func:`scan_file` for ``readable``/``error_kind``);
    PixelSpacing is split into ``pixel_spacing_row`` / ``pixel_spacing_col``
    and ImagePositionPatient into ``image_position_x/y/z`` so they filter
    numerically; ``image_orientation`` is a 6-tuple; ``phi_present`` is a
    ``;``-joined list of the :data:`PHI_KEYWORDS` found. Source files are
    only opened for reading.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about every odd file; the row says what is wrong
        rows = [scan_file(path) for path in iter_files(root_or_paths)]
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    for column in ("size_bytes", "rows", "columns", "frames", "samples_per_pixel", "bits_allocated",
                   "bits_stored", "pixel_representation", "instance_number"):  # fmt: skip
        df[column] = df[column].astype("Int64")
    df["readable"] = df["readable"].astype(bool)
    df["is_compressed"] = df["is_compressed"].astype("boolean")
    return df
