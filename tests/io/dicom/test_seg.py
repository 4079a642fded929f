"""DICOM SEG (highdicom): written against a real CT series, read back frame by frame, stored in a real PACS."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from medbench.errors import GeometryError
from medbench.image import Volume
from medbench.image.transforms import euler_zxy
from medbench.io.dicom import load_series
from medbench.io.dicom.seg import read_segmentation, write_segmentation
from medbench.io.dicom.write import write_series
from tests.orthanc import orthanc_server  # noqa: F401 (fixture)

NAMES = {0: "background", 1: "liver", 2: "lesion"}


def _ct_and_labels(direction: np.ndarray | None = None) -> tuple[Volume, Volume]:
    rng = np.random.default_rng(0)
    ct = Volume.from_spacing(rng.normal(40, 20, (20, 16, 6)).astype(np.float32), (1.5, 1.2, 3.0),
                             (-15.0, -10.0, 30.0), direction)
    lab = np.zeros(ct.shape, np.uint8)
    lab[4:14, 3:12, 1:5] = 1
    lab[8:11, 5:8, 2:4] = 2
    return ct, ct.with_array(lab, role="label")


@pytest.mark.parametrize("oblique", [False, True])
def test_seg_round_trip_matches_the_mask_frame_by_frame(tmp_path: Path, oblique: bool) -> None:
    ct, labels = _ct_and_labels(euler_zxy((5.0, 0.0, 20.0)) if oblique else None)
    files = write_series(ct, tmp_path / "ct", uid_seed="seg-test")
    out = write_segmentation(labels, tmp_path / "ct", NAMES, tmp_path / "seg.dcm")

    ds = pydicom.dcmread(out)
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4" and ds.Modality == "SEG"
    source = [pydicom.dcmread(f) for f in files]
    ref = ds.ReferencedSeriesSequence[0]
    assert ref.SeriesInstanceUID == source[0].SeriesInstanceUID
    assert {r.ReferencedSOPInstanceUID for r in ref.ReferencedInstanceSequence} == {s.SOPInstanceUID for s in source}
    assert [s.SegmentLabel for s in ds.SegmentSequence] == ["liver", "lesion"]
    assert ds.StudyInstanceUID == source[0].StudyInstanceUID

    # independent check with pydicom alone: every frame equals the mask of its segment at its source slice
    loaded_ct = load_series(tmp_path / "ct")
    frames = ds.pixel_array
    for f, item in enumerate(ds.PerFrameFunctionalGroupsSequence):
        segment = int(item.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        pos = np.asarray(item.PlanePositionSequence[0].ImagePositionPatient, float)
        k = int(round(loaded_ct.index(pos[None])[0][2]))
        np.testing.assert_array_equal(frames[f] > 0, labels.array[:, :, k].T == segment)

    back, names = read_segmentation(out, loaded_ct)
    assert names == {1: "liver", 2: "lesion"}
    np.testing.assert_array_equal(back.array, labels.array)


def test_labels_on_another_grid_are_refused(tmp_path: Path) -> None:
    ct, labels = _ct_and_labels()
    write_series(ct, tmp_path / "ct", uid_seed="seg-test2")
    moved = labels.affine.copy()
    moved[0, 3] += 0.75  # half a voxel: not a slice of the source series any more
    shifted = Volume(labels.array, moved, role="label")
    with pytest.raises(GeometryError, match="not a slice of the label grid"):
        write_segmentation(shifted, tmp_path / "ct", NAMES, tmp_path / "seg.dcm")
    assert not (tmp_path / "seg.dcm").exists()


@pytest.mark.orthanc
def test_seg_is_stored_and_retrieved_from_a_real_pacs(tmp_path: Path, orthanc_server) -> None:
    from medbench.io.dicomweb import DicomWebSource

    ct, labels = _ct_and_labels()
    write_series(ct, tmp_path / "ct", uid_seed="seg-pacs")
    seg_path = write_segmentation(labels, tmp_path / "ct", NAMES, tmp_path / "seg.dcm")
    pacs = DicomWebSource(orthanc_server.dicomweb_url)
    stored = pacs.store([tmp_path / "ct", seg_path])
    assert (stored["status"] == "stored").all(), stored
    seg = pydicom.dcmread(seg_path)
    series = pacs.search_series(seg.StudyInstanceUID)
    assert set(series["Modality"]) == {"CT", "SEG"}
    (got,) = pacs.retrieve_series(seg.StudyInstanceUID, seg.SeriesInstanceUID)
    assert got.SOPInstanceUID == seg.SOPInstanceUID and got.NumberOfFrames == seg.NumberOfFrames
