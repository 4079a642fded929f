"""``medbench audit PATH [--out DIR] [--no-pixels]``: audit a DICOM folder into CSV + HTML.

Bad files are findings in the report, never crashes, and do not change the
exit code: 0 whenever the audit ran, 2 only for usage errors (PATH does not
exist, the output folder cannot be written).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from medbench.audit.report import run_audit
from medbench.io.dicom.headers import path_problem, printable
from medbench.report.run import reports_root

#: Exit code for usage errors (argparse's own convention).
USAGE_ERROR = 2


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the audit arguments to ``parser`` and make :func:`run` its handler."""
    parser.add_argument("path", metavar="PATH", help="folder (searched recursively) or single file to audit")
    parser.add_argument(
        "--out", metavar="DIR", default=None, help="report folder (default: reports/audit/<name of PATH>)"
    )
    parser.add_argument(
        "--no-pixels", action="store_true", help="skip the sampled pixel reads (headers and geometry only)"
    )
    parser.set_defaults(func=run)


def _writable_dir(out: Path) -> str | None:
    """None when ``out`` can be created and written into, else the reason it cannot."""
    if out.exists() and not out.is_dir():
        return f"{printable(str(out))} exists and is not a folder"
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-test."):
            pass
    except OSError as exc:
        return f"cannot write into {printable(str(out))}: {exc.strerror or exc}"
    return None


def run(args: argparse.Namespace) -> int:
    """Run the audit for parsed ``args``; print the counts and where the report is."""
    path = Path(args.path)
    problem = path_problem(path)
    if problem:
        print(f"medbench audit: error: PATH {problem}", file=sys.stderr)
        return USAGE_ERROR
    out = Path(args.out) if args.out else reports_root() / "audit" / (path.resolve().name or "root")
    unwritable = _writable_dir(out)
    if unwritable:
        print(f"medbench audit: error: {unwritable}", file=sys.stderr)
        return USAGE_ERROR
    result = run_audit(path, out, sample_pixels=not args.no_pixels)
    print(result.summary_text())
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point (``python -m medbench.audit.cli``)."""
    parser = argparse.ArgumentParser(prog="medbench audit", description=__doc__.splitlines()[0])
    configure(parser)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
