"""The one DICOM header reader: sniffing, the fast header parse, integrity checks, the folder walk.

Discovery (:func:`medbench.io.dicom.discover`), the audit
(:func:`medbench.audit.scan`) and de-identification
(:func:`medbench.io.deid.deidentify_folder`) all ask this module "is this
file DICOM, is it whole, what does its header say?", so they answer with the
same rules and the same words, and the audit reads every header once.

:func:`read_header` reads one file and never raises for a bad one: it returns
a :class:`Header` with the data set (up to, not including, the pixel data)
or an ``error_kind`` from :data:`ERROR_KINDS` and a message saying what
happened. :func:`walk` lists a folder (stable order, any file name, findings
for what cannot be listed) and :func:`read_tree` does both for a folder, a
file or a DICOMDIR.

How a file is read:

* **sniffing**: a file is DICOM when it has the ``DICM`` marker at byte 128,
  or (no preamble, no file meta) when its first bytes are a plausible data
  element (an even group from 0002 to 0010, then a valid VR or a length that
  fits the file) and what parses holds a SOP Class or SOP Instance UID;
* **the fast parse**: the file is memory-mapped and parsed with pydicom's own
  element parser (:func:`pydicom.filereader.data_element_generator`), stopped
  at the pixel data; element values stay raw bytes until asked for, inside an
  ordinary :class:`~pydicom.dataset.Dataset`. A memory map never reads more
  than the file holds, so an absurd declared length costs nothing. Files the
  fast parse does not handle (no ``DICM`` marker, no or unknown transfer
  syntax) go through :func:`pydicom.dcmread` (``stop_before_pixels``) on the
  same map;
* **deflated data sets** (Deflated Explicit VR Little Endian) are inflated
  incrementally, only as far as the parse needs, and then counted (inflated
  and discarded) to check the pixel data is whole. A data set that inflates
  to more than :data:`MAX_INFLATED_BYTES` (256 MiB) is refused with the
  ``too_large`` finding: a few hundred kilobytes of deflated zeros can
  inflate to gigabytes, and every later full read (pixels, de-identification)
  would hold all of it in memory;
* **integrity, without decoding pixels**: the pixel data element's declared
  length against the bytes left in the file; for uncompressed pixel data also
  against ``Rows x Columns x Frames x Samples x BitsAllocated / 8``, too short
  (``truncated``) and too long (``pixel_length``: the header does not describe
  these pixels, e.g. a missing Number of Frames); encapsulated pixel data item
  by item; a file without pixel data must end exactly where its last element
  ends, and an image object (an ``... Image Storage`` SOP class, or Rows,
  Columns and BitsAllocated) without pixel data is ``missing_pixel_data``.

What cannot be told apart: a file cut exactly at an element boundary before
the pixel data looks like a shorter file; it is still caught when it is an
image object (its pixel data is then missing).
"""

from __future__ import annotations

import errno
import gc
import mmap
import os
import re
import stat
import struct
import warnings
import zlib
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, cast

import pydicom
from pydicom.charset import default_encoding
from pydicom.datadict import dictionary_has_tag
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filereader import data_element_generator
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

#: Largest inflated size (bytes) of a deflated data set that is read; larger ones are refused (``too_large``).
MAX_INFLATED_BYTES = 256 * 2**20

#: Media Storage Directory Storage: the SOP Class of a DICOMDIR.
DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"

#: Every finding a :class:`Header` can carry, with what it means.
ERROR_KINDS: dict[str, str] = {
    "empty": "a file of 0 bytes",
    "not_dicom": "not a DICOM file (no DICM marker and no DICOM data set at the start)",
    "not_parseable": "starts like DICOM but what follows is not DICOM data elements (garbage, a corrupt file)",
    "unreadable": "pydicom could not parse the header (its exception is quoted)",
    "truncated": "the file ends before an element, the pixel data or an encapsulated fragment it declares",
    "corrupt": "structurally broken data: an unknown VR, broken pixel data fragments or deflated stream",
    "pixel_length": "the pixel data is longer than Rows x Columns x Frames x Samples x BitsAllocated says",
    "missing_pixel_data": "an image object without its (7FE0,0010) Pixel Data",
    "unknown_syntax": "a transfer syntax pydicom does not know: the pixel data cannot be interpreted",
    "missing_sop_class": "a DICOM file without SOP Class UID (0008,0016) in data set or file meta",
    "too_large": f"a deflated data set that inflates to more than MAX_INFLATED_BYTES ({MAX_INFLATED_BYTES >> 20} MiB)",
    "permission_denied": "the file cannot be opened for reading",
    "not_regular": "a device, FIFO or socket (never opened)",
    "broken_link": "a symbolic link whose target does not exist",
    "symlink_loop": "a symbolic link that leads back to itself or to a folder above it",
    "link_not_followed": "a symbolic link to a folder: not followed, so its files are not read here",
    "unlistable_folder": "a folder whose entries cannot be listed: its files are not read",
    "missing_reference": "a file a DICOMDIR references that is not on disk",
    "same_file": "a second path to a file already read (hard or symbolic link): read once",
    "missing": "the file vanished while the folder was read",
    "os_error": "any other operating-system error while reading",
}

