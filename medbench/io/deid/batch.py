"""De-identify a folder of DICOM files: one report row per input file, fail closed.

Layout of the output: ``OUT/<new Study UID>/<new Series UID>/<new SOP Instance UID>.dcm``.
Source file and folder names are not reused because they often carry names,
IDs or dates; the new UIDs are deterministic for a key, so a rerun with the
same key writes the same paths and the same bytes.

Statuses: ``written``; ``quarantined`` (not written on purpose: possible
burned-in text, a DICOMDIR, a duplicate instance); ``failed`` (could not be
fully de-identified, so nothing was written); ``not_dicom``.

Every file is first read by the one DICOM header reader
(:mod:`medbench.io.dicom.headers`), so de-identification and the audit agree
on what is DICOM and what is whole: a truncated file, an image object whose
Pixel Data is missing, truncated or longer than its header describes, or a
deflated data set that would inflate past
:data:`~medbench.io.dicom.headers.MAX_INFLATED_BYTES` is ``failed`` and never
written (and a deflate bomb is never inflated in memory). The folder walk is
the reader's: a folder that cannot be listed, a symbolic link to a folder (not
followed) and a link loop are ``failed`` rows, because files under them were
not de-identified. The report shows file names that are not valid UTF-8 with
their odd bytes as ``\\xNN``, so it can always be written.
"""

from __future__ import annotations

import html
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from pydicom.dataset import Dataset

from medbench.atomic import atomic_path, write_text
from medbench.errors import ConfigError, DeidError, DicomError
from medbench.io.deid.core import (
    DeidContext,
    PrivateSpec,
    burned_in_reason,
    deidentify_dataset,
    is_dicomdir,
    pixel_data_problem,
)
from medbench.io.dicom.discover import read_full
from medbench.io.dicom.headers import Header, path_problem, printable, read_header, walk

STATUSES = ("written", "quarantined", "failed", "not_dicom")
COLUMNS = ["source", "status", "reason", "output"]
#: Reader findings that mean "not a DICOM file at all" (a ``not_dicom`` row, not a failure).
NOT_DICOM_KINDS = frozenset({"not_dicom", "empty", "not_regular"})
_DICOMDIR_REASON = "DICOMDIR: it indexes the original layout; rebuild it from the output"


class NotDicomError(DicomError):
    """The file is not DICOM at all (becomes a ``not_dicom`` row in a batch)."""


def read_dicom(path: str | os.PathLike[str]) -> Dataset:
    """Read a whole DICOM file read-only, after the one reader has sniffed it.

    Files the reader calls non-DICOM (``not_dicom``, ``empty``,
    ``not_regular``) raise :class:`NotDicomError`; a deflated data set above
    the inflation limit raises :class:`~medbench.errors.DeidError` (it is
    never inflated); anything else is read with pydicom, leniently, so even a
    damaged original yields the values it holds (other read errors propagate).
    """
    header = read_header(path)
    if header.error_kind in NOT_DICOM_KINDS:
        raise NotDicomError(f"{header.display}: {header.error}")
    if header.error_kind in ("too_large", "symlink_loop", "broken_link", "permission_denied", "missing"):
        raise DeidError(f"{header.display}: {header.error}")
    return read_full(path)


