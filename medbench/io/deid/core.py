"""De-identify one DICOM dataset with the Basic Application Level Confidentiality Profile.

:func:`deidentify_dataset` applies the pinned Table E.1-1 (see
:mod:`medbench.io.deid.table`) to every element, at every depth of nested
sequences, and returns a new :class:`~pydicom.dataset.FileDataset`; the input
is never modified. Everything keyed (new UIDs, the per-patient date shift, the
Patient ID pseudonym) comes from one secret held by a :class:`DeidContext`, so
a batch processed with the same key is consistent across files and
reproducible, and the key itself is never written anywhere.

Choices beyond the table, all on the strict side (documented here because a
de-identifier is only as trustworthy as its stated rules):

* Compound actions resolve as :data:`~medbench.io.deid.table.EFFECTIVE_ACTION`
  says (X/... -> X, Z/D -> Z, X/Z/U* -> keep the reference sequence with new
  UIDs). Z always writes a zero-length value. Patient ID (Z/D in 2024b) gets
  a keyed pseudonym, ``ANON-`` + 16 hex digits, so series still group by
  patient; the patient's name stays empty.
* Private attributes are removed, except an explicit allowlist of
  ``(group, private creator, element offset)`` entries (empty by default).
* Curve groups (50xx) and overlay groups (60xx) are removed whole: the table
  removes Curve Data, Overlay Data and Overlay Comments, and an overlay left
  without its data (labels, descriptions, origin) is inconsistent.
* Group-length elements (gggg,0000) are removed; they would be wrong anyway.
* A person-name (PN) attribute missing from the table is emptied (Z): names
  are identifying wherever they occur.
* A public tag unknown to pydicom's data dictionary (a newer edition, or a
  malformed file) is removed: it cannot be judged, so it is not kept.
* Sequences with action D (Content Sequence, Graphic Annotation Sequence, ...)
  are replaced by one empty item: a dummy value that carries no free text.
* Attributes the pinned table (2024b) does not list are not trusted blindly
  (:data:`EXTRA_ACTIONS`, :func:`resolve_action`):

  - (0010,0033) Patient's Birth Date in Alternative Calendar, (0010,0034)
    Patient's Death Date in Alternative Calendar and (0010,0035) Patient's
    Alternative Calendar are removed (X). They are dates of birth and death
    in another calendar held as LO text, so no VR rule catches them, and the
    2024b table predates them; later editions of Table E.1-1 list them for
    removal. The calendar's name goes too: on its own it hints at religion
    or origin, and it is meaningless without the dates. Contact URI
    (0074,100A) and Contact Display Name (0074,100C) of a procedure step
    (a person's phone or e-mail and name, held as UR and LO) are removed too.
  - any other public attribute the table does not list whose VR is DA, DT or
    TM is removed (X), or with ``date_shift=True`` shifted like the table's
    dates (DA/DT; TM retained, as for the table's times): an unlisted date
    is as identifying as a listed one. Person names (PN) not in the table are
    emptied (Z), as before.
* ``date_shift=True`` implements the Retain Longitudinal Temporal Information
  Modified Dates Option: every DA/DT attribute of the table (except the
  patient's birth date and time) is shifted by a whole number of days derived
  from the key and the Patient ID, so intervals within a patient are kept;
  TM attributes are retained (a whole-day shift leaves the time of day as it
  was). A date that cannot be parsed makes the file fail (fail closed). The
  UTC offset of a shifted date-time (DT ``&ZZXX``) is dropped: it tells in
  which time zone the patient was scanned, and Timezone Offset From UTC
  (0008,0201) is removed by the table for the same reason.
* Possible burned-in text (:func:`burned_in_reason`) is judged on the
  effective SOP class (the data set's SOP Class UID, else the file meta's
  Media Storage SOP Class UID), and beyond Burned In Annotation = YES,
  ultrasound and secondary capture it covers every visible-light image and
  video class (1.2.840.10008.5.1.4.1.1.77.1.x: photographs, endoscopy,
  microscopy, ophthalmic photography, whole-slide images with their labels),
  encapsulated documents (PDF, CDA, 3-D models: their content is not cleaned
  by an attribute profile) and the modalities XC, ES, GM, SM, OP and DOC:
  camera pictures show faces, wristbands and labels.
* An image object whose Pixel Data is missing, shorter or longer than its
  header describes is not written (:func:`pixel_data_problem`, applied by the
  batch): a half-written image is not a de-identified copy of anything.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import hmac
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pydicom import uid as pduid
from pydicom.datadict import dictionary_VR, get_entry, keyword_for_tag
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag
from pydicom.uid import UID

import medbench
from medbench.errors import ConfigError, DeidError
from medbench.io.deid.table import EFFECTIVE_ACTION, ProfileTable, load_profile_table
from medbench.io.dicom.headers import expected_pixel_bytes

#: A secret shorter than this is refused (a guessable key makes UIDs and dates reversible).
KEY_MIN_BYTES = 16

#: ``(private group, private creator, element offset 0x00-0xFF)`` of a private attribute kept on purpose.
PrivateSpec = tuple[int, str, int]

IMPLEMENTATION_CLASS_UID = str(pduid.generate_uid(entropy_srcs=["medbench/implementation"]))
IMPLEMENTATION_VERSION = "MEDBENCH_DEID"

DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"
SECONDARY_CAPTURE_ROOT = "1.2.840.10008.5.1.4.1.1.7"
ULTRASOUND_SOP_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.6.1",  # US Image Storage
        "1.2.840.10008.5.1.4.1.1.6.2",  # Enhanced US Volume Storage
        "1.2.840.10008.5.1.4.1.1.3.1",  # US Multi-frame Image Storage
        "1.2.840.10008.5.1.4.1.1.6",  # US Image Storage (retired)
        "1.2.840.10008.5.1.4.1.1.3",  # US Multi-frame Image Storage (retired)
    }
)

#: Visible-light image and video SOP classes (VL Endoscopic/Microscopic/Photographic, their video
#: forms, ophthalmic photography, whole slide microscopy, dermoscopy, ...): this prefix and below.
VISIBLE_LIGHT_ROOT = "1.2.840.10008.5.1.4.1.1.77.1"
#: Encapsulated documents (PDF, CDA, STL, OBJ, MTL): this prefix and below.
ENCAPSULATED_DOCUMENT_ROOT = "1.2.840.10008.5.1.4.1.1.104"
#: Modalities whose pixels are camera pictures or documents: quarantined like US.
CAMERA_MODALITIES = {
    "XC": "external-camera photography",
    "ES": "endoscopy",
    "GM": "general microscopy",
    "SM": "slide microscopy (slide labels carry names)",
    "OP": "ophthalmic photography",
    "DOC": "a scanned document",
}

#: Actions medbench applies to public attributes the pinned table does not list (see the module docstring).
EXTRA_ACTIONS: dict[int, tuple[str, str]] = {
    0x00100033: ("X", "birth date in an alternative calendar (not in the pinned table)"),
    0x00100034: ("X", "death date in an alternative calendar (not in the pinned table)"),
    0x00100035: ("X", "alternative calendar of the patient's dates (not in the pinned table)"),
    0x0074100A: ("X", "contact URI of a person (not in the pinned table)"),
    0x0074100C: ("X", "contact display name of a person (not in the pinned table)"),
}
#: Rule name of the conservative date/time rule (unlisted DA, DT, TM attributes).
UNLISTED_DATE_RULE = "date or time not in table"

PATIENT_ID = 0x00100020
#: Never shifted: the birth date/time are not covered by the modified-dates option (Z / X always).
NOT_SHIFTED = frozenset({0x00100030, 0x00100032})

CODE_BASIC = ("113100", "Basic Application Confidentiality Profile")
CODE_MODIFIED_DATES = ("113107", "Retain Longitudinal Temporal Information Modified Dates Option")
CODE_SAFE_PRIVATE = ("113111", "Retain Safe Private Option")

DUMMY_TEXT = "DEIDENTIFIED"
_DUMMY_BY_VR: dict[str, object] = {
    "AE": DUMMY_TEXT,
    "AS": "000D",
    "CS": DUMMY_TEXT,
    "DA": "19000101",
    "DT": "19000101000000.000000",
    "TM": "000000.00",
    "DS": "0",
    "IS": "0",
    "LO": DUMMY_TEXT,
    "LT": DUMMY_TEXT,
    "PN": DUMMY_TEXT,
    "SH": DUMMY_TEXT,
    "ST": DUMMY_TEXT,
    "UC": DUMMY_TEXT,
    "UT": DUMMY_TEXT,
    "UR": "urn:deidentified",
    "FL": 0.0,
    "FD": 0.0,
    "SL": 0,
    "SS": 0,
    "SV": 0,
    "UL": 0,
    "US": 0,
    "UV": 0,
    "OB": b"\0\0",
    "OW": b"\0\0",
    "OD": b"\0" * 8,
    "OF": b"\0" * 4,
    "OL": b"\0" * 4,
    "OV": b"\0" * 8,
    "UN": b"\0\0",
}
_STRING_VRS = frozenset(
    {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UR", "UT"}
)
_DATE_RE = re.compile(r"^(\d{4})\.?(\d{2})\.?(\d{2})$")
_DT_RE = re.compile(r"^(\d{8})(.*)$")
_UTC_OFFSET_RE = re.compile(r"[+-]\d{4}$")
_UNDEFINED_LENGTH = 0xFFFFFFFF


@dataclass(frozen=True)
class Resolution:
    """What the profile does to one element: the effective ``action`` and the ``rule`` behind it.

    ``action`` is one of ``X`` (remove), ``Z`` (empty), ``D`` (dummy), ``C``
    (clean), ``U`` (new UID), ``U*`` (keep the sequence, replace UIDs inside),
    ``K`` (keep; sequences are still walked) or ``P`` (keyed pseudonym, Patient
    ID only). ``rule`` is the table code (``"X/Z/D"``) or the medbench rule
    that applied (``"private"``, ``"overlay group (60xx)"``, ...); empty for
    attributes kept because the table does not list them.
    """

    action: str
    rule: str


def resolve_action(table: ProfileTable, tag: int, vr: str | None, *, private_kept: bool = False) -> Resolution:
    """Resolve the action for ``tag`` (with value representation ``vr``; None if unknown)."""
    group, element = tag >> 16, tag & 0xFFFF
    if group % 2:
        return Resolution("K", "private (allowlisted)") if private_kept else Resolution("X", "private")
    if element == 0:
        return Resolution("X", "group length")
    if 0x5000 <= group <= 0x50FF:
        return Resolution("X", "curve group (50xx)")
    if 0x6000 <= group <= 0x60FF:
        return Resolution("X", "overlay group (60xx)")
    code = table.action_for(tag)
    if code is not None:
        action = EFFECTIVE_ACTION[code]
        if tag == PATIENT_ID and "D" in code:
            action = "P"
        return Resolution(action, code)
    if tag in EXTRA_ACTIONS:
        return Resolution(*EXTRA_ACTIONS[tag])
    if vr == "PN":
        return Resolution("Z", "person name not in table")
    if vr in ("DA", "DT", "TM"):
        return Resolution("X", UNLISTED_DATE_RULE)
    try:
        get_entry(tag)
    except KeyError:
        return Resolution("X", "unknown public tag")
    return Resolution("K", "")


def _hmac(key: bytes, *parts: str) -> bytes:
    return hmac.new(key, "\0".join(parts).encode("utf-8"), hashlib.sha256).digest()


@dataclass(frozen=True)
class DeidContext:
    """The secret and the options of one de-identification batch.

    ``key`` (bytes, or str encoded as UTF-8; at least :data:`KEY_MIN_BYTES`)
    drives every keyed replacement. It is excluded from ``repr`` and never
    written. ``keep_private`` lists private attributes to keep as
    ``(group, creator, offset)``, e.g. ``(0x0029, "SIEMENS CSA HEADER", 0x10)``.
    """

    key: bytes = field(repr=False)
    date_shift: bool = False
    keep_private: frozenset[PrivateSpec] = frozenset()
    table: ProfileTable = field(default_factory=load_profile_table, repr=False)

    def __post_init__(self) -> None:
        key = self.key.encode("utf-8") if isinstance(self.key, str) else bytes(self.key)
        if len(key) < KEY_MIN_BYTES:
            raise ConfigError(f"the de-identification key has {len(key)} bytes; at least {KEY_MIN_BYTES} are required")
        object.__setattr__(self, "key", key)
        object.__setattr__(self, "keep_private", frozenset(_checked_private_spec(s) for s in self.keep_private))

    def new_uid(self, old: str) -> str:
        """The replacement for UID ``old``: ``2.25.`` + the first 128 bits of HMAC-SHA256(key, old).

        128 bits (the size of a UUID, which is what the 2.25 root is for) keep
        the result at most 44 characters, well inside the 64 allowed.
        """
        old = str(old).strip().rstrip("\0")
        if not old:
            return old
        digest = hmac.new(self.key, old.encode("utf-8"), hashlib.sha256).digest()
        return f"2.25.{int.from_bytes(digest[:16], 'big')}"

    def shift_days(self, patient_id: str) -> int:
        """The per-patient date shift in days, in -3650..-1, derived from the key and ``patient_id``."""
        digest = _hmac(self.key, "date-shift", str(patient_id).strip())
        return -(1 + int.from_bytes(digest[:8], "big") % 3650)

    def pseudonym(self, patient_id: str) -> str:
        """A keyed pseudonym for a Patient ID (``ANON-`` + 16 hex digits); empty stays empty."""
        patient_id = str(patient_id).strip()
        if not patient_id:
            return ""
        return "ANON-" + _hmac(self.key, "patient-id", patient_id).hex()[:16].upper()

    def method_description(self) -> list[str]:
        """De-identification Method (0012,0063) values: profile, edition, options (each <= 64 chars)."""
        profile = f"{self.table.edition} Basic Application Confidentiality Profile"[:64]
        lines = [profile, f"medbench {medbench.__version__}"]
        if self.date_shift:
            lines.append(CODE_MODIFIED_DATES[1])
        lines.append("UIDs replaced by keyed HMAC-SHA256 (2.25 root)")
        lines.append("Patient ID replaced by keyed pseudonym")
        if self.keep_private:
            lines.append(f"Private attributes removed except {len(self.keep_private)} allowlisted")
        else:
            lines.append("Private attributes removed")
        return lines


def _checked_private_spec(spec: Iterable[object]) -> PrivateSpec:
    try:
        group, creator, offset = spec
        group, creator, offset = int(group), str(creator).strip(), int(offset)  # type: ignore[call-overload]
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"keep_private entry {spec!r} is not (group, private creator, element offset)") from exc
    if group % 2 == 0 or not 0 <= offset <= 0xFF or not creator:
        raise ConfigError(f"keep_private entry {spec!r}: group must be odd, creator non-empty, offset 0x00-0xFF")
    return group, creator, offset


def tag_text(tag: int) -> str:
    """``0x00100010`` -> ``"(0010,0010)"``."""
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def describe_tag(tag: int) -> str:
    """``"(0010,0010) PatientName"``: the tag with its keyword when pydicom knows one."""
    keyword = keyword_for_tag(tag)
    return f"{tag_text(tag)} {keyword}".strip()


def element_vr(ds: Dataset, tag: BaseTag) -> str | None:
    """The VR of ``tag`` in ``ds`` without decoding its value (None when neither the file nor the dictionary says)."""
    item = ds.get_item(tag)
    vr = getattr(item, "VR", None)
    if vr and vr != "UN":
        return str(vr)
    try:
        dict_vr = dictionary_VR(tag)
    except KeyError:
        return vr
    return dict_vr.split(" or ")[0]


def check_complete(ds: Dataset, tag: BaseTag) -> None:
    """Raise :class:`DeidError` when the element's value is shorter than its declared length (a truncated file)."""
    item = ds.get_item(tag)
    if isinstance(item, RawDataElement) and item.value is not None and item.length != _UNDEFINED_LENGTH:
        if len(item.value) < item.length:
            raise DeidError(
                f"element {describe_tag(tag)} is truncated: {len(item.value)} of {item.length} bytes present"
            )


