"""The phantom on disk: NIfTI, truth.json, DICOM (CT, PET with SUV tags, MR) and the cohort cache."""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from medbench.data import cache
from medbench.data.phantom import (
    LIVER,
    PHANTOM_VERSION,
    PhantomCase,
    PhantomSpec,
    cohort_hash,
    generate_case,
    load_cohort,
    read_case,
    suv_bw,
    write_case,
)
from medbench.data.phantom import case as case_mod
from medbench.data.phantom import cohort as cohort_mod
from medbench.data.phantom import files as files_mod
from medbench.data.phantom import spec as spec_mod
from medbench.errors import ConfigError, DataError

SMALL = PhantomSpec(n_cases=3, shape=(32, 32, 16), spacing=(12.5, 12.5, 16.0), pet_spacing=(10.0, 10.0, 10.0))


@pytest.fixture(scope="module")
def case() -> PhantomCase:
    return generate_case(PhantomSpec(n_cases=3, dose_levels=(0.25,)), 0)


@pytest.fixture(scope="module")
def written(case: PhantomCase, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_case(case, tmp_path_factory.mktemp("written") / "case000")


def _same(a: PhantomCase, b: PhantomCase) -> None:
    assert set(a.volumes()) == set(b.volumes())
    for name, vol in a.volumes().items():
        other = b.volumes()[name]
        assert other.array.dtype == vol.array.dtype, name
        np.testing.assert_array_equal(other.array, vol.array, err_msg=name)
        np.testing.assert_allclose(other.affine, vol.affine, atol=1e-5, err_msg=name)
    np.testing.assert_array_equal(a.displacement.array, b.displacement.array)


# -- spec ----------------------------------------------------------------------------------------------
def test_spec_key_is_stable_normalised_and_sensitive(monkeypatch: pytest.MonkeyPatch) -> None:
    base = PhantomSpec()
    same = PhantomSpec(shape=[64, 64, 32], spacing=[6.25, 6.25, 8], ct_noise_hu=[8, 25])  # type: ignore[arg-type]
    assert same.key() == base.key() and len(base.key()) == 12
    assert PhantomSpec(seed=1).key() != base.key() and PhantomSpec(shift="noise").key() != base.key()
    assert PhantomSpec.from_dict(json.loads(json.dumps(base.to_dict()))) == base
    assert PHANTOM_VERSION == 2
    monkeypatch.setattr(spec_mod, "PHANTOM_VERSION", 1)
    old = PhantomSpec().key()
    monkeypatch.undo()
    assert PhantomSpec().key() != old  # the generator version is part of the cache key


@pytest.mark.parametrize(
    "kwargs",
    [{"n_cases": 0}, {"shape": (64, 64)}, {"spacing": (1.0, 0.0, 1.0)}, {"max_lesions": -1}, {"mr_bias": (0.2, 1.5)},
     {"ct_noise_hu": (20.0, 10.0)}, {"dose_levels": (0.0,)}, {"shift": "blur"}, {"cue_split": "holdout"}],
)
def test_spec_rejects_bad_values(kwargs: dict) -> None:
    with pytest.raises(ConfigError, match="PhantomSpec"):
        PhantomSpec(**kwargs)


def test_spec_from_dict_rejects_unknown_keys() -> None:
    with pytest.raises(ConfigError, match="noise_hus"):
        PhantomSpec.from_dict({"noise_hus": 3})


def test_splits_and_labels_are_planned() -> None:
    assert spec_mod.split_sizes(6) == {"train": 4, "val": 1, "test": 1}
    assert spec_mod.split_sizes(24) == {"train": 14, "val": 5, "test": 5}
    assert spec_mod.split_sizes(1) == {"train": 1, "val": 0, "test": 0}
    plans = spec_mod.case_plans(PhantomSpec(n_cases=24))
    for split in ("train", "val", "test"):
        labels = [p.label for p in plans if p.split == split]
        assert abs(2 * sum(labels) - len(labels)) <= 1  # half of each split has a malignant lesion
    assert plans == spec_mod.case_plans(PhantomSpec(n_cases=24))
    assert [p.split for p in plans] != [p.split for p in spec_mod.case_plans(PhantomSpec(n_cases=24, seed=5))]
    cue = spec_mod.case_plans(PhantomSpec(n_cases=24, spurious_cue=True, cue_correlation=1.0))
    assert all(p.cue == bool(p.label) for p in cue if p.split == "train")
    others = [p for p in cue if p.split != "train"]
    assert 0 < sum(p.cue for p in others) < len(others)
    assert all(not p.shifted for p in spec_mod.case_plans(PhantomSpec(n_cases=24)))
    assert [p.index for p in spec_mod.case_plans(PhantomSpec(n_cases=24, shift="scale")) if p.shifted] == \
        [p.index for p in plans if p.split == "test"]


# -- files ------------------------------------------------------------------------------------------
def test_nifti_round_trip_with_ras_affine(case: PhantomCase, written: dict[str, Path]) -> None:
    img = nib.load(written["ct"])
    np.testing.assert_allclose(img.affine, np.diag([-1.0, -1.0, 1.0, 1.0]) @ case.ct.affine, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(img.dataobj), case.ct.array)
    assert "ct_dose025" in written and written["ct_dose025"].is_file()
    _same(case, read_case(written["truth"].parent))
    field = sitk.ReadImage(str(written["displacement"]))  # ITK reads the vectors as LPS components
    assert field.GetNumberOfComponentsPerPixel() == 3
    np.testing.assert_allclose(sitk.GetArrayFromImage(field).transpose(2, 1, 0, 3), case.displacement.array)


def test_truth_json_records_ground_truth(case: PhantomCase, written: dict[str, Path]) -> None:
    truth = json.loads(written["truth"].read_text())
    assert truth["labels"]["3"] == "liver" and truth["labels"]["8"] == "lesion_malignant"
    assert truth["spec"] == case.spec.to_dict() and truth["split"] == case.split
    assert truth["rigid"]["fixed"] == "CT" and truth["rigid"]["moving"] == "MR"
    np.testing.assert_allclose(truth["rigid"]["matrix"], case.rigid.matrix)
    assert truth["displacement"]["fixed"] == "deformed CT"
    assert set(truth["landmarks"]) == set(case.landmarks.names) and len(truth["landmarks"]) >= 18
    assert truth["classification"]["cause"] == "has_malignant_lesion"
    assert truth["acquisition"]["ct_photons"] > 0 and len(truth["lesions"]) == case.n_lesions
    assert truth["identifiers"]["PatientName"] == "PHANTOM^CASE000"


def test_ct_dicom_matches_the_volume(case: PhantomCase, written: dict[str, Path]) -> None:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(written["dicom_ct"])))
    image = reader.Execute()
    np.testing.assert_allclose(image.GetSpacing(), case.ct.spacing, atol=1e-5)
    np.testing.assert_allclose(image.GetOrigin(), case.ct.origin, atol=1e-4)
    assert np.abs(sitk.GetArrayFromImage(image).transpose(2, 1, 0) - case.ct.array).max() <= 0.5
    first = pydicom.dcmread(sorted(written["dicom_ct"].glob("*.dcm"))[0])
    for key, value in case.identifiers.items():
        assert str(first.data_element(key).value) == value, key


