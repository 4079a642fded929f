"""DICOM Segmentation objects (highdicom): hand a label map back to clinical systems.

:func:`write_segmentation` turns a label :class:`Volume` on the grid of a
source DICOM series into a BINARY Segmentation Storage object that references
every source image (so a PACS and a viewer overlay it on the right series),
one segment per label with its name and a coded category/type.
:func:`read_segmentation` reads one back into a label Volume on the source
grid (the round trip is tested frame by frame).

Frames are matched to source images by position, not by order: each source
image's ImagePositionPatient is located on the label volume's grid, so a
volume whose slices run opposite to the files' order still lands on the right
images, and a label map on another grid is refused.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pydicom

from medbench.atomic import atomic_path
from medbench.errors import DicomError, GeometryError
from medbench.image.volume import Volume

#: Software name written into the objects.
SOFTWARE = "medbench"


def _source_datasets(source: str | os.PathLike[str] | Sequence[pydicom.Dataset]) -> list[pydicom.Dataset]:
    if isinstance(source, (str, os.PathLike)):
        from medbench.io.dicom import discover, group_series

        files = discover(source).files
        series = [s for s in group_series(files) if s.is_image]
        if len(series) != 1:
            raise DicomError(f"{source}: expected one image series to reference, found {len(series)}")
        return [pydicom.dcmread(f.path) for f in series[0].files]
    return list(source)


def _frame_indices(labels: Volume, datasets: Sequence[pydicom.Dataset]) -> list[int]:
    """The k index on the label grid of each source image (by ImagePositionPatient)."""
    ks = []
    for ds in datasets:
        ijk = labels.index(np.asarray(ds.ImagePositionPatient, float)[None])[0]
        k = int(round(ijk[2]))
        if np.abs(ijk - np.round(ijk)).max() > 0.05 or not 0 <= k < labels.shape[2] or abs(ijk[0]) > 0.05 \
                or abs(ijk[1]) > 0.05:
            raise GeometryError(f"source image {ds.SOPInstanceUID} (position {list(ds.ImagePositionPatient)}) is not "
                                "a slice of the label grid; resample the labels onto the source series first")
        if (int(ds.Rows), int(ds.Columns)) != (labels.shape[1], labels.shape[0]):
            raise GeometryError(f"source image {ds.SOPInstanceUID} is {ds.Rows}x{ds.Columns} but the label grid "
                                f"slices are {labels.shape[1]}x{labels.shape[0]}")
        ks.append(k)
    return ks


def build_segmentation(
    labels: Volume,
    source: str | os.PathLike[str] | Sequence[pydicom.Dataset],
    names: Mapping[int, str],
    *,
    algorithm: str = "medbench",
    series_description: str = "medbench segmentation",
    series_number: int = 901,
) -> Any:
    """A ``highdicom.seg.Segmentation`` of ``labels`` (ids in ``names``, 0 = background) referencing ``source``.

    Segment numbers follow the sorted label ids (the first foreground id is
    segment 1, ...); each segment's label is the class name.
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes

    if not labels.is_label:
        raise GeometryError("build_segmentation needs a label Volume (role 'label')")
    datasets = _source_datasets(source)
    ks = _frame_indices(labels, datasets)
    ids = [int(v) for v in sorted(names) if int(v) != 0]
    if not ids:
        raise DicomError("no foreground label to encode")
    frames = np.stack([labels.array[:, :, k].T for k in ks])  # (frames, rows, cols), rows = j, cols = i
    masks = np.stack([(frames == v) for v in ids], axis=-1).astype(np.uint8)  # (frames, rows, cols, segments)
    algo = hd.AlgorithmIdentificationSequence(name=algorithm, version=SOFTWARE,
                                              family=codes.cid7162.ArtificialIntelligence)
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=n + 1, segment_label=str(names[v])[:64],
            segmented_property_category=codes.cid7150.Tissue,
            segmented_property_type=codes.cid7166.ConnectiveTissue,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algo,
        )
        for n, v in enumerate(ids)
    ]
    seg = hd.seg.Segmentation(
        source_images=datasets, pixel_array=masks, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions, series_instance_uid=hd.UID(), series_number=series_number,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer=SOFTWARE, manufacturer_model_name=algorithm,
        software_versions=SOFTWARE, device_serial_number="0", series_description=series_description,
        omit_empty_frames=False,
    )
    return seg


def write_segmentation(
    labels: Volume,
    source: str | os.PathLike[str] | Sequence[pydicom.Dataset],
    names: Mapping[int, str],
    out_path: str | os.PathLike[str],
    **kwargs: Any,
) -> Path:
    """Write a DICOM SEG of ``labels`` referencing the ``source`` series to ``out_path`` (atomically)."""
    seg = build_segmentation(labels, source, names, **kwargs)
    out = Path(out_path)
    with atomic_path(out, suffix=".dcm") as tmp:
        seg.save_as(tmp)
    return out


def read_segmentation(path: str | os.PathLike[str], reference: Volume) -> tuple[Volume, dict[int, str]]:
    """A label Volume on ``reference``'s grid from a SEG (segment n -> label n), and ``{n: segment label}``."""
    import highdicom as hd

    seg = hd.seg.segread(os.fspath(path))
    numbers = list(seg.segment_numbers)
    out = np.zeros(reference.shape, np.uint8)
    positions = [tuple(float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient)
                 for item in seg.PerFrameFunctionalGroupsSequence]
    pixels = seg.pixel_array  # (frames, rows, cols) with one frame per (segment, position)
    for f, item in enumerate(seg.PerFrameFunctionalGroupsSequence):
        number = int(item.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        ijk = reference.index(np.asarray(positions[f])[None])[0]
        k = int(round(ijk[2]))
        if not 0 <= k < reference.shape[2]:
            raise GeometryError(f"{path}: frame {f} lies outside the reference grid")
        out[:, :, k][pixels[f].T > 0] = number
    names = {n: str(seg.get_segment_description(n).SegmentLabel) for n in numbers}
    return reference.with_array(out, role="label"), names
