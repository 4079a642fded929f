"""Check that a series' slices form one regular 3D grid.

:func:`check_geometry` sorts the slices by their position along the slice
normal (row cosines x column cosines of ImageOrientationPatient) and reports,
in words, everything that would make a volume built from them silently wrong:

* Siemens MOSAIC images that cannot be unpacked into their slices (see
  :mod:`medbench.io.dicom.mosaic`); a mosaic that unpacks is one frame per tile;
* missing geometry tags (ImagePositionPatient, ImageOrientationPatient,
  PixelSpacing; for multi-frame objects the Per-Frame Functional Groups or a
  Grid Frame Offset Vector), objects without an image, different image sizes;
* inconsistent orientation or pixel spacing between slices;
* duplicate positions (two slices within ``spacing_atol_mm`` of each other);
* missing slices (a gap that is an integer multiple >= 2 of the typical spacing);
* uneven spacing (any other gap off the typical spacing);
* gantry tilt / shear (slice positions drifting sideways from the normal).

Tolerances (defaults, stated in every report's ``tolerance`` string):

* spacing: a gap matches the typical spacing (the median gap) when it is
  within ``max(spacing_tolerance x spacing, spacing_atol_mm)`` = max(1 %,
  0.01 mm); the same rule, scaled by k, decides "k x spacing" for missing slices;
* duplicates: positions along the normal within ``spacing_atol_mm``;
* orientation: every direction cosine within :data:`ORIENTATION_TOLERANCE`
  of the first slice's; pixel spacing within ``spacing_atol_mm``;
* tilt: the sideways drift of any slice from the normal through the first
  slice at most ``max(spacing_atol_mm, TILT_TOLERANCE_PIXELS x pixel size)``,
  i.e. never more than a tenth of a pixel of misplacement.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from medbench.io.dicom.frames import FrameGeometry, frame_geometries, normal_of
from medbench.io.dicom.series import ORIENTATION_TOLERANCE
from medbench.io.dicom.sources import SeriesLike, Source, collect

#: Allowed sideways drift of the slice stack, as a fraction of the smallest pixel spacing.
TILT_TOLERANCE_PIXELS = 0.1

#: Problem kinds that ``load_series(..., resample=True)`` can correct by interpolation.
RESAMPLABLE = frozenset({"missing slices", "uneven spacing", "gantry tilt"})

#: At most this many individual gaps are described per problem kind; the rest are counted.
_MAX_DETAILS = 5


@dataclass
class GeometryReport:
    """The verdict on one series' geometry. ``ok`` is True only when no problem was found."""

    name: str
    ok: bool
    problems: list[str]
    kinds: list[str]  # the problem kind of each entry of ``problems`` (e.g. "missing slices")
    n_slices: int
    slice_spacing: float | None  # typical distance between slices along the normal (mm)
    pixel_spacing: tuple[float, float] | None  # (row spacing, column spacing) in mm, DICOM order
    orientation: tuple[float, ...] | None  # ImageOrientationPatient of the first slice (normalised)
    tilt_degrees: float | None  # angle between the slice stacking direction and the normal
    tolerance: str
    frames: list[FrameGeometry] = field(default_factory=list, repr=False)  # sorted along the normal

    @property
    def verdict(self) -> str:
        """``"valid"`` or the distinct problem kinds, e.g. ``"missing slices, uneven spacing"``."""
        return "valid" if self.ok else ", ".join(dict.fromkeys(self.kinds))

    @property
    def normal(self) -> np.ndarray | None:
        return None if self.orientation is None else normal_of(np.asarray(self.orientation))

    def as_dict(self) -> dict[str, object]:
        """One table row: name, verdict, sizes, spacing, tilt and the problems joined by " | "."""
        return {
            "name": self.name,
            "verdict": self.verdict,
            "n_slices": self.n_slices,
            "slice_spacing": self.slice_spacing,
            "pixel_spacing": self.pixel_spacing,
            "tilt_degrees": self.tilt_degrees,
            "problems": " | ".join(self.problems),
        }

    def __str__(self) -> str:
        lines = [f"{self.name}: {self.verdict} ({self.n_slices} slices)"]
        lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)


class _Findings:
    """Problems collected while checking, each with its kind."""

    def __init__(self) -> None:
        self.kinds: list[str] = []
        self.messages: list[str] = []

    def add(self, kind: str, message: str) -> None:
        self.kinds.append(kind)
        self.messages.append(f"{kind}: {message}")

    def add_many(self, kind: str, details: list[str], summary: str) -> None:
        """One problem per detail (at most ``_MAX_DETAILS``), then a count of the rest."""
        for detail in details[:_MAX_DETAILS]:
            self.add(kind, detail)
        if len(details) > _MAX_DETAILS:
            self.add(kind, f"... and {len(details) - _MAX_DETAILS} more {summary}")