def private_creators(ds: Dataset) -> dict[tuple[int, int], str]:
    """``{(group, block): creator}`` for the private creator elements of one dataset level."""
    creators: dict[tuple[int, int], str] = {}
    for tag in ds.keys():
        if tag.group % 2 and 0x0010 <= tag.element <= 0x00FF:
            value = ds[tag].value
            if isinstance(value, bytes):
                value = value.decode("latin-1")
            creators[(tag.group, tag.element)] = str(value or "").strip()
    return creators


def is_kept_private(tag: BaseTag, creators: dict[tuple[int, int], str], keep: frozenset[PrivateSpec]) -> bool:
    """Whether a private element (or the creator of a block holding one) is on the allowlist."""
    if not keep or tag.group % 2 == 0:
        return False
    if 0x0010 <= tag.element <= 0x00FF:
        creator = creators.get((tag.group, tag.element), "")
        return any(g == tag.group and c == creator for g, c, _ in keep)
    block_creator = creators.get((tag.group, tag.element >> 8))
    return block_creator is not None and (tag.group, block_creator, tag.element & 0xFF) in keep


@dataclass
class _Walk:
    """Per-dataset state of one de-identification: the context and the patient's date shift."""

    ctx: DeidContext
    shift_days: int

    def dataset(self, ds: Dataset) -> None:
        """Apply the profile to every element of ``ds`` (in place), recursing into sequences."""
        creators = private_creators(ds)
        for tag in list(ds.keys()):
            check_complete(ds, tag)
            vr = element_vr(ds, tag)
            kept = is_kept_private(tag, creators, self.ctx.keep_private)
            resolution = resolve_action(self.ctx.table, int(tag), vr, private_kept=kept)
            try:
                self.element(ds, tag, vr, resolution)
            except DeidError:
                raise
            except Exception as exc:
                raise DeidError(f"element {describe_tag(tag)} could not be de-identified: {exc}") from exc

    def element(self, ds: Dataset, tag: BaseTag, vr: str | None, resolution: Resolution) -> None:
        """Apply one resolved action to one element."""
        action = resolution.action
        if self._shifts(tag, vr, resolution):
            if vr != "TM":
                elem = ds[tag]
                elem.value = _map_values(elem.value, lambda v: shift_date(v, elem.VR, self.shift_days))
            return
        if action == "X":
            del ds[tag]
            return
        if action in ("K", "U*", "C") and vr == "SQ":
            for item in ds[tag].value:
                self.dataset(item)
            return
        if action == "K":
            return
        elem = ds[tag]
        if action == "Z":
            elem.value = Sequence() if elem.VR == "SQ" else "" if elem.VR in _STRING_VRS else None
        elif action in ("D", "C"):
            elem.value = self.dummy(elem)
        elif action in ("U", "U*"):
            _replace_uids(ds, elem, self.ctx)
        elif action == "P":
            elem.value = _map_values(elem.value, self.ctx.pseudonym)
        else:
            raise DeidError(f"element {describe_tag(tag)}: no rule for action {action!r}")

    def _shifts(self, tag: BaseTag, vr: str | None, resolution: Resolution) -> bool:
        """Whether the modified-dates option applies: a date/time attribute of the table, not the birth date."""
        return (
            self.ctx.date_shift
            and vr in ("DA", "DT", "TM")
            and (resolution.rule in EFFECTIVE_ACTION or resolution.rule == UNLISTED_DATE_RULE)
            and resolution.action != "K"
            and int(tag) not in NOT_SHIFTED
        )

    def dummy(self, elem: DataElement) -> object:
        """A non-empty dummy value of the element's VR (sequences: one empty item)."""
        vr = elem.VR.split(" or ")[0]
        if vr == "SQ":
            return Sequence([Dataset()])
        if vr == "UI":
            old = elem.value if isinstance(elem.value, str) and elem.value else f"dummy/{tag_text(elem.tag)}"
            return self.ctx.new_uid(old)
        if vr not in _DUMMY_BY_VR:
            raise DeidError(f"element {describe_tag(elem.tag)}: no dummy value for VR {vr}")
        return _DUMMY_BY_VR[vr]


