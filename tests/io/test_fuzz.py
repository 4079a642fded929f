"""Property-based fuzzing of the DICOM reader, the audit and de-identification (hypothesis).

Valid files (explicit and implicit VR, RLE-encapsulated, deflated) are mutated:
cut at every element boundary or anywhere, bytes flipped, element lengths made
absurd, VRs replaced, deflated streams damaged. For every mutant:

* the audit gives exactly one row, and a failed row has a finding and a reason;
* a cut file is never readable (a truncation is always noticed);
* discovery, loading and de-identification never raise anything but a
  :class:`~medbench.errors.MedbenchError`; de-identification gives one row and
  never writes a file the reader called damaged;
* memory stays bounded (tracemalloc) and every example finishes in bounded time;
* the source file is byte-identical afterwards.

Deterministic (``derandomize=True``) with a fixed number of examples, so CI
runs the same cases every time.
"""

from __future__ import annotations

import functools
import hashlib
import tempfile
import time
import tracemalloc
import warnings
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.filereader import data_element_generator
from pydicom.uid import DeflatedExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless

from medbench.audit.scan import COLUMNS, scan_file
from medbench.errors import MedbenchError
from medbench.io import deid
from medbench.io.dicom import discover, load_series
from medbench.io.dicom.headers import ERROR_KINDS
from medbench.io.dicom.write import write_series
from tests.io.hostile import small_volume

KEY = b"fuzz-test-key-0123456789abcdef"
#: Bytes a single example may allocate at its peak (the files are a few KB; a leak or bomb would be far above).
MEMORY_LIMIT = 64 * 2**20
#: Seconds one example may take (a guard against hangs and unbounded work, not a speed claim).
TIME_LIMIT = 20.0


@dataclass(frozen=True)
class Base:
    """A valid file to mutate: its bytes, element boundaries, and (offset, size) of length and VR fields."""

    data: bytes
    boundaries: tuple[int, ...]
    lengths: tuple[tuple[int, int], ...]
    vrs: tuple[int, ...]
    deflated: bool


def _layout(data: bytes, implicit: bool, deflated: bool) -> tuple[tuple[int, ...], tuple[tuple[int, int], ...], tuple[int, ...]]:
    """Element boundaries and the offsets of length and VR fields (file meta, and the data set unless deflated)."""
    import io

    fp = io.BytesIO(data)
    fp.seek(132)
    boundaries, lengths, vrs = [132], [], []

    def record(el: object, explicit: bool) -> None:
        tell, length, vr = el.value_tell, el.length, el.VR  # type: ignore[attr-defined]
        long = explicit and vr in ("OB", "OD", "OF", "OL", "OV", "OW", "SQ", "UC", "UN", "UR", "UT")
        header = 12 if long else 8
        start = tell - header
        if explicit:
            vrs.append(start + 4)
            lengths.append((start + 8, 4) if long else (start + 6, 2))
        else:
            lengths.append((start + 4, 4))
        if length != 0xFFFFFFFF:
            boundaries.append(tell + length)

    for el in data_element_generator(fp, False, True, stop_when=lambda tag, vr, length: tag >> 16 != 2):
        record(el, True)
    if not deflated:
        for el in data_element_generator(fp, implicit, True, stop_when=lambda tag, vr, length: tag == 0x7FE00010):
            record(el, not implicit)
        boundaries.append(fp.tell())
    return tuple(sorted(set(boundaries))), tuple(lengths), tuple(vrs)


@functools.cache
def bases() -> dict[str, Base]:
    """The valid files, written once into a temporary folder that lives as long as the test process."""
    folder = Path(tempfile.mkdtemp(prefix="medbench-fuzz-"))
    patient = {"PatientName": "FUZZ^PATIENT", "PatientID": "FUZZ-1", "PatientBirthDate": "19800101"}
    src = write_series(small_volume(1), folder / "src", uid_seed="fuzz", patient=patient)[0]
    out: dict[str, Base] = {}
    for name, syntax in (("explicit", None), ("implicit", ImplicitVRLittleEndian), ("rle", RLELossless),
                         ("deflated", DeflatedExplicitVRLittleEndian)):  # fmt: skip
        ds = pydicom.dcmread(src)
        if syntax == RLELossless:
            ds.compress(RLELossless)
        elif syntax is not None:
            ds.file_meta.TransferSyntaxUID = syntax
        path = folder / f"{name}.dcm"
        ds.save_as(path, enforce_file_format=True)
        data = path.read_bytes()
        boundaries, lengths, vrs = _layout(data, name == "implicit", name == "deflated")
        out[name] = Base(data, boundaries, lengths, vrs, name == "deflated")
    return out