def test_pet_dicom_gives_back_the_suv_image(case: PhantomCase, written: dict[str, Path]) -> None:
    files = sorted(written["dicom_pet"].glob("*.dcm"))
    assert len(files) == case.pet.shape[2]
    datasets = sorted((pydicom.dcmread(f) for f in files), key=lambda d: float(d.ImagePositionPatient[2]))
    ds = datasets[0]
    assert ds.Modality == "PT" and ds.Units == "BQML" and ds.DecayCorrection == "START"
    radio = ds.RadiopharmaceuticalInformationSequence[0]
    assert float(radio.RadionuclideHalfLife) == pytest.approx(6586.2) and float(radio.RadionuclideTotalDose) > 1e8
    # body-weight SUV from the tags alone (an independent re-derivation: weight / decayed dose)
    day = str(ds.SeriesDate)
    from datetime import datetime
    dt = (datetime.strptime(day + str(ds.SeriesTime), "%Y%m%d%H%M%S")
          - datetime.strptime(day + str(radio.RadiopharmaceuticalStartTime), "%Y%m%d%H%M%S")).total_seconds()
    factor = float(ds.PatientWeight) * 1000.0 / (float(radio.RadionuclideTotalDose) * 0.5 ** (dt / 6586.2))
    assert suv_bw(ds) == pytest.approx(factor, rel=1e-9)
    bq = np.stack([d.pixel_array.T * float(d.RescaleSlope) + float(d.RescaleIntercept) for d in datasets], axis=2)
    suv = bq * factor
    slope_suv = float(ds.RescaleSlope) * factor
    assert np.abs(suv - case.pet.array).max() <= slope_suv  # within one stored step
    ct0 = pydicom.dcmread(sorted(written["dicom_ct"].glob("*.dcm"))[0], stop_before_pixels=True)
    assert ds.StudyInstanceUID == ct0.StudyInstanceUID and ds.FrameOfReferenceUID == ct0.FrameOfReferenceUID
    mr0 = pydicom.dcmread(sorted(written["dicom_t2"].glob("*.dcm"))[0], stop_before_pixels=True)
    assert mr0.Modality == "MR" and mr0.FrameOfReferenceUID != ct0.FrameOfReferenceUID  # another scanner frame
    assert float(mr0.RepetitionTime) == 4000 and float(mr0.EchoTime) == 90
    with pytest.raises(DataError, match="BQML"):
        suv_bw(pydicom.dcmread(sorted(written["dicom_ct"].glob("*.dcm"))[0], stop_before_pixels=True))


