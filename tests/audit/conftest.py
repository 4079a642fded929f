"""Fixtures for the audit tests (helpers live in ``audit_helpers``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.audit.audit_helpers import truncate, write


@pytest.fixture
def mixed_tree(tmp_path: Path) -> Path:
    """A folder with a good series, a gapped series, a truncated slice, a text file,
    an empty file and a directory named like a file (holding one more good slice).

    Layout (8 + 7 + 8 + 1 + 1 + 1 = 26 files):

    * ``good/``   8 slices, valid
    * ``gapped/`` 7 slices (IM0004 removed)
    * ``broken/`` 8 slices of a third series, IM0003 cut inside its pixel data
    * ``notes.txt``, ``empty.dcm``
    * ``scan.dcm/slice`` a folder named like a file, holding the one slice of a fourth series
    """
    root = tmp_path / "tree"
    root.mkdir()
    write(root / "good", "good")
    gapped = write(root / "gapped", "gapped", series_number=2)
    gapped[3].unlink()
    broken = write(root / "broken", "broken", series_number=3)
    truncate(broken[2], 100)
    (root / "notes.txt").write_text("patient list\nnothing to see here\n", encoding="utf-8")
    (root / "empty.dcm").write_bytes(b"")
    folder = root / "scan.dcm"
    folder.mkdir()
    write(tmp_path / "extra", "extra", series_number=4)
    (folder / "slice").write_bytes((tmp_path / "extra" / "IM0001.dcm").read_bytes())
    return root
