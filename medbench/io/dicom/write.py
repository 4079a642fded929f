"""Write a :class:`~medbench.image.volume.Volume` as a standard DICOM image series.

One file per slice along ``k``; 16-bit stored values with RescaleSlope /
RescaleIntercept so the physical values (HU for CT) round-trip exactly at the
chosen slope; ImagePositionPatient / ImageOrientationPatient / PixelSpacing /
SliceThickness / SpacingBetweenSlices from the affine; UIDs that are valid,
and deterministic for a given ``uid_seed`` so reruns produce identical files.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

from medbench.atomic import atomic_dir
from medbench.errors import GeometryError
from medbench.image.volume import Volume

SOP_CLASS = {
    "CT": "1.2.840.10008.5.1.4.1.1.2",  # CT Image Storage
    "MR": "1.2.840.10008.5.1.4.1.1.4",  # MR Image Storage
    "PT": "1.2.840.10008.5.1.4.1.1.128",  # Positron Emission Tomography Image Storage
}

#: Identifying defaults; the phantom passes its own synthetic values.
DEFAULT_PATIENT: dict[str, Any] = {
    "PatientName": "PHANTOM^CASE",
    "PatientID": "PHANTOM-000",
    "PatientBirthDate": "19700101",
    "PatientSex": "O",
    "StudyDate": "20260101",
    "StudyTime": "120000",
    "AccessionNumber": "ACC000",
    "StudyID": "1",
    "ReferringPhysicianName": "",
    "InstitutionName": "medbench phantom",
}


def uid_from(seed: str) -> str:
    """A valid DICOM UID derived deterministically from ``seed``."""
    return str(generate_uid(entropy_srcs=[seed]))


def _rescale_for(array: np.ndarray, modality: str) -> tuple[float, float]:
    """Slope/intercept that fit the value range into int16/uint16 storage."""
    lo, hi = float(np.min(array)), float(np.max(array))
    if modality == "CT":
        return 1.0, -1024.0 if lo >= -1024 else float(np.floor(lo))
    span = max(hi - lo, 1e-6)
    slope = 1.0 if span <= 60000 and np.allclose(array, np.round(array)) else span / 60000.0
    return float(slope), float(np.floor(lo))


def write_series(
    volume: Volume,
    out_dir: str | os.PathLike[str],
    *,
    modality: str = "CT",
    uid_seed: str = "medbench",
    series_number: int = 1,
    series_description: str = "",
    patient: Mapping[str, Any] | None = None,
    study_uid: str | None = None,
    extra: Mapping[str, Any] | None = None,
    slope_intercept: tuple[float, float] | None = None,
    filename_pattern: str = "IM{index:04d}.dcm",
) -> list[Path]:
    """Write ``volume`` as one DICOM file per slice into the new folder ``out_dir``.

    ``out_dir`` must not exist: the series is assembled in a temporary folder
    and renamed into place, so a failure leaves nothing behind. Returns the
    written paths in slice order.
    """
    modality = modality.upper()
    if modality not in SOP_CLASS:
        raise ValueError(f"modality must be one of {sorted(SOP_CLASS)}, got {modality!r}")
    arr = np.asarray(volume.array, dtype=float)
    slope, intercept = slope_intercept or _rescale_for(arr, modality)
    stored = np.round((arr - intercept) / slope)
    signed = stored.min() < 0
    lim = (-32768, 32767) if signed else (0, 65535)
    if stored.min() < lim[0] or stored.max() > lim[1]:
        raise GeometryError(
            f"values {arr.min():.1f}..{arr.max():.1f} do not fit 16-bit storage with slope {slope} intercept {intercept}"
        )
    stored = stored.astype(np.int16 if signed else np.uint16)

    direction = volume.direction
    sx, sy, sz = volume.spacing
    iop = [float(v) for v in np.concatenate([direction[:, 0], direction[:, 1]])]
    normal = np.cross(direction[:, 0], direction[:, 1])
    if not np.allclose(normal, direction[:, 2], atol=1e-4):
        raise GeometryError("slice axis k is not along the row x column normal; reorient before writing DICOM")

    pat = {**DEFAULT_PATIENT, **(patient or {})}
    study_uid = study_uid or uid_from(f"{uid_seed}/study")
    series_uid = uid_from(f"{uid_seed}/series/{series_number}")
    frame_uid = uid_from(f"{uid_seed}/frame")
    paths: list[Path] = []
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        for k in range(arr.shape[2]):
            sop_uid = uid_from(f"{uid_seed}/series/{series_number}/instance/{k}")
            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID = UID(SOP_CLASS[modality])
            meta.MediaStorageSOPInstanceUID = UID(sop_uid)
            meta.TransferSyntaxUID = ExplicitVRLittleEndian
            meta.ImplementationClassUID = UID(uid_from("medbench/implementation"))
            meta.ImplementationVersionName = "MEDBENCH_0_1"
            name = filename_pattern.format(index=k + 1)
            ds = FileDataset(name, {}, file_meta=meta, preamble=b"\0" * 128)
            ds.SpecificCharacterSet = "ISO_IR 100"
            ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
            ds.SOPClassUID = SOP_CLASS[modality]
            ds.SOPInstanceUID = sop_uid
            ds.Modality = modality
            ds.Manufacturer = "medbench"
            ds.ManufacturerModelName = "phantom"
            for key, value in pat.items():
                setattr(ds, key, value)
            ds.SeriesDate = pat["StudyDate"]
            ds.ContentDate = pat["StudyDate"]
            ds.SeriesTime = pat["StudyTime"]
            ds.ContentTime = pat["StudyTime"]
            ds.StudyInstanceUID = study_uid
            ds.SeriesInstanceUID = series_uid
            ds.FrameOfReferenceUID = frame_uid
            ds.SeriesNumber = series_number
            ds.SeriesDescription = series_description or f"{modality} phantom"
            ds.InstanceNumber = k + 1
            ds.PositionReferenceIndicator = ""
            pos = volume.affine @ np.array([0.0, 0.0, float(k), 1.0])
            ds.ImagePositionPatient = [f"{v:.6g}" for v in pos[:3]]
            ds.ImageOrientationPatient = [f"{v:.6g}" for v in iop]
            ds.SliceLocation = f"{float(np.dot(pos[:3], normal)):.6g}"
            ds.PixelSpacing = [f"{sy:.6g}", f"{sx:.6g}"]  # row spacing (j), column spacing (i)
            ds.SliceThickness = f"{sz:.6g}"
            ds.SpacingBetweenSlices = f"{sz:.6g}"
            ds.SamplesPerPixel = 1
            ds.PhotometricInterpretation = "MONOCHROME2"
            ds.Rows, ds.Columns = int(arr.shape[1]), int(arr.shape[0])
            ds.BitsAllocated = 16
            ds.BitsStored = 16
            ds.HighBit = 15
            ds.PixelRepresentation = 1 if signed else 0
            ds.RescaleSlope = f"{slope:.10g}"
            ds.RescaleIntercept = f"{intercept:.10g}"
            if modality == "CT":
                ds.RescaleType = "HU"
                ds.KVP = "120"
                ds.WindowCenter, ds.WindowWidth = "40", "400"
            for key, value in (extra or {}).items():
                setattr(ds, key, value)
            ds.PixelData = np.ascontiguousarray(stored[:, :, k].T).tobytes()
            ds.save_as(tmp / name, enforce_file_format=True)
            paths.append(out_dir / name)
    return paths
