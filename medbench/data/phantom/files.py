"""A case on disk: NIfTI volumes, truth.json, and DICOM series of CT, PET (with SUV tags) and MR.

Layout of a case folder (see :func:`case_paths`): one ``<name>.nii.gz`` per
volume (RAS affine, as NIfTI wants), ``displacement.nii.gz`` (a NIfTI vector
field, LPS components as ITK reads them), ``truth.json`` (everything else),
and ``dicom/ct``, ``dicom/pet``, ``dicom/t1``, ``dicom/t2``.

PET DICOM stores activity concentration (Units BQML, decay-corrected to the
acquisition start: DecayCorrection START) with the patient weight and a
RadiopharmaceuticalInformationSequence (FDG, injected activity, F-18
half-life, injection time), so the standard body-weight SUV
``SUVbw = C * weight_g / (A_inj * 2^(-dt / T_half))`` (``dt`` from injection to
SeriesTime) gives back the SUV image (:func:`suv_bw` computes it from the
tags). CT and PET share one study and frame of reference (a PET/CT); MR is a
study of its own with its own frame of reference.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from medbench.atomic import atomic_dir, write_text
from medbench.data.phantom.case import BASE_VOLUMES, PhantomCase, volume_meta
from medbench.data.phantom.labels import LABELS, LESION_LABELS, ORGAN_LABELS, TISSUES
from medbench.data.phantom.motion import BreathingDeformation
from medbench.data.phantom.spec import PHANTOM_VERSION, PhantomSpec
from medbench.errors import DataError
from medbench.image.transforms import DisplacementField, Landmarks, RigidTransform
from medbench.image.volume import Volume
from medbench.io.dicom.write import uid_from, write_series

DISPLACEMENT_FILE = "displacement.nii.gz"
TRUTH_FILE = "truth.json"
DICOM_DIRS = {"dicom_ct": "dicom/ct", "dicom_pet": "dicom/pet", "dicom_t1": "dicom/t1", "dicom_t2": "dicom/t2"}


def volume_file(name: str) -> str:
    return f"{name}.nii.gz"


def _truth(case: PhantomCase) -> dict[str, Any]:
    vols = case.volumes()
    return {
        "phantom_version": PHANTOM_VERSION,
        "case_id": case.case_id,
        "index": case.index,
        "split": case.split,
        "spec": case.spec.to_dict(),
        "spec_key": case.spec.key(),
        "frame": "LPS mm; NIfTI files store the equivalent RAS affine",
        "labels": {str(k): v for k, v in LABELS.items()},
        "organ_labels": list(ORGAN_LABELS),
        "lesion_labels": list(LESION_LABELS),
        "tissues": [t.name for t in TISSUES],
        "tissue_values": case.tissue_values,
        "volumes": {name: {"file": volume_file(name), **volume_meta(name), "shape": list(v.shape),
                           "spacing_mm": list(v.spacing)} for name, v in vols.items()},
        "displacement": {"file": DISPLACEMENT_FILE, "layout": "[i, j, k, 1, 3] NIfTI vector, LPS mm",
                         "fixed": "deformed CT", "moving": "CT"},
        "rigid": {**case.rigid.to_dict(), "fixed": "CT", "moving": "MR"},
        "deformation": case.deformation.to_dict(),
        "landmarks": case.landmarks.to_dict(),
        "lesions": list(case.lesion_info),
        "classification": case.classification,
        "acquisition": case.acquisition,
        "identifiers": case.identifiers,
        "stats": case.stats(),
        "dicom": dict(DICOM_DIRS),
    }


def case_paths(case_dir: str | os.PathLike[str], names: list[str] | tuple[str, ...] = BASE_VOLUMES) -> dict[str, Path]:
    """Paths of the files of a written case folder, by name."""
    root = Path(case_dir)
    paths = {name: root / volume_file(name) for name in names}
    paths["displacement"] = root / DISPLACEMENT_FILE
    paths["truth"] = root / TRUTH_FILE
    paths.update({key: root / sub for key, sub in DICOM_DIRS.items()})
    return paths


def _study_time(case: PhantomCase) -> datetime:
    ident = case.identifiers
    return datetime.strptime(ident["StudyDate"] + ident["StudyTime"], "%Y%m%d%H%M%S")


def pet_dicom_tags(case: PhantomCase) -> dict[str, Any]:
    """The PET series' SUV-related attributes (activity in Bq/mL = SUV * injected activity * decay / weight)."""
    acq = case.acquisition
    scan = _study_time(case)
    injection = scan - timedelta(seconds=float(acq["pet_uptake_time_s"]))
    radio = Dataset()
    radio.Radiopharmaceutical = "Fluorodeoxyglucose"
    radio.RadiopharmaceuticalStartTime = injection.strftime("%H%M%S")
    radio.RadiopharmaceuticalStartDateTime = injection.strftime("%Y%m%d%H%M%S")
    radio.RadionuclideTotalDose = f"{float(acq['pet_injected_activity_bq']):.6g}"
    radio.RadionuclideHalfLife = f"{float(acq['pet_half_life_s']):.6g}"
    radio.RadionuclidePositronFraction = "0.9673"
    nuclide = Dataset()
    nuclide.CodeValue, nuclide.CodingSchemeDesignator, nuclide.CodeMeaning = "C-111A1", "SRT", "^18^Fluorine"
    radio.RadionuclideCodeSequence = Sequence([nuclide])
    return {
        "Units": "BQML",
        "DecayCorrection": "START",
        "CorrectedImage": ["DECY", "ATTN", "SCAT", "RAN", "NORM"],
        "SeriesType": ["WHOLE BODY", "IMAGE"],
        "PatientWeight": f"{float(acq['patient_weight_kg']):.1f}",
        "AcquisitionDate": scan.strftime("%Y%m%d"),
        "AcquisitionTime": scan.strftime("%H%M%S"),
        "RadiopharmaceuticalInformationSequence": Sequence([radio]),
    }