_PIXEL_TAGS = frozenset({0x7FE00010, 0x7FE00009, 0x7FE00008})  # Pixel Data, Double Float / Float Pixel Data
_ITEM, _SEQ_DELIM = 0xFFFEE000, 0xFFFEE0DD
_UNDEFINED = 0xFFFFFFFF
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT"}
_ALL_VRS = _LONG_VRS | {
    b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT",
    b"PN", b"SH", b"SL", b"SS", b"ST", b"SV", b"TM", b"UI", b"UL", b"US", b"UV",
}  # fmt: skip
_VR_NAMES = frozenset(v.decode() for v in _ALL_VRS)
_UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_META_SOP_CLASS, _META_SYNTAX = 0x00020002, 0x00020010
_SOP_CLASS, _SOP_INSTANCE = 0x00080016, 0x00080018
_ROWS, _COLUMNS, _BITS_ALLOCATED = 0x00280010, 0x00280011, 0x00280100
_DIRECTORY_RECORDS = 0x00041220
_INFLATE_CHUNK = 1 << 20
#: The VR each standard file meta element must have (PS3.10 Table 7.1-1).
_META_VRS = {
    0x00020000: "UL", 0x00020001: "OB", 0x00020002: "UI", 0x00020003: "UI", 0x00020010: "UI", 0x00020012: "UI",
    0x00020013: "SH", 0x00020016: "AE", 0x00020017: "AE", 0x00020018: "AE", 0x00020100: "UI", 0x00020102: "OB",
}  # fmt: skip


class Finding(Exception):
    """A per-file problem found while reading: ``kind`` (a key of :data:`ERROR_KINDS`) and the message."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass
class Header:
    """One path as read by :func:`read_header`: its header data set, or why there is none that can be used.

    ``dataset`` is filled whenever the header parsed, even when an integrity
    check then failed (a truncated slice still shows its series); use it only
    when :attr:`ok`. ``elements`` is the same data as ``tag -> element``
    (raw or converted) for callers that decode values themselves.
    """

    path: Path
    size: int | None = None
    error_kind: str | None = None
    error: str = ""
    dataset: Dataset | None = field(default=None, repr=False)
    elements: Mapping[Any, Any] = field(default_factory=dict, repr=False)
    syntax: UID | None = None
    meta_sop_class: str | None = None
    inflated_bytes: int | None = None  # total inflated size of a deflated data set
    file_id: tuple[int, int] | None = None  # (device, inode), to recognise a second path to one file
    warnings: tuple[str, ...] = ()  # what pydicom warned about while parsing

    @property
    def ok(self) -> bool:
        """Whether the header parsed and passed every integrity check."""
        return self.error_kind is None and self.dataset is not None

    @property
    def display(self) -> str:
        """The path as text that can always be written as UTF-8 (see :func:`printable`)."""
        return printable(str(self.path))

    @property
    def sop_class(self) -> str:
        """The effective SOP Class UID: the data set's, else the file meta's Media Storage SOP Class."""
        return _text(self.elements.get(_SOP_CLASS)) or (self.meta_sop_class or "")

    @property
    def is_dicomdir(self) -> bool:
        """Whether this is a DICOMDIR (an index of files, not an image)."""
        return self.sop_class == DICOMDIR_SOP_CLASS or _DIRECTORY_RECORDS in self.elements


def printable(text: str) -> str:
    """``text`` safe to write as UTF-8: bytes of a file name that are not UTF-8 are shown as ``\\xNN``.

    POSIX file names are bytes; Python gives undecodable ones as lone
    surrogates, which no UTF-8 writer accepts (CSV, HTML, JSON, a terminal).
    ``caf\\xe9.dcm`` is the Latin-1 name ``café.dcm`` seen through this rule.
    """
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate that did not come from a file name
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _text(el: Any) -> str:
    """A short text element's value as str ("" when absent or empty)."""
    if el is None or el.value is None:
        return ""
    value = el.value
    if isinstance(value, bytes):
        return value.decode("ascii", "replace").strip(" \0")
    return str(value).strip(" \0")


def path_problem(path: Path) -> str:
    """Why ``path`` cannot be used as input, in words ("" when it exists)."""
    try:
        os.stat(path)
        return ""
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return f"{printable(str(path))} is a symbolic link loop (it never reaches a file or folder)"
        if os.path.islink(path):
            return f"{printable(str(path))} is a broken symbolic link (to {printable(os.readlink(path))})"
        if isinstance(exc, FileNotFoundError):
            return f"{printable(str(path))} does not exist"
        return f"{printable(str(path))} cannot be read: {exc.strerror or exc}"


# -- sniffing ---------------------------------------------------------------------------------------


