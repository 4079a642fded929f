"""reports/index.html: thumbnails, profile + overrides, all metrics, sub-reports, history, comparisons, relative links."""

from __future__ import annotations

import json
import os
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import matplotlib

matplotlib.use("Agg")
import pytest
from matplotlib.figure import Figure

from medbench import report
from medbench.recipes import tour
from medbench.report import run as run_mod
from medbench.report.index import build_index, collect_runs, compare_runs, notebook_groups, run_label


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("href", "src") and value:
                self.links.append((tag, value))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(path: Path) -> _Links:
    parser = _Links()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def dead_links(page: Path) -> list[str]:
    """Local links of ``page`` that do not resolve to a file or folder."""
    dead = []
    for _, href in parse(page).links:
        url = urlparse(href)
        if url.scheme or href.startswith("#"):
            continue
        if not (page.parent / unquote(url.path)).exists():
            dead.append(href)
    return dead


def make_run(reports: Path, monkeypatch: pytest.MonkeyPatch, run_id: str, seed: int, metrics: dict,
             overrides: dict | None = None, started: str = "") -> Path:
    """A run assembled under a hidden name and renamed into place, like ``medbench run`` does."""
    tmp = reports / "00_tour" / f".{run_id}.tmp"
    monkeypatch.setenv(run_mod.ENV_RUN_DIR, str(tmp))
    monkeypatch.setenv(run_mod.ENV_PROFILE, "smoke")
    monkeypatch.setenv(run_mod.ENV_OVERRIDES, json.dumps(overrides or {}))
    run = report.start_run(tour.Params.validate_values({"seed": seed}), deterministic=False)
    fig = Figure(figsize=(2, 1))
    fig.add_subplot().plot([0, 1], [seed, 1])
    run.save_figure(fig, "curve")
    sub = run.path("audit/index.html")
    sub.write_text('<a href="files.csv">files</a> <a href="../figures/curve.png">curve</a>')
    (sub.parent / "files.csv").write_text("path\n")
    run.finish(metrics)
    record = json.loads((tmp / "run.json").read_text())
    if started:
        record["started"] = started
        (tmp / "run.json").write_text(json.dumps(record))
    final = reports / "00_tour" / run_id
    os.rename(tmp, final)
    return final


METRICS_0 = {f"m{i:02d}": 0.5 + i for i in range(13)} | {"n_cases": 2, "flag": True}
METRICS_1 = {f"m{i:02d}": 0.25 + i for i in range(13)} | {"n_cases": 2, "flag": False, "extra": 1.0}


@pytest.fixture
def reports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "reports"
    make_run(root, monkeypatch, "20260101T000000Z-smoke", 0, METRICS_0, started="2026-01-01T00:00:00+00:00")
    make_run(root, monkeypatch, "20260102T000000Z-smoke", 1, METRICS_1, {"seed": 1},
             started="2026-01-02T00:00:00+00:00")
    return root


def test_label_names_profile_and_overrides() -> None:
    assert run_label("smoke", {}) == "smoke"
    assert run_label("smoke", {"seed": 1, "data.n_cases": 4}) == "smoke · data.n_cases=4, seed=1"
    assert run_label(None, {"data.image_size": [8, 8, 4]}) == "interactive · data.image_size=[8, 8, 4]"


def test_index_shows_thumbnails_overrides_every_metric_and_sub_reports(reports: Path) -> None:
    page = build_index(reports)
    parsed = parse(page)
    text = " ".join(parsed.text)
    assert "smoke · seed=1" in text
    images = [src for tag, src in parsed.links if tag == "img"]
    assert "00_tour/20260102T000000Z-smoke/figures/curve.png" in images
    assert all(not Path(src).is_absolute() and not urlparse(src).scheme for src in images)
    for name in list(METRICS_0) + list(METRICS_1):
        assert name in text, name
    hrefs = [href for tag, href in parsed.links if tag == "a"]
    assert "00_tour/20260101T000000Z-smoke/audit/index.html" in hrefs
    assert "00_tour/20260101T000000Z-smoke/executed.html" not in hrefs  # not run by the runner here
    assert dead_links(page) == []
    assert ".tmp" not in page.read_text()  # nothing names the folder a run was assembled in


def test_links_survive_moving_the_reports_folder(reports: Path, tmp_path: Path) -> None:
    build_index(reports)
    moved = tmp_path / "elsewhere" / "reports"
    moved.parent.mkdir()
    os.rename(reports, moved)
    assert dead_links(moved / "index.html") == []
    for sub in moved.glob("*/*/audit/index.html"):
        assert dead_links(sub) == []


def test_comparison_of_two_runs_has_known_deltas(reports: Path) -> None:
    rows = collect_runs(reports)
    assert [r["run_id"] for r in rows] == ["20260102T000000Z-smoke", "20260101T000000Z-smoke"]
    old, new = rows[1], rows[0]
    comparison = compare_runs([old, new])
    by_name = {m["name"]: m for m in comparison["metrics"]}
    assert by_name["m03"]["values"] == [3.5, 3.25] and by_name["m03"]["deltas"] == [0.0, -0.25]
    assert by_name["n_cases"]["deltas"] == [0, 0] and not by_name["n_cases"]["changed"]
    assert by_name["flag"]["deltas"] == [None, None] and by_name["flag"]["changed"]
    assert by_name["extra"]["values"] == [None, 1.0] and by_name["extra"]["deltas"] == [None, None]
    assert comparison["params"] == [{"name": "seed", "values": [0, 1]}]
    group = notebook_groups(rows)[0]
    assert group["selected"] == [old["key"], new["key"]]  # the two newest, oldest first (the baseline)


def test_default_comparison_is_rendered_in_the_page(reports: Path) -> None:
    html = build_index(reports).read_text()
    table = html[html.index('class="compare-table"'):html.index("</table>", html.index('class="compare-table"'))]
    assert "smoke · seed=1 (Δ)" in table
    assert "3.25 <span class=\"neg\">(\u22120.25)</span>" in table
    assert "<code>seed</code>" in table


def test_a_single_run_invites_a_second(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "reports"
    make_run(root, monkeypatch, "20260101T000000Z-smoke", 0, METRICS_0)
    html = build_index(root).read_text()
    assert "medbench run 00_tour -p seed=1" in html