def check_folders(src_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Validate the input and output folders of a batch; raise :class:`ConfigError` with the reason.

    IN must be a folder; OUT must not be IN, inside IN, or contain IN, and
    must be absent or empty (so no earlier output is mixed in or overwritten).
    """
    problem = path_problem(Path(src_dir))
    if problem:
        raise ConfigError(f"input folder {problem}")
    src, dst = Path(src_dir).resolve(), Path(out_dir).resolve()
    if not src.is_dir():
        raise ConfigError(f"input folder {printable(str(src_dir))} is not a folder")
    if dst == src or src in dst.parents:
        raise ConfigError(f"output folder {out_dir} is inside the input folder {src_dir}; choose a folder outside it")
    if dst in src.parents:
        raise ConfigError(f"output folder {out_dir} contains the input folder {src_dir}; choose a separate folder")
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
        raise ConfigError(f"output folder {out_dir} already exists and is not empty; choose a new or empty folder")
    return src, dst


@dataclass
class DeidReport:
    """Outcome of :func:`deidentify_folder`: one row per input file in ``rows``.

    ``rows`` columns: ``source`` (input path), ``status`` (one of
    :data:`STATUSES`), ``reason``, ``output`` (written path or empty). The
    report holds source paths, which may be identifying: keep it with the
    originals, not with the de-identified copy.
    """

    rows: pd.DataFrame
    in_dir: Path
    out_dir: Path
    options: dict[str, object] = field(default_factory=dict)

    @property
    def counts(self) -> dict[str, int]:
        """Files per status (every status present, zero when none)."""
        return {s: int((self.rows["status"] == s).sum()) for s in STATUSES}

    @property
    def ok(self) -> bool:
        """True when no file failed (quarantined and non-DICOM files are outcomes by design)."""
        return self.counts["failed"] == 0

    @property
    def written(self) -> list[Path]:
        """Paths of the de-identified files, in input order."""
        return [Path(p) for p in self.rows.loc[self.rows["status"] == "written", "output"]]

    def summary(self) -> str:
        """One line: how many files ended in each status, and where the output is."""
        c = self.counts
        return (
            f"{len(self.rows)} files: {c['written']} written, {c['quarantined']} quarantined, "
            f"{c['failed']} failed, {c['not_dicom']} not DICOM -> {printable(str(self.out_dir))}"
        )

    def to_csv(self, path: str | os.PathLike[str]) -> Path:
        """Write ``rows`` as CSV (UTF-8), atomically."""
        return write_text(path, printable(self.rows.to_csv(index=False)))

    def _repr_html_(self) -> str:
        return printable(f"<p>{html.escape(self.summary())}</p>" + self.rows.to_html(index=False, max_rows=60))


def _output_path(out_dir: Path, ds: Dataset) -> Path:
    study = str(ds.get("StudyInstanceUID", "") or "") or "no-study-uid"
    series = str(ds.get("SeriesInstanceUID", "") or "") or "no-series-uid"
    return out_dir / study / series / f"{ds.SOPInstanceUID}.dcm"


def _process(
    entry: Path | Header, out_dir: Path, ctx: DeidContext, allow_burned_in: bool, claimed: dict[Path, Path]
) -> dict[str, str]:
    """De-identify one file; return its report row. Never raises for a bad file."""
    if isinstance(entry, Header):  # a folder that cannot be listed, a link to a folder, a link loop
        return {"source": entry.display, "status": "failed", "reason": entry.error, "output": ""}
    path = entry
    row = {"source": printable(str(path)), "status": "failed", "reason": "", "output": ""}
    header = read_header(path)
    if header.error_kind in NOT_DICOM_KINDS:
        return {**row, "status": "not_dicom", "reason": header.error}
    if not header.ok:
        return {**row, "reason": f"not de-identified: {header.error}"}
    if header.is_dicomdir:
        return {**row, "status": "quarantined", "reason": _DICOMDIR_REASON}
    try:
        ds = read_full(path)
    except Exception as exc:
        return {**row, "reason": printable(f"unreadable: {type(exc).__name__}: {exc}")}
    try:
        if is_dicomdir(ds):
            return {**row, "status": "quarantined", "reason": _DICOMDIR_REASON}
        problem = pixel_data_problem(ds)
        if problem:
            return {**row, "reason": f"not de-identified: {problem}"}
        risk = burned_in_reason(ds)
        if risk and not allow_burned_in:
            return {**row, "status": "quarantined", "reason": f"possible burned-in text: {risk}"}
        out = deidentify_dataset(ds, ctx)
        target = _output_path(out_dir, out)
        if target in claimed:
            reason = f"duplicate SOP Instance UID of {printable(str(claimed[target]))}; written once"
            return {**row, "status": "quarantined", "reason": reason}
        with atomic_path(target) as tmp:
            out.save_as(tmp, enforce_file_format=True)
        claimed[target] = path
        reason = f"burned-in text risk accepted: {risk}" if risk else ""
        return {**row, "status": "written", "reason": reason, "output": str(target)}
    except DeidError as exc:
        return {**row, "reason": printable(str(exc))}
    except Exception as exc:
        return {**row, "reason": printable(f"{type(exc).__name__}: {exc}")}


def deidentify_folder(
    src: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    key: bytes | str,
    *,
    date_shift: bool = False,
    allow_burned_in: bool = False,
    keep_private: Iterable[PrivateSpec] = (),
) -> DeidReport:
    """De-identify every file under ``src`` (recursively, any name) into ``out_dir``: one report row per file.

    ``key`` is the batch secret (>= 16 bytes): the same key gives the same
    UIDs, date shifts and output bytes, so references between files (and
    between batches) still resolve. Files with possible burned-in text are
    quarantined unless ``allow_burned_in``. A file that cannot be fully
    processed is not written and gets a ``failed`` row; each written file
    appears whole (atomic write). Source files are only ever opened read-only.
    pydicom's warnings about odd values are silenced here; the report is the
    record.
    """
    src, dst = check_folders(src, out_dir)
    ctx = DeidContext(key.encode("utf-8") if isinstance(key, str) else key, date_shift=date_shift,
                      keep_private=frozenset(keep_private))
    claimed: dict[Path, Path] = {}
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for entry in walk(src):
            rows.append(_process(entry, dst, ctx, allow_burned_in, claimed))
    options = {
        "date_shift": date_shift,
        "allow_burned_in": allow_burned_in,
        "keep_private": sorted(ctx.keep_private),
        "edition": ctx.table.edition,
    }
    return DeidReport(pd.DataFrame(rows, columns=COLUMNS), src, dst, options)
