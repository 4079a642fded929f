"""medbench.hashing: file and folder digests."""

from __future__ import annotations

import hashlib
from pathlib import Path

from medbench.hashing import hash_path, sha256_file


def test_sha256_file_matches_hashlib(tmp_path: Path) -> None:
    f = tmp_path / "d.bin"
    f.write_bytes(b"abc" * 1_000_000)
    assert sha256_file(f) == hashlib.sha256(b"abc" * 1_000_000).hexdigest()
    assert hash_path(f) == sha256_file(f)


def test_hash_path_folder_depends_on_names_and_contents(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "f").write_text("1")
    h1 = hash_path(tmp_path / "a")
    (tmp_path / "a" / "f").write_text("2")
    h2 = hash_path(tmp_path / "a")
    (tmp_path / "a" / "f").rename(tmp_path / "a" / "g")
    assert len({h1, h2, hash_path(tmp_path / "a")}) == 3