def _map_values(value: object, func: Callable[[str], str]) -> object:
    """Apply ``func`` to each value of a (possibly multi-valued) string element; empty stays empty."""
    if value is None or value == "":
        return value
    if isinstance(value, (MultiValue, list, tuple)):
        return [func(str(v)) if str(v) else "" for v in value]
    return func(str(value))


def _replace_uids(ds: Dataset, elem: DataElement, ctx: DeidContext) -> None:
    """Replace every UID value of ``elem`` by its keyed replacement (re-typed as UI if needed)."""
    value = elem.value
    if isinstance(value, bytes):
        value = value.decode("ascii").strip("\0 ")
        value = value.split("\\") if "\\" in value else value
    mapped = _map_values(value, ctx.new_uid)
    if elem.VR == "UI":
        elem.value = mapped
    else:
        ds[elem.tag] = DataElement(elem.tag, "UI", mapped)


def shift_date(value: str, vr: str, days: int) -> str:
    """Shift one DA or DT value by ``days``; DT keeps its time and fraction, not its UTC offset.

    Raises :class:`DeidError` for values that are not a full calendar date
    (YYYYMMDD, or the legacy YYYY.MM.DD), e.g. a year-only DT: shifting those
    would have to guess, and guessing is not de-identification.
    """
    text = value.strip()
    if vr == "DA":
        match = _DATE_RE.match(text)
        rest = ""
    else:
        dt_match = _DT_RE.match(text)
        match = _DATE_RE.match(dt_match.group(1)) if dt_match else None
        rest = _UTC_OFFSET_RE.sub("", dt_match.group(2)) if dt_match else ""
    if not match:
        raise DeidError(f"{vr} value {value!r} is not a full date and cannot be shifted")
    try:
        day = dt.date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
    except ValueError as exc:
        raise DeidError(f"{vr} value {value!r} is not a valid date: {exc}") from exc
    shifted = day + dt.timedelta(days=days)
    if shifted.year < 1:
        raise DeidError(f"{vr} value {value!r} cannot be shifted by {days} days")
    return shifted.strftime("%Y%m%d") + rest


