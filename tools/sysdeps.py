"""Install the optional system packages the test-suite uses (run by `make install`).

Orthanc with its DICOMweb plugin is a real PACS for the DICOMweb round-trip
test. It is installed from Debian's packages when this is a Debian machine and
we are root; otherwise a line says why not and the Orthanc tests are skipped
with that reason. The install never starts the Debian service (a
``policy-rc.d`` forbids it): tests start their own loopback-only instance.
Never fatal: the workbench itself does not need Orthanc.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

PACKAGES = ("orthanc", "orthanc-dicomweb")
POLICY = Path("/usr/sbin/policy-rc.d")


def orthanc_status() -> tuple[bool, str]:
    """(available, reason): whether the Orthanc binary and DICOMweb plugin are installed."""
    if shutil.which("Orthanc") is None:
        return False, "the Orthanc server is not installed (Debian packages orthanc, orthanc-dicomweb)"
    if not any(Path(p).exists() for p in ("/usr/share/orthanc/plugins/libOrthancDicomWeb.so",)):
        return False, "the Orthanc DICOMweb plugin is not installed (Debian package orthanc-dicomweb)"
    return True, "installed"


def install_orthanc() -> str:
    ok, _ = orthanc_status()
    if ok:
        return "orthanc: already installed"
    if os.environ.get("MEDBENCH_SKIP_SYSDEPS"):
        return "orthanc: skipped (MEDBENCH_SKIP_SYSDEPS is set)"
    if shutil.which("apt-get") is None:
        return "orthanc: not installed (no apt-get on this machine); the DICOMweb round-trip test will be skipped"
    if os.geteuid() != 0:
        return "orthanc: not installed (needs root for apt-get); the DICOMweb round-trip test will be skipped"
    created = False
    if not POLICY.exists():
        POLICY.write_text("#!/bin/sh\nexit 101\n")
        POLICY.chmod(0o755)
        created = True
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES]):
            res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
            if res.returncode != 0:
                tail = (res.stderr or res.stdout).strip().splitlines()[-1:] or ["no output"]
                return f"orthanc: install failed ({' '.join(cmd)}: {tail[0]}); the DICOMweb round-trip test will be skipped"
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"orthanc: install failed ({exc}); the DICOMweb round-trip test will be skipped"
    finally:
        if created:
            POLICY.unlink(missing_ok=True)
    ok, why = orthanc_status()
    return "orthanc: installed" if ok else f"orthanc: {why}"


def main() -> int:
    print(install_orthanc(), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