def looks_like_dataset(head: bytes, size: int) -> bool:
    """Whether bytes without a ``DICM`` marker plausibly start a DICOM data set (no preamble, no meta)."""
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


# -- deflated data sets -------------------------------------------------------------------------------


class _Inflating:
    """A read-only file-like view of a raw deflate stream, inflated on demand.

    Keeps what was inflated so far (the header) so the parser may seek back;
    never inflates past :data:`MAX_INFLATED_BYTES` (raises :class:`Finding`).
    """

    def __init__(self, source: memoryview, limit: int) -> None:
        self._src = source
        self._src_pos = 0
        self._z = zlib.decompressobj(-zlib.MAX_WBITS)
        self._buf = bytearray()
        self._pos = 0
        self._limit = limit
        self.ended = False  # the input is used up (stream end marker seen or not)

    def close(self) -> None:
        """Release the source buffer (the memory map cannot close while a view of it exists)."""
        self._src.release()

    def _refuse(self) -> Finding:
        return Finding(
            "too_large",
            f"refused: the deflated data set inflates to more than {self._limit >> 20} MiB "
            f"(medbench's limit MAX_INFLATED_BYTES); it is not read any further",
        )

    def _inflate(self, max_out: int) -> bytes:
        """Up to ``max_out`` more inflated bytes (b"" at the end of the stream)."""
        while not self.ended:
            if self._z.unconsumed_tail:
                data = self._z.unconsumed_tail
            elif self._src_pos < len(self._src):
                data = bytes(self._src[self._src_pos : self._src_pos + _INFLATE_CHUNK])
                self._src_pos += len(data)
            else:
                self.ended = True
                break
            try:
                out = self._z.decompress(data, max_out)
            except zlib.error as exc:
                raise Finding("corrupt", f"corrupt deflated data set: zlib cannot inflate it ({exc})") from None
            if self._z.eof:
                self.ended = True
            if out:
                return out
        return b""

    def _fill(self, upto: int) -> None:
        while len(self._buf) < upto and not self.ended:
            if len(self._buf) >= self._limit:
                raise self._refuse()
            self._buf += self._inflate(min(_INFLATE_CHUNK, self._limit - len(self._buf)))

    def read(self, n: int = -1) -> bytes:
        want = self._limit if n is None or n < 0 else n
        self._fill(self._pos + want)
        out = bytes(self._buf[self._pos : self._pos + want])
        self._pos += len(out)
        return out

    def seek(self, offset: int, whence: int = 0) -> int:
        self._pos = offset if whence == 0 else self._pos + offset if whence == 1 else len(self._buf) + offset
        return self._pos

    def tell(self) -> int:
        return self._pos

    def total(self) -> int:
        """Inflate the rest of the stream, discarding it; the total inflated size (bounded by the limit)."""
        total = len(self._buf)
        while not self.ended:
            total += len(self._inflate(_INFLATE_CHUNK))
            if total > self._limit:
                raise self._refuse()
        if not self._z.eof:
            raise Finding("truncated", f"truncated: the deflated data set ends after {total} inflated bytes, "
                                       "before its end marker")
        return total


# -- parsing ----------------------------------------------------------------------------------------


@dataclass
class _Parsed:
    """What a header parse yields, whichever parser produced it."""

    elements: dict[Any, Any]
    meta: dict[Any, Any]
    syntax: UID | None
    implicit: bool
    little: bool
    pixel_pos: int | None  # offset (in the stream parsed) of the pixel data element, if the parse stopped there
    stream_size: int  # bytes in the stream parsed (the file, or the inflated data set)
    last_end: int | None  # where the last top-level element ends, when known
    stream: Any  # the object parsed (memory map or inflating view), for the pixel checks
    inflating: _Inflating | None = None
    dataset: Dataset | None = None  # set by the dcmread fallback
    checkable: bool = True  # False when offsets do not refer to the file (dcmread inflated a deflated data set)
    problem: Finding | None = None  # why the parse stopped early (the elements before it are kept)


def _plausible(tag: int, vr: str | None, implicit: bool) -> bool:
    """Whether an element header looks like DICOM rather than garbage."""
    if not implicit:
        return vr in _VR_NAMES
    group = tag >> 16
    return bool(group % 2) or (tag & 0xFFFF) == 0 or dictionary_has_tag(tag) or 0x5000 <= group <= 0x60FF


class _Stopper:
    """``stop_when`` for the element parser: stop at the pixel data, or at an element that cannot fit."""

    def __init__(self, stream: Any, size: int, implicit: bool) -> None:
        self.stream, self.size, self.implicit = stream, size, implicit
        self.problem: Finding | None = None

    def __call__(self, tag: int, vr: str | None, length: int) -> bool:
        if tag in _PIXEL_TAGS:
            return True
        if length == _UNDEFINED:
            return False
        remaining = self.size - self.stream.tell()
        if length <= remaining:
            return False
        where = f"({tag >> 16:04X},{tag & 0xFFFF:04X})"
        if _plausible(tag, vr, self.implicit):
            self.problem = Finding(
                "truncated", f"truncated: element {where} declares {length} bytes but only {max(remaining, 0)} remain"
            )
        else:
            self.problem = Finding(
                "not_parseable",
                f"not parseable: the bytes at offset {self.stream.tell() - 8} are not a DICOM data element "
                f"(tag {where}{' VR ' + vr if vr else ''}, length {length}); the file is corrupt or not DICOM",
            )
        return True


