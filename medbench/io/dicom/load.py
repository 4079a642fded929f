"""Assemble a checked DICOM series into a :class:`~medbench.image.volume.Volume`.

The volume's array is ``[i, j, k]`` = (column, row, slice) with slices sorted
along the slice normal, and its affine is in LPS: column ``i`` steps along the
row cosines by the column spacing (PixelSpacing[1]), row ``j`` along the
column cosines by the row spacing (PixelSpacing[0]), slice ``k`` along the
normal by the slice spacing, with the origin at the first slice's
ImagePositionPatient. This is the same grid SimpleITK's ImageSeriesReader
builds, so the two agree voxel for voxel on valid series.

Bad geometry is refused with a :class:`~medbench.errors.GeometryError` that
names the series and lists each problem. With ``resample=True`` missing
slices, uneven spacing and gantry tilt are corrected by linear interpolation
onto a regular grid aligned with the first slice (recorded in ``meta`` and
announced with a :class:`ResampledWarning`). Duplicate positions, mixed
orientations or sizes and missing tags are always refused: no slice is ever
dropped or invented silently.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pandas as pd
from scipy import ndimage

from medbench.errors import DicomError, GeometryError, MedbenchError
from medbench.image.volume import Volume
from medbench.io.dicom.geometry import RESAMPLABLE, GeometryReport, analyse_frames, geometry_of
from medbench.io.dicom.pixels import pixel_units, read_frames, window
from medbench.io.dicom.sources import SeriesLike, Source, collect


class ResampledWarning(UserWarning):
    """``load_series(..., resample=True)`` interpolated slices onto a regular grid."""


def _refuse(report: GeometryReport, resample: bool) -> None:
    blocking = [p for p, k in zip(report.problems, report.kinds, strict=True) if not (resample and k in RESAMPLABLE)]
    if not blocking:
        return
    message = f"cannot build a volume from {report.name}: " + "; ".join(blocking)
    fixable = sorted({k for k in report.kinds if k in RESAMPLABLE})
    if not resample and fixable and len(fixable) == len(set(report.kinds)):
        message += f". load_series(..., resample=True) can interpolate onto a regular grid ({', '.join(fixable)})"
    if "duplicate positions" in report.kinds:
        message += ". Duplicates are never dropped automatically: pass the files you want to keep as a list of paths"
    raise GeometryError(message)


def _check_scalar(name: str, sources: list[Source]) -> None:
    for s in sources:
        photometric = str(s.dataset.get("PhotometricInterpretation", "")).upper()
        if int(s.dataset.get("SamplesPerPixel") or 1) > 1 or photometric == "PALETTE COLOR":
            raise DicomError(
                f"cannot build a volume from {name}: {s.label} holds colour images ({photometric}); "
                "a Volume holds one value per voxel (use read_pixels for the RGB image)"
            )


def _slices(report: GeometryReport, sources: list[Source]) -> np.ndarray:
    """Pixel values stacked as [column, row, slice] in the report's (sorted) frame order."""
    needed = sorted({f.source for f in report.frames})
    pixels = {i: read_frames(sources[i].full()) for i in needed}
    planes = []
    for f in report.frames:
        planes.append(pixels[f.source][f.frame if f.frame is not None else 0].T)
    return np.stack(planes, axis=2).astype(np.float32)


def _regularise(stack: np.ndarray, report: GeometryReport, spacing: float) -> tuple[np.ndarray, float]:
    """Interpolate a stack of parallel planes at arbitrary positions onto a regular grid.

    Each plane is first shifted in-plane onto the first plane's pixel grid
    (undoing tilt/shear), then values are linearly interpolated along the
    normal at ``spacing`` steps from the first plane. Returns the array and
    the value used outside a shifted plane's field of view (the data minimum).
    """
    orientation = np.asarray(report.orientation)
    row_dir, col_dir, normal = orientation[:3], orientation[3:], report.normal
    row_spacing, col_spacing = report.pixel_spacing  # type: ignore[misc]
    positions = np.array([f.position for f in report.frames])
    rel = positions - positions[0]
    fill = float(stack.min())
    shifted = np.empty_like(stack)
    for k in range(stack.shape[2]):
        shift = (float(rel[k] @ row_dir) / col_spacing, float(rel[k] @ col_dir) / row_spacing)
        if max(abs(shift[0]), abs(shift[1])) > 1e-6:
            shifted[:, :, k] = ndimage.shift(stack[:, :, k], shift, order=1, mode="constant", cval=fill)
        else:
            shifted[:, :, k] = stack[:, :, k]
    d = rel @ normal
    n_out = int(round(d[-1] / spacing)) + 1
    t = np.arange(n_out) * spacing
    lower = np.clip(np.searchsorted(d, t, side="right") - 1, 0, len(d) - 2)
    weight = np.clip((t - d[lower]) / (d[lower + 1] - d[lower]), 0.0, 1.0).astype(np.float32)
    out = shifted[:, :, lower] * (1 - weight) + shifted[:, :, lower + 1] * weight
    return out.astype(np.float32), fill


def _affine(report: GeometryReport, slice_spacing: float) -> np.ndarray:
    orientation = np.asarray(report.orientation)
    row_spacing, col_spacing = report.pixel_spacing  # type: ignore[misc]
    affine = np.eye(4)
    affine[:3, 0] = orientation[:3] * col_spacing
    affine[:3, 1] = orientation[3:] * row_spacing
    affine[:3, 2] = report.normal * slice_spacing  # type: ignore[operator]
    affine[:3, 3] = report.frames[0].position
    return affine