def _names(frames: Sequence[FrameGeometry], limit: int = 3) -> str:
    shown = ", ".join(f.label for f in frames[:limit])
    return shown + (f" and {len(frames) - limit} more" if len(frames) > limit else "")


def _check_tags(frames: list[FrameGeometry], found: _Findings) -> None:
    refused = [f for f in frames if f.refusal]
    for f in refused:
        found.add("mosaic not unpacked", f"{f.refusal}; it is refused rather than read as one tiled slice")
    if refused:
        return
    no_image = [f for f in frames if f.size is None]
    if no_image:
        found.add("not an image", f"{len(no_image)} of {len(frames)} objects have no Rows/Columns: {_names(no_image)}")
    sizes = {f.size for f in frames if f.size is not None}
    if len(sizes) > 1:
        listing = ", ".join(f"{r}x{c}" for r, c in sorted(sizes))
        found.add("inconsistent image size", f"slices have different sizes (rows x columns: {listing})")
    for attr, tag in (
        ("position", "ImagePositionPatient"),
        ("orientation", "ImageOrientationPatient"),
        ("pixel_spacing", "PixelSpacing"),
    ):
        lacking = [f for f in frames if getattr(f, attr) is None]
        if lacking:
            found.add(
                "missing geometry",
                f"{tag} is missing or malformed in {len(lacking)} of {len(frames)} slices ({_names(lacking)})",
            )


def _check_consistency(frames: list[FrameGeometry], atol: float, found: _Findings) -> None:
    ref = frames[0]
    off_orientation = [f for f in frames if np.max(np.abs(f.orientation - ref.orientation)) > ORIENTATION_TOLERANCE]  # type: ignore[operator]
    if off_orientation:
        found.add(
            "inconsistent orientation",
            f"{len(off_orientation)} of {len(frames)} slices differ from {ref.label}'s ImageOrientationPatient "
            f"by more than {ORIENTATION_TOLERANCE} in a direction cosine ({_names(off_orientation)})",
        )
    off_spacing = [f for f in frames if np.max(np.abs(np.subtract(f.pixel_spacing, ref.pixel_spacing))) > atol]  # type: ignore[arg-type]
    if off_spacing:
        found.add(
            "inconsistent pixel spacing",
            f"{len(off_spacing)} of {len(frames)} slices differ from {ref.label}'s PixelSpacing "
            f"{ref.pixel_spacing} by more than {atol} mm ({_names(off_spacing)})",
        )


def _check_spacing(frames: list[FrameGeometry], d: np.ndarray, rtol: float, atol: float, found: _Findings) -> float | None:
    """Duplicates, missing slices and uneven gaps along the sorted normal distances ``d``."""
    gaps = np.diff(d)
    duplicate = gaps <= atol
    dup_details = [
        f"{frames[i].label} and {frames[i + 1].label} are both at {d[i]:.3f} mm along the normal"
        for i in np.flatnonzero(duplicate)
    ]
    found.add_many("duplicate positions", dup_details, "duplicate pairs")
    real = gaps[~duplicate]
    if real.size == 0:
        return None
    typical = float(np.median(real))
    missing, uneven = [], []
    for i in np.flatnonzero(~duplicate):
        gap = float(gaps[i])
        where = f"{frames[i].label} ({d[i]:.3f} mm) and {frames[i + 1].label} ({d[i + 1]:.3f} mm)"
        if abs(gap - typical) <= max(rtol * typical, atol):
            continue
        k = int(round(gap / typical))
        if k >= 2 and abs(gap - k * typical) <= max(rtol * gap, atol):
            missing.append(
                f"gap of {gap:.3f} mm between {where} is {k} x the typical {typical:.3f} mm spacing "
                f"({k - 1} slice{'s' if k > 2 else ''} missing)"
            )
        else:
            uneven.append(f"gap of {gap:.3f} mm between {where} differs from the typical {typical:.3f} mm spacing")
    found.add_many("missing slices", missing, "gaps with missing slices")
    found.add_many("uneven spacing", uneven, "uneven gaps")
    return typical


