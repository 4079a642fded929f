"""Leak scanner: look for the originals' identifying values in a de-identified output.

An independent check of the de-identifier: it collects every value the
profile was supposed to remove or replace from the *original* files, then
searches the bytes (and the decoded text values) of every output file for
each one. Zero hits is the expected result; any hit names the output file,
the original attribute and the value. The hit table therefore shows original
identifying values: treat it like the originals.

What is collected: the values of every attribute whose resolved action is not
"keep" (the table's non-K rows, private attributes not allowlisted, person
names outside the table), at any depth, when they are text of 3 characters
or more (UIDs, dates, names, IDs, descriptions; person names also per name
component). Coded strings (CS) are not collected: they are enumerated terms
("YES", "ORIGINAL"), not identifiers; nor are plain numbers held in private
attributes (counts and sizes). With ``date_shift=True`` times (TM) are kept
by design and not collected.

How it searches: numbers, dates and UIDs must match a whole token (not part
of a longer digit string such as a new 2.25 UID); other text must match
case-sensitively and not inside a longer word. Both the file bytes (UTF-8 and
Latin-1 encodings of the value) and the decoded text values are searched,
except the attributes the de-identifier writes itself (Patient Identity
Removed, De-identification Method and its codes, Longitudinal Temporal
Information Modified). The pixel data value is skipped in the byte search:
pixels are not text, and burned-in text is handled by quarantine, not here.
Values that are kept on purpose elsewhere (an institution name that equals
the kept Manufacturer, say) are reported too: a hit is for review.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from medbench.io.deid.batch import read_dicom
from medbench.io.deid.core import (
    NOT_SHIFTED,
    PrivateSpec,
    describe_tag,
    element_vr,
    is_kept_private,
    private_creators,
    resolve_action,
)
from medbench.io.deid.table import ProfileTable, load_profile_table
from medbench.io.dicom.headers import printable

_TEXT_VRS = frozenset({"AE", "AS", "CS", "DA", "DT", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UR", "UT"})
_NOT_COLLECTED_VRS = frozenset({"CS"})
_MIN_LENGTH = 3
_NUMBER = re.compile(r"^[+-]?[0-9]+(\.[0-9]*)?$")
_TOKEN_VALUE = re.compile(r"^[0-9][0-9.]*$")
_TOKEN_CHARS = "0123456789."
_WORD_CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)
#: Attributes the de-identifier writes itself: its method text is not data from the originals.
_STAMPS = frozenset({0x00120062, 0x00120063, 0x00120064, 0x00280303})
HIT_COLUMNS = ["file", "attribute", "value", "found_in", "source"]

Originals = str | os.PathLike[str] | Dataset | Iterable[str | os.PathLike[str] | Dataset]


def _values(raw: object) -> list[str]:
    """The non-empty text values of an element value (bytes decoded as ASCII when possible)."""
    if raw is None:
        return []
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("ascii").strip("\0 ")
        except UnicodeDecodeError:
            return []
    items = list(raw) if isinstance(raw, (MultiValue, list, tuple)) else [raw]
    return [str(v).strip().rstrip("\0") for v in items if str(v).strip()]


def identifying_values(
    ds: Dataset,
    *,
    date_shift: bool = False,
    keep_private: Iterable[PrivateSpec] = (),
    table: ProfileTable | None = None,
) -> list[tuple[str, str]]:
    """``(attribute, value)`` pairs that must not survive de-identification of ``ds``.

    ``attribute`` is the tag and keyword, with the sequence path for nested
    attributes. The options must match those the output was made with.
    """
    table = table or load_profile_table()
    keep = frozenset(keep_private)
    found: list[tuple[str, str]] = []

    def walk(level: Dataset, prefix: str) -> None:
        creators = private_creators(level)
        for tag in list(level.keys()):
            vr = element_vr(level, tag)
            label = prefix + describe_tag(tag)
            if vr == "SQ":
                for index, item in enumerate(level[tag].value):
                    walk(item, f"{label}[{index}].")
                continue
            private = bool(tag.group % 2)
            action = resolve_action(table, int(tag), vr, private_kept=is_kept_private(tag, creators, keep)).action
            if action == "K" or vr in _NOT_COLLECTED_VRS or (vr not in _TEXT_VRS and not private):
                continue
            if date_shift and vr == "TM" and int(tag) not in NOT_SHIFTED:
                continue
            for value in _values(level[tag].value):
                if len(value) >= _MIN_LENGTH and not (private and _NUMBER.match(value)):
                    found.append((label, value))
                if vr == "PN":
                    found.extend((label, part) for part in re.split(r"[\^=]", value) if len(part) >= _MIN_LENGTH)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        meta = getattr(ds, "file_meta", None)
        if meta is not None:
            walk(meta, "")
        walk(ds, "")
    return list(dict.fromkeys(found))


def _iter_originals(originals: Originals) -> Iterator[tuple[str, Dataset]]:
    items = [originals] if isinstance(originals, (str, os.PathLike, Dataset)) else list(originals)
    for item in items:
        if isinstance(item, Dataset):
            yield str(getattr(item, "filename", "") or "<dataset>"), item
            continue
        path = Path(item)
        paths = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for p in paths:
            try:
                yield printable(str(p)), read_dicom(p)
            except Exception:
                continue


class _Needle:
    """One identifying value, compiled for searching decoded text and file bytes.

    Numbers, dates and UIDs must be a whole token: not preceded by a digit or
    dot, not followed by a digit or by a dot and a digit. Other text must not
    be embedded in a longer word (no ASCII letter or digit right before or
    after it).
    """

    def __init__(self, value: str) -> None:
        self.value = value
        token = bool(_TOKEN_VALUE.match(value))
        self.before = _TOKEN_CHARS if token else _WORD_CHARS
        after = r"(?![0-9]|\.[0-9])" if token else r"(?![0-9A-Za-z])"
        self.text = re.compile(re.escape(value) + after)
        encodings = {value.encode("utf-8")}
        try:
            encodings.add(value.encode("latin-1"))
        except UnicodeEncodeError:
            pass
        self.binary = [re.compile(re.escape(enc) + after.encode()) for enc in sorted(encodings)]

    @staticmethod
    def _found(pattern: re.Pattern, haystack: Any, before: Any) -> bool:
        """A match not preceded by one of the ``before`` characters (str with str, bytes with bytes)."""
        for match in pattern.finditer(haystack):
            prev = haystack[max(match.start() - 1, 0) : match.start()]
            if not prev or prev not in before:
                return True
        return False

    def in_text(self, text: str) -> bool:
        return self.value in text and self._found(self.text, text, self.before)

    def in_bytes(self, data: bytes) -> bool:
        before = self.before.encode()
        return any(self._found(pattern, data, before) for pattern in self.binary)


def _searchable_bytes(path: Path) -> bytes:
    """The file's bytes with the pixel data and the de-identification stamps blanked (when it is DICOM)."""
    data = bytearray(path.read_bytes())
    try:
        ds = read_dicom(path)
    except Exception:
        return bytes(data)
    for tag in (*_PIXEL_TAGS, *_STAMPS):
        if tag in ds:
            item = ds.get_item(tag)
            if isinstance(item, RawDataElement) and item.value is not None and item.value_tell is not None:
                data[item.value_tell : item.value_tell + len(item.value)] = bytes(len(item.value))
    return bytes(data)