def _last_end(elements: Mapping[Any, Any]) -> int | None:
    """Offset where the last element read ends, when its length is defined."""
    if not elements:
        return None
    last = elements[max(elements)]
    tell, length = getattr(last, "value_tell", None), getattr(last, "length", None)
    if tell is None or length is None or length == _UNDEFINED:
        return None
    return int(tell) + int(length)


def _pixel_tag_at(stream: Any, little: bool) -> bool:
    pos = stream.tell()
    head = stream.read(4)
    stream.seek(pos)
    if len(head) < 4:
        return False
    group, element = struct.unpack(("<" if little else ">") + "HH", head)
    return (group << 16 | element) in _PIXEL_TAGS


def _parse_body(
    stream: Any, size: int, implicit: bool, little: bool
) -> tuple[dict[Any, Any], int | None, int | None, Finding | None]:
    """Elements up to the pixel data: (elements, pixel element offset or None, last element end, problem)."""
    stopper = _Stopper(stream, size, implicit)
    elements: dict[Any, Any] = {
        el.tag: el for el in data_element_generator(stream, implicit, little, stop_when=stopper)
    }
    if stopper.problem is not None:
        return elements, None, None, stopper.problem
    if not implicit:
        unknown = next((el for el in elements.values() if el.VR is not None and el.VR not in _VR_NAMES), None)
        if unknown is not None:
            where = f"({unknown.tag >> 16:04X},{unknown.tag & 0xFFFF:04X})"
            return elements, None, None, Finding("corrupt", f"corrupt: element {where} has the unknown VR {unknown.VR!r}")
    pixel_pos = stream.tell() if _pixel_tag_at(stream, little) else None
    return elements, pixel_pos, (_last_end(elements) if pixel_pos is None else None), None


def _fast(mm: mmap.mmap, size: int, limit: int) -> _Parsed | None:
    """Parse a ``DICM`` file with the element parser; None to let dcmread decide (no/unknown syntax)."""
    mm.seek(132)
    first = mm.read(8)
    mm.seek(132)
    if len(first) < 8:
        raise Finding("truncated", f"truncated: the file ends at byte {size}, right after the DICM marker")
    if struct.unpack("<H", first[:2])[0] != 0x0002:
        if looks_like_dataset(first, size - 132):
            return None  # a data set without file meta after the marker: dcmread copes
        group, element = struct.unpack("<HH", first[:4])
        raise Finding(
            "not_parseable",
            f"not parseable: the bytes after the 'DICM' marker are not DICOM file meta information "
            f"(first tag ({group:04X},{element:04X})); the file is corrupt or not DICOM",
        )
    stopper = _Stopper(mm, size, False)

    def meta_stop(tag: int, vr: str | None, length: int) -> bool:
        return tag >> 16 != 2 or stopper(tag, vr, length)

    meta: dict[Any, Any] = {
        el.tag: el for el in data_element_generator(cast(BinaryIO, mm), False, True, stop_when=meta_stop)
    }
    if stopper.problem is not None:
        if stopper.problem.kind == "truncated":
            raise stopper.problem
        raise Finding(
            "not_parseable",
            f"not parseable: the file meta information after the 'DICM' marker is corrupt ({stopper.problem})",
        )
    for tag, el in meta.items():
        vr = getattr(el, "VR", None)
        expected = _META_VRS.get(int(tag))
        if vr not in _VR_NAMES or (expected is not None and vr != expected):
            raise Finding(
                "not_parseable",
                f"not parseable: file meta element ({tag >> 16:04X},{tag & 0xFFFF:04X}) has VR {vr!r}"
                + (f", not {expected}" if expected else "") + "; the file meta information is corrupt",
            )
    raw_syntax = meta.get(_META_SYNTAX)
    if raw_syntax is None or not isinstance(raw_syntax.value, bytes) or not _text(raw_syntax):
        return None
    text = _text(raw_syntax)
    if not _UID_RE.match(text) or len(text) > 64:
        raise Finding("not_parseable", f"not parseable: the Transfer Syntax UID {text[:40]!r} is not a UID")
    syntax = UID(text)
    if not syntax.is_transfer_syntax:
        return None
    start = mm.tell()
    if syntax.is_deflated:
        view = _Inflating(memoryview(mm)[start:], limit)
        try:
            # The inflated size is unknown until the end: the view itself refuses reads past the limit.
            elements, pixel_pos, last_end, problem = _parse_body(view, 1 << 62, False, True)
        except BaseException:
            view.close()
            raise
        return _Parsed(elements, meta, syntax, False, True, pixel_pos, -1, last_end, view, inflating=view, problem=problem)
    little = syntax.is_little_endian
    peek = mm.read(6)
    mm.seek(start)
    # Like pydicom: trust the bytes over the declared syntax when the first VR is not two capitals.
    implicit = len(peek) < 6 or not (0x40 < peek[4] < 0x5B and 0x40 < peek[5] < 0x5B)
    elements, pixel_pos, last_end, problem = _parse_body(mm, size, implicit, little)
    return _Parsed(elements, meta, syntax, implicit, little, pixel_pos, size, last_end, mm, problem=problem)


