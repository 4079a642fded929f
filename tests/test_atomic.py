"""medbench.atomic: outputs are whole or absent, with ordinary permissions."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from medbench import atomic


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_write_text_replaces_whole_file_with_umask_mode(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "out.txt"
    atomic.write_text(target, "hello")
    assert target.read_text() == "hello"
    assert target.stat().st_mode & 0o777 == 0o666 & ~_umask()
    assert [p.name for p in target.parent.iterdir()] == ["out.txt"]


def test_failure_leaves_previous_content_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic.atomic_path(target) as tmp:
            tmp.write_text("partial")
            raise RuntimeError("boom")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_atomic_dir_refuses_existing_and_cleans_up_on_failure(tmp_path: Path) -> None:
    with pytest.raises(FileExistsError):
        with atomic.atomic_dir(tmp_path):
            pass
    final = tmp_path / "run"
    with pytest.raises(ValueError):
        with atomic.atomic_dir(final) as tmp:
            (tmp / "a").write_text("x")
            raise ValueError("boom")
    assert list(tmp_path.iterdir()) == []
    with atomic.atomic_dir(final) as tmp:
        (tmp / "a").write_text("x")
    assert (final / "a").read_text() == "x" and final.stat().st_mode & 0o777 == 0o777 & ~_umask()
