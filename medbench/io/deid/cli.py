"""``medbench deid IN OUT --key-file F``: de-identify a folder of DICOM files.

The report (one row per input file: status and reason) is always written:
to ``--report CSV``, else next to OUT as ``<OUT>-deid-report.csv``. It is
the only record of what failed and why, and it names source files, so it
never goes inside IN or OUT. File names that are not valid UTF-8 appear
with their odd bytes as ``\\xNN``.

Exit codes: 0 when every file was written, quarantined or skipped as
non-DICOM by design; 1 when any file failed (it was not written; the summary
and the optional report name it); 2 for usage errors (missing or short key
file, OUT inside IN, OUT not empty, report path inside IN or OUT), reported in
one line without a traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from medbench.errors import ConfigError, MedbenchError
from medbench.io.deid import KEY_MIN_BYTES, check_folders, deidentify_folder, load_key
from medbench.io.dicom.headers import printable

#: Failed files listed in the summary before it says "... and N more".
MAX_LISTED = 20


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``deid`` arguments to ``parser`` and make :func:`run` its handler."""
    parser.description = (
        "De-identify every DICOM file under IN into OUT with the DICOM PS3.15 Annex E "
        "Basic Application Level Confidentiality Profile (pinned edition)."
    )
    parser.add_argument("input", metavar="IN", type=Path, help="folder of DICOM files (searched recursively)")
    parser.add_argument("output", metavar="OUT", type=Path, help="new or empty folder outside IN for the output")
    parser.add_argument(
        "--key-file",
        required=True,
        type=Path,
        metavar="F",
        help=f"file holding the batch secret (at least {KEY_MIN_BYTES} bytes); the same key gives the same UIDs",
    )
    parser.add_argument(
        "--date-shift",
        action="store_true",
        help="shift dates per patient by a keyed offset (intervals kept) instead of removing them",
    )
    parser.add_argument(
        "--allow-burned-in",
        action="store_true",
        help="also write images that may carry burned-in text (US, secondary capture, Burned In Annotation YES)",
    )
    parser.add_argument(
        "--report", type=Path, metavar="CSV",
        help="write one row per input file here (outside IN and OUT; default: OUT-deid-report.csv next to OUT)",
    )
    parser.set_defaults(func=run)


def _check_report(report: Path, in_dir: Path, out_dir: Path) -> None:
    path = report.resolve()
    for folder, name in ((out_dir.resolve(), "OUT"), (in_dir.resolve(), "IN")):
        if folder in path.parents:
            raise ConfigError(
                f"report {printable(str(report))} would be written inside {name} ({printable(str(folder))}); "
                "choose a path outside it"
            )


def default_report(out_dir: Path) -> Path:
    """Where the report goes without ``--report``: ``<OUT>-deid-report.csv`` beside OUT."""
    out = out_dir.resolve()
    return out.parent / f"{out.name}-deid-report.csv"


def run(args: argparse.Namespace) -> int:
    """Run the batch; print a short summary; return the exit code (0, 1 or 2)."""
    try:
        key = load_key(args.key_file)
        check_folders(args.input, args.output)
        report_path = args.report if args.report is not None else default_report(args.output)
        _check_report(report_path, args.input, args.output)
        report = deidentify_folder(
            args.input, args.output, key, date_shift=args.date_shift, allow_burned_in=args.allow_burned_in
        )
    except MedbenchError as exc:
        print(printable(f"medbench deid: {exc}"), file=sys.stderr)
        return 2
    written = True
    try:
        report.to_csv(report_path)
    except OSError as exc:
        print(printable(f"medbench deid: report {report_path} could not be written: {exc.strerror or exc}"),
              file=sys.stderr)
        written = False
    print(report.summary())
    failed = report.rows[report.rows["status"] == "failed"]
    for row in failed.head(MAX_LISTED).itertuples():
        print(printable(f"  failed: {row.source}: {row.reason}"))
    if len(failed) > MAX_LISTED:
        print(f"  ... and {len(failed) - MAX_LISTED} more failed files")
    if written:
        print(printable(f"report: {report_path}"))
    return 0 if report.ok and written else 1