def _with_dcmread(mm: mmap.mmap, size: int, force: bool) -> _Parsed:
    """Parse the header with :func:`pydicom.dcmread` (files the fast parse leaves to it)."""
    mm.seek(0)
    try:
        ds = pydicom.dcmread(cast(BinaryIO, mm), stop_before_pixels=True, force=force)
    except Exception as exc:  # pydicom raises many types on malformed input
        kind = "not_dicom" if isinstance(exc, pydicom.errors.InvalidDicomError) else "unreadable"
        reason = " ".join(str(exc).split())[:300]
        raise Finding(kind, f"{'not a DICOM file' if kind == 'not_dicom' else 'unreadable header'}: "
                            f"{type(exc).__name__}: {reason}") from None
    implicit, little = ds.original_encoding
    meta = getattr(ds, "file_meta", None) or FileMetaDataset()
    syntax = UID(str(meta["TransferSyntaxUID"].value)) if "TransferSyntaxUID" in meta else None
    if syntax is None and implicit is not None:
        syntax = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian if little else ExplicitVRBigEndian
    elements: dict[Any, Any] = {tag: ds.get_item(tag) for tag in ds.keys()}
    pixel_pos = mm.tell() if _pixel_tag_at(mm, little is not False) else None
    ds.buffer = None  # the map is closed after the read
    return _Parsed(
        elements=elements,
        meta={tag: meta.get_item(tag) for tag in meta.keys()},
        syntax=syntax,
        implicit=bool(implicit),
        little=little is not False,
        pixel_pos=pixel_pos,
        stream_size=size,
        last_end=_last_end(elements) if pixel_pos is None else None,
        stream=mm,
        dataset=ds,
        checkable=not (syntax is not None and syntax.is_transfer_syntax and syntax.is_deflated),
    )


# -- integrity ----------------------------------------------------------------------------------------


def _us(el: Any, little: bool) -> int | None:
    if el is None or el.value is None:
        return None
    value = el.value
    if isinstance(value, bytes):
        return struct.unpack(("<" if little else ">") + "H", value[:2])[0] if len(value) >= 2 else None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _is(el: Any) -> int | None:
    text = _text(el).split("\\")[0]
    try:
        return int(float(text)) if text else None
    except ValueError:
        return None


def expected_pixel_bytes(elements: Mapping[Any, Any], little: bool) -> int | None:
    """Bytes uncompressed pixel data must hold: Rows x Columns x Frames x Samples x BitsAllocated / 8."""
    rows, cols = _us(elements.get(_ROWS), little), _us(elements.get(_COLUMNS), little)
    bits = _us(elements.get(_BITS_ALLOCATED), little)
    if not (rows and cols and bits):
        return None
    samples = _us(elements.get(0x00280002), little) or 1
    if _text(elements.get(0x00280004)).upper().startswith("YBR_FULL_422"):
        samples = 2  # two chroma values shared by each pair of pixels
    frames = _is(elements.get(0x00280008)) or 1
    n_values = rows * cols * max(frames, 1) * samples
    return (n_values + 7) // 8 if bits == 1 else n_values * bits // 8


def _element_header(stream: Any, pos: int, implicit: bool, little: bool) -> tuple[int, int]:
    """(value length, header length) of the element at ``pos``."""
    order = "<" if little else ">"
    stream.seek(pos)
    head = stream.read(12)
    # Trust the bytes when they contradict the data set's encoding: some writers switch VR mode mid-file.
    explicit_here = head[4:6] in _LONG_VRS and head[6:8] == b"\0\0" if implicit else head[4:6] in _ALL_VRS
    if len(head) < 8:
        return 0, len(head)
    if not explicit_here:
        return struct.unpack(order + "I", head[4:8])[0], 8
    if head[4:6] in _LONG_VRS:
        if len(head) < 12:
            return 0, len(head)
        return struct.unpack(order + "I", head[8:12])[0], 12
    return struct.unpack(order + "H", head[6:8])[0], 8


