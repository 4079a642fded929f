"""``reports/index.html``: one row per notebook run, newest first (template ``index.html.j2``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from medbench.atomic import write_text
from medbench.errors import DataError
from medbench.report.render import render
from medbench.report.run import METRICS_FILE, read_record

#: Files of a run folder the index links to, when present.
LINKED_FILES = ("executed.html", "executed.ipynb", "metrics.json", "run.json", "params.yaml")


def collect_runs(root: Path) -> list[dict[str, Any]]:
    """Every run folder under ``root`` (``<notebook>/<run_id>/run.json``): status, profile, metrics, links."""
    rows = []
    for record_file in sorted(root.glob("*/*/run.json")):
        run_dir = record_file.parent
        if run_dir.name.startswith("."):
            continue
        error = ""
        try:
            rec = read_record(run_dir)
        except DataError as exc:
            rec, error = {"status": "unreadable"}, str(exc)
        metrics: dict[str, Any] = {}
        mfile = run_dir / METRICS_FILE
        if mfile.exists():
            try:
                metrics = json.loads(mfile.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                error = error or f"metrics.json: {exc}"
        rows.append(
            {
                "notebook": run_dir.parent.name,
                "run_id": run_dir.name,
                "status": str(rec.get("status", "unknown")),
                "profile": rec.get("profile") or "interactive",
                "overrides": dict(rec.get("overrides") or {}),
                "duration_s": rec.get("wall_time_s", rec.get("duration_s")),
                "error": error or str(rec.get("error") or ""),
                "metrics": metrics,
                "links": {
                    name: f"{run_dir.parent.name}/{run_dir.name}/{name}"
                    for name in LINKED_FILES
                    if (run_dir / name).exists()
                },
            }
        )
    rows.sort(key=lambda r: str(r["run_id"]), reverse=True)
    return rows


def build_index(root: Path) -> Path:
    """Write ``root/index.html`` (atomically) and return its path."""
    return write_text(root / "index.html", render("index.html.j2", rows=collect_runs(root)))
