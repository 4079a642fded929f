"""Fixtures for the DICOM ingestion tests: small series written with the project's writer.

Every defect (missing, duplicate, shifted or sheared slices, mixed sizes...) is
made on copies written into ``tmp_path``; pydicom's bundled files are only read.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian

from medbench.image.volume import Volume
from medbench.io.dicom.write import uid_from, write_series

#: In-plane pixel size (column spacing along i, row spacing along j) and slice spacing of the phantoms.
DX, DY, DZ = 0.8, 0.7, 2.5
SHAPE = (32, 32, 10)


def _rotation(z_deg: float, x_deg: float) -> np.ndarray:
    cz, sz = np.cos(np.radians(z_deg)), np.sin(np.radians(z_deg))
    cx, sx = np.cos(np.radians(x_deg)), np.sin(np.radians(x_deg))
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    return rz @ rx


def world_field(points: np.ndarray) -> np.ndarray:
    """A smooth, linear-in-space test image (values 0..300): linear interpolation reproduces it exactly."""
    return 150.0 + 2.0 * points[..., 0] + 3.0 * points[..., 1] + 1.5 * points[..., 2]


@pytest.fixture
def dicom_field() -> Callable[[np.ndarray], np.ndarray]:
    """The function :func:`dicom_positions` series sample (points (..., 3) in LPS mm -> values)."""
    return world_field


@pytest.fixture
def dicom_volume() -> Volume:
    """32x32x10 oblique CT phantom with integer HU values that differ along every axis."""
    i, j, k = np.meshgrid(*(np.arange(n) for n in SHAPE), indexing="ij")
    array = (3 * i - 2 * j + 7 * k + 100 + 40 * ((i // 8 + j // 8) % 2)).astype(np.float32)
    return Volume.from_spacing(array, (DX, DY, DZ), origin=(-12.3, 4.5, 30.0), direction=_rotation(20, 10))


@pytest.fixture
def dicom_series_dir(tmp_path: Path, dicom_volume: Volume) -> Path:
    """The phantom written as a 10-file CT series in ``tmp_path/ct``."""
    write_series(dicom_volume, tmp_path / "ct", uid_seed="phantom", series_description="phantom CT")
    return tmp_path / "ct"


@pytest.fixture
def dicom_edit() -> Callable[..., None]:
    """``edit(path, **attributes)``: rewrite a test-made file with changed attributes (None deletes)."""

    def edit(path: Path, **attributes: Any) -> None:
        ds = pydicom.dcmread(path)
        for keyword, value in attributes.items():
            if value is None:
                delattr(ds, keyword)
            else:
                setattr(ds, keyword, value)
        ds.save_as(path, enforce_file_format=True)

    return edit


@pytest.fixture
def dicom_positions(dicom_edit: Callable[..., None]) -> Callable[..., list[Path]]:
    """``write(out_dir, positions)``: an axial series whose slice k lies at ``positions[k]`` (LPS mm).

    The pixels hold :func:`world_field` sampled where each slice really is, so
    the data stay consistent with the (possibly uneven or sheared) geometry and
    a correct resampling must reproduce :func:`world_field` on its own grid.
    """

    def write(out_dir: Path, positions: Sequence[Sequence[float]], **kwargs: Any) -> list[Path]:
        pos = np.asarray(positions, dtype=float)
        i, j = np.meshgrid(np.arange(SHAPE[0]), np.arange(SHAPE[1]), indexing="ij")
        planes = [world_field(np.stack([p[0] + i * DX, p[1] + j * DY, np.full(i.shape, p[2])], axis=-1)) for p in pos]
        volume = Volume.from_spacing(np.stack(planes, axis=2), (DX, DY, DZ), origin=tuple(pos[0]))
        kwargs.setdefault("uid_seed", f"positions/{out_dir.name}")
        paths = write_series(volume, out_dir, slope_intercept=(0.01, 0.0), **kwargs)
        for path, p in zip(paths, pos, strict=True):
            dicom_edit(path, ImagePositionPatient=[f"{v:.6f}" for v in p], SliceLocation=f"{p[2]:.6f}")
        return paths

    return write


@pytest.fixture
def dicom_enhanced() -> Callable[..., Path]:
    """``build(volume, path, slopes=None, frame_order=None)``: an Enhanced CT multi-frame file.

    Geometry lives only in the functional groups (orientation and pixel
    measures shared, plane position per frame); each frame may have its own
    Rescale Slope (``slopes``) and frames may be stored out of spatial order.
    """

    def build(
        volume: Volume, path: Path, slopes: Sequence[float] | None = None, frame_order: Sequence[int] | None = None
    ) -> Path:
        n = volume.shape[2]
        order = list(frame_order) if frame_order is not None else list(range(n))
        slopes = list(slopes) if slopes is not None else [1.0] * n
        intercept = -1024.0
        sop_class = "1.2.840.10008.5.1.4.1.1.2.1"  # Enhanced CT Image Storage
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = sop_class
        meta.MediaStorageSOPInstanceUID = uid_from(f"enhanced/{path.name}")
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
        ds.Modality = "CT"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = uid_from("enhanced/study"), uid_from(f"enhanced/series/{path.name}")
        ds.SeriesDescription = "enhanced phantom"
        ds.Rows, ds.Columns = volume.shape[1], volume.shape[0]
        ds.NumberOfFrames = n
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        direction = volume.direction
        shared = Dataset()
        measures = Dataset()
        measures.PixelSpacing = [f"{volume.spacing[1]:.6g}", f"{volume.spacing[0]:.6g}"]
        measures.SliceThickness = f"{volume.spacing[2]:.6g}"
        plane = Dataset()
        plane.ImageOrientationPatient = [f"{v:.6g}" for v in np.concatenate([direction[:, 0], direction[:, 1]])]
        shared.PixelMeasuresSequence = DicomSequence([measures])
        shared.PlaneOrientationSequence = DicomSequence([plane])
        ds.SharedFunctionalGroupsSequence = DicomSequence([shared])
        frames, per_frame = [], []
        for k in order:
            item = Dataset()
            position = Dataset()
            position.ImagePositionPatient = [f"{v:.6g}" for v in volume.world([0, 0, k])[0]]
            transform = Dataset()
            transform.RescaleSlope, transform.RescaleIntercept = f"{slopes[k]:g}", f"{intercept:g}"
            transform.RescaleType = "HU"
            item.PlanePositionSequence = DicomSequence([position])
            item.PixelValueTransformationSequence = DicomSequence([transform])
            per_frame.append(item)
            stored = np.round((np.asarray(volume.array[:, :, k], dtype=float) - intercept) / slopes[k])
            frames.append(stored.T.astype(np.int16))
        ds.PerFrameFunctionalGroupsSequence = DicomSequence(per_frame)
        ds.PixelData = np.ascontiguousarray(np.stack(frames)).tobytes()
        ds.save_as(path, enforce_file_format=True)
        return path

    return build


@pytest.fixture
def dicom_tree_hash() -> Callable[[Path], str]:
    """SHA-256 over every file (path and bytes) under a folder: proves sources are left untouched."""

    def digest(root: Path) -> str:
        h = hashlib.sha256()
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            h.update(str(path.relative_to(root)).encode())
            h.update(path.read_bytes())
        return h.hexdigest()

    return digest