def _walk_fragments(stream: Any, pos: int, size: int) -> None:
    """Follow encapsulated pixel data item headers to the sequence delimiter."""
    stream.seek(pos)
    index = 0
    while True:
        head = stream.read(8)
        if len(head) < 8:
            raise Finding("truncated", f"truncated: encapsulated pixel data ends after {index} items, before its delimiter")
        group, element, length = struct.unpack("<HHI", head)
        tag = group << 16 | element
        if tag == _SEQ_DELIM:
            return
        if tag != _ITEM:
            raise Finding("corrupt", f"corrupt pixel data: unexpected tag ({group:04X},{element:04X}) in item {index}")
        end = stream.tell() + length
        if end > size:
            raise Finding(
                "truncated",
                f"truncated: pixel data item {index} declares {length} bytes but only {size - stream.tell()} remain",
            )
        stream.seek(end)
        index += 1


def _check_pixels(parsed: _Parsed, size: int) -> None:
    """The pixel data element against the bytes that follow it and against the image attributes."""
    assert parsed.pixel_pos is not None
    length, header_len = _element_header(parsed.stream, parsed.pixel_pos, parsed.implicit, parsed.little)
    value_start = parsed.pixel_pos + header_len
    if header_len < 8:
        raise Finding("truncated", "truncated: the file ends inside the pixel data element's header")
    if length == _UNDEFINED:
        _walk_fragments(parsed.stream, value_start, size)
        return
    remaining = size - value_start
    if length > remaining:
        raise Finding("truncated", f"truncated: pixel data declares {length} bytes but only {max(remaining, 0)} remain")
    if parsed.syntax is not None and parsed.syntax.is_encapsulated:
        return
    expected = expected_pixel_bytes(parsed.elements, parsed.little)
    if expected is None:
        return
    formula = "Rows x Columns x Frames x Samples x BitsAllocated"
    if length < expected:
        raise Finding("truncated", f"truncated: pixel data holds {length} bytes but {formula} needs {expected}")
    if length > expected + (expected % 2):  # an odd length is padded to even
        hint = ""
        if length % expected == 0:
            hint = f" (exactly {length // expected} x: is Number of Frames missing or wrong?)"
        raise Finding(
            "pixel_length",
            f"pixel data holds {length} bytes but {formula} needs {expected}: {length - expected} bytes more than "
            f"the header describes{hint}, so the image shape is not what the header says",
        )


def _check(parsed: _Parsed, size: int, meta_sop_class: str | None) -> None:
    """Header-only integrity checks (module docstring); raise a :class:`Finding`."""
    if not parsed.elements:
        raise Finding("truncated", f"truncated: the file ends at byte {size}, before any data set element")
    if not parsed.checkable:
        return
    if parsed.pixel_pos is not None:
        if parsed.syntax is not None and not parsed.syntax.is_transfer_syntax:
            raise Finding("unknown_syntax", f"unknown transfer syntax {parsed.syntax}: the pixel data cannot be interpreted")
        _check_pixels(parsed, size)
        return
    if parsed.last_end is not None and parsed.last_end > size:
        last = parsed.elements[max(parsed.elements)]
        where = f"({last.tag >> 16:04X},{last.tag & 0xFFFF:04X})"
        raise Finding("truncated", f"truncated: element {where} declares {last.length} bytes but only "
                                   f"{max(size - last.value_tell, 0)} remain")
    if parsed.last_end is not None and parsed.last_end < size:
        raise Finding("truncated", f"truncated: {size - parsed.last_end} trailing bytes do not form a complete data element")
    sop = _text(parsed.elements.get(_SOP_CLASS)) or meta_sop_class
    if sop and UID(sop).name.endswith("Image Storage"):
        raise Finding("missing_pixel_data", f"no pixel data: a {UID(sop).name} object ends without a (7FE0,0010) element "
                                            "(truncated, or written without its image)")
    little = parsed.little
    if _us(parsed.elements.get(_ROWS), little) and _us(parsed.elements.get(_COLUMNS), little) and _us(
        parsed.elements.get(_BITS_ALLOCATED), little
    ):
        raise Finding("missing_pixel_data", "no pixel data: Rows, Columns and BitsAllocated are set but the data set "
                                            "ends without a (7FE0,0010) element (truncated?)")


def _dataset(parsed: _Parsed, path: Path) -> Dataset:
    """The header as a pydicom Dataset (raw values, converted on first access), with its file meta."""
    if parsed.dataset is not None:
        ds = parsed.dataset
    else:
        ds = Dataset(parsed.elements)
        meta = FileMetaDataset()
        meta._dict.update(parsed.meta)  # every tag is in group 0002 by construction: skip the per-tag validation
        ds.file_meta = meta
        ds.set_original_encoding(parsed.implicit, parsed.little, default_encoding)
    ds.filename = str(path)
    return ds


# -- one file -----------------------------------------------------------------------------------------


def _stat(path: Path) -> os.stat_result:
    try:
        return os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise Finding("broken_link", f"broken symbolic link (to {printable(os.readlink(path))})") from None
        raise Finding("missing", "the file vanished while the folder was read") from None
    except PermissionError:
        raise Finding("permission_denied", "permission denied") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise Finding("symlink_loop", "symbolic link loop: the link leads back to itself and never reaches a file") from None
        raise Finding("os_error", f"cannot read: {exc.strerror or exc}") from None