def suv_to_bqml(case: PhantomCase) -> float:
    """Bq/mL per SUV unit of the case's PET (decay-corrected to the scan start)."""
    acq = case.acquisition
    decay = 2.0 ** (-float(acq["pet_uptake_time_s"]) / float(acq["pet_half_life_s"]))
    return float(acq["pet_injected_activity_bq"]) * decay / (float(acq["patient_weight_kg"]) * 1000.0)


def suv_bw(ds: Any) -> float:
    """Body-weight SUV per stored Bq/mL of a PET DICOM dataset, from its tags (DecayCorrection START).

    ``weight_g / (injected_Bq * 2^(-(SeriesTime - injection) / half_life))``;
    multiply the rescaled pixel values (Bq/mL) by it.
    """
    units, decay = str(getattr(ds, "Units", "")).upper(), str(getattr(ds, "DecayCorrection", "")).upper()
    if units != "BQML" or decay != "START":
        raise DataError(f"SUV needs Units BQML and DecayCorrection START, got {units or 'none'} / {decay or 'none'}")
    radio = ds.RadiopharmaceuticalInformationSequence[0]
    day = str(ds.SeriesDate)
    scan = datetime.strptime(day + str(ds.SeriesTime)[:6], "%Y%m%d%H%M%S")
    injection = datetime.strptime(day + str(radio.RadiopharmaceuticalStartTime)[:6], "%Y%m%d%H%M%S")
    dt = (scan - injection).total_seconds()
    decayed = float(radio.RadionuclideTotalDose) * 2.0 ** (-dt / float(radio.RadionuclideHalfLife))
    return float(ds.PatientWeight) * 1000.0 / decayed


