"""``reports/index.html``: one row per notebook run, newest first."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from medbench.io.atomic import write_text

#: How many metrics a row shows inline (all are in the linked metrics.json).
MAX_METRICS = 8


def collect_runs(root: Path) -> list[dict[str, Any]]:
    """Every finished run folder under ``root``: status, profile, duration, metrics, links."""
    rows = []
    for status_file in sorted(root.glob("*/*/status.json")):
        run_dir = status_file.parent
        if run_dir.name.startswith("."):
            continue
        try:
            status = json.loads(status_file.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            status = {"status": "unreadable", "error": f"status.json: {exc}"}
        metrics: dict[str, Any] = {}
        mfile = run_dir / "metrics.json"
        if mfile.exists():
            try:
                metrics = json.loads(mfile.read_text())
            except json.JSONDecodeError as exc:
                status.setdefault("error", f"metrics.json: {exc}")
        rows.append(
            {
                "notebook": run_dir.parent.name,
                "run_id": run_dir.name,
                "status": status.get("status", "unknown"),
                "profile": status.get("profile", "?"),
                "duration_s": status.get("duration_s"),
                "error": status.get("error", ""),
                "metrics": metrics,
                "links": {
                    name: f"{run_dir.parent.name}/{run_dir.name}/{name}"
                    for name in ("executed.html", "executed.ipynb", "metrics.json", "run.json", "params.yaml")
                    if (run_dir / name).exists()
                },
            }
        )
    rows.sort(key=lambda r: r["run_id"], reverse=True)
    return rows


def _metric_cell(metrics: dict[str, Any]) -> str:
    items = sorted(metrics.items())
    shown = [
        f"<code>{html.escape(k)}</code>&nbsp;{html.escape(f'{v:.4g}' if isinstance(v, float) else str(v))}"
        for k, v in items[:MAX_METRICS]
    ]
    more = f" … (+{len(items) - MAX_METRICS})" if len(items) > MAX_METRICS else ""
    return "<br>".join(shown) + more


def build_index(root: Path) -> Path:
    """Write ``root/index.html`` (atomically) and return its path."""
    rows = collect_runs(root)
    body = []
    for r in rows:
        links = " ".join(f'<a href="{html.escape(href)}">{html.escape(name)}</a>' for name, href in r["links"].items())
        duration = f"{r['duration_s']:.1f} s" if isinstance(r["duration_s"], (int, float)) else ""
        err = f'<div class="err">{html.escape(r["error"])}</div>' if r["error"] else ""
        body.append(
            f'<tr class="{html.escape(r["status"])}"><td>{html.escape(r["status"])}</td>'
            f"<td>{html.escape(r['notebook'])}</td><td>{html.escape(r['run_id'])}</td>"
            f"<td>{html.escape(r['profile'])}</td><td>{duration}</td>"
            f"<td>{_metric_cell(r['metrics'])}{err}</td><td>{links}</td></tr>"
        )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>medbench reports</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ border: 1px solid #ccc; padding: 4px 8px; vertical-align: top; text-align: left; font-size: 14px; }}
tr.completed td:first-child {{ background: #d8f5d8; }}
tr.failed td:first-child {{ background: #f8d0d0; }}
.err {{ color: #a00; white-space: pre-wrap; }}
</style></head><body>
<h1>medbench reports</h1>
<p>{len(rows)} run(s), newest first. Each row links to the executed notebook, its HTML export, parameters, run record and metrics.</p>
<table><thead><tr><th>status</th><th>notebook</th><th>run</th><th>profile</th><th>duration</th><th>key metrics</th><th>files</th></tr></thead>
<tbody>
{chr(10).join(body) if body else '<tr><td colspan="7">no runs yet: <code>make run</code></td></tr>'}
</tbody></table></body></html>
"""
    return write_text(root / "index.html", page)
