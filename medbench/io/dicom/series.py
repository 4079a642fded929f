"""Group DICOM files into series that can each become one volume.

Files are grouped by StudyInstanceUID + SeriesInstanceUID, then a group is
split wherever its files cannot form one volume, in this order:

1. Modality;
2. SeriesNumber, SeriesDescription, ImageType and ConvolutionKernel (the
   reconstruction kernel): files that share a SeriesInstanceUID but differ in
   any of these are different series or reconstructions (a copy tool that
   reused a UID, soft-tissue and bone kernels of one acquisition, magnitude
   and phase images); stacked together they would interleave into one
   plausible-looking volume of alternating reconstructions;
3. image size (Rows x Columns);
4. orientation (ImageOrientationPatient cosines differing by more than
   :data:`ORIENTATION_TOLERANCE`);
5. multi-frame files: each multi-frame object is a volume on its own;
6. Siemens MOSAIC images: each holds a whole volume (two of them are never a
   2-slice series);
7. EchoNumbers and TemporalPositionIdentifier (different echoes / time
   points are different volumes by definition);
8. AcquisitionNumber, but only when slice positions repeat inside the group
   or the acquisitions interleave along the slice normal. CT scanners
   commonly increment AcquisitionNumber along one contiguous volume (a real
   example ships with pydicom: ``dicomdirtests/98892001/CT5N``), so
   splitting on it unconditionally would break valid volumes apart.

Every split records a human-readable ``split_reason`` on each part.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from pydicom.multival import MultiValue

from medbench.io.dicom.discover import DicomFile
from medbench.io.dicom.frames import FrameGeometry, frame_geometries, normal_of

#: Largest difference in any direction cosine for two slices to share an orientation (~0.06 degrees).
ORIENTATION_TOLERANCE = 1e-3

#: Positions closer than this (mm) count as the same position when looking for repeats.
POSITION_TOLERANCE_MM = 0.01


@dataclass
class Series:
    """Files that belong to one volume, ordered along the slice normal where geometry allows."""

    key: str  # SeriesInstanceUID, plus "[<what distinguishes this part>]" when the series was split
    study_uid: str
    series_uid: str
    modality: str
    description: str
    files: list[DicomFile] = field(repr=False)
    split_reason: str | None = None

    @property
    def n_files(self) -> int:
        return len(self.files)

    @property
    def paths(self) -> list[str]:
        return [str(f.path) for f in self.files]

    @property
    def series_number(self) -> int | None:
        value = self.files[0].dataset.get("SeriesNumber") if self.files else None
        try:
            return int(value) if value not in (None, "") else None
        except (TypeError, ValueError):
            return None

    @property
    def n_frames(self) -> int:
        return sum(f.n_frames for f in self.files)

    @property
    def is_image(self) -> bool:
        return bool(self.files) and all(f.has_pixels for f in self.files)

    def as_dict(self) -> dict[str, object]:
        """One table row describing the series (for :func:`series_table`)."""
        first: Any = self.files[0].dataset if self.files else {}
        return {
            "key": self.key,
            "modality": self.modality,
            "description": self.description,
            "series_number": self.series_number,
            "n_files": self.n_files,
            "n_frames": self.n_frames,
            "rows": first.get("Rows"),
            "columns": first.get("Columns"),
            "split_reason": self.split_reason or "",
            "study_uid": self.study_uid,
            "series_uid": self.series_uid,
        }


def series_table(series: Iterable[Series]) -> pd.DataFrame:
    """A DataFrame with one row per series (key, modality, description, sizes, split reason, UIDs)."""
    rows = [s.as_dict() for s in series]
    return pd.DataFrame(rows, columns=list(rows[0]) if rows else ["key"])


# -- split criteria: each maps the files of a group to one label per file -----------------------


def _tag_labels(keyword: str, short: str) -> Callable[[list[DicomFile]], list[Hashable]]:
    def labels(files: list[DicomFile]) -> list[Hashable]:
        return [f"{short} {f.dataset.get(keyword)}" if f.dataset.get(keyword) not in (None, "") else f"no {short}" for f in files]

    return labels


def _size_labels(files: list[DicomFile]) -> list[Hashable]:
    return [f"{f.dataset.get('Rows')}x{f.dataset.get('Columns')}" if f.has_pixels else "no image" for f in files]


def plane_name(orientation: np.ndarray) -> str:
    """"axial", "coronal" or "sagittal" when the slice normal is within ~8 degrees of an axis, else "oblique"."""
    normal = np.abs(normal_of(orientation))
    axis = int(np.argmax(normal))
    return ("sagittal", "coronal", "axial")[axis] if normal[axis] >= 0.99 else "oblique"


def _orientation_labels(files: list[DicomFile]) -> list[Hashable]:
    """Cluster orientations greedily (each file joins the first cluster within tolerance), named by plane."""
    geometry = frame_geometries([f.dataset for f in files], [f.path.name for f in files])
    first_frame: dict[int, FrameGeometry] = {}
    for g in geometry:
        first_frame.setdefault(g.source, g)
    centres: list[np.ndarray] = []
    cluster: list[int | None] = []
    for i in range(len(files)):
        iop = first_frame[i].orientation
        if iop is None:
            cluster.append(None)
            continue
        match = next((c for c, centre in enumerate(centres) if np.max(np.abs(iop - centre)) <= ORIENTATION_TOLERANCE), None)
        if match is None:
            centres.append(iop)
            match = len(centres) - 1
        cluster.append(match)
    names = [plane_name(c) for c in centres]
    repeated = {n for n in names if names.count(n) > 1}
    numbered = [f"{n} {names[: c + 1].count(n)}" if n in repeated else n for c, n in enumerate(names)]
    return [f"{numbered[c]} orientation" if c is not None else "no orientation" for c in cluster]


def _multiframe_labels(files: list[DicomFile]) -> list[Hashable]:
    counts = [1 if f.is_mosaic else f.n_frames for f in files]  # MOSAIC images have their own criterion
    if len(files) < 2 or all(n == 1 for n in counts):
        return ["" for _ in files]
    return [f"file {f.path.name}" if n > 1 else "single-frame files" for f, n in zip(files, counts)]


def _positions_repeat(files: list[DicomFile]) -> bool:
    geometry = [g for g in frame_geometries([f.dataset for f in files], [f.path.name for f in files]) if g.position is not None]
    keys = [tuple(np.round(np.asarray(g.position) / POSITION_TOLERANCE_MM).astype(int)) for g in geometry]
    return len(keys) != len(set(keys))


def _interleaved(files: list[DicomFile], labels: list[Hashable]) -> bool:
    """Whether the labelled groups alternate along the slice normal instead of forming contiguous blocks."""
    geometry = frame_geometries([f.dataset for f in files], [f.path.name for f in files])
    first: dict[int, FrameGeometry] = {}
    for g in geometry:
        first.setdefault(g.source, g)
    if len(first) != len(files) or any(g.position is None or g.orientation is None for g in first.values()):
        return False
    normal = normal_of(first[0].orientation)  # type: ignore[arg-type]
    order = sorted(range(len(files)), key=lambda i: float(np.dot(first[i].position, normal)))  # type: ignore[arg-type]
    runs = 1 + sum(labels[a] != labels[b] for a, b in zip(order, order[1:]))
    return runs > len(set(labels))


def _acquisition_labels(files: list[DicomFile]) -> list[Hashable]:
    labels = _tag_labels("AcquisitionNumber", "acquisition")(files)
    if len(set(labels)) < 2 or not (_positions_repeat(files) or _interleaved(files, labels)):
        return ["" for _ in files]
    return labels


def _joined(value: object) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, (list, tuple, MultiValue)):
        return "\\".join(str(v).strip() for v in value)
    return str(value).strip()


def _multi_labels(keyword: str, short: str) -> Callable[[list[DicomFile]], list[Hashable]]:
    """Labels from a possibly multi-valued attribute (ImageType, ConvolutionKernel), values joined by \\."""

    def labels(files: list[DicomFile]) -> list[Hashable]:
        values = [_joined(f.dataset.get(keyword)) for f in files]
        return [f"{short} {v}" if v else f"no {short}" for v in values]

    return labels


def _mosaic_labels(files: list[DicomFile]) -> list[Hashable]:
    if len(files) < 2 or not any(f.is_mosaic for f in files):
        return ["" for _ in files]
    return [f"MOSAIC {f.path.name}" if f.is_mosaic else "non-MOSAIC images" for f in files]


_CRITERIA: list[tuple[str, Callable[[list[DicomFile]], list[Hashable]]]] = [
    ("Modality", _tag_labels("Modality", "modality")),
    ("SeriesNumber", _tag_labels("SeriesNumber", "series number")),
    ("SeriesDescription", _tag_labels("SeriesDescription", "description")),
    ("ImageType", _multi_labels("ImageType", "image type")),
    ("ConvolutionKernel (reconstruction kernel)", _multi_labels("ConvolutionKernel", "kernel")),
    ("image size (Rows x Columns)", _size_labels),
    ("ImageOrientationPatient", _orientation_labels),
    ("multi-frame objects (each is its own volume)", _multiframe_labels),
    ("Siemens MOSAIC images (each holds a whole volume)", _mosaic_labels),
    ("EchoNumbers", _tag_labels("EchoNumbers", "echo")),
    ("TemporalPositionIdentifier", _tag_labels("TemporalPositionIdentifier", "time point")),
    ("AcquisitionNumber (slice positions repeat or acquisitions interleave)", _acquisition_labels),
]


@dataclass
class _Part:
    files: list[DicomFile]
    labels: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)


def _split(files: list[DicomFile]) -> list[_Part]:
    parts = [_Part(files)]
    for criterion, label_fn in _CRITERIA:
        next_parts: list[_Part] = []
        for part in parts:
            labels = label_fn(part.files)
            counts = Counter(labels)
            if len(counts) < 2:
                next_parts.append(part)
                continue
            summary = ", ".join(f"{label}: {n} file{'s' if n > 1 else ''}" for label, n in sorted(counts.items(), key=str))
            for label in sorted(counts, key=str):
                members = [f for f, lab in zip(part.files, labels, strict=True) if lab == label]
                reason = f"{criterion} differs within the series ({summary}); this part: {label}"
                next_parts.append(_Part(members, [*part.labels, str(label)], [*part.reasons, reason]))
        parts = next_parts
    return parts


def _instance_number(f: DicomFile) -> float:
    try:
        return float(f.dataset.get("InstanceNumber"))
    except (TypeError, ValueError):
        return float("inf")


def order_files(files: list[DicomFile]) -> list[DicomFile]:
    """Files sorted along the slice normal when all have geometry, else by InstanceNumber, then path."""
    geometry = frame_geometries([f.dataset for f in files], [f.path.name for f in files])
    first: dict[int, Any] = {}
    for g in geometry:
        first.setdefault(g.source, g)
    if len(first) == len(files) and all(g.position is not None and g.orientation is not None for g in first.values()):
        normal = normal_of(first[0].orientation)
        distance = {i: float(np.dot(g.position, normal)) for i, g in first.items()}
        keyed = sorted(range(len(files)), key=lambda i: (distance[i], _instance_number(files[i]), str(files[i].path)))
        return [files[i] for i in keyed]
    return sorted(files, key=lambda f: (_instance_number(f), str(f.path)))


def group_series(files: Iterable[DicomFile]) -> list[Series]:
    """Group files into :class:`Series`, splitting groups that cannot form one volume.

    Returned in a stable order: by study UID, series number, series UID, then part.
    """
    groups: dict[tuple[str, str], list[DicomFile]] = {}
    for f in files:
        groups.setdefault((f.study_uid, f.series_uid), []).append(f)
    result: list[Series] = []
    for (study_uid, series_uid), members in groups.items():
        for part in _split(members):
            first = part.files[0]
            labels = [lab for lab in part.labels if lab]
            result.append(
                Series(
                    key=(series_uid or "<no SeriesInstanceUID>") + (f"[{', '.join(labels)}]" if labels else ""),
                    study_uid=study_uid,
                    series_uid=series_uid,
                    modality=first.modality,
                    description=str(first.dataset.get("SeriesDescription", "") or ""),
                    files=order_files(part.files),
                    split_reason="; ".join(part.reasons) if part.reasons else None,
                )
            )
    result.sort(key=lambda s: (s.study_uid, s.series_number if s.series_number is not None else 1 << 30, s.key))
    return result