def _tilt(positions: np.ndarray, normal: np.ndarray) -> tuple[float, float]:
    """(largest sideways drift from the normal through the first slice in mm, tilt angle in degrees)."""
    rel = positions - positions[0]
    sideways = rel - np.outer(rel @ normal, normal)
    drift = float(np.max(np.linalg.norm(sideways, axis=1)))
    centred = positions - positions.mean(axis=0)
    axis = np.linalg.svd(centred, full_matrices=False)[2][0]
    angle = float(np.degrees(np.arccos(np.clip(abs(float(axis @ normal)), 0.0, 1.0))))
    return drift, angle


def _tolerance_text(rtol: float, atol: float) -> str:
    return (
        f"spacing gaps within max({rtol:.3g} x spacing, {atol:g} mm); duplicates within {atol:g} mm; "
        f"orientation cosines within {ORIENTATION_TOLERANCE:g}; pixel spacing within {atol:g} mm; "
        f"sideways drift within max({atol:g} mm, {TILT_TOLERANCE_PIXELS:g} pixel)"
    )


def analyse_frames(
    name: str, frames: list[FrameGeometry], *, spacing_tolerance: float = 0.01, spacing_atol_mm: float = 0.01
) -> GeometryReport:
    """The geometry report for already-extracted frames (see :func:`check_geometry`)."""
    found = _Findings()
    report = GeometryReport(
        name=name,
        ok=False,
        problems=found.messages,
        kinds=found.kinds,
        n_slices=len(frames),
        slice_spacing=None,
        pixel_spacing=None,
        orientation=None,
        tilt_degrees=None,
        tolerance=_tolerance_text(spacing_tolerance, spacing_atol_mm),
        frames=list(frames),
    )
    if not frames:
        found.add("not an image", "the input holds no image frames")
        return report
    _check_tags(frames, found)
    if found.kinds:
        return report
    _check_consistency(frames, spacing_atol_mm, found)
    ref = frames[0]
    report.orientation = tuple(float(v) for v in ref.orientation)  # type: ignore[union-attr]
    report.pixel_spacing = ref.pixel_spacing
    if "inconsistent orientation" in found.kinds:
        return report
    normal = normal_of(ref.orientation)  # type: ignore[arg-type]
    distance = np.array([float(f.position @ normal) for f in frames])
    order = np.argsort(distance, kind="stable")
    report.frames = [frames[i] for i in order]
    d = distance[order]
    positions = np.array([f.position for f in report.frames])
    if len(frames) == 1:
        report.slice_spacing = ref.thickness
    else:
        report.slice_spacing = _check_spacing(report.frames, d, spacing_tolerance, spacing_atol_mm, found)
        if report.slice_spacing is not None:
            drift, report.tilt_degrees = _tilt(positions, normal)
            limit = max(spacing_atol_mm, TILT_TOLERANCE_PIXELS * min(ref.pixel_spacing))  # type: ignore[arg-type]
            if drift > limit:
                found.add(
                    "gantry tilt",
                    f"slice positions drift up to {drift:.3f} mm sideways from the slice normal "
                    f"(stack tilted {report.tilt_degrees:.2f} degrees from the normal: gantry tilt or shear; "
                    f"tolerance {limit:.3f} mm)",
                )
    report.ok = not found.kinds
    return report


def geometry_of(sources: list[Source]) -> list[FrameGeometry]:
    """Frame geometry of every source, labelled by file name (or the data set's label)."""
    return frame_geometries([s.dataset for s in sources], [s.path.name if s.path else s.label for s in sources])


def check_geometry(
    series: SeriesLike, *, spacing_tolerance: float = 0.01, spacing_atol_mm: float = 0.01
) -> GeometryReport:
    """Check that ``series`` forms one regular volume; see the module docstring for every rule.

    ``series`` is anything :func:`load_series` accepts (a :class:`Series`, a
    folder, file paths, pydicom Datasets, one multi-frame file). Only headers
    are read. ``spacing_tolerance`` is relative, ``spacing_atol_mm`` absolute;
    a gap passes when it is within either.
    """
    name, sources = collect(series)
    return analyse_frames(
        name, geometry_of(sources), spacing_tolerance=spacing_tolerance, spacing_atol_mm=spacing_atol_mm
    )


def geometry_table(series: Iterable[SeriesLike], **tolerances: float) -> pd.DataFrame:
    """One :meth:`GeometryReport.as_dict` row per series (e.g. every series of a discovery)."""
    rows = [check_geometry(s, **tolerances).as_dict() for s in series]
    return pd.DataFrame(rows, columns=list(rows[0]) if rows else ["name", "verdict"])