def _exact_spacing(report: GeometryReport) -> tuple[float, str | None]:
    """Slice spacing of a valid series: mean step along the normal (or the stated one for a single slice)."""
    if len(report.frames) > 1:
        d = np.array([f.position @ report.normal for f in report.frames])  # type: ignore[operator]
        return float((d[-1] - d[0]) / (len(d) - 1)), None
    if report.slice_spacing:
        return float(report.slice_spacing), None
    return 1.0, "single slice without SliceThickness/SpacingBetweenSlices: slice spacing set to 1 mm"


def _meta(name: str, sources: list[Source], report: GeometryReport, n_slices: int) -> dict[str, object]:
    first = sources[report.frames[0].source].dataset
    paths = list(dict.fromkeys(sources[f.source].label for f in report.frames))
    return {
        "name": name,
        "modality": str(first.get("Modality", "")),
        "series_uid": str(first.get("SeriesInstanceUID", "")),
        "study_uid": str(first.get("StudyInstanceUID", "")),
        "description": str(first.get("SeriesDescription", "") or ""),
        "units": pixel_units(first),
        "window": window(first),
        "n_slices": n_slices,
        "source_paths": paths,
        "geometry": report.verdict,
        "resampled": None,
    }


def load_series(
    series: SeriesLike,
    *,
    resample: bool = False,
    spacing_tolerance: float = 0.01,
    spacing_atol_mm: float = 0.01,
) -> Volume:
    """Read a series into a float32 :class:`Volume` of physical values (HU for CT) with an LPS affine.

    ``series`` may be a :class:`Series` (from :func:`group_series`), a folder
    holding exactly one image series, one file (e.g. an Enhanced multi-frame
    object or an RT Dose grid), a list of paths, or a list of pydicom Datasets
    (e.g. from DICOMweb). Geometry is checked first (:func:`check_geometry`,
    same tolerances); problems raise :class:`GeometryError` naming the series
    and each problem unless ``resample=True`` and they are all correctable
    (missing slices, uneven spacing, gantry tilt).
    """
    name, sources = collect(series)
    try:
        return _load(name, sources, resample, spacing_tolerance, spacing_atol_mm)
    except (MedbenchError, MemoryError, KeyboardInterrupt):
        raise
    except Exception as exc:  # a damaged header value no check anticipated: refused with the reason, not a crash
        reason = " ".join(str(exc).split())[:300]
        raise DicomError(f"cannot build a volume from {name}: a header value is malformed "
                         f"({type(exc).__name__}: {reason})") from exc


def _load(name: str, sources: list[Source], resample: bool, spacing_tolerance: float, spacing_atol_mm: float) -> Volume:
    """:func:`load_series` once the input is collected."""
    report = analyse_frames(
        name, geometry_of(sources), spacing_tolerance=spacing_tolerance, spacing_atol_mm=spacing_atol_mm
    )
    _check_scalar(name, sources)
    _refuse(report, resample)
    stack = _slices(report, sources)
    meta = _meta(name, sources, report, stack.shape[2])
    if report.ok:
        spacing, note = _exact_spacing(report)
        if note:
            meta["note"] = note
        return Volume(stack, _affine(report, spacing), meta)
    spacing = float(report.slice_spacing)  # type: ignore[arg-type]
    array, fill = _regularise(stack, report, spacing)
    what = ", ".join(dict.fromkeys(report.kinds))
    meta["resampled"] = (
        f"{what} corrected: {stack.shape[2]} slices linearly interpolated onto {array.shape[2]} slices "
        f"at {spacing:.4g} mm aligned with the first slice"
        + (f"; voxels outside the shifted slices set to {fill:g}" if "gantry tilt" in report.kinds else "")
    )
    meta["n_slices"] = array.shape[2]
    warnings.warn(ResampledWarning(f"{name}: {meta['resampled']}"), stacklevel=3)
    return Volume(array, _affine(report, spacing), meta)


def load_all_series(src: str | os.PathLike[str], *, resample: bool = False) -> tuple[dict[str, Volume], pd.DataFrame]:
    """Load every image series under ``src``: each loaded, or refused with its reason.

    Returns the volumes that loaded (name -> Volume; the name is the series
    description plus its number) and a table with one row per series: name,
    status (``loaded`` / ``resampled`` / ``refused``) and the message, so a
    refused series says exactly why instead of silently becoming a wrong volume.
    """
    from medbench.io.dicom.discover import discover
    from medbench.io.dicom.series import group_series

    volumes: dict[str, Volume] = {}
    rows = []
    for series in group_series(discover(src).files):
        if not series.is_image:
            continue
        name = f"{series.description or series.modality} #{series.series_number}"
        if name in volumes:
            name = f"{name} ({series.key[-8:]})"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResampledWarning)
            try:
                volumes[name] = load_series(series, resample=resample)
            except MedbenchError as exc:
                rows.append({"series": name, "status": "refused", "message": str(exc)})
                continue
        notes = [str(w.message) for w in caught if issubclass(w.category, ResampledWarning)]
        rows.append({"series": name, "status": "resampled" if notes else "loaded",
                     "message": "; ".join(notes) or f"{volumes[name].shape} voxels, spacing "
                     + " x ".join(f"{s:.2f}" for s in volumes[name].spacing) + " mm"})
    return volumes, pd.DataFrame(rows, columns=["series", "status", "message"])
