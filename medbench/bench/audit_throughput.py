"""Benchmark ``audit``: files/s of the header-only scan against a full pixel-reading loop.

A synthetic tree of small DICOM series (written by
:func:`medbench.io.dicom.write.write_series`, cached in the temp folder) is
read three ways in the same run, over the same files:

* ``full read`` (the baseline, ratio 1.0): ``pydicom.dcmread(path).pixel_array``
  per file — what a naive audit does;
* ``dcmread header loop``: ``pydicom.dcmread(path, stop_before_pixels=True)``
  per file — the obvious header-only reader, for reference;
* ``scan_headers``: :func:`medbench.audit.scan_headers`, which also walks
  the tree, checks every file's integrity with the one header reader
  (:mod:`medbench.io.dicom.headers`), keeps each parsed header for the series
  summary (so no file is read twice) and builds the table.

``ratio`` is baseline time / method time (higher is faster). Targets
reported, never asserted: scan_headers >= :data:`TARGET_RATIO` x the full
read and >= :data:`TARGET_FILES_PER_S` files/s. The scan never touches pixel
bytes, so the ratio depends on what a pixel read costs: uncompressed slices
are cheap to read (the ratio then measures header parsing alone), JPEG 2000
slices need decoding. By default both syntaxes are measured at 64x64 and
256x256 pixels.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pydicom
from pydicom.uid import UID, JPEG2000Lossless

from medbench.atomic import atomic_dir
from medbench.audit.scan import iter_files, scan_headers
from medbench.bench.harness import time_call, write_results
from medbench.errors import ConfigError
from medbench.image.volume import Volume
from medbench.io.dicom.write import write_series

NAME = "audit"
TARGET_RATIO = 5.0
TARGET_FILES_PER_S = 300.0

#: Bump when the synthetic tree changes, so stale caches are not reused.
_CACHE_VERSION = 2

#: Pixel encodings of the synthetic trees: name -> transfer syntax (None: as written, Explicit VR Little Endian).
SYNTAXES: dict[str, UID | None] = {"native": None, "jpeg2000": JPEG2000Lossless}

#: Smallest slice openjpeg encodes with its default number of resolution levels.
MIN_JPEG2000_SIZE = 32


def synthetic_tree(
    n_files: int,
    image_size: int = 64,
    syntax: str = "native",
    *,
    slices_per_series: int = 60,
    cache_dir: Path | None = None,
) -> Path:
    """A cached folder of ``n_files`` CT slices of ``image_size`` squared pixels in series of ``slices_per_series``.

    ``syntax`` is a key of :data:`SYNTAXES` (``"jpeg2000"``: every file
    re-encoded JPEG 2000 Lossless with pydicom's encoder plugins). Built once
    per parameter set under ``cache_dir`` (default: the system temp folder) in
    a temporary folder renamed into place, so an interrupted build is never
    reused. Values are seeded: every build is identical.
    """
    if n_files < 1 or image_size < 1 or slices_per_series < 1:
        raise ConfigError(
            f"audit benchmark sizes must be positive, got n_files={n_files}, image_size={image_size}, "
            f"slices_per_series={slices_per_series}"
        )
    if syntax not in SYNTAXES:
        raise ConfigError(f"unknown pixel encoding {syntax!r} for the audit benchmark; choose from {sorted(SYNTAXES)}")
    if syntax == "jpeg2000" and image_size < MIN_JPEG2000_SIZE:
        raise ConfigError(
            f"JPEG 2000 trees need image_size >= {MIN_JPEG2000_SIZE} (openjpeg's default 6 resolution levels), "
            f"got {image_size}"
        )
    base = cache_dir or Path(tempfile.gettempdir()) / "medbench-bench-audit"
    root = base / f"v{_CACHE_VERSION}-{n_files}files-{image_size}px-{syntax}-{slices_per_series}per"
    if root.is_dir():
        return root
    rng = np.random.default_rng(0)
    with atomic_dir(root) as tmp:
        remaining, index = n_files, 0
        while remaining > 0:
            n = min(slices_per_series, remaining)
            hu = rng.normal(40.0, 200.0, size=(image_size, image_size, n)).clip(-1000, 2000).astype(np.float32)
            volume = Volume.from_spacing(hu, spacing=(0.8, 0.8, 2.0))
            paths = write_series(volume, tmp / f"series{index:03d}", uid_seed=f"bench-audit-{index}", series_number=index + 1)
            target = SYNTAXES[syntax]
            if target is not None:
                _recode(paths, target)
            remaining -= n
            index += 1
    return root


def _recode(paths: list[Path], uid: UID) -> None:
    """Re-encode files in place (they live in the benchmark's own temporary build folder)."""
    for path in paths:
        ds = pydicom.dcmread(path)
        ds.compress(uid)
        ds.save_as(path, enforce_file_format=True)


def _full_read(root: Path) -> int:
    count = 0
    for path in iter_files(root):
        np.asarray(pydicom.dcmread(path).pixel_array)
        count += 1
    return count


def _header_loop(root: Path) -> int:
    count = 0
    for path in iter_files(root):
        pydicom.dcmread(path, stop_before_pixels=True)
        count += 1
    return count


def measure(root: Path, *, repeat: int = 3, warmup: int = 1) -> list[dict[str, Any]]:
    """Time the three readers over ``root``; one row each, ratio relative to the full read."""
    n = sum(1 for _ in iter_files(root))
    methods = {
        "full read (dcmread + pixel_array)": lambda: _full_read(root),
        "dcmread header loop (stop_before_pixels)": lambda: _header_loop(root),
        "scan_headers (medbench)": lambda: scan_headers(root),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        timings = {name: time_call(fn, repeat=repeat, warmup=warmup) for name, fn in methods.items()}
    baseline = timings["full read (dcmread + pixel_array)"].median_s
    return [
        {
            "method": name,
            "files": n,
            "median_s": t.median_s,
            "min_s": t.min_s,
            "files_per_s": n / t.median_s,
            "ratio": baseline / t.median_s,
        }
        for name, t in timings.items()
    ]


def run(
    n_files: int = 600,
    out_dir: str | os.PathLike[str] | None = None,
    *,
    image_sizes: Sequence[int] = (64, 256),
    syntaxes: Sequence[str] = ("native", "jpeg2000"),
    slices_per_series: int = 60,
    repeat: int = 3,
    warmup: int = 1,
    cache_dir: str | os.PathLike[str] | None = None,
) -> pd.DataFrame:
    """Run the benchmark, print and write its table (``reports/bench/audit/`` by default); return the table."""
    rows = []
    for syntax in syntaxes:
        for size in image_sizes:
            root = synthetic_tree(
                n_files, size, syntax, slices_per_series=slices_per_series,
                cache_dir=Path(cache_dir) if cache_dir else None,
            )  # fmt: skip
            for row in measure(root, repeat=repeat, warmup=warmup):
                case = f"{size}x{size} {syntax}: {row['method']}"
                rows.append({"case": case, "image_size": f"{size}x{size}", "syntax": syntax, **row})
    table = pd.DataFrame(rows)
    scan = table[table["method"] == "scan_headers (medbench)"]
    table["meets_targets"] = pd.Series(
        (scan["ratio"] >= TARGET_RATIO) & (scan["files_per_s"] >= TARGET_FILES_PER_S), index=scan.index
    ).reindex(table.index)
    out = write_results(
        NAME,
        table.to_dict("records"),
        out_dir,
        label="case",
        extra={
            "n_files": n_files,
            "image_sizes": list(image_sizes),
            "syntaxes": list(syntaxes),
            "slices_per_series": slices_per_series,
            "repeat": repeat,
            "warmup": warmup,
            "targets": {"ratio_vs_full_read": TARGET_RATIO, "files_per_s": TARGET_FILES_PER_S},
        },
    )
    shown = table.drop(columns=["case"]).round({"median_s": 4, "min_s": 4, "files_per_s": 0, "ratio": 2})
    print(f"benchmark {NAME}: {n_files} files per case, median of {repeat} runs after {warmup} warm-up")
    print(shown.to_string(index=False))
    print(f"targets (reported, not asserted): scan_headers >= {TARGET_RATIO:g}x the full read and "
          f">= {TARGET_FILES_PER_S:g} files/s")
    print(f"results: {out}")
    return table
