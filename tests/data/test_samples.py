"""medbench.data.samples: real files shipped inside installed packages, found without downloading."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from medbench.data import samples
from medbench.errors import DataError


def test_pydicom_test_files_are_real_and_complete() -> None:
    files = samples.pydicom_test_files()
    root = samples.pydicom_test_dir()
    assert files == sorted(files) and all(p.is_file() for p in files)
    rel = {str(p.relative_to(root)) for p in files}
    assert {"CT_small.dcm", "MR_small.dcm", "dicomdirtests/DICOMDIR", "dicomdirtests/98892001/CT5N/2062"} <= rel
    assert "README.txt" in rel  # non-DICOM files are samples too: the audit must report them
    assert len(files) > 150
    assert pydicom.dcmread(samples.pydicom_sample("CT_small.dcm")).Modality == "CT"


def test_sample_listing_skips_python_files_and_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for rel in ("a.dcm", "sub/b", "sub/notes.txt", "helper.py", "__pycache__/helper.cpython-311.pyc", "sub/c.pyc"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    (tmp_path / "emptydir").mkdir()
    monkeypatch.setattr(samples, "pydicom_test_dir", lambda: tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in samples.pydicom_test_files()] == ["a.dcm", "sub/b", "sub/notes.txt"]


def test_pydicom_sample_by_path_or_unique_name() -> None:
    assert samples.pydicom_sample("dicomdirtests/DICOMDIR").parent.name == "dicomdirtests"
    assert samples.pydicom_sample("6154").parts[-2:] == ("CR1", "6154")  # unique name in a sub-folder
    with pytest.raises(DataError, match="several files have that name"):
        samples.pydicom_sample("DICOMDIR")  # dicomdirtests/ and dicomdirtests/TINY_ALPHA/
    with pytest.raises(DataError, match="not in .*similar names: CT_small.dcm"):
        samples.pydicom_sample("CT_smal.dcm")


def test_mni152_template_and_masks_load() -> None:
    t1 = nib.load(samples.mni152_t1())
    masks = samples.mni152_masks()
    assert set(masks) == {"gm", "wm"}
    assert len(t1.shape) == 3 and min(t1.shape) > 50
    for path in masks.values():
        mask = nib.load(path)
        assert mask.shape == t1.shape
        np.testing.assert_allclose(mask.affine, t1.affine)


def test_nibabel_test_files() -> None:
    files = samples.nibabel_test_files()
    names = {p.name for p in files}
    assert {"example4d.nii.gz", "anatomical.nii", "0.dcm"} <= names
    assert not any(p.suffix in {".py", ".pyc"} for p in files)


def test_missing_package_names_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "nilearn" else real(name, *a))
    with pytest.raises(samples.SampleUnavailable, match=r"pip install nilearn"):
        samples.mni152_t1()
    assert issubclass(samples.SampleUnavailable, DataError)
    assert samples.pydicom_test_files()  # other packages unaffected
