"""The notebooks as users meet them: JupyterLab in headless Chromium, offline.

* every committed notebook opens with its outputs rendered: pictures for every
  figure and widget (no "model not found"), no error outputs;
* the light notebooks run with Run All twice in one kernel (a fresh kernel
  first, as Restart-and-Run-All), with no error output, non-blank images and
  WebGL canvases (judged by pixel spread and colour count of element
  screenshots, since a blank canvas is still in the DOM), and a slider move
  that redraws the slice viewer;
* no page attempts a request beyond the local server.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import nbformat
import pytest

from tests.browser.conftest import NOTEBOOKS, ROOT, run_in_browser
from tests.browser.harness import Blocker, LabServer, current_notebook, notebook_state, open_notebook, pixel_stats, run_all

#: A picture counts as non-blank above these (grey-level standard deviation, distinct colours).
MIN_SPREAD, MIN_COLOURS = 8.0, 16


def _page(browser: Any) -> tuple[Any, Any, Blocker]:
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    blocker = Blocker()
    context.route("**/*", blocker)
    return context, context.new_page(), blocker


def _committed_outputs(name: str) -> list[dict[str, Any]]:
    nb = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
    return [o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs]


def _committed_pictures(name: str) -> int:
    return sum("image/png" in data for data in _committed_outputs(name))


def _committed_widgets(name: str, *kinds: str) -> int:
    """How many displayed medbench widgets of these kinds the committed notebook holds (by their text/plain)."""
    return sum(str(data.get("text/plain", "")).startswith(kinds) for data in _committed_outputs(name))


def _check_pictures(notebook: Any, selector: str, what: str, shots: Path, prefix: str) -> list[tuple[float, int]]:
    stats = []
    items = notebook.locator(selector)
    for i in range(items.count()):
        item = items.nth(i)
        item.scroll_into_view_if_needed()
        png = item.screenshot(path=str(shots / f"{prefix}-{what}-{i}.png"))
        spread, colours = pixel_stats(png)
        assert spread > MIN_SPREAD and colours > MIN_COLOURS, f"{prefix}: {what} {i} looks blank ({spread:.1f}, {colours})"
        stats.append((spread, colours))
    return stats


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_notebook_renders(name: str, browser: Any, lab: LabServer, shots: Path) -> None:
    context, page, blocker = _page(browser)
    try:
        open_notebook(page, lab, f"committed/{name}")
        state = notebook_state(page)
        assert state is not None and not [e for c in state["cells"] for e in c["errors"]]
        notebook = current_notebook(page)
        body = notebook.inner_text()
        for stale in ("Error displaying widget", "model not found", "Loading widget"):
            assert stale not in body, f"{name}: a widget output shows {stale!r} instead of its picture"
        assert not re.search(r"<\w+(\.\w+)+ object at 0x", body), "a widget shows as a bare Python repr"
        expected = _committed_pictures(name)
        assert expected > 0
        dead = [d for d in _committed_outputs(name) if "application/vnd.jupyter.widget-view+json" in d]
        assert not dead, f"{name}: committed widget views without state (run `make notebooks`): {len(dead)}"
        assert notebook.locator(".jp-OutputArea-output img").count() == expected
        _check_pictures(notebook, ".jp-OutputArea-output img", "image", shots, f"committed-{name}")
        page.screenshot(path=str(shots / f"committed-{name}.png"))
    finally:
        context.close()
    assert blocker.attempts == [], f"non-local requests: {blocker.attempts}"


def _slice_viewers(notebook: Any) -> Any:
    return notebook.locator(".jp-Cell").filter(has=notebook.page.locator("img.widget-image")).filter(
        has=notebook.page.locator(".widget-slider", has_text="slice"))


def _move_slice_slider(page: Any, cell: Any, name: str, shots: Path, n: int) -> None:
    """Three steps right on the slice slider: readout, caption and picture all change together."""
    image = cell.locator("img.widget-image").first
    slider = cell.locator(".widget-slider", has_text="slice").first
    image.scroll_into_view_if_needed()
    start = int(slider.locator(".widget-readout").inner_text())
    before = image.screenshot(path=str(shots / f"run-{name}-viewer{n}-before.png"))
    slider.locator(".noUi-handle").focus()
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    page.wait_for_function(
        "([el, v]) => el.textContent.trim() === String(v)",
        arg=[slider.locator(".widget-readout").element_handle(), start + 3], timeout=10_000)
    caption = f"={start + 3} of 0–"
    page.wait_for_function("([el, t]) => el.textContent.includes(t)",
                           arg=[cell.locator(".widget-html", has_text=" of 0–").last.element_handle(), caption],
                           timeout=15_000)
    page.wait_for_timeout(500)
    after = image.screenshot(path=str(shots / f"run-{name}-viewer{n}-after.png"))
    assert before != after, f"{name}: the slice viewer did not redraw after a slider move"
    assert pixel_stats(after)[0] > MIN_SPREAD


@pytest.mark.parametrize("name", run_in_browser())
def test_run_all_twice_in_one_kernel(name: str, browser: Any, lab: LabServer, shots: Path) -> None:
    context, page, blocker = _page(browser)
    try:
        open_notebook(page, lab, f"run/{name}")
        page.evaluate("() => window.jupyterapp.commands.execute('notebook:clear-all-cell-outputs')")
        first = run_all(page)  # a fresh kernel: what Restart-and-Run-All does
        second = run_all(page)  # the same kernel again: the workshop case
        n_code = len(second["cells"])
        assert [c["count"] for c in first["cells"]] == list(range(1, n_code + 1))
        assert [c["count"] for c in second["cells"]] == list(range(n_code + 1, 2 * n_code + 1))
        page.wait_for_timeout(1500)  # let widgets and WebGL finish their first frame
        notebook = current_notebook(page)
        images = _check_pictures(notebook, ".jp-OutputArea-output img", "image", shots, f"run-{name}")
        assert images, f"{name}: no picture after Run All"
        canvases = _check_pictures(notebook, ".jp-OutputArea-output canvas", "canvas", shots, f"run-{name}")
        assert len(canvases) >= _committed_widgets(name, "NiiVue 3D viewer")
        assert _slice_viewers(notebook).count() == _committed_widgets(name, "SliceViewer", "SeriesBrowser")
        for n in range(_slice_viewers(notebook).count()):
            _move_slice_slider(page, _slice_viewers(notebook).nth(n), name, shots, n)
        page.screenshot(path=str(shots / f"run-{name}.png"))
        stderr = [s for c in second["cells"] for s in c["stderr"]]
        assert not stderr, f"{name}: stderr output on the second Run All: {stderr}"
    finally:
        context.close()
    assert blocker.attempts == [], f"non-local requests: {blocker.attempts}"
