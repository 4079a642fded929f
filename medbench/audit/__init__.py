"""Header-only DICOM audit: per-file scan, per-series summary, outliers, report.

One line per step in a notebook::

    found = scan("data/dicom")                     # every header read once: found.table has one row per file
    series = summarize_series(found)               # one row per series: geometry verdict, value stats
    flags = detect_outliers(series)                # IQR rule + IsolationForest, each flag explained
    outlier_plot(flags)                            # scatter coloured by flag
    result = run_audit("data/dicom", "reports/audit/demo")   # all of it, plus CSV/JSON/HTML files

From the shell: ``medbench audit PATH --out DIR``.
"""

from __future__ import annotations

from medbench.audit.outliers import DEFAULT_FEATURES, detect_outliers, outlier_plot
from medbench.audit.report import REPORT_FILES, AuditResult, run_audit
from medbench.audit.scan import PHI_KEYWORDS, Scan, scan, scan_file, scan_headers
from medbench.audit.summary import summarize_series

__all__ = [
    "DEFAULT_FEATURES",
    "PHI_KEYWORDS",
    "REPORT_FILES",
    "AuditResult",
    "detect_outliers",
    "outlier_plot",
    "run_audit",
    "Scan",
    "scan",
    "scan_file",
    "scan_headers",
    "summarize_series",
]
