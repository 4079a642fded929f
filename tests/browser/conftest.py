"""Fixtures of the real-browser tests: one headless Chromium, one JupyterLab on loopback over copies of the notebooks.

Skipped, with the exact reason from ``tools/sysdeps.py``, where Debian's
chromium or the playwright package is not installed (``make install`` as root
on Debian installs both). ``MEDBENCH_BROWSER_SHOTS=<folder>`` keeps the
screenshots the tests take (default: a temporary folder).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.harness import LabServer, chromium, copy_notebooks, lab_server
from tools.sysdeps import browser_status

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))
#: Notebooks whose smoke run takes seconds: `make test` runs them twice in JupyterLab. The others are
#: opened (committed outputs) in `make test` and run by `make test-browser` (MEDBENCH_BROWSER_NOTEBOOKS=all).
LIGHT_NOTEBOOKS = ("00_tour", "01_data_audit")

AVAILABLE, REASON = browser_status()


def run_in_browser() -> list[str]:
    """The notebooks the Run-All test executes: the light ones, or every one with MEDBENCH_BROWSER_NOTEBOOKS=all."""
    if os.environ.get("MEDBENCH_BROWSER_NOTEBOOKS", "").strip().lower() == "all":
        return NOTEBOOKS
    return [n for n in NOTEBOOKS if n in LIGHT_NOTEBOOKS]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.slow)
            if not AVAILABLE:
                item.add_marker(pytest.mark.skip(reason=REASON))


@pytest.fixture(scope="session")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = Path(os.environ.get("MEDBENCH_BROWSER_SHOTS") or tmp_path_factory.mktemp("browser-shots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    work = tmp_path_factory.mktemp("lab")
    nbs = work / "notebooks"
    copy_notebooks(ROOT / "notebooks", nbs / "committed", NOTEBOOKS)
    copy_notebooks(ROOT / "notebooks", nbs / "run", NOTEBOOKS)
    env = {**os.environ, "MEDBENCH_REPORTS": str(work / "reports")}
    with lab_server(nbs, work, env) as server:
        yield server
