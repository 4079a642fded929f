"""The data-audit notebook's checked numbers, from the results of each step."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd


def audit_metrics(
    counts: Mapping[str, Any],
    findings: pd.DataFrame,
    deid_counts: Mapping[str, int],
    leak_hits: pd.DataFrame,
    *,
    samples_counts: Mapping[str, Any] | None = None,
    pacs_counts: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Files found / readable / failed by reason, series valid / invalid, planted defects found, leak hits."""
    metrics: dict[str, Any] = {}
    for prefix, c in (("phantom", counts), ("samples", samples_counts), ("pacs", pacs_counts)):
        if c is None:
            continue
        metrics[f"{prefix}_files_found"] = int(c["files_found"])
        metrics[f"{prefix}_files_readable"] = int(c["readable"])
        for reason, n in sorted(dict(c["failed"]).items()):
            metrics[f"{prefix}_failed_{reason}"] = int(n)
        metrics[f"{prefix}_series_valid"] = int(c["series_valid"])
        metrics[f"{prefix}_series_invalid"] = int(c["series_invalid"])
    metrics["defects_planted"] = int(len(findings))
    metrics["defects_detected"] = int(findings["detected"].sum())
    for status, n in sorted(deid_counts.items()):
        metrics[f"deid_{status}"] = int(n)
    metrics["deid_leak_hits"] = int(len(leak_hits))
    return metrics