def _code_item(code: tuple[str, str]) -> Dataset:
    item = Dataset()
    item.CodeValue = code[0]
    item.CodingSchemeDesignator = "DCM"
    item.CodeMeaning = code[1]
    return item


def _stamp(ds: Dataset, ctx: DeidContext) -> None:
    """Record what was done (PS3.15 E.1.1 and the SOP Common module)."""
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = ctx.method_description()
    codes = [CODE_BASIC]
    if ctx.date_shift:
        codes.append(CODE_MODIFIED_DATES)
    if ctx.keep_private:
        codes.append(CODE_SAFE_PRIVATE)
    ds.DeidentificationMethodCodeSequence = Sequence([_code_item(c) for c in codes])
    ds.LongitudinalTemporalInformationModified = "MODIFIED" if ctx.date_shift else "REMOVED"


def _transfer_syntax(ds: Dataset) -> tuple[str, bool, bool]:
    """(transfer syntax UID, implicit VR, little endian) to write ``ds`` as it was encoded."""
    meta = getattr(ds, "file_meta", None)
    ts = str(meta.get("TransferSyntaxUID", "") or "") if meta is not None else ""
    if ts:
        ts_uid = pduid.UID(ts)
        if ts_uid.is_transfer_syntax:
            return ts, ts_uid.is_implicit_VR, ts_uid.is_little_endian
        raise DeidError(f"transfer syntax {ts} is not one pydicom can write")
    implicit, little = ds.original_encoding
    if implicit is None:
        return str(pduid.ExplicitVRLittleEndian), False, True
    if implicit:
        return str(pduid.ImplicitVRLittleEndian), True, True
    if little:
        return str(pduid.ExplicitVRLittleEndian), False, True
    return str(pduid.ExplicitVRBigEndian), False, False