def _read(header: Header, limit: int) -> None:
    path = header.path
    st = _stat(path)
    header.size = st.st_size
    header.file_id = (st.st_dev, st.st_ino)
    if stat.S_ISDIR(st.st_mode):
        raise Finding("not_regular", "a folder, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise Finding("not_regular", "not a regular file (device, FIFO or socket); not opened")
    if st.st_size == 0:
        raise Finding("empty", "empty file (0 bytes)")
    try:
        fh = open(path, "rb")
    except PermissionError:
        raise Finding("permission_denied", "permission denied") from None
    except FileNotFoundError:
        raise Finding("missing", "the file vanished while the folder was read") from None
    except OSError as exc:
        raise Finding("os_error", f"cannot open: {exc.strerror or exc}") from None
    with fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        size = len(mm)
        head = mm[:132]
        has_marker = head[128:132] == b"DICM"
        if not has_marker and not looks_like_dataset(head, size):
            raise Finding("not_dicom", "not a DICOM file")
        parsed = _fast(mm, size, limit) if has_marker else None
        if parsed is None:
            parsed = _with_dcmread(mm, size, force=not has_marker)
        # Keyed by plain int for the callers' lookups (a BaseTag key makes every lookup call Python's __eq__).
        header.elements = {int(tag): el for tag, el in parsed.elements.items()}
        header.syntax = parsed.syntax
        raw_sop = parsed.meta.get(_META_SOP_CLASS)
        header.meta_sop_class = _text(raw_sop) or None
        header.dataset = _dataset(parsed, path)
        if not has_marker and _SOP_CLASS not in parsed.elements and _SOP_INSTANCE not in parsed.elements:
            header.dataset = None
            raise Finding("not_dicom", "not a DICOM file: no 'DICM' marker and no SOP Class/Instance UID in what parses")
        try:
            if parsed.problem is not None:
                raise parsed.problem
            stream_size = size
            if parsed.inflating is not None:
                stream_size = header.inflated_bytes = parsed.inflating.total()
            _check(parsed, stream_size, header.meta_sop_class)
        finally:
            if parsed.inflating is not None:
                parsed.inflating.close()
    if not header.sop_class:
        raise Finding("missing_sop_class", "missing SOP Class UID (0008,0016)")


def read_header(
    path: str | os.PathLike[str], *, limit: int = MAX_INFLATED_BYTES, _caught: list[Any] | None = None
) -> Header:
    """Read one file's header and check it is whole; never raises for a bad file (see :class:`Header`).

    ``limit`` caps the inflated size of a deflated data set (default
    :data:`MAX_INFLATED_BYTES`). pydicom's warnings about the file are kept
    in ``Header.warnings`` instead of being printed. (``_caught``: the list
    a caller reading many files already records warnings into, which saves
    setting up a recorder per file.)
    """
    if _caught is None:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            return read_header(path, limit=limit, _caught=caught)
    header = Header(Path(path))
    before = len(_caught)
    try:
        _read(header, limit)
    except Finding as finding:
        header.error_kind, header.error = finding.kind, printable(str(finding))
    except MemoryError:
        raise
    except Exception as exc:  # a malformed value no check anticipated: still a finding, not a crash
        reason = " ".join(str(exc).split())[:300]
        header.error_kind, header.error = "unreadable", printable(f"unreadable header: {type(exc).__name__}: {reason}")
    if len(_caught) > before:
        header.warnings = tuple(dict.fromkeys(printable(str(w.message)) for w in _caught[before:]))
        del _caught[before:]
    return header


# -- folders ------------------------------------------------------------------------------------------


def walk(src: str | os.PathLike[str]) -> Iterator[Path | Header]:
    """Every entry under ``src``: a :class:`Path` for each file to read, a :class:`Header` finding otherwise.

    Order is stable: a folder's files sorted by name, then its subfolders,
    depth first (what ``os.walk`` gives). Any file name works, including names
    that are not valid UTF-8. Symbolic links to files are followed (the
    reader says when they are broken or loop); symbolic links to folders are
    not followed, each reported as ``link_not_followed`` (or ``symlink_loop``
    when it points back to a folder above it), so nothing is read twice and
    no walk can loop. A folder that cannot be listed is an
    ``unlistable_folder`` finding, never skipped silently. ``src`` itself may
    be a file or a link to a folder.
    """
    root = Path(src)
    if not root.is_dir():
        yield root
        return
    st = os.stat(root)
    stack: list[tuple[Path, tuple[tuple[int, int], ...]]] = [(root, ((st.st_dev, st.st_ino),))]
    while stack:
        folder, ancestors = stack.pop()
        try:
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda e: e.name)
        except OSError as exc:
            yield Header(
                folder,
                error_kind="unlistable_folder",
                error=f"cannot list this folder ({exc.strerror or type(exc).__name__}): the files in it are not read",
            )
            continue
        subfolders: list[tuple[Path, tuple[tuple[int, int], ...]]] = []
        for entry in entries:
            path = Path(entry.path)
            try:
                if entry.is_dir(follow_symlinks=False):
                    info = entry.stat(follow_symlinks=False)
                    subfolders.append((path, (*ancestors, (info.st_dev, info.st_ino))))
                    continue
                if entry.is_symlink() and entry.is_dir(follow_symlinks=True):
                    target = entry.stat(follow_symlinks=True)
                    shown = printable(os.readlink(path))
                    if (target.st_dev, target.st_ino) in ancestors:
                        yield Header(path, error_kind="symlink_loop",
                                     error=f"symbolic link loop: a link to a folder above it ({shown}); not followed")
                    else:
                        yield Header(path, error_kind="link_not_followed",
                                     error=f"symbolic link to a folder ({shown}): not followed, so its files are not "
                                           "read here; read the target folder itself")
                    continue
            except OSError:
                pass  # the reader gives the reason (loop, broken link, permission)
            yield path
        stack.extend(reversed(subfolders))


