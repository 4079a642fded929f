"""tools/: ``make lab`` (tools/lab.py), the system-package status lines the browser tests skip with, and the
parallel test runner behind ``make test`` (tools/test_jobs.py)."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

from tools import lab, sysdeps, test_jobs

ROOT = Path(__file__).resolve().parent.parent


def test_lab_binds_to_loopback_and_allows_root_only_as_root(tmp_path: Path) -> None:
    argv, url = lab.lab_command(tmp_path, is_root=True, token="t0k")
    assert "--ip=127.0.0.1" in argv and "--allow-root" in argv
    assert f"--ServerApp.root_dir={tmp_path}" in argv and "--IdentityProvider.token=t0k" in argv
    port = next(a.split("=")[1] for a in argv if a.startswith("--port="))
    assert url == f"http://127.0.0.1:{port}/lab?token=t0k"
    argv, _ = lab.lab_command(tmp_path, is_root=False, token="t0k")
    assert "--allow-root" not in argv


def test_lab_passes_extra_arguments_and_reports_their_url(tmp_path: Path) -> None:
    argv, url = lab.lab_command(tmp_path, ["--no-browser", "--port=9123", "--ip=0.0.0.0"], is_root=False, token="x")
    assert argv[-3:] == ["--no-browser", "--port=9123", "--ip=0.0.0.0"]
    assert not any(a.startswith("--port=") for a in argv[:-3]) and "--ip=127.0.0.1" not in argv
    assert url == "http://127.0.0.1:9123/lab?token=x"


def test_lab_skips_a_busy_port(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        assert lab.free_port("127.0.0.1", taken) != taken


def test_make_lab_runs_the_launcher_with_lab_args() -> None:
    res = subprocess.run(["make", "-n", "-W", "pyproject.toml", "lab", "LAB_ARGS=--no-browser --port=9999"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "tools/lab.py --no-browser --port=9999" in res.stdout


def test_browser_status_says_exactly_what_is_missing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sysdeps, "CHROMIUM", tmp_path / "no-chromium")
    ok, why = sysdeps.browser_status()
    assert not ok and why.startswith("Debian's chromium is not installed") and str(tmp_path / "no-chromium") in why
    monkeypatch.setattr(sysdeps, "CHROMIUM", Path(__file__))  # any existing file
    monkeypatch.setattr(sysdeps.importlib.util, "find_spec", lambda name: None)
    ok, why = sysdeps.browser_status()
    assert not ok and "playwright package is not installed" in why


def test_browser_install_is_skipped_with_its_reason(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sysdeps, "CHROMIUM", tmp_path / "no-chromium")
    monkeypatch.setenv("MEDBENCH_SKIP_SYSDEPS", "1")
    assert sysdeps.install_browser() == "browser: skipped (MEDBENCH_SKIP_SYSDEPS is set); the browser tests will be skipped"


def test_test_jobs_cover_every_area_and_notebook_notebooks_first() -> None:
    jobs = test_jobs.plan(["unit", "nbval"], ["--durations=5"])
    names = [j.name for j in jobs]
    notebooks = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
    folders = sorted(p.name for p in (ROOT / "tests").iterdir() if p.is_dir() and any(p.glob("test_*.py")))
    assert names[:len(notebooks)] == [f"nbval notebooks/{n}" for n in notebooks]
    assert [n for n in names if n.startswith("tests/") and n.endswith("/")] == [f"tests/{f}/" for f in folders]
    assert "tests/test_tools.py" in names and "tests/notebooks/" in names
    assert all(j.args[-1] == "--durations=5" for j in jobs)
    assert [j.name for j in test_jobs.plan(["unit"], [])] == names[len(notebooks):]


def _job(name: str, code: str) -> test_jobs.Job:
    return test_jobs.Job(name, ["-c", code])


def test_test_jobs_run_in_parallel_and_stop_starting_after_a_failure(capsys: pytest.CaptureFixture[str]) -> None:
    ok = _job("ok", "import os; print('policy', os.environ.get('OMP_WAIT_POLICY'))")
    slow_ok = _job("slow", "import time; time.sleep(1.0); print('slow done')")
    bad = _job("bad", "import sys; print('broken here'); sys.exit(3)")
    never = _job("never", "print('must not run')")
    assert test_jobs.run([ok, slow_ok], 2) == 0
    out = capsys.readouterr().out
    assert "policy PASSIVE" in out and "slow done" in out and "2 of 2 test jobs passed" in out

    assert test_jobs.run([bad, slow_ok, never], 2) == 1
    out = capsys.readouterr().out
    assert "===== bad: FAILED (exit 3)" in out and "broken here" in out
    assert "slow done" in out  # the job already running finishes and is shown
    assert "must not run" not in out and "failed: bad" in out and "not started after the failure: 1" in out

    assert test_jobs.run([_job("seq", "import os; print('policy', os.environ.get('OMP_WAIT_POLICY'))")], 1) == 0
    assert f"policy {os.environ.get('OMP_WAIT_POLICY')}" in capsys.readouterr().out  # one at a time: not forced
