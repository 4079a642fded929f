"""Per-frame geometry read from DICOM headers.

A "frame" here is one 2D image placed in the patient: a classic single-frame
file, one frame of an Enhanced multi-frame object (geometry from its Per-Frame
/ Shared Functional Groups), or one frame of a legacy multi-frame object with
a Grid Frame Offset Vector (RT Dose), or one tile of a Siemens MOSAIC image
(:mod:`medbench.io.dicom.mosaic`). Everything downstream (ordering,
geometry checks, volume assembly) works on this one list.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from medbench.errors import MedbenchError
from medbench.io.dicom.mosaic import MosaicError, is_mosaic, mosaic_layout, tile_positions
from medbench.io.dicom.pixels import functional_group, n_frames


@dataclass(frozen=True)
class FrameGeometry:
    """Where one 2D frame sits: tags as read, ``None`` where absent or malformed."""

    source: int  # index of the data set in the list given to :func:`frame_geometries`
    frame: int | None  # frame index inside a multi-frame object; None for a single-frame file
    label: str  # file name (and frame number) for messages
    size: tuple[int, int] | None  # (Rows, Columns)
    position: np.ndarray | None  # ImagePositionPatient, LPS mm
    orientation: np.ndarray | None  # ImageOrientationPatient (normalised): row cosines then column cosines
    pixel_spacing: tuple[float, float] | None  # (row spacing, column spacing) in mm, as DICOM orders it
    thickness: float | None  # SpacingBetweenSlices, else SliceThickness (used for a single slice)
    refusal: str | None = None  # why this object cannot be made into frames (e.g. a MOSAIC that does not unpack)


def _vector(value: Any, n: int) -> np.ndarray | None:
    """A length-``n`` float vector from a multi-valued DS element, or None if absent/malformed."""
    if value is None:
        return None
    try:
        vec = np.array([float(v) for v in value], dtype=float)
    except (TypeError, ValueError):
        return None
    return vec if vec.shape == (n,) and np.all(np.isfinite(vec)) else None


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) and number > 0 else None


def _orientation(value: Any) -> np.ndarray | None:
    """ImageOrientationPatient with both cosines normalised, or None if absent or degenerate.

    Degenerate means a zero-length or non-unit-ish direction (norm off by more
    than 1%) or row and column directions more than ~0.6 degrees from perpendicular.
    """
    iop = _vector(value, 6)
    if iop is None:
        return None
    row, col = iop[:3], iop[3:]
    norms = np.array([np.linalg.norm(row), np.linalg.norm(col)])
    if np.any(np.abs(norms - 1.0) > 0.01):
        return None
    row, col = row / norms[0], col / norms[1]
    if abs(float(np.dot(row, col))) > 0.01:
        return None
    return np.concatenate([row, col])


def normal_of(orientation: np.ndarray) -> np.ndarray:
    """Unit slice normal: row direction x column direction (DICOM's right-handed stacking axis)."""
    n = np.cross(orientation[:3], orientation[3:])
    return n / np.linalg.norm(n)


def _spacing(owner: Dataset | None) -> tuple[tuple[float, float] | None, float | None]:
    if owner is None:
        return None, None
    ps = _vector(owner.get("PixelSpacing"), 2)
    thickness = _number(owner.get("SpacingBetweenSlices")) or _number(owner.get("SliceThickness"))
    return (None if ps is None or np.any(ps <= 0) else (float(ps[0]), float(ps[1]))), thickness


def _size(ds: Dataset) -> tuple[int, int] | None:
    try:
        return (int(ds.Rows), int(ds.Columns)) if "Rows" in ds and "Columns" in ds else None
    except (TypeError, ValueError):
        return None


def _enhanced_frames(ds: Dataset, source: int, label: str, count: int) -> list[FrameGeometry]:
    frames = []
    for f in range(count):
        plane_pos = functional_group(ds, f, "PlanePositionSequence")
        plane_ori = functional_group(ds, f, "PlaneOrientationSequence")
        pixel_spacing, thickness = _spacing(functional_group(ds, f, "PixelMeasuresSequence"))
        frames.append(
            FrameGeometry(
                source=source,
                frame=f,
                label=f"{label} [frame {f + 1}]",
                size=_size(ds),
                position=_vector(plane_pos.get("ImagePositionPatient") if plane_pos else None, 3),
                orientation=_orientation(plane_ori.get("ImageOrientationPatient") if plane_ori else None),
                pixel_spacing=pixel_spacing,
                thickness=thickness,
            )
        )
    return frames


def _legacy_frames(ds: Dataset, source: int, label: str, count: int) -> list[FrameGeometry]:
    """Legacy multi-frame: positions from the Grid Frame Offset Vector when it is there (RT Dose)."""
    origin = _vector(ds.get("ImagePositionPatient"), 3)
    orientation = _orientation(ds.get("ImageOrientationPatient"))
    offsets = _vector(ds.get("GridFrameOffsetVector"), count)
    pixel_spacing, thickness = _spacing(ds)
    positions: list[np.ndarray | None] = [None] * count
    if origin is not None and orientation is not None and offsets is not None:
        normal = normal_of(orientation)
        # Offsets are relative to the first frame whether they start at 0 (relative) or at its z (absolute).
        positions = [origin + (o - offsets[0]) * normal for o in offsets]
    return [
        FrameGeometry(source, f, f"{label} [frame {f + 1}]", _size(ds), positions[f], orientation, pixel_spacing, thickness)
        for f in range(count)
    ]


def _mosaic_frames(ds: Dataset, source: int, label: str) -> list[FrameGeometry]:
    """One frame per tile of a Siemens MOSAIC (see :mod:`medbench.io.dicom.mosaic`), or one refused frame."""
    pixel_spacing, thickness = _spacing(ds)
    orientation = _orientation(ds.get("ImageOrientationPatient"))
    try:
        layout = mosaic_layout(ds)
    except MosaicError as exc:
        return [FrameGeometry(source, None, label, _size(ds), None, orientation, pixel_spacing, thickness,
                              refusal=f"{label} is a {exc}")]
    positions = tile_positions(ds, layout)
    size = (layout.rows, layout.columns)
    return [
        FrameGeometry(source, k, f"{label} [mosaic slice {k + 1}]", size,
                      None if positions is None else positions[k], orientation, pixel_spacing, thickness)
        for k in range(layout.n_slices)
    ]


def frame_geometries(headers: Sequence[Dataset], labels: Sequence[str]) -> list[FrameGeometry]:
    """Geometry of every frame of every data set, in input order (a MOSAIC gives one frame per tile)."""
    frames: list[FrameGeometry] = []
    for source, (ds, label) in enumerate(zip(headers, labels, strict=True)):
        if is_mosaic(ds):
            frames += _mosaic_frames(ds, source, label)
            continue
        try:
            count = n_frames(ds)
        except MedbenchError:
            count = 1  # a malformed Number of Frames is reported when the pixels are read
        if "PerFrameFunctionalGroupsSequence" in ds:
            frames += _enhanced_frames(ds, source, label, count)
        elif count > 1:
            frames += _legacy_frames(ds, source, label, count)
        else:
            pixel_spacing, thickness = _spacing(ds)
            frames.append(
                FrameGeometry(
                    source=source,
                    frame=None,
                    label=label,
                    size=_size(ds),
                    position=_vector(ds.get("ImagePositionPatient"), 3),
                    orientation=_orientation(ds.get("ImageOrientationPatient")),
                    pixel_spacing=pixel_spacing,
                    thickness=thickness,
                )
            )
    return frames
