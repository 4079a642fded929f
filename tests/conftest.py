"""Session-wide test settings.

Every test writes regenerable data into a session temporary folder, never into
the user's real cache (``~/.cache/medbench``) or reports folder: tests that
need their own place still pass ``cache_dir``/``tmp_path`` explicitly.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def _private_cache_and_reports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("medbench-session")
    saved = {k: os.environ.get(k) for k in ("MEDBENCH_CACHE", "MEDBENCH_REPORTS")}
    os.environ["MEDBENCH_CACHE"] = str(root / "cache")
    os.environ["MEDBENCH_REPORTS"] = str(root / "reports")
    yield root
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
