"""Drive JupyterLab and static pages in Debian's Chromium with Playwright, offline.

Chromium is started with the flags of DESIGN §9 (software WebGL through
SwiftShader, no background networking). Every page blocks requests that do
not go to the local server (or data:/blob:) and records them; tests assert
that none were attempted. JupyterLab is started with ``tools/lab.py`` (the
code behind ``make lab``) on 127.0.0.1 over a copy of the notebooks, with its
own settings, workspaces and runtime folders.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import requests
from PIL import Image

from tools.lab import lab_command
from tools.sysdeps import CHROMIUM

#: Chromium flags that make WebGL work in software on these machines (DESIGN §9).
CHROMIUM_FLAGS = (
    "--headless=new", "--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
    "--disable-quic", "--disable-dev-shm-usage",
)
LOCAL_PREFIXES = ("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:", "about:", "file:")

#: Lab settings for tests: render every cell (no windowing), so screenshots and queries see all outputs.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                        "checkForUpdates": False},
}


def pixel_stats(png: bytes) -> tuple[float, int]:
    """(standard deviation of the grey values, number of distinct RGB colours) of a screenshot."""
    image = Image.open(io.BytesIO(png)).convert("RGB")
    array = np.asarray(image, dtype=np.float64)
    colours = len(np.unique(array.reshape(-1, 3), axis=0))
    return float(array.mean(axis=2).std()), colours


@dataclass
class Blocker:
    """Aborts and records every request that is not local."""

    attempts: list[str] = field(default_factory=list)

    def __call__(self, route: Any) -> None:
        url = route.request.url
        if url.startswith(LOCAL_PREFIXES):
            route.continue_()
        else:
            self.attempts.append(url)
            route.abort()


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium (Debian's) under Playwright."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=list(CHROMIUM_FLAGS), headless=True)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class LabServer:
    url: str
    base: str
    token: str
    root: Path
    process: subprocess.Popen[bytes]
    log: Path

    def api(self, path: str) -> Any:
        res = requests.get(f"{self.base}{path}", params={"token": self.token}, timeout=10)
        res.raise_for_status()
        return res.json()


@contextmanager
def lab_server(notebooks: Path, work: Path, env: dict[str, str]) -> Iterator[LabServer]:
    """JupyterLab over ``notebooks`` on 127.0.0.1, own settings/workspaces/runtime under ``work``."""
    settings = work / "lab-settings"
    for rel, values in LAB_SETTINGS.items():
        target = settings / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(values))
    env = {
        **env,
        "JUPYTERLAB_SETTINGS_DIR": str(settings),
        "JUPYTERLAB_WORKSPACES_DIR": str(work / "lab-workspaces"),
        "JUPYTER_RUNTIME_DIR": str(work / "runtime"),
    }
    argv, url = lab_command(notebooks, [
        "--no-browser", "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--ServerApp.shutdown_no_activity_timeout=0",
    ], python=sys.executable)
    log = work / "lab.log"
    with open(log, "wb") as handle:
        process = subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=notebooks)
    token = url.split("token=", 1)[1]
    base = url.split("/lab?", 1)[0]
    server = LabServer(url, base, token, notebooks, process, log)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with {process.returncode}: {log.read_text()[-2000:]}")
            try:
                server.api("/api/status")
                break
            except requests.RequestException:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"JupyterLab did not start within 60 s: {log.read_text()[-2000:]}") from None
                time.sleep(0.3)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def copy_notebooks(src: Path, dest: Path, names: list[str]) -> Path:
    """Copies of the named notebooks (Lab autosaves: tests never open the originals)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy2(src / f"{name}.ipynb", dest / f"{name}.ipynb")
    return dest


# -- JupyterLab page helpers (window.jupyterapp is exposed by --LabApp.expose_app_in_browser) --------
_NOTEBOOK_JS = "() => window.jupyterapp && window.jupyterapp.shell.currentWidget"

_STATE_JS = """() => {
  const panel = window.jupyterapp.shell.currentWidget;
  if (!panel || !panel.content || !panel.sessionContext) { return null; }
  const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
  const cells = panel.content.widgets.filter(c => c.model.type === 'code').map(c => {
    const outputs = c.model.outputs.toJSON();
    return {
      count: c.model.executionCount,
      running: (c.node.querySelector('.jp-InputPrompt') || {textContent: ''}).textContent.includes('*'),
      errors: outputs.filter(o => o.output_type === 'error').map(o => o.ename + ': ' + o.evalue),
      stderr: outputs.filter(o => o.output_type === 'stream' && o.name === 'stderr').map(o => String(o.text).slice(0, 300)),
      source: c.model.sharedModel.getSource().split('\\n')[0].slice(0, 80),
    };
  });
  return {kernel: kernel ? kernel.status : 'none', cells: cells};
}"""


def open_notebook(page: Any, server: LabServer, name: str, timeout_s: float = 90) -> None:
    """Open ``name``.ipynb (a path under the server's root, without the suffix) and wait until its kernel is idle."""
    page.goto(f"{server.base}/lab/tree/{name}.ipynb?reset&token={server.token}")  # reset: no tabs restored
    page.wait_for_function(_NOTEBOOK_JS, timeout=timeout_s * 1000)
    wait_for(page, lambda s: s is not None and s["kernel"] == "idle", timeout_s, f"{name}: kernel idle")
    page.wait_for_timeout(500)


def current_notebook(page: Any) -> Any:
    """A locator of the notebook panel in focus (other tabs may exist in the DOM)."""
    panel_id = page.evaluate("() => window.jupyterapp.shell.currentWidget.id")
    return page.locator(f"[id='{panel_id}'] .jp-Notebook")


def notebook_state(page: Any) -> dict[str, Any] | None:
    return page.evaluate(_STATE_JS)  # type: ignore[no-any-return]


def wait_for(page: Any, ok: Any, timeout_s: float, what: str) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    state = None
    while time.monotonic() < deadline:
        state = notebook_state(page)
        if state is not None:
            errors = [e for c in state["cells"] for e in c["errors"]]
            if errors:
                raise AssertionError(f"{what}: error output(s): {errors}")
        if ok(state):
            return state  # type: ignore[no-any-return]
        page.wait_for_timeout(250)
    raise AssertionError(f"{what}: timed out after {timeout_s} s; last state: {state}")


def run_all(page: Any, timeout_s: float = 240) -> dict[str, Any]:
    """``runmenu:run-all`` and wait until every code cell has run (a new execution count) and the kernel is idle."""
    before = notebook_state(page)
    assert before is not None
    previous = max([c["count"] or 0 for c in before["cells"]] + [0])
    page.evaluate("() => window.jupyterapp.commands.execute('runmenu:run-all')")

    def done(state: dict[str, Any] | None) -> bool:
        return (state is not None and state["kernel"] == "idle"
                and all(c["count"] is not None and c["count"] > previous and not c["running"] for c in state["cells"]))

    return wait_for(page, done, timeout_s, "Run All")