@dataclass
class Tree:
    """What :func:`read_tree` found: one :class:`Header` per path seen, in walk order."""

    root: Path
    headers: list[Header] = field(default_factory=list)

    @property
    def dicomdirs(self) -> list[Header]:
        """The DICOMDIR indexes that were read."""
        return [h for h in self.headers if h.ok and h.is_dicomdir]

    @property
    def images(self) -> list[Header]:
        """Readable DICOM objects other than DICOMDIRs, each file once."""
        return [h for h in self.headers if h.ok and not h.is_dicomdir]


def _resolve_case_insensitive(base: Path, parts: list[str]) -> Path | None:
    """``base/parts...`` on disk, matching each component without regard to case (media IDs are upper case)."""
    current = base
    for part in parts:
        if part in ("", ".", "..") or "/" in part:
            return None
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
    """Files a DICOMDIR references: (paths found on disk, the File IDs that are missing)."""
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


def _mark_repeats(headers: Iterable[Header]) -> None:
    """A second path to a file already read (same device and inode) becomes a ``same_file`` finding."""
    first: dict[tuple[int, int], Header] = {}
    for h in headers:
        if h.file_id is None or h.error_kind in ("unlistable_folder", "link_not_followed", "symlink_loop"):
            continue
        if h.file_id in first:
            h.error_kind = "same_file"
            h.error = f"the same file as {first[h.file_id].display} (a link): read once"
        else:
            first[h.file_id] = h


def read_tree(src: str | os.PathLike[str], *, limit: int = MAX_INFLATED_BYTES) -> Tree:
    """Read every file under ``src`` (a folder, a single file, or a DICOMDIR) once.

    A DICOMDIR is read as an index: the files it references are read too
    (given a DICOMDIR as ``src``, only those), and every reference that is not
    on disk becomes a ``missing_reference`` finding naming the DICOMDIR.
    Raises :class:`FileNotFoundError` (with :func:`path_problem`'s words) when
    ``src`` itself cannot be used.
    """
    root = Path(src)
    problem = path_problem(root)
    if problem:
        raise FileNotFoundError(problem)
    tree = Tree(root)
    # The headers stay alive for the caller (the audit groups them into series): tens of thousands of small
    # tuples that the cyclic garbage collector would re-scan again and again while they pile up (~20 % of the
    # time on small files). They hold no reference cycles, so collection waits until the walk is done.
    collecting = gc.isenabled()
    gc.disable()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for entry in walk(root):
                tree.headers.append(
                    entry if isinstance(entry, Header) else read_header(entry, limit=limit, _caught=caught)
                )
    finally:
        if collecting:
            gc.enable()
    seen = {h.file_id for h in tree.headers if h.file_id is not None}
    queue = deque(h for h in tree.headers if h.ok and h.is_dicomdir)
    reported: set[Path] = set()
    while queue:
        index = queue.popleft()
        assert index.dataset is not None
        try:
            found, missing = dicomdir_references(index.path, index.dataset)
        except Exception as exc:  # a malformed directory record: the DICOMDIR itself is the finding
            index.error_kind, index.error = "unreadable", printable(f"unreadable DICOMDIR records: {type(exc).__name__}: {exc}")
            continue
        for path in found:
            try:
                st = os.stat(path)
            except OSError:
                continue  # vanished since it was resolved: nothing to read
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            header = read_header(path, limit=limit)
            tree.headers.append(header)
            if header.ok and header.is_dicomdir:
                queue.append(header)
        for file_id in missing:
            path = index.path.parent / file_id
            if path in reported:
                continue
            reported.add(path)
            tree.headers.append(
                Header(path, error_kind="missing_reference",
                       error=f"missing: referenced by DICOMDIR {index.display} (File ID {printable(file_id)}) "
                             "but not on disk")
            )
    _mark_repeats(tree.headers)
    return tree