def _uid_of(ds: Dataset, keyword: str, meta_fallback: bool = False) -> str:
    """A required UID of ``ds`` (optionally from the file meta), or :class:`DeidError`."""
    value = ds.get(keyword)
    meta = getattr(ds, "file_meta", None)
    if not value and meta_fallback and meta is not None:
        value = meta.get("MediaStorage" + keyword)
    value = str(value or "").strip().rstrip("\0")
    if not value:
        raise DeidError(f"the dataset has no {keyword}; it cannot be de-identified consistently")
    return value


def deidentify_dataset(ds: Dataset, ctx: DeidContext) -> FileDataset:
    """Return a de-identified copy of ``ds`` (the input is not modified).

    Applies the pinned Table E.1-1 everywhere (nested sequences included),
    stamps Patient Identity Removed / De-identification Method (+ codes),
    rebuilds the file meta (new Media Storage SOP Instance UID, no source AE
    title) and zeroes the preamble. Raises :class:`DeidError` when any element
    cannot be handled: the caller must then not write anything.
    """
    sop_class = _uid_of(ds, "SOPClassUID", meta_fallback=True)
    _uid_of(ds, "SOPInstanceUID")
    ts, implicit, little = _transfer_syntax(ds)
    walk = _Walk(ctx, ctx.shift_days(str(ds.get("PatientID", "") or "")) if ctx.date_shift else 0)
    out = copy.deepcopy(ds)
    walk.dataset(out)
    _stamp(out, ctx)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = out.SOPInstanceUID
    meta.TransferSyntaxUID = UID(ts)
    meta.ImplementationClassUID = UID(IMPLEMENTATION_CLASS_UID)
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION
    return FileDataset(
        "", out, preamble=b"\0" * 128, file_meta=meta, is_implicit_VR=implicit, is_little_endian=little
    )


