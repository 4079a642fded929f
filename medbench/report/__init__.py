"""medbench.report: run records and the pages people read.

* :mod:`~medbench.report.run`: :class:`Run` (run folder, the only writer of
  run.json, metrics.json, atomic artifacts, checkpoint registry with sha256),
  :func:`start_run`, canonical metrics formatting;
* :mod:`~medbench.report.index`: ``reports/index.html`` from a jinja2 template;
* :mod:`~medbench.report.templates`: the template loader shared by every HTML report.
"""

from __future__ import annotations

from medbench.report.run import (
    Run,
    finalise,
    format_metrics,
    load_checkpoint,
    metrics_json,
    read_record,
    reports_root,
    start_run,
)

__all__ = [
    "Run",
    "finalise",
    "format_metrics",
    "load_checkpoint",
    "metrics_json",
    "read_record",
    "reports_root",
    "start_run",
]
