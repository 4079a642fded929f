"""The audit reads each header once: opens and parses counted per file while ``run_audit`` runs."""

from __future__ import annotations

import builtins
import io
import os
from collections import Counter
from pathlib import Path
from typing import Any

import pydicom
import pytest

from medbench.audit import run_audit


def _count_opens(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Count every ``open`` of a file (builtins / io) by resolved path."""
    opens: Counter[str] = Counter()
    real_open = builtins.open

    def counting_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(file, (str, os.PathLike)):
            opens[os.path.realpath(file)] += 1
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", counting_open)
    monkeypatch.setattr(io, "open", counting_open)
    return opens


def _count_dcmread(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    calls: list[object] = []
    real = pydicom.dcmread

    def counting(fp: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(fp)
        return real(fp, *args, **kwargs)

    monkeypatch.setattr(pydicom, "dcmread", counting)
    return calls


def _files(root: Path) -> list[str]:
    return sorted(os.path.realpath(p) for p in root.rglob("*") if p.is_file() and p.stat().st_size > 0)


def test_header_only_audit_opens_and_parses_each_file_once(
    mixed_tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opens = _count_opens(monkeypatch)
    dcmread_calls = _count_dcmread(monkeypatch)
    result = run_audit(mixed_tree, tmp_path / "report", sample_pixels=False)
    monkeypatch.undo()
    files = _files(mixed_tree)
    assert len(files) == 25 and result.counts["files_found"] == 26  # the empty file is judged by its size alone
    per_file = {f: opens[f] for f in files}
    assert per_file == dict.fromkeys(files, 1), {f: n for f, n in per_file.items() if n != 1}
    assert dcmread_calls == []  # every file took the element-parser path: one parse, no dcmread


def test_reader_parse_calls_per_file(mixed_tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Counted at the reader itself: one ``read_header`` and one parse (fast or dcmread) per file."""
    from medbench.io.dicom import headers

    reads: Counter[str] = Counter()
    parses: list[str] = []
    real_read, real_fast, real_dcmread = headers.read_header, headers._fast, headers._with_dcmread

    def read(path: Any, **kwargs: Any) -> Any:
        reads[os.path.realpath(path)] += 1
        return real_read(path, **kwargs)

    def fast(*args: Any) -> Any:
        parses.append("fast")
        return real_fast(*args)

    def slow(*args: Any, **kwargs: Any) -> Any:
        parses.append("dcmread")
        return real_dcmread(*args, **kwargs)

    monkeypatch.setattr(headers, "read_header", read)
    monkeypatch.setattr(headers, "_fast", fast)
    monkeypatch.setattr(headers, "_with_dcmread", slow)
    run_audit(mixed_tree, tmp_path / "report", sample_pixels=False)
    every = sorted(os.path.realpath(p) for p in mixed_tree.rglob("*") if p.is_file())
    assert dict(reads) == dict.fromkeys(every, 1)
    dicom_like = [f for f in every if Path(f).stat().st_size > 132 and Path(f).read_bytes()[128:132] == b"DICM"]
    assert parses == ["fast"] * len(dicom_like)


def test_pixel_sampling_reads_headers_once_and_only_the_sampled_pixels(
    mixed_tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opens = _count_opens(monkeypatch)
    result = run_audit(mixed_tree / "good", tmp_path / "report")
    monkeypatch.undo()
    counts = sorted(opens[f] for f in _files(mixed_tree / "good"))
    assert result.series_df["sampled_slices"].tolist() == [3]
    assert counts == [1] * 5 + [2] * 3  # 8 headers once each; first, middle and last slice read again for pixels
