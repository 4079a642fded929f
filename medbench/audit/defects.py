"""A DICOM tree with defects planted on purpose: ground truth for the audit.

``build_defect_tree`` writes every phantom case's CT series as it should be,
plus damaged variants of the first case, each a series of its own (own UIDs):

=====================  ==========================================================
folder                 defect
=====================  ==========================================================
``caseNNN/``           none: the clean CT series of each case
``missing_slice/``     the middle slice file deleted
``duplicate_slice/``   one slice stored twice (new SOP Instance UID, same position)
``uneven_spacing/``    the upper half of the slices shifted by half a slice
``two_series/``        a CT and an MR series of the same patient in one folder
``broken/``            a truncated DICOM file and a non-DICOM text file
=====================  ==========================================================

Every file carries the case's planted identifying values (patient name, ID,
birth date, accession number, referring physician, ...), so de-identification
and its leak scan have something real to remove.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pydicom

from medbench.atomic import atomic_dir
from medbench.data.phantom import Cohort
from medbench.io.dicom.write import uid_from, write_series

#: Planted defect -> what a truthful audit must report for it.
EXPECTED = {
    "none": "valid series",
    "missing_slice": "missing slice",
    "duplicate_slice": "duplicate slice position",
    "uneven_spacing": "uneven slice spacing",
    "two_series": "two series found in one folder",
    "truncated_file": "unreadable file (truncated)",
    "non_dicom_file": "not a DICOM file",
}


def build_defect_tree(cohort: Cohort, out_dir: str | os.PathLike[str]) -> pd.DataFrame:
    """Write the tree into the new folder ``out_dir`` (atomically); return the planted defects.

    The returned table has one row per planted item: ``path`` (relative to
    ``out_dir``), ``defect`` and ``expected`` finding.
    """
    out_dir = Path(out_dir)
    rows: list[dict[str, str]] = []
    with atomic_dir(out_dir) as tmp:
        for i in range(len(cohort)):
            case = cohort.case(i)
            write_series(case.ct, tmp / case.case_id, uid_seed=f"defects/{case.case_id}", patient=case.identifiers,
                         series_description=f"{case.case_id} CT")
            rows.append({"path": case.case_id, "defect": "none"})
        first = cohort.case(0)
        patient = first.identifiers

        def variant(name: str) -> list[Path]:
            return write_series(first.ct, tmp / name, uid_seed=f"defects/{name}", patient=patient,
                                series_description=f"{first.case_id} CT ({name})")

        files = variant("missing_slice")
        (tmp / "missing_slice" / files[len(files) // 2].name).unlink()
        rows.append({"path": "missing_slice", "defect": "missing_slice"})

        files = variant("duplicate_slice")
        dup = pydicom.dcmread(tmp / "duplicate_slice" / files[len(files) // 2].name)
        dup.SOPInstanceUID = uid_from("defects/duplicate_slice/extra")
        dup.file_meta.MediaStorageSOPInstanceUID = dup.SOPInstanceUID
        dup.InstanceNumber = len(files) + 1
        dup.save_as(tmp / "duplicate_slice" / "IM_DUP.dcm", enforce_file_format=True)
        rows.append({"path": "duplicate_slice", "defect": "duplicate_slice"})

        files = variant("uneven_spacing")
        step = first.ct.spacing[2] / 2.0
        for f in files[len(files) // 2:]:
            ds = pydicom.dcmread(tmp / "uneven_spacing" / f.name)
            ds.ImagePositionPatient = [ds.ImagePositionPatient[0], ds.ImagePositionPatient[1],
                                       f"{float(ds.ImagePositionPatient[2]) + step:.6g}"]
            ds.SliceLocation = ds.ImagePositionPatient[2]
            ds.save_as(tmp / "uneven_spacing" / f.name, enforce_file_format=True)
        rows.append({"path": "uneven_spacing", "defect": "uneven_spacing"})

        # two series in one folder: write both beside each other, then merge the folders
        write_series(first.ct, tmp / ".two_ct", uid_seed="defects/two_series/ct", patient=patient,
                     series_description=f"{first.case_id} CT (two_series)", filename_pattern="CT{index:04d}.dcm")
        # the MR is on its own grid since phantom v2: resample it onto the CT grid so both series have one geometry
        write_series(first.t1.resample_to(first.ct), tmp / ".two_mr", modality="MR", uid_seed="defects/two_series/mr",
                     series_number=2, patient=patient, series_description=f"{first.case_id} MR T1 (two_series)",
                     filename_pattern="MR{index:04d}.dcm")
        (tmp / "two_series").mkdir()
        for part in (".two_ct", ".two_mr"):
            for f in sorted((tmp / part).iterdir()):
                os.replace(f, tmp / "two_series" / f.name)
            (tmp / part).rmdir()
        rows.append({"path": "two_series", "defect": "two_series"})

        broken = tmp / "broken"
        files = write_series(first.ct, tmp / ".single", uid_seed="defects/truncated", patient=patient,
                             series_description="truncated")
        broken.mkdir()
        data = (tmp / ".single" / files[0].name).read_bytes()
        (broken / "truncated.dcm").write_bytes(data[: len(data) // 2])
        shutil.rmtree(tmp / ".single")
        (broken / "notes.txt").write_text("scanner export notes: not a DICOM file\n")
        rows += [{"path": "broken/truncated.dcm", "defect": "truncated_file"},
                 {"path": "broken/notes.txt", "defect": "non_dicom_file"}]
    table = pd.DataFrame(rows)
    table["expected"] = table["defect"].map(EXPECTED)
    return table


def _folder_of(path: str, root: Path) -> str:
    rel = Path(path).resolve().relative_to(root.resolve())
    return rel.parts[0] if len(rel.parts) > 1 else rel.as_posix()


def verify_findings(planted: pd.DataFrame, root: str | os.PathLike[str], files_df: pd.DataFrame,
                    series_df: pd.DataFrame) -> pd.DataFrame:
    """Did the audit of ``root`` report each planted defect? One row per planted item.

    ``files_df`` / ``series_df`` are the audit's tables (:func:`medbench.audit.run_audit`).
    A clean series must be ``valid``; a damaged one must carry the matching
    geometry verdict; two series in one folder must come out as two series; a
    broken file must be a failure row with the matching reason.
    """
    root = Path(root)
    files = files_df.assign(
        rel=[Path(p).resolve().relative_to(root.resolve()).as_posix() for p in files_df["path"]],
        folder=[_folder_of(p, root) for p in files_df["path"]],
    )
    verdicts = series_df.set_index("series_uid")["verdict"].to_dict()
    keyword = {"missing_slice": "missing", "duplicate_slice": "duplicate", "uneven_spacing": "uneven"}
    rows = []
    for item in planted.itertuples():
        if item.defect in ("truncated_file", "non_dicom_file"):
            row = files[files["rel"] == item.path]
            found = "; ".join(row["error"].astype(str)) or "no row for this file"
            want = "truncated" if item.defect == "truncated_file" else "not_dicom"
            detected = bool((row["error_kind"] == want).any())
        else:
            uids = sorted(files.loc[(files["folder"] == item.path) & files["readable"], "series_uid"].dropna().unique())
            found_verdicts = [str(verdicts.get(u, "not summarised")) for u in uids]
            found = f"{len(uids)} series: " + ", ".join(found_verdicts)
            if item.defect == "none":
                detected = found_verdicts == ["valid"]
            elif item.defect == "two_series":
                detected = len(uids) == 2
            else:
                detected = len(found_verdicts) == 1 and keyword[item.defect] in found_verdicts[0]
        rows.append({"path": item.path, "defect": item.defect, "expected": item.expected, "found": found,
                     "detected": detected})
    return pd.DataFrame(rows)