def test_write_case_refuses_existing_folder(case: PhantomCase, written: dict[str, Path]) -> None:
    before = written["ct"].stat().st_mtime_ns
    with pytest.raises(FileExistsError):
        write_case(case, written["truth"].parent)
    assert written["ct"].stat().st_mtime_ns == before


def test_read_case_names_missing_file_and_old_version(tmp_path: Path) -> None:
    paths = write_case(generate_case(SMALL, 0), tmp_path / "c")
    paths["pet"].unlink()
    with pytest.raises(DataError, match="pet.nii.gz"):
        read_case(tmp_path / "c")
    truth = json.loads(paths["truth"].read_text())
    truth["phantom_version"] = 1
    paths["truth"].write_text(json.dumps(truth))
    with pytest.raises(DataError, match="version 1"):
        read_case(tmp_path / "c")


# -- cohort and cache -------------------------------------------------------------------------------------
def _pool_in_this_process(monkeypatch: pytest.MonkeyPatch, workers: int) -> None:
    """Generate with ``workers`` on threads of this process, so that functions a test patches here apply
    (spawned worker processes would import the unpatched module)."""
    monkeypatch.setenv("MEDBENCH_PHANTOM_WORKERS", str(workers))
    monkeypatch.setattr(cohort_mod, "ProcessPoolExecutor", lambda n, mp_context=None: ThreadPoolExecutor(n))