def _decoded_values(ds: Dataset, prefix: str = "") -> Iterator[tuple[str, str]]:
    """``(attribute, text value)`` for every text element of ``ds`` except the de-identification stamps."""
    for tag in list(ds.keys()):
        if int(tag) in _STAMPS:
            continue
        vr = element_vr(ds, tag)
        label = prefix + describe_tag(tag)
        if vr == "SQ":
            for index, item in enumerate(ds[tag].value):
                yield from _decoded_values(item, f"{label}[{index}].")
        elif vr in _TEXT_VRS:
            for value in _values(ds[tag].value):
                yield label, value


def scan_for_leaks(
    originals: Originals,
    deid_dir: str | os.PathLike[str],
    *,
    date_shift: bool = False,
    keep_private: Iterable[PrivateSpec] = (),
) -> pd.DataFrame:
    """Search every file under ``deid_dir`` (a de-identified output) for the identifying values of ``originals``.

    ``originals``: a folder, a file, a Dataset, or an iterable of those.
    Returns one row per hit with columns ``file`` (output file), ``attribute``
    (where the value was in the original), ``value``, ``found_in`` (``bytes``
    or the output attribute holding it) and ``source`` (original file); empty
    when nothing leaked. Pass the same ``date_shift`` / ``keep_private`` as the
    de-identification (those options keep some values on purpose).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wanted: dict[str, tuple[str, str]] = {}
        for source, ds in _iter_originals(originals):
            for attribute, value in identifying_values(ds, date_shift=date_shift, keep_private=keep_private):
                wanted.setdefault(value, (attribute, source))
        needles = [(_Needle(value), attribute, source) for value, (attribute, source) in wanted.items()]
        hits: list[dict[str, str]] = []
        for out in sorted(p for p in Path(deid_dir).rglob("*") if p.is_file()):
            hits.extend(_scan_file(out, needles))
    return pd.DataFrame(hits, columns=HIT_COLUMNS)


def _scan_file(out: Path, needles: list[tuple[_Needle, str, str]]) -> list[dict[str, str]]:
    """Hits of every needle in one output file (bytes, then decoded values)."""
    data = _searchable_bytes(out)
    try:
        decoded = list(_decoded_values(read_dicom(out)))
    except Exception:
        decoded = []
    blob = "\n".join(text for _, text in decoded)
    hits: list[dict[str, str]] = []
    for needle, attribute, source in needles:
        row = {"file": printable(str(out)), "attribute": attribute, "value": needle.value, "source": source}
        if needle.in_bytes(data):
            hits.append({**row, "found_in": "bytes"})
        if needle.value in blob:
            hits.extend({**row, "found_in": label} for label, text in decoded if needle.in_text(text))
    return hits
