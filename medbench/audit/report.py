"""Run the whole audit on a folder and write its report.

:func:`run_audit` = :func:`~medbench.audit.scan.scan` (every header read
once) → :func:`~medbench.audit.summary.summarize_series` (on the headers the
scan parsed) →
:func:`~medbench.audit.outliers.detect_outliers`, then writes into
``out_dir``: ``files.csv``, ``series.csv``, ``outliers.csv``,
``summary.json`` (counts) and a self-contained ``index.html`` (counts, failed
files, series, outliers and the outlier plot embedded as a PNG). Every file
is rendered in memory first and then written atomically, so a report file is
either the previous version or the complete new one, never partial. File
names that are not valid UTF-8 are written with their odd bytes as ``\\xNN``
(:func:`~medbench.io.dicom.headers.printable`), so the report is always
written.

Paths in the written files are relative, so the report stays right when the
folder holding it and the audited data is moved or renamed (a run folder is
assembled under a temporary name and renamed when the run ends): the
``path`` column of files.csv is relative to the audited folder, summary.json
records that folder as seen from the report (``root_from_report``, next to the
absolute ``root`` as audited), and every link in index.html is relative.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pandas as pd
from markupsafe import Markup
from matplotlib.figure import Figure

from medbench.atomic import write_text
from medbench.audit.outliers import detect_outliers, outlier_plot
from medbench.audit.scan import PHI_KEYWORDS, scan
from medbench.audit.summary import summarize_series
from medbench.errors import DataError
from medbench.io.dicom.headers import path_problem, printable
from medbench.report.render import render
from medbench.viz.tables import relative_path

#: The files :func:`run_audit` writes into ``out_dir``.
REPORT_FILES = ("files.csv", "series.csv", "outliers.csv", "summary.json", "index.html")


@dataclass
class AuditResult:
    """Everything an audit found, and where its report is."""

    root: Path
    out_dir: Path
    files_df: pd.DataFrame = field(repr=False)
    series_df: pd.DataFrame = field(repr=False)
    outliers_df: pd.DataFrame = field(repr=False)
    counts: dict[str, Any] = field(default_factory=dict)
    figure: Figure | None = field(default=None, repr=False)

    @property
    def report(self) -> Path:
        """The HTML report."""
        return self.out_dir / "index.html"

    def summary_text(self) -> str:
        """A few lines with the counts and the report location (what the CLI prints)."""
        c = self.counts
        failed = ", ".join(f"{k}: {n}" for k, n in c["failed"].items()) or "none"
        return "\n".join(
            [
                f"audit of {printable(str(self.root))}",
                f"  files: {c['files_found']} found, {c['readable']} readable, "
                f"{sum(c['failed'].values())} failed ({failed})",
                f"  series: {c['series_valid']} valid, {c['series_invalid']} invalid, "
                f"{c['series_non_image']} not images ({c['series_split']} split off a shared SeriesInstanceUID); "
                f"{c['outliers']} flagged as outliers",
                f"  files with identifying attributes: {c['files_with_phi']}",
                f"  report: {printable(str(self.report))}",
            ]
        )

    def _repr_html_(self) -> str:
        return "<pre>" + html.escape(self.summary_text()) + "</pre>"


def audit_counts(files_df: pd.DataFrame, series_df: pd.DataFrame, outliers_df: pd.DataFrame) -> dict[str, Any]:
    """The headline numbers: files found / readable / failed by reason category, series by status."""
    failed = files_df.loc[~files_df["readable"], "error_kind"].value_counts().sort_index()
    status = series_df["status"].value_counts()
    return {
        "files_found": int(len(files_df)),
        "readable": int(files_df["readable"].sum()),
        "failed": {str(k): int(v) for k, v in failed.items()},
        "files_with_phi": int((files_df["phi_present"].fillna("") != "").sum()),
        "series_valid": int(status.get("valid", 0)),
        "series_invalid": int(status.get("invalid", 0)),
        "series_non_image": int(status.get("not an image", 0)),
        "series_split": int((series_df["split_reason"].fillna("") != "").sum()) if "split_reason" in series_df else 0,
        "outliers": int(outliers_df["outlier"].sum()) if "outlier" in outliers_df else 0,
    }


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def _table(df: pd.DataFrame, empty: str) -> Markup:
    """A pandas table as escaped HTML (cell text escaped by pandas) in a scrolling box, or a note when empty."""
    if df.empty:
        return Markup("<p><em>{}</em></p>").format(empty)
    return Markup('<div class="scroll">{}</div>').format(
        Markup(df.to_html(index=False, na_rep="", escape=True, border=0, classes="t")))


def relative_paths(df: pd.DataFrame, root: Path, column: str = "path") -> pd.DataFrame:
    """A copy of ``df`` whose ``column`` holds POSIX paths relative to ``root`` (others left as they are)."""
    out = df.copy()
    if column in out:
        out[column] = out[column].map(lambda value: relative_path(value, root))
    return out


def root_from_report(root: Path, out_dir: Path) -> str:
    """The audited folder as a POSIX path relative to the report folder (``../dicom_tree``)."""
    return Path(os.path.relpath(os.path.abspath(root), os.path.abspath(out_dir))).as_posix()


def render_html(result: AuditResult, png: bytes) -> str:
    """The self-contained ``index.html`` of an audit (no external resources), from ``templates/audit.html.j2``."""
    c = result.counts
    count_rows = [
        ("files found", c["files_found"]),
        ("readable", c["readable"]),
        *((f"failed: {k}", n) for k, n in c["failed"].items()),
        ("files with identifying attributes", c["files_with_phi"]),
        ("series valid", c["series_valid"]),
        ("series invalid", c["series_invalid"]),
        ("series not images", c["series_non_image"]),
        ("series split off a shared SeriesInstanceUID", c["series_split"]),
        ("series flagged as outliers", c["outliers"]),
    ]
    failed = relative_paths(result.files_df.loc[~result.files_df["readable"], ["path", "error_kind", "error", "size_bytes"]],
                            result.root)
    root_href = root_from_report(result.root, result.out_dir)
    failed_rows = [
        {"path": printable(str(r["path"])), "href": quote(f"{root_href}/{r['path']}", errors="surrogateescape"),
         "error_kind": str(r["error_kind"]), "error": printable(str(r["error"])),
         "size_bytes": "" if pd.isna(r["size_bytes"]) else int(r["size_bytes"])}
        for _, r in failed.iterrows()
    ]
    uid_columns = ("series_key", "study_uid", "series_uid")
    series_cols = [c for c in result.series_df.columns if c not in uid_columns]
    flagged = result.outliers_df[result.outliers_df["outlier"]] if "outlier" in result.outliers_df else result.outliers_df
    flagged = flagged[[c for c in flagged.columns if c not in (*uid_columns, "iqr_reason", "iforest_reason")]]
    return render(
        "audit.html.j2", package="medbench.audit",
        root_href=quote(root_href), root_name=printable(Path(result.root).name or str(result.root)),
        audited_at=c["audited_at"], counts=count_rows, failed_rows=failed_rows,
        series_table=_table(result.series_df[series_cols], "no series found"),
        outliers_table=_table(flagged, "no series flagged"),
        image=base64.b64encode(png).decode("ascii"), phi_keywords=list(PHI_KEYWORDS),
    )


def _csv(df: pd.DataFrame) -> str:
    return printable(df.to_csv(index=False))


def run_audit(
    src: str | os.PathLike[str], out_dir: str | os.PathLike[str], *, sample_pixels: bool = True
) -> AuditResult:
    """Audit every file under ``src`` and write the report files into ``out_dir``.

    Bad files are rows of the report, never exceptions; only a missing
    ``src`` raises :class:`~medbench.errors.DataError`. ``out_dir`` may
    exist: the :data:`REPORT_FILES` in it are replaced atomically.
    """
    root = Path(src)
    problem = path_problem(root)
    if problem:
        raise DataError(f"cannot audit: {problem}")
    out = Path(out_dir)
    found = scan(root)
    files_df = found.table
    series_df = summarize_series(found, sample_pixels=sample_pixels)
    outliers_df = detect_outliers(series_df[series_df["status"] != "not an image"])
    counts = audit_counts(files_df, series_df, outliers_df)
    counts["audited_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    counts["root"] = printable(str(root))
    counts["root_from_report"] = printable(root_from_report(root, out))
    counts["sample_pixels"] = sample_pixels
    figure = outlier_plot(outliers_df)
    result = AuditResult(root, out, files_df, series_df, outliers_df, counts, figure)
    rendered = {
        "files.csv": _csv(relative_paths(files_df, root)),
        "series.csv": _csv(series_df),
        "outliers.csv": _csv(outliers_df),
        "summary.json": json.dumps(counts, indent=2, sort_keys=True) + "\n",
        "index.html": printable(render_html(result, _png(figure))),
    }
    out.mkdir(parents=True, exist_ok=True)
    for name, text in rendered.items():
        write_text(out / name, text)
    return result