@pytest.mark.parametrize("workers", [1, 2])
def test_cohort_cache_hit_does_not_regenerate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int) -> None:
    first = load_cohort(SMALL, cache_dir=tmp_path)
    assert not first.from_cache and first.root == tmp_path / "phantom" / SMALL.key()
    assert len(first) == 3 and first.case_ids == ("case000", "case001", "case002")
    mtimes = {p: p.stat().st_mtime_ns for p in first.root.rglob("*") if p.is_file()}
    digest = cohort_hash(first)

    def boom(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("generate_case must not run on a cache hit")

    monkeypatch.setattr(case_mod, "generate_case", boom)
    _pool_in_this_process(monkeypatch, workers)
    second = load_cohort(SMALL, cache_dir=tmp_path)
    assert second.from_cache
    assert {p: p.stat().st_mtime_ns for p in second.root.rglob("*") if p.is_file()} == mtimes
    assert cohort_hash(second) == digest
    monkeypatch.undo()
    _same(generate_case(SMALL, 1), second.case(1))
    assert second.case("case001").case_id == "case001"
    with pytest.raises(ConfigError):
        second.case(5)
    split = second.split
    assert sorted(sum(split.values(), [])) == list(second.case_ids)
    assert all(second.truth(c)["split"] == s for s, ids in split.items() for c in ids)
    assert [c.case_id for c in second.cases_in("test")] == split["test"]


def test_cohort_summary_matches_an_independent_measurement(tmp_path: Path) -> None:
    cohort = load_cohort(SMALL, cache_dir=tmp_path)
    table = cohort.summary()
    assert list(table.index) == list(cohort.case_ids)
    for i, cid in enumerate(cohort.case_ids):
        row = table.loc[cid]
        stats = sitk.LabelStatisticsImageFilter()  # SimpleITK on the files written to disk
        paths = cohort.paths(i)
        stats.Execute(sitk.ReadImage(str(paths["ct"])), sitk.ReadImage(str(paths["labels"])))
        assert row["liver_hu"] == pytest.approx(stats.GetMean(LIVER), abs=0.01)
        voxel_ml = float(np.prod(SMALL.spacing)) / 1000.0
        assert row["liver_ml"] == pytest.approx(stats.GetCount(LIVER) * voxel_ml, rel=1e-6)
    lesions = cohort.lesions()
    assert len(lesions) == int(table["n_lesions"].sum())
    digest = cohort_hash(cohort)
    rebuilt = load_cohort(SMALL, cache_dir=tmp_path, refresh=True)
    assert not rebuilt.from_cache and cohort_hash(rebuilt) == digest, "regeneration must be byte-identical"
    pet = cohort.paths(0)["pet"]
    os.chmod(pet, 0o644)
    pet.write_bytes(pet.read_bytes() + b"\0")
    assert cohort_hash(cohort) != digest


def test_medbench_cache_env_is_respected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(cache.ENV_VAR, str(tmp_path / "envcache"))
    spec = PhantomSpec(n_cases=1, shape=(16, 16, 8), spacing=(25.0, 25.0, 32.0), pet_spacing=(20.0, 20.0, 20.0),
                       seed=3)
    cohort = load_cohort(spec)
    assert cohort.root == tmp_path / "envcache" / "phantom" / spec.key()
    assert (cohort.root / "case000" / "ct.nii.gz").is_file()


@pytest.mark.parametrize("workers", [1, 2])
def test_failed_build_leaves_no_cohort(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int) -> None:
    # what is under test is that a failed case propagates out of the pool and the partial folder is discarded
    _pool_in_this_process(monkeypatch, workers)
    real_write = files_mod.write_case

    def fail_on_second(case: PhantomCase, out_dir: Path) -> dict[str, Path]:
        if case.index == 1:
            raise RuntimeError("simulated crash")
        return real_write(case, out_dir)

    monkeypatch.setattr(files_mod, "write_case", fail_on_second)
    with pytest.raises(RuntimeError, match="simulated crash"):
        load_cohort(SMALL, cache_dir=tmp_path)
    assert list((tmp_path / "phantom").iterdir()) == []
    monkeypatch.undo()
    assert not load_cohort(SMALL, cache_dir=tmp_path).from_cache


def test_incomplete_or_stale_cache_entry_is_rebuilt(tmp_path: Path) -> None:
    root = cohort_mod.cohort_root(SMALL, tmp_path)
    (root / "case000").mkdir(parents=True)
    (root / "case000" / "ct.nii.gz").write_bytes(b"partial")
    cohort = load_cohort(SMALL, cache_dir=tmp_path)
    assert not cohort.from_cache and cohort.case(0).ct.shape == SMALL.shape
    record = json.loads((root / cohort_mod.COHORT_FILE).read_text())
    record["phantom_version"] = 1
    (root / cohort_mod.COHORT_FILE).write_text(json.dumps(record))
    assert not load_cohort(SMALL, cache_dir=tmp_path).from_cache
