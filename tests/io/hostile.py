"""Hostile real-world input for the DICOM reader, the audit and de-identification tests.

Everything is written into folders the tests own (``tmp_path``); pydicom's and
nibabel's bundled files are only read. Builders:

* :func:`csa2_header` / :func:`write_mosaic`: a Siemens MOSAIC image with a CSA
  image header written here (CSA2 "SV10" layout, as nibabel's reader expects);
* :func:`deflate_bomb`: a small Deflated Explicit VR Little Endian file whose
  data set inflates to hundreds of MB (built streaming, never held in memory);
* :func:`build_hostile_tree`: one folder holding every kind of trouble at once.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.fileset import FileSet
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian, MRImageStorage

from medbench.image.volume import Volume
from medbench.io.dicom.write import uid_from, write_series

NIBABEL_DATA = Path(__import__("nibabel").__file__).parent / "nicom" / "tests" / "data"
PYDICOM_TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"

#: The Latin-1 name "café.dcm" as raw bytes: not valid UTF-8.
LATIN1_NAME = b"caf\xe9.dcm"
#: The Latin-1 name "résumé.dcm" (a truncated file under a name that is not UTF-8).
LATIN1_BROKEN_NAME = b"r\xe9sum\xe9.dcm"


def tree_hashes(root: Path) -> dict[str, str]:
    """SHA-256 of every regular file under ``root`` reached without following links (sources unchanged?)."""
    out = {}
    for folder, _dirs, files in os.walk(root):
        for name in files:
            path = Path(folder) / name
            if path.is_symlink() or not path.is_file():
                continue
            out[os.fsencode(path.relative_to(root)).hex()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def small_volume(n_slices: int = 4, offset: float = 0.0, spacing: tuple[float, float, float] = (0.8, 0.8, 2.0),
                 origin: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> Volume:
    """An 8x8xN CT volume with distinct integer HU per voxel."""
    i, j, k = np.meshgrid(np.arange(8), np.arange(8), np.arange(n_slices), indexing="ij")
    return Volume.from_spacing((offset + 100 * k + 8 * j + i).astype(np.float32), spacing, origin=origin)


# -- Siemens MOSAIC -------------------------------------------------------------------------------


def csa2_header(tags: dict[str, tuple[str, list[str]]]) -> bytes:
    """A Siemens CSA2 header ("SV10") holding ``name -> (VR, values)``."""
    out = b"SV10" + b"\x04\x03\x02\x01" + struct.pack("<2I", len(tags), 77)
    for name, (vr, values) in tags.items():
        out += struct.pack("<64si4s3i", name.encode().ljust(64, b"\0"), len(values), vr.encode().ljust(4, b"\0"),
                           0, len(values), 77)
        for value in values:
            data = value.encode() + b"\0"
            out += struct.pack("<4i", len(data), len(data), 77, len(data)) + data + b"\0" * (-len(data) % 4)
    return out


def write_mosaic(
    path: Path,
    slices: np.ndarray,
    *,
    row_cosines: tuple[float, float, float] = (1.0, 0.0, 0.0),
    column_cosines: tuple[float, float, float] = (0.0, 1.0, 0.0),
    normal_sign: float = 1.0,
    pixel_spacing: tuple[float, float] = (2.0, 2.5),
    slice_spacing: float = 3.0,
    position: tuple[float, float, float] = (-100.0, -120.0, 30.0),
    series_uid: str | None = None,
    instance: int = 1,
    csa: bool = True,
    n_in_csa: int | None = None,
) -> Path:
    """Write ``slices`` (n, rows, columns; uint16) as one Siemens MOSAIC image with a CSA header.

    The tiles go row by row into a ``ceil(sqrt(n))`` square grid, padded with
    zero tiles; ``position`` is the mosaic's ImagePositionPatient (the corner of
    the whole tiled image, as Siemens writes it).
    """
    n, r, c = slices.shape
    t = int(np.ceil(np.sqrt(n)))
    tiled = np.zeros((t * r, t * c), dtype=np.uint16)
    for k in range(n):
        tiled[(k // t) * r : (k // t + 1) * r, (k % t) * c : (k % t + 1) * c] = slices[k]
    normal = np.cross(row_cosines, column_cosines) * normal_sign
    ds = Dataset()
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = uid_from(f"mosaic/{path.name}/{instance}")
    ds.StudyInstanceUID = uid_from("mosaic/study")
    ds.SeriesInstanceUID = series_uid or uid_from(f"mosaic/series/{path.name}")
    ds.Modality, ds.Manufacturer = "MR", "SIEMENS"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND", "MOSAIC"]
    ds.PatientName, ds.PatientID = "MOSAIC^TEST", "MOSAIC-1"
    ds.SeriesNumber, ds.InstanceNumber, ds.AcquisitionNumber = 7, instance, instance
    ds.ImageOrientationPatient = [*row_cosines, *column_cosines]
    ds.ImagePositionPatient = list(position)
    ds.PixelSpacing = list(pixel_spacing)
    ds.SliceThickness = ds.SpacingBetweenSlices = slice_spacing
    ds.Rows, ds.Columns = tiled.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    if csa:
        block = ds.private_block(0x0029, "SIEMENS CSA HEADER", create=True)
        block.add_new(0x10, "OB", csa2_header({
            "NumberOfImagesInMosaic": ("US", [str(n if n_in_csa is None else n_in_csa)]),
            "AcquisitionMatrixText": ("SH", [f"{r}*{c}"]),
            "SliceNormalVector": ("FD", [f"{v:.8f}" for v in normal]),
        }))  # fmt: skip
    ds.PixelData = tiled.tobytes()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.save_as(path, enforce_file_format=True)
    return path


def nibabel_mosaic(name: str, folder: Path) -> Path:
    """A real Siemens mosaic shipped with nibabel (``siemens_dwi_0.dcm.gz`` ...), unpacked into ``folder``."""
    src = NIBABEL_DATA / name
    dst = folder / name.removesuffix(".gz")
    folder.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(gzip.decompress(src.read_bytes()) if name.endswith(".gz") else src.read_bytes())
    return dst


# -- deflate bomb ---------------------------------------------------------------------------------


def deflate_bomb(path: Path, rows: int = 16384, columns: int = 10240) -> Path:
    """A deflated CT image whose Pixel Data is ``rows x columns`` 16-bit zeros (default 320 MiB inflated).

    Only the compressed stream (about a thousandth of that) is ever in memory.
    """
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.SOPInstanceUID = uid_from(f"bomb/{path.name}")
    ds.StudyInstanceUID, ds.SeriesInstanceUID = uid_from("bomb/study"), uid_from("bomb/series")
    ds.Modality, ds.PatientName, ds.PatientID = "CT", "BOMB^PATIENT", "BOMB-1"
    ds.Rows, ds.Columns = rows, columns
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    header = DicomBytesIO()
    header.is_little_endian, header.is_implicit_VR = True, False
    write_dataset(header, ds)
    n_bytes = rows * columns * 2
    pixel_header = struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, n_bytes)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    meta.ImplementationClassUID = uid_from("bomb/implementation")
    meta_io = DicomBytesIO()
    meta_io.is_little_endian, meta_io.is_implicit_VR = True, False
    write_file_meta_info(meta_io, meta, enforce_standard=True)
    z = zlib.compressobj(1, zlib.DEFLATED, -zlib.MAX_WBITS)
    zeros = bytes(1 << 22)
    with open(path, "wb") as fh:
        fh.write(b"\0" * 128 + b"DICM" + meta_io.getvalue())
        fh.write(z.compress(header.getvalue() + pixel_header))
        for _ in range(n_bytes // len(zeros)):
            fh.write(z.compress(zeros))
        fh.write(z.compress(bytes(n_bytes % len(zeros))) + z.flush())
    return path


# -- the hostile tree -----------------------------------------------------------------------------


def _dicomdir_with_a_missing_file(folder: Path) -> Path:
    """A DICOMDIR over two slices, then one referenced file deleted. Returns the DICOMDIR."""
    staging = folder.parent / ".fileset_staging"
    paths = write_series(small_volume(2, offset=500.0), staging, uid_seed="hostile/dicomdir",
                         series_description="indexed")
    fs = FileSet()
    for p in paths:
        fs.add(p)
    fs.write(folder)
    shutil.rmtree(staging)
    referenced = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != "DICOMDIR")
    referenced[-1].unlink()
    return folder / "DICOMDIR"


def build_hostile_tree(root: Path) -> dict[str, Path]:
    """Write a folder holding every kind of trouble; return name -> planted path.

    One readable 4-slice CT series (``good/``), and beside it: a slice under a
    Latin-1 file name (not UTF-8), a truncated copy under another one, a slice
    under a UTF-8 non-ASCII name, garbage
    after the DICM marker, a truncated slice, an empty file, a text file, pixel
    data twice as long as its header says, a file-link loop, a link to a folder
    above (a loop), a link to a folder outside (not followed), a broken link, a
    FIFO, a DICOMDIR whose second referenced file is missing, a Siemens MOSAIC,
    two reconstructions sharing one SeriesInstanceUID with interleaved
    positions, and a small valid deflated file.
    """
    root.mkdir(parents=True)
    planted: dict[str, Path] = {}
    good = write_series(small_volume(4), root / "good", uid_seed="hostile/good", series_description="good")
    planted["good"] = root / "good"
    single = write_series(small_volume(1, offset=1000.0), root.parent / ".single", uid_seed="hostile/latin1")[0]
    latin1 = Path(os.fsdecode(os.path.join(os.fsencode(root), LATIN1_NAME)))
    latin1.write_bytes(single.read_bytes())
    planted["latin1"] = latin1
    unicode_single = write_series(small_volume(1, offset=2000.0), root.parent / ".single_u", uid_seed="hostile/utf8")[0]
    planted["utf8"] = root / "ünïcode ✓.dcm"
    planted["utf8"].write_bytes(unicode_single.read_bytes())
    data = good[0].read_bytes()
    rng = np.random.default_rng(7)
    planted["garbage"] = root / "garbage.dcm"
    planted["garbage"].write_bytes(b"\0" * 128 + b"DICM" + rng.integers(0, 256, 4000, dtype=np.uint8).tobytes())
    planted["truncated"] = root / "truncated.dcm"
    planted["truncated"].write_bytes(data[:-50])
    planted["latin1_truncated"] = Path(os.fsdecode(os.path.join(os.fsencode(root), LATIN1_BROKEN_NAME)))
    planted["latin1_truncated"].write_bytes(single.read_bytes()[:-30])
    planted["empty"] = root / "empty.dcm"
    planted["empty"].write_bytes(b"")
    planted["text"] = root / "notes.txt"
    planted["text"].write_text("scanner export notes: not DICOM\n")
    ds = pydicom.dcmread(good[1])
    ds.PixelData = ds.PixelData * 2  # two frames' worth, Number of Frames absent
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = uid_from("hostile/long")
    planted["long_pixels"] = root / "long_pixels.dcm"
    ds.save_as(planted["long_pixels"], enforce_file_format=True)
    planted["loop_a"], planted["loop_b"] = root / "loop_a", root / "loop_b"
    os.symlink("loop_b", planted["loop_a"])
    os.symlink("loop_a", planted["loop_b"])
    planted["up"] = root / "good" / "up"
    os.symlink("..", planted["up"])
    outside = root.parent / "outside"
    write_series(small_volume(2, offset=3000.0), outside, uid_seed="hostile/outside")
    planted["elsewhere"] = root / "elsewhere"
    os.symlink(outside, planted["elsewhere"])
    planted["broken"] = root / "broken_link.dcm"
    os.symlink(root / "nowhere.dcm", planted["broken"])
    planted["fifo"] = root / "pipe"
    os.mkfifo(planted["fifo"])
    planted["dicomdir"] = _dicomdir_with_a_missing_file(root / "media")
    slices = np.arange(5 * 6 * 4, dtype=np.uint16).reshape(5, 6, 4) * 3
    planted["mosaic"] = write_mosaic(root / "mosaic.dcm", slices)
    shared = root / "shared_uid"
    study = uid_from("hostile/shared/study")
    soft = write_series(small_volume(3, spacing=(0.8, 0.8, 4.0)), shared / "soft", uid_seed="hostile/soft",
                        study_uid=study, extra={"ConvolutionKernel": "SOFT"})
    bone = write_series(small_volume(3, offset=50.0, spacing=(0.8, 0.8, 4.0), origin=(0.0, 0.0, 2.0)),
                        shared / "bone", uid_seed="hostile/bone", study_uid=study, extra={"ConvolutionKernel": "BONE"})
    uid = pydicom.dcmread(soft[0]).SeriesInstanceUID
    for p in bone:
        d = pydicom.dcmread(p)
        d.SeriesInstanceUID = uid
        d.save_as(p, enforce_file_format=True)
    planted["shared_uid"] = shared
    planted["deflated"] = root / "deflated.dcm"
    shutil.copy(PYDICOM_TEST_FILES / "image_dfl.dcm", planted["deflated"])
    for scratch in (".single", ".single_u"):
        shutil.rmtree(root.parent / scratch)
    return planted


def walk_entries(root: Path) -> list[Path]:
    """Every non-folder entry under ``root`` (links not followed): what a per-file report must list."""
    out = []
    for folder, dirs, files in os.walk(root):
        out += [Path(folder) / name for name in files]
        out += [Path(folder) / d for d in dirs if (Path(folder) / d).is_symlink()]
    return out
