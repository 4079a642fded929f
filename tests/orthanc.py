"""Start and stop a private, loopback-only Orthanc PACS for the DICOMweb tests.

Orthanc 1.10 has no bind-address option: its HTTP server listens on every
interface. So each instance is locked down by its configuration (DESIGN §9):
``RemoteAccessAllowed: false`` (requests from any address other than the
loopback one are refused), the DICOM port disabled, a free HTTP port chosen at
run time, storage and index in a temporary folder, and the DICOMweb plugin as
the only plugin. Tests talk to it on 127.0.0.1 only.

Import the ``orthanc_server`` fixture into a test module to use it.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tools.sysdeps import orthanc_status

#: Where Debian's orthanc-dicomweb package puts the plugin (``dpkg -L orthanc-dicomweb``).
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
STARTUP_TIMEOUT_S = 20.0


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def orthanc_config(workdir: Path, port: int) -> dict:
    """The locked-down configuration of a throw-away Orthanc instance in ``workdir``."""
    return {
        "Name": "medbench-test",
        "StorageDirectory": str(workdir / "storage"),
        "IndexDirectory": str(workdir / "index"),
        "HttpServerEnabled": True,
        "HttpPort": port,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomServerEnabled": False,
        "Plugins": [str(DICOMWEB_PLUGIN)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": False, "Host": "127.0.0.1"},
        "HttpThreadsCount": 4,
        "ConcurrentJobs": 1,
        "SaveJobs": False,
        "StableAge": 1,
    }


@dataclass
class OrthancServer:
    """A running Orthanc child process and how to reach it."""

    process: subprocess.Popen
    port: int
    workdir: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def dicomweb_url(self) -> str:
        return f"{self.url}/dicom-web"

    @property
    def log_path(self) -> Path:
        return self.workdir / "orthanc.log"

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """Terminate the process and wait for it (kill if it does not stop in 10 s)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start_orthanc(workdir: Path, timeout: float = STARTUP_TIMEOUT_S) -> OrthancServer:
    """Start Orthanc with :func:`orthanc_config` and wait until ``GET /system`` answers."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = workdir / "orthanc.json"
    config.write_text(json.dumps(orthanc_config(workdir, port), indent=2))
    log = (workdir / "orthanc.log").open("wb")
    proc = subprocess.Popen(["Orthanc", str(config)], stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
    log.close()
    server = OrthancServer(proc, port, workdir)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"Orthanc exited with code {proc.returncode} at startup; log:\n{server.log_tail()}")
        try:
            up = requests.get(f"{server.url}/system", timeout=1).ok
        except requests.ConnectionError:
            up = False
        if up:
            plugins = requests.get(f"{server.url}/plugins", timeout=5).json()
            if "dicom-web" in plugins:
                return server
            server.stop()
            raise RuntimeError(f"Orthanc started without its DICOMweb plugin (loaded: {plugins}); log:\n{server.log_tail()}")
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"Orthanc did not answer GET /system within {timeout:.0f} s; log:\n{server.log_tail()}")


def listening_addresses(pid: int) -> list[str]:
    """Local ``address:port`` of every TCP socket that process ``pid`` listens on (from ``ss -ltnp``)."""
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True, timeout=10).stdout
    return sorted(line.split()[3] for line in out.splitlines() if re.search(rf"pid={pid},", line))


def non_loopback_ipv4() -> list[str]:
    """This machine's global IPv4 addresses (from ``ip -4 -o addr show scope global``)."""
    out = subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"], capture_output=True, text=True, timeout=10)
    return [m.split("/")[0] for m in re.findall(r"\binet (\S+)", out.stdout)]


@pytest.fixture(scope="module")
def orthanc_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrthancServer]:
    """A fresh Orthanc for one test module; skipped with the exact reason when not installed."""
    available, reason = orthanc_status()
    if not available:
        pytest.skip(reason)
    server = start_orthanc(tmp_path_factory.mktemp("orthanc"))
    try:
        yield server
    finally:
        server.stop()
