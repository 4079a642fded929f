"""Start JupyterLab on the notebooks with the medbench kernel (``make lab``).

* binds to 127.0.0.1 unless ``--ip=...`` is given (a notebook server runs
  code: it should not listen on every interface by default);
* adds ``--allow-root`` only when running as root (JupyterLab refuses to start
  as root without it, and the flag means nothing otherwise);
* picks the first free port from 8888 (or the one given with ``--port``) and
  a fresh token, and prints the URL to open before starting;
* passes every other argument through to ``jupyter lab``
  (``make lab LAB_ARGS="--no-browser --port=9000"``).

The browser tests start JupyterLab with :func:`lab_command` too.
"""

from __future__ import annotations

import os
import secrets
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_IP = "127.0.0.1"
DEFAULT_PORT = 8888


def _option(args: Sequence[str], *names: str) -> str | None:
    """The value of ``--name=value`` or ``--name value`` for any of ``names`` (last one wins)."""
    value = None
    for i, arg in enumerate(args):
        for name in names:
            if arg.startswith(f"--{name}="):
                value = arg.split("=", 1)[1]
            elif arg == f"--{name}" and i + 1 < len(args):
                value = args[i + 1]
    return value


def port_is_free(ip: str, port: int) -> bool:
    """Whether ``port`` can be bound on ``ip`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((ip if ip not in ("", "*", "0.0.0.0") else "0.0.0.0", port))
        except OSError:
            return False
    return True


def free_port(ip: str = DEFAULT_IP, start: int = DEFAULT_PORT, tries: int = 50) -> int:
    """The first free port from ``start`` (raises OSError when none of ``tries`` ports is free)."""
    for port in range(start, start + tries):
        if port_is_free(ip, port):
            return port
    raise OSError(f"no free port in {start}..{start + tries - 1} on {ip}")


def lab_command(
    notebook_dir: Path,
    extra: Sequence[str] = (),
    *,
    python: str = sys.executable,
    is_root: bool | None = None,
    token: str | None = None,
) -> tuple[list[str], str]:
    """``(argv, url)`` to start JupyterLab on ``notebook_dir`` and the URL (with token) to open."""
    extra = list(extra)
    ip = _option(extra, "ip", "ServerApp.ip") or DEFAULT_IP
    given_port = _option(extra, "port", "ServerApp.port")
    port = int(given_port) if given_port else free_port(ip)
    token = _option(extra, "IdentityProvider.token", "ServerApp.token") or token or secrets.token_hex(24)
    root = os.geteuid() == 0 if is_root is None else is_root
    argv = [python, "-m", "jupyter", "lab", f"--ServerApp.root_dir={notebook_dir}"]
    if _option(extra, "ip", "ServerApp.ip") is None:
        argv.append(f"--ip={ip}")
    if given_port is None:
        argv += [f"--port={port}", "--ServerApp.port_retries=0"]
    if _option(extra, "IdentityProvider.token", "ServerApp.token") is None:
        argv.append(f"--IdentityProvider.token={token}")
    if root and "--allow-root" not in extra:
        argv.append("--allow-root")
    argv += extra
    host = "127.0.0.1" if ip in ("", "*", "0.0.0.0") else ip
    host = f"[{host}]" if ":" in host else host
    url = f"http://{host}:{port}/lab" + (f"?token={token}" if token else "")
    return argv, url


def main(argv: Sequence[str] | None = None) -> int:
    extra = list(sys.argv[1:] if argv is None else argv)
    command, url = lab_command(ROOT / "notebooks", extra)
    print(f"JupyterLab on {ROOT / 'notebooks'} with the 'medbench' kernel:\n    {url}\n(Ctrl-C to stop)", flush=True)
    os.execv(command[0], command)
    return 0  # pragma: no cover - execv does not return


if __name__ == "__main__":
    raise SystemExit(main())
