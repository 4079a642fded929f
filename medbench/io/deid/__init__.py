"""DICOM de-identification: PS3.15 Annex E Basic Application Level Confidentiality Profile.

One call per step from a notebook::

    from medbench.io import deid
    report = deid.deidentify_folder("raw/", "deid/", key, date_shift=True)
    report                                   # one row per input file
    deid.scan_for_leaks("raw/", "deid/", date_shift=True)   # expect an empty table
    deid.deid_diff(original_ds, deidentified_ds)             # what changed in one file

The attribute actions come from a pinned copy of Table E.1-1
(:func:`load_profile_table`); the rules medbench adds on top of it, and how
compound actions are resolved, are documented in
:mod:`medbench.io.deid.core` and :mod:`medbench.io.deid.table`.
"""

from __future__ import annotations

from medbench.io.deid.batch import STATUSES, DeidReport, NotDicomError, check_folders, deidentify_folder, read_dicom
from medbench.io.deid.core import (
    KEY_MIN_BYTES,
    DeidContext,
    Resolution,
    burned_in_reason,
    deidentify_dataset,
    effective_sop_class,
    load_key,
    pixel_data_problem,
    resolve_action,
)
from medbench.io.deid.diff import deid_diff
from medbench.io.deid.leaks import identifying_values, scan_for_leaks
from medbench.io.deid.table import ALLOWED_ACTIONS, EFFECTIVE_ACTION, ProfileTable, load_profile_table

__all__ = [
    "ALLOWED_ACTIONS",
    "EFFECTIVE_ACTION",
    "KEY_MIN_BYTES",
    "STATUSES",
    "DeidContext",
    "DeidReport",
    "NotDicomError",
    "ProfileTable",
    "Resolution",
    "burned_in_reason",
    "check_folders",
    "deid_diff",
    "deidentify_dataset",
    "deidentify_folder",
    "effective_sop_class",
    "identifying_values",
    "load_key",
    "load_profile_table",
    "pixel_data_problem",
    "read_dicom",
    "resolve_action",
    "scan_for_leaks",
]