def effective_sop_class(ds: Dataset) -> str:
    """The SOP Class UID of ``ds``, else its file meta's Media Storage SOP Class UID ("" when neither)."""
    value = str(ds.get("SOPClassUID", "") or "").strip().rstrip("\0")
    if not value:
        meta = getattr(ds, "file_meta", None)
        value = str(meta.get("MediaStorageSOPClassUID", "") or "").strip().rstrip("\0") if meta is not None else ""
    return value


def burned_in_reason(ds: Dataset) -> str | None:
    """Why ``ds`` may carry burned-in text or faces in its pixels, or None.

    Burned In Annotation = YES; modality US (and the ultrasound SOP classes);
    the Secondary Capture family (1.2.840.10008.5.1.4.1.1.7 and .7.x:
    screenshots and scanned documents); every visible-light image and video
    class (:data:`VISIBLE_LIGHT_ROOT` and below: photographs, endoscopy,
    microscopy, ophthalmic photography, whole-slide images); encapsulated
    documents; and the camera and document modalities of
    :data:`CAMERA_MODALITIES`. The SOP class is the effective one
    (:func:`effective_sop_class`). The profile cannot clean pixels, so such
    objects are quarantined unless the user accepts the risk.
    """
    if str(ds.get("BurnedInAnnotation", "") or "").strip().upper() == "YES":
        return "Burned In Annotation is YES"
    modality = str(ds.get("Modality", "") or "").strip().upper()
    if modality == "US":
        return "modality US (ultrasound images usually carry burned-in text)"
    sop_class = effective_sop_class(ds)
    name = UID(sop_class).name if sop_class else ""
    if sop_class in ULTRASOUND_SOP_CLASSES:
        return f"ultrasound SOP class {sop_class}"
    if sop_class == SECONDARY_CAPTURE_ROOT or sop_class.startswith(SECONDARY_CAPTURE_ROOT + "."):
        return f"secondary capture SOP class {sop_class} (screenshots and scans carry burned-in text)"
    if sop_class == VISIBLE_LIGHT_ROOT or sop_class.startswith(VISIBLE_LIGHT_ROOT + "."):
        return f"visible-light SOP class {sop_class} ({name}: camera pictures show faces, wristbands and labels)"
    if sop_class.startswith(ENCAPSULATED_DOCUMENT_ROOT + "."):
        return f"encapsulated document {sop_class} ({name}: its content is not de-identified by the profile)"
    if modality in CAMERA_MODALITIES:
        return f"modality {modality} ({CAMERA_MODALITIES[modality]}: camera pictures carry faces and labels)"
    return None