def write_dicom(case: PhantomCase, root: Path) -> None:
    """CT, PET (Bq/mL with SUV tags) and MR T1/T2 series of a case under ``root`` (see the module doc)."""
    seed = f"medbench-phantom/v{PHANTOM_VERSION}/{case.spec.key()}/{case.case_id}"
    petct_study = uid_from(f"{seed}/study/petct")
    ct_frame = uid_from(f"{seed}/ct/frame")
    write_series(case.ct, root / DICOM_DIRS["dicom_ct"], modality="CT", uid_seed=f"{seed}/ct",
                 series_description=f"phantom CT {case.case_id}", patient=case.identifiers, study_uid=petct_study,
                 extra={"FrameOfReferenceUID": ct_frame})
    bqml = case.pet.with_array(case.pet.array.astype(np.float64) * suv_to_bqml(case))
    write_series(bqml, root / DICOM_DIRS["dicom_pet"], modality="PT", uid_seed=f"{seed}/pet", series_number=2,
                 series_description=f"phantom FDG PET {case.case_id}", patient=case.identifiers,
                 study_uid=petct_study, extra={"FrameOfReferenceUID": ct_frame, **pet_dicom_tags(case)})
    for n, (name, tr, te) in enumerate((("t1", 500, 12), ("t2", 4000, 90)), start=3):
        write_series(getattr(case, name), root / DICOM_DIRS[f"dicom_{name}"], modality="MR", uid_seed=f"{seed}/mr/{name}",
                     series_number=n, series_description=f"phantom MR {name.upper()}w {case.case_id}",
                     patient=case.identifiers, study_uid=uid_from(f"{seed}/study/mr"),
                     extra={"FrameOfReferenceUID": uid_from(f"{seed}/mr/frame"), "MagneticFieldStrength": "1.5",
                            "RepetitionTime": str(tr), "EchoTime": str(te), "ScanningSequence": "SE",
                            "SequenceVariant": "NONE", "MRAcquisitionType": "2D", "ImagingFrequency": "63.87"})


def write_case(case: PhantomCase, out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Write a case into the new folder ``out_dir`` (NIfTI, truth.json, DICOM).

    The folder is assembled under a temporary name and renamed when complete;
    ``out_dir`` must not exist. Returns the final paths by name.
    """
    out_dir = Path(out_dir)
    vols = case.volumes()
    with atomic_dir(out_dir) as tmp:
        for name, vol in vols.items():
            vol.to_nifti(tmp / volume_file(name))
        case.displacement.field.to_nifti(tmp / DISPLACEMENT_FILE)
        write_dicom(case, tmp)
        write_text(tmp / TRUTH_FILE, json.dumps(_truth(case), indent=1) + "\n")
    return case_paths(out_dir, tuple(vols))


def _read_nifti(path: Path, name: str) -> Volume:
    if not path.is_file():
        raise DataError(f"phantom file {path} is missing; regenerate with load_cohort(spec, refresh=True)")
    meta = volume_meta(name)
    role = "label" if meta["modality"] == "SEG" else "image"
    vol = Volume.from_nifti(path, role=role)  # type: ignore[arg-type]
    return Volume(vol.array, vol.affine, {"name": name, **meta, "source": os.fspath(path)}, role=vol.role)


def read_case(case_dir: str | os.PathLike[str]) -> PhantomCase:
    """Load a case folder written by :func:`write_case` (arrays identical to the generated ones)."""
    root = Path(case_dir)
    truth_path = root / TRUTH_FILE
    try:
        truth = json.loads(truth_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise DataError(f"cannot read phantom truth file {truth_path}: {err}") from None
    if truth.get("phantom_version") != PHANTOM_VERSION:
        raise DataError(f"{truth_path}: written by phantom version {truth.get('phantom_version')}, this is "
                        f"{PHANTOM_VERSION}; regenerate with load_cohort(spec, refresh=True)")
    names = list(truth["volumes"])
    paths = case_paths(root, names)
    vols = {name: _read_nifti(paths[name], name) for name in names}
    if not paths["displacement"].is_file():
        raise DataError(f"phantom file {paths['displacement']} is missing; regenerate with refresh=True")
    disp = DisplacementField(Volume.from_nifti(paths["displacement"], {"name": "displacement"}, role="vector"))
    return PhantomCase(
        case_id=truth["case_id"],
        index=int(truth["index"]),
        spec=PhantomSpec.from_dict(truth["spec"]),
        split=truth["split"],
        displacement=disp,
        rigid=RigidTransform.from_dict(truth["rigid"]),
        deformation=BreathingDeformation.from_dict(truth["deformation"]),
        landmarks=Landmarks.from_dict(truth["landmarks"]),
        lesion_info=tuple(truth["lesions"]),
        classification=dict(truth["classification"]),
        acquisition=dict(truth["acquisition"]),
        tissue_values=dict(truth["tissue_values"]),
        identifiers=dict(truth["identifiers"]),
        dose_volumes={name: vols.pop(name) for name in list(vols) if name not in BASE_VOLUMES},
        **vols,
    )
