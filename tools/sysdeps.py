"""Install the optional system packages the test-suite uses (run by `make install`).

* Orthanc with its DICOMweb plugin: a real PACS for the DICOMweb round-trip
  test. The install never starts the Debian service (a ``policy-rc.d`` forbids
  it): tests start their own loopback-only instance.
* Debian's ``chromium`` plus the ``playwright`` Python package (installed into
  this interpreter's environment with pip) for the real-browser tests
  (``tests/browser``). Playwright drives the Debian browser through
  ``executable_path``; ``playwright install`` (which downloads its own browser
  builds from a CDN) is never run.

Each is installed from Debian's packages when this is a Debian machine and we
are root; otherwise a line says why not and the tests that need it are
skipped with exactly that reason. Never fatal: the workbench itself needs
neither. ``MEDBENCH_SKIP_SYSDEPS=1`` skips everything.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

ORTHANC_PACKAGES = ("orthanc", "orthanc-dicomweb")
BROWSER_PACKAGES = ("chromium",)
#: The Python driver, pinned to the version the browser tests were written against.
PLAYWRIGHT_SPEC = "playwright==1.65.2"
#: Where Debian's chromium package puts the browser.
CHROMIUM = Path("/usr/bin/chromium")
POLICY = Path("/usr/sbin/policy-rc.d")
PACKAGES = ORTHANC_PACKAGES  # kept for callers of the previous name


def orthanc_status() -> tuple[bool, str]:
    """(available, reason): whether the Orthanc binary and DICOMweb plugin are installed."""
    if shutil.which("Orthanc") is None:
        return False, "the Orthanc server is not installed (Debian packages orthanc, orthanc-dicomweb)"
    if not any(Path(p).exists() for p in ("/usr/share/orthanc/plugins/libOrthancDicomWeb.so",)):
        return False, "the Orthanc DICOMweb plugin is not installed (Debian package orthanc-dicomweb)"
    return True, "installed"


def browser_status() -> tuple[bool, str]:
    """(available, reason): whether Debian's chromium and the playwright package are both usable here."""
    if not CHROMIUM.is_file():
        return False, f"Debian's chromium is not installed ({CHROMIUM} is missing; `make install` as root on Debian)"
    if importlib.util.find_spec("playwright") is None:
        return False, f"the playwright package is not installed in {sys.prefix} (`pip install {PLAYWRIGHT_SPEC}`)"
    return True, "installed"


def _why_not_apt(what: str) -> str | None:
    """The reason apt-get cannot be used here, or None when it can."""
    if os.environ.get("MEDBENCH_SKIP_SYSDEPS"):
        return f"{what}: skipped (MEDBENCH_SKIP_SYSDEPS is set)"
    if shutil.which("apt-get") is None:
        return f"{what}: not installed (no apt-get on this machine)"
    if os.geteuid() != 0:
        return f"{what}: not installed (needs root for apt-get)"
    return None


def _apt_install(packages: tuple[str, ...]) -> str | None:
    """``apt-get install`` without starting services; None on success, else the reason it failed."""
    created = False
    if not POLICY.exists():
        POLICY.write_text("#!/bin/sh\nexit 101\n")
        POLICY.chmod(0o755)
        created = True
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        for cmd in (["apt-get", "update", "-qq"],
                    ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages]):
            res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
            if res.returncode != 0:
                tail = (res.stderr or res.stdout).strip().splitlines()[-1:] or ["no output"]
                return f"{' '.join(cmd)}: {tail[0]}"
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    finally:
        if created:
            POLICY.unlink(missing_ok=True)
    return None


def install_orthanc() -> str:
    ok, _ = orthanc_status()
    if ok:
        return "orthanc: already installed"
    skip = _why_not_apt("orthanc")
    if skip:
        return f"{skip}; the DICOMweb round-trip test will be skipped"
    failed = _apt_install(ORTHANC_PACKAGES)
    if failed:
        return f"orthanc: install failed ({failed}); the DICOMweb round-trip test will be skipped"
    ok, why = orthanc_status()
    return "orthanc: installed" if ok else f"orthanc: {why}"


def install_browser() -> str:
    """Debian's chromium (apt) and playwright (pip, into this environment); never ``playwright install``."""
    ok, _ = browser_status()
    if ok:
        return "browser: chromium and playwright already installed"
    if not CHROMIUM.is_file():
        skip = _why_not_apt("browser")
        if skip:
            return f"{skip}; the browser tests will be skipped"
        failed = _apt_install(BROWSER_PACKAGES)
        if failed:
            return f"browser: chromium install failed ({failed}); the browser tests will be skipped"
    if importlib.util.find_spec("playwright") is None:
        if os.environ.get("MEDBENCH_SKIP_SYSDEPS"):
            return "browser: skipped (MEDBENCH_SKIP_SYSDEPS is set); the browser tests will be skipped"
        res = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", PLAYWRIGHT_SPEC],
                             capture_output=True, text=True, timeout=900)
        if res.returncode != 0:
            tail = (res.stderr or res.stdout).strip().splitlines()[-1:] or ["no output"]
            return f"browser: pip install {PLAYWRIGHT_SPEC} failed ({tail[0]}); the browser tests will be skipped"
        importlib.invalidate_caches()
    ok, why = browser_status()
    return "browser: chromium and playwright installed" if ok else f"browser: {why}"


def main() -> int:
    print(install_orthanc(), file=sys.stderr)
    print(install_browser(), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
