"""Where medbench keeps generated data, and how a cache entry is built whole.

The cache folder is, in order of precedence: the ``cache_dir`` a caller
passes, the environment variable ``MEDBENCH_CACHE``, ``$XDG_CACHE_HOME/medbench``
and ``~/.cache/medbench``. An entry is a folder that is complete exactly when
its marker file exists: it is assembled in a temporary sibling folder and
renamed into place (:func:`medbench.atomic.atomic_dir`), so a crash or an
interrupted notebook never leaves half an entry behind.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path

from medbench.atomic import atomic_dir

#: Environment variable that moves the whole cache (e.g. to a shared disk).
ENV_VAR = "MEDBENCH_CACHE"


def cache_root(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The medbench cache folder: ``cache_dir``, else ``$MEDBENCH_CACHE``, else the user cache."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "medbench"


def is_complete(entry: str | os.PathLike[str], marker: str) -> bool:
    """Whether the cache entry folder exists and holds its marker file."""
    return (Path(entry) / marker).is_file()


def build_entry(
    entry: str | os.PathLike[str],
    build: Callable[[Path], None],
    *,
    marker: str,
    refresh: bool = False,
) -> bool:
    """Make sure ``entry`` is a complete cache entry; return True if it was built now.

    ``build(tmp)`` fills an empty temporary folder and must write ``marker``
    (last). An existing complete entry is kept unless ``refresh``; an
    incomplete or refreshed one is replaced only after the new one is whole.
    If another process finishes the same entry first, its result is used.
    """
    entry = Path(entry)
    if not refresh and is_complete(entry, marker):
        return False
    if not entry.exists():
        try:
            with atomic_dir(entry) as tmp:
                build(tmp)
                _check_marker(tmp, marker, entry)
        except OSError:
            if is_complete(entry, marker):  # a concurrent builder won the rename
                return False
            raise
        return True
    token = f"{os.getpid()}-{secrets.token_hex(4)}"
    staging = entry.with_name(f".{entry.name}.new-{token}")
    with atomic_dir(staging) as tmp:
        build(tmp)
        _check_marker(tmp, marker, entry)
    trash = entry.with_name(f".{entry.name}.old-{token}")
    os.replace(entry, trash)
    os.replace(staging, entry)
    shutil.rmtree(trash, ignore_errors=True)
    return True


def _check_marker(tmp: Path, marker: str, entry: Path) -> None:
    if not (tmp / marker).is_file():
        raise RuntimeError(f"building cache entry {entry} did not write its marker file {marker!r}")
