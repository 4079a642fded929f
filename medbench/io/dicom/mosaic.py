"""Siemens MOSAIC images: one 2-D DICOM image that holds a whole 3-D volume as tiles.

Siemens MR scanners (EPI: fMRI, diffusion) store each volume as one image
whose ImageType contains ``MOSAIC``: ``n`` slices laid out row by row in a
``t x t`` grid of tiles, ``t = ceil(sqrt(n))``, with ``n`` in the private
Siemens CSA image header (``NumberOfImagesInMosaic``, read with nibabel's
:mod:`nibabel.nicom.csareader`). Read as an ordinary image it is one tiled
slice, and two of them look like a 2-slice series: both silently wrong.

Here a mosaic becomes ``n`` frames with their own geometry, like the frames
of a multi-frame object:

* tile ``k`` is at block row ``k // t``, block column ``k % t``;
* ImagePositionPatient of a mosaic describes the top-left corner of the
  whole tiled image as if it were one slice; the first tile's corner is
  ``IPP + (R - r)/2 x row spacing x column cosines + (C - c)/2 x column
  spacing x row cosines`` (``R x C`` the mosaic, ``r x c`` one tile; the
  correction nibabel's ``MosaicWrapper`` documents);
* slice ``k`` lies ``k x`` SpacingBetweenSlices (else SliceThickness) from
  the first along the slice normal, whose sign comes from the CSA
  ``SliceNormalVector`` (slices may be stored head to foot or foot to head).

A mosaic that cannot be unpacked (no readable CSA header, a tile count that
does not divide the image, a CSA normal that contradicts the orientation, no
slice spacing, colour or multi-frame pixels) raises :class:`MosaicError`
with the reason; it is then refused as a volume, never returned tiled.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from medbench.errors import DicomError


class MosaicError(DicomError):
    """A MOSAIC image that cannot be unpacked into slices; the message says why."""


@dataclass(frozen=True)
class MosaicLayout:
    """How one MOSAIC image unpacks: ``n_slices`` tiles of ``rows x columns`` in a ``tiles x tiles`` grid."""

    n_slices: int
    tiles: int
    rows: int
    columns: int
    normal_sign: float  # +1: slices run along row cosines x column cosines; -1: the other way (CSA normal)


def is_mosaic(ds: Dataset | Any) -> bool:
    """Whether ImageType (0008,0008) contains ``MOSAIC`` (header only)."""
    value = ds.get("ImageType") if hasattr(ds, "get") else None
    if value is None:
        return False
    values = [value] if isinstance(value, (str, bytes)) else list(value)
    return any(str(v).strip().upper() == "MOSAIC" for v in values)


def _csa(ds: Dataset) -> dict[str, Any] | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nibabel.nicom warns that its readers are experimental on import
        from nibabel.nicom import csareader
    try:
        return csareader.get_csa_header(ds, "image")
    except Exception as exc:  # nibabel raises CSAReadError, struct errors, ... on damaged headers
        raise MosaicError(f"its Siemens CSA image header cannot be read ({type(exc).__name__}: {exc})") from None


def _float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number > 0 else None


def mosaic_layout(ds: Dataset) -> MosaicLayout:
    """The tile layout of a MOSAIC image; :class:`MosaicError` saying why it cannot be unpacked."""
    what = "Siemens MOSAIC image"
    csa = _csa(ds)
    if csa is None:
        raise MosaicError(f"{what} without a Siemens CSA image header (0029,xx10): its slice count is unknown")
    from nibabel.nicom import csareader

    try:
        n = int(csareader.get_n_mosaic(csa) or 0)
    except (TypeError, ValueError):
        n = 0
    if n < 1:
        raise MosaicError(f"{what} whose CSA header has no NumberOfImagesInMosaic: its slice count is unknown")
    if int(ds.get("SamplesPerPixel") or 1) != 1 or int(ds.get("NumberOfFrames") or 1) != 1:
        raise MosaicError(f"{what} with colour or multi-frame pixels: not a layout medbench unpacks")
    rows, columns = int(ds.get("Rows") or 0), int(ds.get("Columns") or 0)
    tiles = math.isqrt(n - 1) + 1  # ceil(sqrt(n))
    if rows % tiles or columns % tiles or rows == 0 or columns == 0:
        raise MosaicError(
            f"{what}: {n} slices need a {tiles} x {tiles} grid of tiles, which does not divide the "
            f"{rows} x {columns} image"
        )
    iop = ds.get("ImageOrientationPatient")
    try:
        cosines = np.array([float(v) for v in iop], dtype=float) if iop is not None else None
    except (TypeError, ValueError):
        cosines = None
    if cosines is None or cosines.shape != (6,):
        raise MosaicError(f"{what} without a valid ImageOrientationPatient")
    normal = np.cross(cosines[:3], cosines[3:])
    if not np.linalg.norm(normal) > 0.5:
        raise MosaicError(f"{what} whose ImageOrientationPatient has parallel or zero direction cosines")
    normal = normal / np.linalg.norm(normal)
    sign = 1.0
    try:
        csa_normal = csareader.get_slice_normal(csa)
    except ValueError:
        csa_normal = None
    if csa_normal is not None:
        dot = float(np.dot(np.asarray(csa_normal, dtype=float), normal))
        if not math.isclose(abs(dot), 1.0, abs_tol=1e-3):
            raise MosaicError(
                f"{what} whose CSA SliceNormalVector {list(np.round(csa_normal, 4))} is not along the normal of its "
                "ImageOrientationPatient: the slice direction is ambiguous"
            )
        sign = 1.0 if dot > 0 else -1.0
    if _float(ds.get("SpacingBetweenSlices")) is None and _float(ds.get("SliceThickness")) is None:
        raise MosaicError(f"{what} without SpacingBetweenSlices or SliceThickness: its slice positions are unknown")
    return MosaicLayout(n, tiles, rows // tiles, columns // tiles, sign)


def slice_spacing(ds: Dataset) -> float:
    """Distance between the slices of a mosaic (mm): SpacingBetweenSlices, else SliceThickness."""
    return _float(ds.get("SpacingBetweenSlices")) or _float(ds.get("SliceThickness")) or 0.0


def tile_positions(ds: Dataset, layout: MosaicLayout) -> np.ndarray | None:
    """ImagePositionPatient of each slice (``n x 3``, LPS mm), or None without position/spacing tags."""
    try:
        ipp = np.array([float(v) for v in ds.ImagePositionPatient], dtype=float)
        iop = np.array([float(v) for v in ds.ImageOrientationPatient], dtype=float)
        row_spacing, col_spacing = (float(v) for v in ds.PixelSpacing)
    except (AttributeError, TypeError, ValueError):
        return None
    if ipp.shape != (3,) or iop.shape != (6,):
        return None
    row_dir, col_dir = iop[:3], iop[3:]
    big_rows, big_cols = layout.rows * layout.tiles, layout.columns * layout.tiles
    first = (
        ipp
        + col_dir * row_spacing * (big_rows - layout.rows) / 2.0
        + row_dir * col_spacing * (big_cols - layout.columns) / 2.0
    )
    normal = np.cross(row_dir, col_dir)
    normal = normal / np.linalg.norm(normal) * layout.normal_sign
    steps = np.arange(layout.n_slices)[:, None] * slice_spacing(ds)
    return first[None, :] + steps * normal[None, :]


def unpack(pixels: np.ndarray, layout: MosaicLayout) -> np.ndarray:
    """Tiles of a decoded mosaic ``(R, C)`` as ``(n_slices, rows, columns)``, in slice order."""
    t, r, c = layout.tiles, layout.rows, layout.columns
    if pixels.shape[:2] != (t * r, t * c):
        raise MosaicError(f"decoded mosaic has shape {pixels.shape}, expected {(t * r, t * c)}")
    blocks = pixels.reshape(t, r, t, c).transpose(0, 2, 1, 3).reshape(t * t, r, c)
    return blocks[: layout.n_slices]