def pixel_data_problem(ds: Dataset) -> str | None:
    """Why an image object's Pixel Data is unusable (missing, shorter or longer than described), or None.

    An image object is one with an ``... Image Storage`` SOP class (effective,
    see :func:`effective_sop_class`) or with Rows, Columns and BitsAllocated.
    Lengths are checked for uncompressed pixel data against Rows x Columns x
    Frames x Samples x BitsAllocated / 8 (an odd count padded to even).
    """
    sop_class = effective_sop_class(ds)
    image_class = bool(sop_class) and UID(sop_class).name.endswith("Image Storage")
    described = all(ds.get(k) not in (None, "") for k in ("Rows", "Columns", "BitsAllocated"))
    pixel_tag = next((t for t in (0x7FE00010, 0x7FE00008, 0x7FE00009) if t in ds), None)
    if pixel_tag is None:
        return "an image object without Pixel Data (7FE0,0010)" if image_class or described else None
    item = ds.get_item(pixel_tag)
    value = getattr(item, "value", None)
    if value is None or len(value) == 0:
        return "an image object whose Pixel Data is empty"
    meta = getattr(ds, "file_meta", None)
    syntax = UID(str(meta.get("TransferSyntaxUID", "") or "")) if meta is not None else None
    if syntax is not None and syntax.is_transfer_syntax and syntax.is_encapsulated:
        return None  # fragments were checked item by item when the header was read
    elements = {t: ds[t] for t in (0x00280002, 0x00280004, 0x00280008, 0x00280010, 0x00280011, 0x00280100)
                if t in ds}
    expected = expected_pixel_bytes(elements, True)
    if expected is None:
        return None
    if len(value) < expected:
        return f"Pixel Data holds {len(value)} of the {expected} bytes its header describes (truncated)"
    if len(value) > expected + expected % 2:
        return f"Pixel Data holds {len(value)} bytes but its header describes {expected}"
    return None


def is_dicomdir(ds: Dataset) -> bool:
    """Whether ``ds`` is a DICOMDIR (Media Storage Directory), which indexes files rather than holding an image."""
    meta = getattr(ds, "file_meta", None)
    sop_class = str(ds.get("SOPClassUID", "") or (meta.get("MediaStorageSOPClassUID", "") if meta is not None else ""))
    return sop_class.strip() == DICOMDIR_SOP_CLASS or "DirectoryRecordSequence" in ds


def load_key(path: str | os.PathLike[str]) -> bytes:
    """Read a de-identification secret from a key file (leading/trailing whitespace ignored).

    Raises :class:`ConfigError` naming the file when it is missing, unreadable
    or shorter than :data:`KEY_MIN_BYTES` bytes. The key is returned, never
    printed or logged.
    """
    path = Path(path)
    try:
        key = path.read_bytes().strip()
    except OSError as exc:
        raise ConfigError(f"key file {path} cannot be read: {exc.strerror or exc}") from exc
    if len(key) < KEY_MIN_BYTES:
        raise ConfigError(
            f"key file {path} holds {len(key)} bytes; a de-identification key needs at least {KEY_MIN_BYTES}"
        )
    return key
