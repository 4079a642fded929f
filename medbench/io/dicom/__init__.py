"""Robust DICOM ingestion: discover files, group series, check geometry, decode pixels, load volumes.

Every file is read by one header reader (:mod:`medbench.io.dicom.headers`:
sniffing, the fast header parse, integrity checks, the folder walk), which the
audit and de-identification use too. Siemens MOSAIC images are unpacked into
their slices (:mod:`medbench.io.dicom.mosaic`) or refused with the reason.

One line per step in a notebook::

    found = discover("data/dicom")             # every file, with reasons for the skipped ones
    series = group_series(found.files)         # one Series per volume (split where needed)
    report = check_geometry(series[0])         # missing/duplicate slices, spacing, tilt...
    volume = load_series(series[0])            # Volume (LPS affine), or a GeometryError saying why not
    volumes, table = load_all_series("data/dicom")   # every image series loaded or refused with a reason
"""

from __future__ import annotations

from medbench.errors import DecodeError, DicomError, GeometryError
from medbench.io.dicom.discover import DicomFile, DiscoveryResult, discover, read_full, read_header
from medbench.io.dicom.geometry import (
    RESAMPLABLE,
    TILT_TOLERANCE_PIXELS,
    GeometryReport,
    check_geometry,
    geometry_table,
)
from medbench.io.dicom.headers import ERROR_KINDS, MAX_INFLATED_BYTES, Header, printable, read_tree, walk
from medbench.io.dicom.load import ResampledWarning, load_all_series, load_series
from medbench.io.dicom.mosaic import MosaicError, is_mosaic, mosaic_layout
from medbench.io.dicom.pixels import pixel_units, read_frames, read_pixels, syntax_label, window
from medbench.io.dicom.series import ORIENTATION_TOLERANCE, Series, group_series, series_table

__all__ = [
    "DecodeError",
    "DicomError",
    "DicomFile",
    "DiscoveryResult",
    "ERROR_KINDS",
    "GeometryError",
    "GeometryReport",
    "Header",
    "MAX_INFLATED_BYTES",
    "MosaicError",
    "ORIENTATION_TOLERANCE",
    "RESAMPLABLE",
    "ResampledWarning",
    "Series",
    "TILT_TOLERANCE_PIXELS",
    "check_geometry",
    "discover",
    "geometry_table",
    "group_series",
    "is_mosaic",
    "load_all_series",
    "load_series",
    "mosaic_layout",
    "pixel_units",
    "printable",
    "read_frames",
    "read_full",
    "read_header",
    "read_pixels",
    "read_tree",
    "series_table",
    "syntax_label",
    "walk",
    "window",
]
