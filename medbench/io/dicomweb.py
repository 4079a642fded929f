"""Search, retrieve and store DICOM over DICOMweb (QIDO-RS, WADO-RS, STOW-RS).

:class:`DicomWebSource` wraps :class:`dicomweb_client.api.DICOMwebClient` so a
notebook can browse a PACS in one line per step: searches come back as pandas
DataFrames with readable column names, series come back as pydicom datasets,
as a :class:`~medbench.image.volume.Volume` or as files on disk, and stores come
back as one row per instance with its status. Every HTTP failure becomes a
:class:`~medbench.errors.DataError` naming the URL and the reason.

QIDO query values and Orthanc (checked against Orthanc 1.10.1 with its
DICOMweb plugin 1.7): the plugin matches the raw query string without
percent-decoding it. ``PatientName=PHANTOM%5ECASE000`` is compared literally
with ``%5E`` in it and matches nothing, ``+`` is not read as a space, and an
encoded wildcard (``%2A``, ``%3F``) is not a wildcard; unencoded ``*`` and
``?`` do work. dicomweb-client percent-encodes every value (``quote_plus``),
so any value with a space, ``^``, a wildcard or another reserved character
silently finds nothing there. This module therefore builds QIDO query strings
itself: unreserved characters and the wildcards ``*`` / ``?`` are sent as
they are; each other character of a wildcard-capable (string) attribute is
sent as the single-character wildcard ``?``, and the rows the server returns
are then matched exactly against the original value here. Values of other
attributes that need encoding are left out of the server query and matched
here only. The result is exact on every server that implements QIDO
wildcard matching, and merely a broader transfer on a server that decodes.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import re
import socket
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import pandas as pd
import pydicom
import requests
from dicomweb_client.api import DICOMwebClient
from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.errors import InvalidDicomError

from medbench.atomic import atomic_path
from medbench.errors import ConfigError, DataError
from medbench.image.volume import Volume

#: Attributes asked for (``includefield``) and shown first, per query level.
STUDY_FIELDS = (
    "PatientID",
    "PatientName",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "StudyDescription",
    "AccessionNumber",
    "ModalitiesInStudy",
    "NumberOfStudyRelatedSeries",
    "NumberOfStudyRelatedInstances",
)
SERIES_FIELDS = (
    "PatientID",
    "PatientName",
    "StudyInstanceUID",
    "StudyDate",
    "SeriesInstanceUID",
    "Modality",
    "SeriesNumber",
    "SeriesDescription",
    "BodyPartExamined",
    "NumberOfSeriesRelatedInstances",
)
#: Value representations on which QIDO allows wildcard matching (PS3.18 §8.3.4.6.1 / PS3.4 C.2.2.2.4).
WILDCARD_VRS = frozenset({"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UR", "UT"})
#: Characters sent unencoded in a QIDO value: RFC 3986 unreserved plus the two QIDO wildcards.
_RAW_SAFE = re.compile(r"[A-Za-z0-9\-._~*?]")
#: STOW-RS FailureReason codes (PS3.18 Table I.2-1 / PS3.4 Annex B).
FAILURE_REASONS = {
    0xA700: "out of resources",
    0xA900: "data set does not match SOP class",
    0xC000: "cannot understand",
    0xC122: "referenced transfer syntax not supported",
    0x0110: "processing failure",
    0x0122: "referenced SOP class not supported",
}


def _failure_text(code: Any) -> str:
    try:
        value = int(code)
    except (TypeError, ValueError):
        return f"failure reason {code!r}"
    return f"failure reason 0x{value:04X} ({FAILURE_REASONS.get(value, 'unspecified')})"


def _stow_refusal(exc: requests.HTTPError) -> pydicom.Dataset:
    """The DICOM JSON body of a STOW-RS 400/409 answer (some or all instances refused); re-raise otherwise.

    Orthanc's plugin answers 400 when any instance of the request fails, still
    listing the stored ones (ReferencedSOPSequence) and, when it can name them,
    the refused ones (FailedSOPSequence); 409 when none was stored.
    """
    resp = exc.response
    if resp is not None and resp.status_code in (400, 409) and resp.content:
        try:
            return pydicom.Dataset.from_json(resp.json())
        except (ValueError, TypeError, KeyError):
            pass
    raise exc


def _root_reason(exc: BaseException) -> str:
    """The innermost cause of a requests connection error, in words."""
    seen: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo:
        cur = todo.pop()
        if cur in seen:
            continue
        seen.append(cur)
        todo.extend(a for a in getattr(cur, "args", ()) if isinstance(a, BaseException))
        for nxt in (cur.__cause__, cur.__context__, getattr(cur, "reason", None)):
            if isinstance(nxt, BaseException):
                todo.append(nxt)
    if any(isinstance(e, ConnectionRefusedError) for e in seen):
        return "connection refused"
    if any(isinstance(e, socket.gaierror) for e in seen):
        return "host name not found"
    if any(isinstance(e, ConnectionResetError) for e in seen):
        return "connection reset by the server"
    return str(seen[-1]) or type(seen[-1]).__name__


def _keyword(key: str) -> tuple[str, str]:
    """(keyword, VR) for a DICOM keyword or an 8-digit hex tag; ConfigError otherwise."""
    tag = tag_for_keyword(key)
    if tag is None and re.fullmatch(r"[0-9A-Fa-f]{8}", key):
        tag = int(key, 16)
    try:
        if tag is None:
            raise KeyError(key)
        return keyword_for_tag(tag) or key, dictionary_VR(tag)
    except (KeyError, TypeError):
        raise ConfigError(f"QIDO filter {key!r} is not a DICOM keyword or tag (e.g. PatientID, 00100020)") from None


def _query_text(value: Any) -> str:
    """A filter value as QIDO text (dates as YYYYMMDD, sequences as a comma list)."""
    if isinstance(value, _dt.datetime):
        return value.strftime("%Y%m%d%H%M%S")
    if isinstance(value, _dt.date):
        return value.strftime("%Y%m%d")
    if isinstance(value, (list, tuple, set)):
        return ",".join(_query_text(v) for v in value)
    return str(value)


@dataclass(frozen=True)
class _Filter:
    """One QIDO filter: what is sent to the server and how rows are re-checked here."""

    keyword: str
    vr: str
    value: str
    sent: str | None  # query text sent to the server (None: matched here only)

    @property
    def refine(self) -> bool:
        return self.sent != self.value

    def matches(self, cell: Any) -> bool:
        """DICOM matching of a flattened result cell: wildcards, UID lists, PN case-insensitive."""
        if cell is None or (isinstance(cell, float) and pd.isna(cell)):
            return self.value in ("", "*")
        text = str(cell)
        if self.vr == "UI" and ("," in self.value or "\\" in self.value):
            return text in re.split(r"[,\\]", self.value)
        pattern = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in self.value)
        flags = re.IGNORECASE if self.vr == "PN" else 0
        values = text.split("\\") if self.vr != "PN" else [text]
        return any(re.fullmatch(pattern, v, flags | re.DOTALL) for v in values)


def _plan_filter(key: str, value: Any) -> _Filter:
    keyword, vr = _keyword(key)
    text = _query_text(value)
    if all(_RAW_SAFE.fullmatch(c) for c in text):
        return _Filter(keyword, vr, text, text)
    if vr in WILDCARD_VRS:
        return _Filter(keyword, vr, text, "".join(c if _RAW_SAFE.fullmatch(c) else "?" for c in text))
    return _Filter(keyword, vr, text, None)


def _cell(element: Mapping[str, Any]) -> Any:
    """A DICOM JSON attribute as one readable value (PN as text, multi-values joined by backslash)."""
    if element.get("vr") == "SQ":
        return len(element.get("Value", []))
    values = element.get("Value")
    if not values:
        return None
    flat = [v.get("Alphabetic", "") if isinstance(v, dict) else v for v in values]
    return flat[0] if len(flat) == 1 else "\\".join(str(v) for v in flat)


def flatten_dicom_json(results: Iterable[Mapping[str, Any]], first: Iterable[str] = ()) -> pd.DataFrame:
    """DICOM JSON objects (QIDO results) as a DataFrame with one column per keyword.

    Columns named in ``first`` come first (present even when no row has them,
    so an empty result still has the expected columns); the others follow in
    tag order. Bulk data and SpecificCharacterSet are left out.
    """
    rows = []
    for item in results:
        row: dict[str, Any] = {}
        for tag, element in sorted(item.items()):
            if "BulkDataURI" in element or "InlineBinary" in element:
                continue
            keyword = keyword_for_tag(int(tag, 16)) or tag
            if keyword != "SpecificCharacterSet":
                row[keyword] = _cell(element)
        rows.append(row)
    first = list(first)
    rest = [c for row in rows for c in row if c not in first]
    columns = first + list(dict.fromkeys(rest))
    return pd.DataFrame(rows, columns=columns)


def _read_sources(items: Any) -> Iterator[tuple[str, pydicom.Dataset | None, str]]:
    """(source name, dataset or None, error) for datasets, files and folders (recursively)."""
    if isinstance(items, (pydicom.Dataset, str, os.PathLike)):
        items = [items]
    for item in items:
        if isinstance(item, pydicom.Dataset):
            yield str(getattr(item, "filename", "") or "<dataset>"), item, ""
            continue
        path = Path(item)
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            try:
                yield str(file), pydicom.dcmread(file), ""
            except (InvalidDicomError, OSError, ValueError, EOFError) as exc:
                yield str(file), None, f"not a readable DICOM file: {exc}"


class DicomWebSource:
    """A DICOMweb server (its base URL, e.g. ``http://127.0.0.1:8042/dicom-web``).

    ``headers`` are sent with every request (e.g. an ``Authorization``
    token); ``timeout`` is the requests timeout in seconds (one number, or a
    (connect, read) pair). Requests are not retried: dicomweb-client's retry
    loop also retries on every exception, so a server that is down would be
    tried 5 times with back-off (30 s) before the error shows; here it shows
    at once. ``source.client.set_http_retry_params(...)`` turns retries on.
    """

    def __init__(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float | tuple[float, float] = (5.0, 120.0),
    ) -> None:
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ConfigError(f"DICOMweb URL {url!r} is not an http(s) URL like http://host:8042/dicom-web")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._session = requests.Session()
        if headers:
            self._session.headers.update(headers)
        self.client = DICOMwebClient(self.url, session=self._session, timeout=timeout)
        self.client.set_http_retry_params(retry=False)

    def __repr__(self) -> str:
        return f"DicomWebSource({self.url!r})"

    # -- errors -------------------------------------------------------------
    @contextlib.contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Turn requests/dicomweb-client failures into one-line DataErrors naming the URL."""
        try:
            yield
        except requests.HTTPError as exc:
            resp = exc.response
            status = f"HTTP {resp.status_code} {resp.reason or ''}".strip() if resp is not None else "an HTTP error"
            where = resp.url if resp is not None else self.url
            detail = " ".join((resp.text or "").split())[:300] if resp is not None else ""
            raise DataError(f"DICOMweb {action} failed: {where} answered {status}" + (f": {detail}" if detail else "")) from None
        except requests.Timeout:
            raise DataError(f"DICOMweb server at {self.url} did not answer within {self.timeout} s ({action})") from None
        except requests.ConnectionError as exc:
            raise DataError(f"cannot reach DICOMweb server at {self.url}: {_root_reason(exc)}") from None
        except requests.RequestException as exc:
            raise DataError(f"DICOMweb {action} at {self.url} failed: {exc}") from None

    # -- QIDO-RS ------------------------------------------------------------
    def _qido(self, path: str, fields: tuple[str, ...], filters: Mapping[str, Any], limit: int | None) -> pd.DataFrame:
        plans = [_plan_filter(k, v) for k, v in filters.items()]
        include = list(dict.fromkeys([*fields, *(p.keyword for p in plans)]))
        # A planned value holds only unreserved characters and wildcards: it goes into the URL as it is.
        parts = [f"{p.keyword}={p.sent}" for p in plans if p.sent is not None]
        parts += [f"includefield={f}" for f in include]
        if limit is not None:
            parts.append(f"limit={int(limit)}")
        url = f"{self.url}/{path}?{'&'.join(parts)}"
        with self._errors(f"search {path}"):
            resp = self._session.get(url, headers={"Accept": "application/dicom+json"}, timeout=self.timeout)
            resp.raise_for_status()
        try:
            results = resp.json() if resp.content else []
        except ValueError:
            raise DataError(f"DICOMweb search {path} failed: {url} did not answer with DICOM JSON") from None
        df = flatten_dicom_json([results] if isinstance(results, dict) else results, first=fields)
        for plan in (p for p in plans if p.refine):
            if plan.keyword not in df.columns:
                df[plan.keyword] = None
            df = df.loc[np.array([plan.matches(v) for v in df[plan.keyword]], dtype=bool)]
        return df.reset_index(drop=True)

    def search_studies(self, *, limit: int | None = None, **filters: Any) -> pd.DataFrame:
        """QIDO-RS study search, one row per study: ``search_studies(PatientID="P1")``.

        Filters are DICOM keywords (or hex tags) with QIDO values: exact text,
        wildcards ``*`` / ``?``, date ranges ``"20250101-20251231"``,
        ``datetime.date`` objects. Values that need URL encoding are matched
        exactly (see the module docstring for why this is done here); ``limit``
        is applied by the server, before that refinement.
        """
        return self._qido("studies", STUDY_FIELDS, filters, limit)

    def search_series(self, study_uid: str | None = None, *, limit: int | None = None, **filters: Any) -> pd.DataFrame:
        """QIDO-RS series search, one row per series, within one study or across all."""
        path = f"studies/{study_uid}/series" if study_uid else "series"
        return self._qido(path, SERIES_FIELDS, filters, limit)

    # -- WADO-RS ------------------------------------------------------------
    def retrieve_series(self, study_uid: str, series_uid: str) -> list[pydicom.Dataset]:
        """Every instance of a series (in its stored transfer syntax), ordered by InstanceNumber."""
        action = f"retrieve of series {series_uid}"
        with self._errors(action):
            try:
                datasets = self.client.retrieve_series(study_uid, series_uid, media_types=(("application/dicom", "*"),))
            except ValueError as exc:
                raise DataError(f"DICOMweb {action} from {self.url} failed: {exc}") from None
        if not datasets:
            raise DataError(f"DICOMweb {action} from {self.url} returned no instances")
        return sorted(datasets, key=lambda ds: (int(getattr(ds, "InstanceNumber", 0) or 0), str(ds.SOPInstanceUID)))

    def load_series_volume(self, study_uid: str, series_uid: str, **kwargs: Any) -> Volume:
        """Retrieve a series and assemble it with :func:`medbench.io.dicom.load_series` (same checks)."""
        from medbench.io.dicom import load_series

        return load_series(self.retrieve_series(study_uid, series_uid), **kwargs)

    def download_series(self, study_uid: str, series_uid: str, out_dir: str | os.PathLike[str]) -> list[Path]:
        """Retrieve a series and write each instance atomically as ``out_dir/<SOPInstanceUID>.dcm``.

        Everything is retrieved before the first file is written, so a failed
        transfer writes nothing; each file appears whole or not at all.
        """
        datasets = self.retrieve_series(study_uid, series_uid)
        out = Path(out_dir)
        paths = []
        for ds in datasets:
            final = out / f"{ds.SOPInstanceUID}.dcm"
            with atomic_path(final) as tmp:
                ds.save_as(tmp, enforce_file_format=True)
            paths.append(final)
        return paths

    # -- STOW-RS ------------------------------------------------------------
    def store(self, datasets_or_paths: Any, *, batch_size: int = 50) -> pd.DataFrame:
        """STOW-RS: send datasets, files or folders; one row per instance with its status.

        ``status`` is ``stored``, ``failed`` (the server refused it; ``error``
        gives its reason), ``unreadable`` (not sent: not a DICOM file) or
        ``unconfirmed`` (the server's answer did not mention it). Instances go
        in requests of ``batch_size``. A server that cannot be reached or
        answers with an HTTP error other than 409 (all instances refused)
        raises :class:`DataError`: that is not a problem of one file.
        """
        rows: list[dict[str, Any]] = []
        batch: list[tuple[dict[str, Any], pydicom.Dataset]] = []
        for source, ds, error in _read_sources(datasets_or_paths):
            row = {
                "source": source,
                "SOPInstanceUID": str(getattr(ds, "SOPInstanceUID", "")) if ds is not None else "",
                "SeriesInstanceUID": str(getattr(ds, "SeriesInstanceUID", "")) if ds is not None else "",
                "StudyInstanceUID": str(getattr(ds, "StudyInstanceUID", "")) if ds is not None else "",
                "status": "unreadable" if ds is None else "unconfirmed",
                "error": error,
            }
            rows.append(row)
            if ds is not None:
                batch.append((row, ds))
            if len(batch) >= batch_size:
                self._store_batch(batch)
                batch = []
        if batch:
            self._store_batch(batch)
        columns = ["source", "SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID", "status", "error"]
        return pd.DataFrame(rows, columns=columns)

    def _store_batch(self, batch: list[tuple[dict[str, Any], pydicom.Dataset]]) -> None:
        """POST one batch and write each instance's outcome into its row."""
        refused = ""
        with self._errors("store"):
            try:
                answer = self.client.store_instances([ds for _, ds in batch])
            except requests.HTTPError as exc:
                answer = _stow_refusal(exc)
                resp = exc.response
                refused = (f"{resp.url} answered HTTP {resp.status_code} {resp.reason}" if resp is not None
                           else f"the server refused the upload ({exc})")
        by_uid: dict[str, list[dict[str, Any]]] = {}
        for row, _ in batch:
            by_uid.setdefault(row["SOPInstanceUID"], []).append(row)
        for item in getattr(answer, "ReferencedSOPSequence", []):
            for row in by_uid.get(str(item.get("ReferencedSOPInstanceUID", "")), []):
                row["status"] = "stored"
                if "WarningReason" in item:
                    row["error"] = f"stored with warning 0x{int(item.WarningReason):04X}"
        for item in getattr(answer, "FailedSOPSequence", []):
            for row in by_uid.get(str(item.get("ReferencedSOPInstanceUID", "")), []):
                row["status"] = "failed"
                row["error"] = f"refused by {self.url}: {_failure_text(item.get('FailureReason'))}"
        for row, _ in batch:
            if row["status"] != "unconfirmed":
                continue
            if refused:
                row["status"] = "failed"
                row["error"] = f"{refused} and did not list this instance as stored"
            else:
                row["error"] = f"{self.url} did not report this instance as stored or failed"