@st.composite
def mutants(draw: st.DrawFn) -> tuple[str, str, bytes]:
    """(base name, mutation, bytes) of one damaged file."""
    name = draw(st.sampled_from(sorted(bases())))
    base = bases()[name]
    data = bytearray(base.data)
    kind = draw(st.sampled_from(["cut at a boundary", "cut anywhere", "flip bytes", "absurd length", "wrong VR"]))
    if kind == "cut at a boundary":
        data = data[: draw(st.sampled_from([b for b in base.boundaries if b < len(data)]))]
    elif kind == "cut anywhere":
        data = data[: draw(st.integers(0, len(data) - 1))]
    elif kind == "flip bytes":
        for pos in draw(st.lists(st.integers(0, len(data) - 1), min_size=1, max_size=8)):
            data[pos] ^= draw(st.integers(1, 255))
    elif kind == "absurd length":
        offset, size = draw(st.sampled_from(base.lengths))
        choices = [0xFFFF, 0xFFFE, 0x8001, 0] if size == 2 else [0xFFFFFFFF, 0xFFFFFFF0, 0x7FFFFFFF, 10 * len(data), 1]
        data[offset : offset + size] = draw(st.sampled_from(choices)).to_bytes(size, "little")
    else:
        offset = draw(st.sampled_from(base.vrs))
        data[offset : offset + 2] = draw(st.sampled_from([b"SQ", b"UN", b"OB", b"UT", b"XX", b"\0\0", b"AT", b"PN"]))
    return name, kind, bytes(data)


def _check(name: str, kind: str, data: bytes, folder: Path) -> None:
    src = folder / "in"
    src.mkdir()
    path = src / "mutant.dcm"
    path.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()

    row = scan_file(path)
    assert set(row) == set(COLUMNS)
    if not row["readable"]:
        assert row["error_kind"] in ERROR_KINDS and row["error"], row
    if kind.startswith("cut"):
        assert not row["readable"], f"{name}: a file cut to {len(data)} bytes was called readable"

    found = discover(src)
    assert len(found.files) + len(found.skipped) == 1
    assert bool(found.files) == bool(row["readable"])  # discovery and the audit agree: one reader
    if found.files and "Rows" in found.files[0].dataset:
        try:
            load_series(found.files[0])
        except MedbenchError:
            pass  # refused with a reason: fine

    report = deid.deidentify_folder(src, folder / "out", KEY, allow_burned_in=True)
    assert len(report.rows) == 1 and report.rows["status"].iloc[0] in deid.STATUSES
    status, reason = report.rows["status"].iloc[0], report.rows["reason"].iloc[0]
    assert status == "written" or reason, report.rows
    if not row["readable"]:
        assert status != "written", f"{name}/{kind}: the reader said {row['error']!r} but deid wrote it"
    written = [p for p in (folder / "out").rglob("*") if p.is_file()]
    assert len(written) == (status == "written")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest


@pytest.mark.slow
@settings(max_examples=250, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(mutants())
def test_mutated_files_give_one_row_never_a_traceback(mutant: tuple[str, str, bytes]) -> None:
    name, kind, data = mutant
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tracemalloc.start()
        start = time.perf_counter()
        try:
            _check(name, kind, data, Path(tmp))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        elapsed = time.perf_counter() - start
    assert peak < MEMORY_LIMIT, f"{name}/{kind}: peak {peak / 2**20:.0f} MiB"
    assert elapsed < TIME_LIMIT, f"{name}/{kind}: {elapsed:.1f} s"


def test_the_bases_are_valid_and_the_layout_is_right() -> None:
    """The fuzzer starts from files the reader accepts, with boundaries where elements really end."""
    for name, base in bases().items():
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"{name}.dcm"
            path.write_bytes(base.data)
            assert scan_file(path)["readable"], name
        assert base.boundaries[0] == 132 and len(base.boundaries) > (4 if base.deflated else 20)
        assert all(base.data[offset : offset + 2].isalpha() for offset in base.vrs)

