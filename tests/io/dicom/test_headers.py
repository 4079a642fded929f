"""The one header reader on hostile input: precise findings, bounded resources, any file name.

Each test names a failure class of real-world input; each asserts through the
public entry points (``discover``, ``scan_file`` / ``scan_headers``) what a
user sees, so the same test exercised the three separate readers that existed
before :mod:`medbench.io.dicom.headers`.
"""

from __future__ import annotations

import os
import shutil
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pydicom
import pytest

from medbench.audit import scan_file, scan_headers
from medbench.io.dicom import discover
from medbench.io.dicom.write import write_series
from tests.io.hostile import LATIN1_NAME, deflate_bomb, small_volume


def _row(df, name: str):
    rows = df[df["path"].str.endswith(name)]
    assert len(rows) == 1, f"expected one row for {name}, got {len(rows)}"
    return rows.iloc[0]


def _reason(result, name: str) -> str:
    reasons = [why for p, why in result.skipped if p.name == name]
    assert len(reasons) == 1, f"{name}: {reasons}"
    return reasons[0]


@pytest.fixture
def one_slice(tmp_path: Path) -> Path:
    return write_series(small_volume(1), tmp_path / "src", uid_seed="headers/one")[0]


def test_garbage_after_the_dicm_marker_is_not_parseable(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    (tmp_path / "garbage.dcm").write_bytes(b"\0" * 128 + b"DICM" + rng.integers(0, 256, 3000, dtype=np.uint8).tobytes())
    row = scan_file(tmp_path / "garbage.dcm")
    assert (row["readable"], row["error_kind"]) == (False, "not_parseable")
    assert row["error"].startswith("not parseable") and "truncated" not in row["error"]
    assert _reason(discover(tmp_path), "garbage.dcm").startswith("not parseable")


def test_garbage_after_a_valid_file_meta_is_not_parseable(one_slice: Path, tmp_path: Path) -> None:
    data = one_slice.read_bytes()
    meta_end = 132 + 12 + int.from_bytes(data[140:144], "little")  # (0002,0000) group length
    rng = np.random.default_rng(4)
    (tmp_path / "body.dcm").write_bytes(data[:meta_end] + rng.integers(0, 256, 3000, dtype=np.uint8).tobytes())
    row = scan_file(tmp_path / "body.dcm")
    assert row["error_kind"] == "not_parseable", row["error"]


def test_symlink_loops_are_loops(tmp_path: Path, one_slice: Path) -> None:
    root = tmp_path / "tree"
    root.mkdir()
    shutil.copy(one_slice, root / "slice.dcm")
    os.symlink("b", root / "a")
    os.symlink("a", root / "b")
    (root / "sub").mkdir()
    os.symlink("..", root / "sub" / "up")  # a folder link back to an ancestor
    df = scan_headers(root)
    for name in ("/a", "/b", "sub/up"):
        row = _row(df, name)
        assert row["error_kind"] == "symlink_loop" and row["error"].startswith("symbolic link loop"), row["error"]
    result = discover(root)
    assert [f.path.name for f in result.files] == ["slice.dcm"]
    assert all(_reason(result, n).startswith("symbolic link loop") for n in ("a", "b", "up"))


def test_a_link_to_a_folder_is_reported_not_followed(tmp_path: Path, one_slice: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(one_slice, outside / "slice.dcm")
    root = tmp_path / "tree"
    root.mkdir()
    os.symlink(outside, root / "link")
    row = _row(scan_headers(root), "/link")
    assert row["error_kind"] == "link_not_followed" and str(outside) in row["error"]


def test_an_unlistable_folder_is_a_finding(tmp_path: Path, one_slice: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "tree"
    (root / "locked").mkdir(parents=True)
    shutil.copy(one_slice, root / "locked" / "hidden.dcm")
    shutil.copy(one_slice, root / "visible.dcm")
    real_scandir = os.scandir

    def scandir(path: object = ".") -> object:  # root cannot make a folder unreadable to itself: refuse by hand
        if Path(os.fspath(path)).name == "locked":  # type: ignore[arg-type]
            raise PermissionError(13, "Permission denied", os.fspath(path))  # type: ignore[arg-type]
        return real_scandir(path)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "scandir", scandir)
    df = scan_headers(root)
    row = _row(df, "/locked")
    assert (row["readable"], row["error_kind"]) == (False, "unlistable_folder")
    assert "Permission denied" in row["error"] and "not read" in row["error"]
    assert "cannot list" in _reason(discover(root), "locked")


def test_pixel_data_longer_than_the_header_is_flagged(tmp_path: Path, one_slice: Path) -> None:
    ds = pydicom.dcmread(one_slice)
    ds.PixelData = ds.PixelData * 3  # three frames' worth, Number of Frames absent
    ds.save_as(tmp_path / "long.dcm")
    row = scan_file(tmp_path / "long.dcm")
    assert (row["readable"], row["error_kind"]) == (False, "pixel_length")
    assert "384 bytes but Rows x Columns x Frames x Samples x BitsAllocated needs 128" in row["error"]
    assert "exactly 3 x" in row["error"]
    assert "pixel data holds 384 bytes" in _reason(discover(tmp_path), "long.dcm")
    ds.PixelData = ds.PixelData[:128] + b"\0\0"  # an odd count padded to even would be fine; two extra bytes are not
    ds.save_as(tmp_path / "long.dcm")
    assert scan_file(tmp_path / "long.dcm")["error_kind"] == "pixel_length"


def test_dicomdir_with_missing_files_is_reported_by_the_audit(tmp_path: Path) -> None:
    media = tmp_path / "cd"
    shutil.copytree(Path(pydicom.__file__).parent / "data" / "test_files" / "dicomdirtests", media)
    (media / "98892001" / "CT5N" / "2062").unlink()
    df = scan_headers(media)
    row = _row(df, "CT5N/2062")
    assert (row["readable"], row["error_kind"]) == (False, "missing_reference")
    assert f"referenced by DICOMDIR {media / 'DICOMDIR'}" in row["error"] and "not on disk" in row["error"]
    assert len(df) == sum(1 for p in media.rglob("*") if p.is_file()) + 1


def test_a_second_path_to_one_file_is_read_once(tmp_path: Path, one_slice: Path) -> None:
    root = tmp_path / "tree"
    root.mkdir()
    shutil.copy(one_slice, root / "a.dcm")
    os.link(root / "a.dcm", root / "b.dcm")
    result = discover(root)
    assert [f.path.name for f in result.files] == ["a.dcm"]
    assert "the same file as" in _reason(result, "b.dcm")


def test_non_utf8_file_names_are_read_and_shown_printably(tmp_path: Path, one_slice: Path) -> None:
    name = os.fsdecode(LATIN1_NAME)
    folder = tmp_path / "names"
    folder.mkdir()
    shutil.copy(one_slice, folder / name)
    df = scan_headers(folder)
    assert df["path"].tolist() == [str(folder) + "/caf\\xe9.dcm"] and df["readable"][0]
    df.to_csv(tmp_path / "files.csv", encoding="utf-8")  # would raise on a lone surrogate
    assert [f.path.name for f in discover(folder).files] == [name]  # the real path still opens
    assert discover(folder).table()["path"].str.endswith("caf\\xe9.dcm").all()


def test_truncation_inside_the_file_meta_is_truncation(one_slice: Path, tmp_path: Path) -> None:
    (tmp_path / "cut.dcm").write_bytes(one_slice.read_bytes()[:150])
    assert scan_file(tmp_path / "cut.dcm")["error_kind"] == "truncated"


@pytest.fixture(scope="module")
def bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return deflate_bomb(tmp_path_factory.mktemp("bomb") / "bomb.dcm")


@pytest.mark.slow
def test_a_deflate_bomb_is_refused_with_bounded_memory_and_time(bomb: Path) -> None:
    assert bomb.stat().st_size < 2_000_000  # a small file ...
    tracemalloc.start()
    start = time.perf_counter()
    row = scan_file(bomb)  # ... whose data set inflates to 320 MiB
    elapsed = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 32 * 2**20, f"peak {peak / 2**20:.0f} MiB"
    assert elapsed < 30, f"{elapsed:.1f} s"  # a guard against inflating without bound, not a speed claim
    assert (row["readable"], row["error_kind"]) == (False, "too_large")
    assert row["error"] == (
        "refused: the deflated data set inflates to more than 256 MiB (medbench's limit MAX_INFLATED_BYTES); "
        "it is not read any further"
    )
    assert row["rows"] == 16384  # the header was still read


def test_a_deflated_file_below_the_limit_is_checked_whole(tmp_path: Path) -> None:
    from medbench.io.dicom.headers import read_header

    bomb_like = deflate_bomb(tmp_path / "small.dcm", rows=512, columns=512)  # 512 KiB inflated
    header = read_header(bomb_like)
    assert header.ok and header.inflated_bytes is not None and header.inflated_bytes > 512 * 512 * 2
    small = read_header(bomb_like, limit=100_000)
    assert small.error_kind == "too_large"
    data = bomb_like.read_bytes()
    (tmp_path / "cut.dcm").write_bytes(data[: len(data) - 20])
    assert scan_file(tmp_path / "cut.dcm")["error_kind"] in ("truncated", "corrupt")


def test_read_tree_gives_every_entry_one_header(tmp_path: Path, one_slice: Path) -> None:
    from medbench.io.dicom.headers import read_tree

    root = tmp_path / "tree"
    root.mkdir()
    shutil.copy(one_slice, root / "a.dcm")
    (root / "notes.txt").write_text("x")
    os.mkfifo(root / "pipe")
    tree = read_tree(root)
    kinds = {h.path.name: h.error_kind for h in tree.headers}
    assert kinds == {"a.dcm": None, "notes.txt": "not_dicom", "pipe": "not_regular"}
    with pytest.raises(FileNotFoundError, match="symbolic link loop"):
        os.symlink("loop", tmp_path / "loop")
        read_tree(tmp_path / "loop")
