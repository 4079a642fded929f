"""``reports/index.html``: every run of every notebook, with pictures, history and comparisons.

One self-contained page (inline CSS and a few lines of inline JavaScript, no
request beyond the files it links), rendered from ``templates/index.html.j2``:

* per notebook, its **history** newest first: status, profile plus the
  parameters overridden on top of it (``smoke · seed=1``), duration,
  thumbnails of the run's figures (the ``figure:*`` artifacts of run.json),
  every metric on demand, links to the executed notebook, its HTML export, the
  run's files and every **sub-report** (any other HTML page in the run folder,
  e.g. the audit's ``audit/index.html``, and HTML artifacts);
* a **comparison** of two or more runs of one notebook: each metric per run
  and its change against the first (oldest) selected run, and the parameters
  that differ. The page opens comparing the two newest completed runs
  (rendered server-side, readable without JavaScript); ticking runs in the
  history re-renders it in the page.

Every link is relative to ``reports/`` and points inside a run folder by its
final name, so the page stays right wherever the reports folder is moved and
never names the temporary folder a run was assembled in.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from medbench.atomic import write_text
from medbench.errors import DataError
from medbench.report.render import render
from medbench.report.run import METRICS_FILE, read_record

#: Files of a run folder the index links to, when present.
LINKED_FILES = ("executed.html", "executed.ipynb", "metrics.json", "run.json", "params.yaml", "kernel.log")
#: HTML pages of a run folder that are not sub-reports.
_NOT_SUB_REPORTS = {"executed.html"}
#: Folders of a run not searched for sub-reports (data trees can hold many files).
_MAX_DEPTH = 3


def _flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"data.n_cases": 2, ...}`` from a nested parameter mapping."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def run_label(profile: str | None, overrides: Mapping[str, Any]) -> str:
    """``"smoke · seed=1, data.n_cases=4"``: the profile and what was overridden on top of it."""
    base = profile or "interactive"
    if not overrides:
        return base
    return f"{base} · " + ", ".join(f"{k}={_text(v)}" for k, v in sorted(overrides.items()))


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _sub_reports(run_dir: Path, artifacts: Mapping[str, str], href: str) -> list[dict[str, str]]:
    """Other HTML pages of the run (artifacts first, then pages found up to three folders deep)."""
    found: dict[str, str] = {}
    for name, rel in artifacts.items():
        path = run_dir / rel
        if path.is_dir() and (path / "index.html").is_file():
            rel = f"{rel.rstrip('/')}/index.html"
            path = run_dir / rel
        if path.suffix == ".html" and path.is_file():
            found.setdefault(Path(rel).as_posix(), name.removeprefix("report:"))
    for page in sorted(run_dir.rglob("*.html")):
        rel_path = page.relative_to(run_dir)
        if len(rel_path.parts) > _MAX_DEPTH or rel_path.as_posix() in _NOT_SUB_REPORTS:
            continue
        name = rel_path.parent.as_posix() if page.name == "index.html" and rel_path.parent.parts else rel_path.as_posix()
        found.setdefault(rel_path.as_posix(), name)
    return [{"name": name, "href": f"{href}/{rel}"} for rel, name in found.items()]


def _figures(run_dir: Path, artifacts: Mapping[str, str], href: str) -> list[dict[str, str]]:
    figures = []
    for key, rel in sorted(artifacts.items()):
        if key.startswith("figure:") and (run_dir / rel).is_file():
            figures.append({"name": key.removeprefix("figure:"), "href": f"{href}/{Path(rel).as_posix()}"})
    return figures


def collect_runs(root: Path) -> list[dict[str, Any]]:
    """Every run folder under ``root`` (``<notebook>/<run_id>/run.json``), newest first."""
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
        href = f"{run_dir.parent.name}/{run_dir.name}"
        artifacts = {str(k): str(v) for k, v in dict(rec.get("artifacts") or {}).items()}
        overrides = dict(rec.get("overrides") or {})
        profile = rec.get("profile") or None
        rows.append(
            {
                "notebook": run_dir.parent.name,
                "run_id": run_dir.name,
                "key": href,
                "status": str(rec.get("status", "unknown")),
                "profile": profile or "interactive",
                "overrides": overrides,
                "label": run_label(profile, overrides),
                "started": str(rec.get("started") or ""),
                "duration_s": rec.get("wall_time_s", rec.get("duration_s")),
                "error": error or str(rec.get("error") or ""),
                "metrics": metrics,
                "params": _flatten(rec.get("params") or {}),
                "figures": _figures(run_dir, artifacts, href),
                "reports": _sub_reports(run_dir, artifacts, href),
                "links": {name: f"{href}/{name}" for name in LINKED_FILES if (run_dir / name).exists()
                          and not (name == "kernel.log" and (run_dir / name).stat().st_size == 0)},
            }
        )
    rows.sort(key=lambda r: (str(r["started"]), str(r["run_id"])), reverse=True)
    return rows


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def compare_runs(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Metric-by-metric comparison of runs against the first one given (the baseline).

    Returns ``{"runs": [key, ...], "labels": [...], "metrics": [{"name", "values",
    "deltas"}], "params": [{"name", "values"}]}``: every metric any run has
    (sorted), its value per run (None when absent) and ``value - baseline``
    for numbers (None otherwise); ``params`` lists only the parameters whose
    values differ between the runs.
    """
    names = sorted({name for run in runs for name in run["metrics"]})
    metrics = []
    for name in names:
        values = [run["metrics"].get(name) for run in runs]
        base = values[0] if runs else None
        deltas = [v - base if _is_number(v) and _is_number(base) else None for v in values]
        metrics.append({"name": name, "values": values, "deltas": deltas, "changed": len({json.dumps(v) for v in values}) > 1})
    param_names = sorted({name for run in runs for name in run["params"]})
    params = []
    for name in param_names:
        values = [run["params"].get(name) for run in runs]
        if len({json.dumps(v, sort_keys=True) for v in values}) > 1:
            params.append({"name": name, "values": values})
    return {"runs": [run["key"] for run in runs], "labels": [run["label"] for run in runs],
            "metrics": metrics, "params": params}


def notebook_groups(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Runs grouped by notebook (notebooks sorted, runs newest first), each with its default comparison.

    The default comparison is the two newest completed runs, oldest first
    (the older one is the baseline), when the notebook has two.
    """
    groups = []
    for notebook in sorted({str(r["notebook"]) for r in rows}):
        runs = [r for r in rows if r["notebook"] == notebook]
        completed = [r for r in runs if r["status"] == "completed" and r["metrics"]]
        selected = list(reversed(completed[:2])) if len(completed) >= 2 else []
        groups.append({
            "notebook": notebook,
            "runs": runs,
            "latest": runs[0],
            "selected": [r["key"] for r in selected],
            "comparison": compare_runs(selected) if selected else None,
            "data": {r["key"]: {"label": r["label"], "metrics": r["metrics"], "params": r["params"],
                                "started": r["started"]} for r in runs},
        })
    return groups


def build_index(root: Path) -> Path:
    """Write ``root/index.html`` (atomically) and return its path."""
    rows = collect_runs(root)
    return write_text(root / "index.html", render("index.html.j2", rows=rows, groups=notebook_groups(rows)))
