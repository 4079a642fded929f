"""Tests of the synthetic phantom cohort: values, geometry, ground truth, files and cache."""

from __future__ import annotations

import json
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from medbench.data import cache, phantom
from medbench.data.phantom import (
    BONE,
    FAT,
    KIDNEY_L,
    KIDNEY_R,
    LABELS,
    LESION,
    LIVER,
    SOFT,
    SPLEEN,
    PhantomCase,
    PhantomSpec,
    cohort_hash,
    generate_case,
    load_cohort,
    read_case,
    write_case,
)
from medbench.errors import ConfigError, DataError

SMALL = PhantomSpec(n_cases=2, shape=(32, 32, 16), spacing=(3.0, 3.0, 6.0))


@pytest.fixture(scope="module")
def cases() -> list[PhantomCase]:
    """Cases 0 and 1 of the smoke spec (generated once)."""
    return [generate_case(PhantomSpec(), i) for i in range(2)]


@pytest.fixture(scope="module")
def written(cases: list[PhantomCase], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_case(cases[0], tmp_path_factory.mktemp("written") / "case000")


def _centroid(vol, value: int) -> np.ndarray:
    ijk = np.argwhere(vol.array == value)
    assert len(ijk), f"label {value} is empty"
    return vol.world(ijk.mean(axis=0))[0]


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b))


def _arrays_equal(a: PhantomCase, b: PhantomCase) -> None:
    for name, vol in a.volumes().items():
        other = b.volumes()[name]
        assert other.array.dtype == vol.array.dtype, name
        np.testing.assert_array_equal(other.array, vol.array, err_msg=name)
        np.testing.assert_allclose(other.affine, vol.affine, atol=1e-5, err_msg=name)
    np.testing.assert_array_equal(a.displacement.array, b.displacement.array)


# -- spec ---------------------------------------------------------------------
def test_spec_key_is_stable_normalised_and_sensitive() -> None:
    base = PhantomSpec()
    same = PhantomSpec(shape=[64, 64, 32], spacing=[1.5, 1.5, 3], noise_hu=12)  # type: ignore[arg-type]
    assert same.key() == base.key() and len(base.key()) == 12
    assert PhantomSpec(seed=1).key() != base.key()
    assert PhantomSpec(noise_hu=5).key() != base.key()
    assert PhantomSpec.from_dict(json.loads(json.dumps(base.to_dict()))) == base


@pytest.mark.parametrize(
    "kwargs",
    [{"n_cases": 0}, {"shape": (64, 64)}, {"spacing": (1.0, 0.0, 1.0)}, {"max_lesions": -1}, {"noise_hu": -1}, {"mr_bias": 1.5}],
)
def test_spec_rejects_bad_values(kwargs: dict) -> None:
    with pytest.raises(ConfigError, match="PhantomSpec"):
        PhantomSpec(**kwargs)


def test_spec_from_dict_rejects_unknown_keys() -> None:
    with pytest.raises(ConfigError, match="noise_hus"):
        PhantomSpec.from_dict({"noise_hus": 3})


# -- determinism --------------------------------------------------------------
def test_same_spec_gives_identical_case_and_leaves_global_rng_alone(cases: list[PhantomCase]) -> None:
    np.random.seed(1234)
    before = np.random.get_state()[1].copy()
    again = generate_case(PhantomSpec(), 0)
    np.testing.assert_array_equal(np.random.get_state()[1], before)
    _arrays_equal(cases[0], again)
    np.testing.assert_array_equal(again.landmarks.ct, cases[0].landmarks.ct)
    assert again.rigid.angles_deg == cases[0].rigid.angles_deg


def test_different_seed_or_index_gives_different_case(cases: list[PhantomCase]) -> None:
    other_seed = generate_case(PhantomSpec(seed=1), 0)
    assert not np.array_equal(other_seed.ct.array, cases[0].ct.array)
    assert not np.array_equal(other_seed.labels.array, cases[0].labels.array)
    assert not np.array_equal(cases[1].labels.array, cases[0].labels.array)
    assert other_seed.rigid.translation_mm != cases[0].rigid.translation_mm


# -- values -------------------------------------------------------------------
def test_ct_hounsfield_ranges_per_label(cases: list[PhantomCase]) -> None:
    for case in cases:
        lab, hu = case.labels.array, case.ct.array
        assert case.ct.meta["units"] == "HU" and hu.dtype == np.float32
        assert hu.min() >= -1024 and hu.max() <= 3071
        np.testing.assert_array_equal(hu, np.round(hu))
        liver = hu[lab == LIVER].mean()
        assert 45 <= liver <= 75
        assert hu[lab == 0].mean() < -900
        assert hu[lab == BONE].mean() > 300
        assert hu[lab == FAT].mean() < -50
        if case.n_lesions:
            assert hu[lab == LESION].mean() < liver - 15
        noise = (hu - case.ct_clean.array)[lab == LIVER].std()
        assert 0.5 * case.spec.noise_hu < noise < 1.5 * case.spec.noise_hu


def test_labels_cover_the_organs_and_lesion_map_agrees(cases: list[PhantomCase]) -> None:
    seen: set[int] = set()
    for case in cases:
        lab, les = case.labels.array, case.lesions.array
        assert lab.dtype == np.uint8 and les.dtype == np.uint8
        assert set(np.unique(lab)) <= set(LABELS)
        seen |= set(np.unique(lab).tolist())
        np.testing.assert_array_equal(les > 0, lab == LESION)
        assert sorted(np.unique(les[les > 0]).tolist()) == list(range(1, case.n_lesions + 1))
        assert (lab[les > 0] == LESION).all()
    assert seen == set(LABELS), f"missing labels {set(LABELS) - seen}"


def test_lesion_counts_vary_and_respect_max() -> None:
    counts = [generate_case(SMALL, i).n_lesions for i in range(6)]
    assert len(set(counts)) > 1, counts
    assert max(counts) <= SMALL.max_lesions
    none = generate_case(PhantomSpec(max_lesions=0, shape=(32, 32, 16), spacing=(3.0, 3.0, 6.0)), 1)
    assert none.n_lesions == 0 and not none.lesions.array.any()


def test_pet_lesions_hotter_than_liver(cases: list[PhantomCase]) -> None:
    with_lesions = [c for c in cases if c.n_lesions]
    assert with_lesions
    for case in with_lesions:
        lab, pet = case.labels.array, case.pet.array
        assert pet.min() >= 0
        assert pet[lab == LESION].mean() > 1.3 * pet[lab == LIVER].mean()
        assert pet[lab == LIVER].mean() > pet[lab == SOFT].mean()
        assert pet[lab == 0].mean() < 0.1


def test_mr_contrasts(cases: list[PhantomCase]) -> None:
    for case in cases:
        lab = case.labels_mr.array  # MR images show the moved anatomy
        t1, t2 = case.t1.array, case.t2.array
        assert t1.min() >= 0 and t2.min() >= 0
        assert t1[lab == FAT].mean() > 1.5 * t1[lab == SOFT].mean()
        assert t1[lab == 0].mean() < 0.2 * t1[lab == SOFT].mean()
        if case.n_lesions:
            assert t2[lab == LESION].mean() > 1.3 * t2[lab == LIVER].mean()


# -- ground truth ---------------------------------------------------------------
def test_rigid_maps_ct_centroids_to_mr_centroids(cases: list[PhantomCase]) -> None:
    for case in cases:
        voxel = max(case.ct.spacing)
        for organ in (LIVER, SPLEEN, KIDNEY_L, KIDNEY_R):
            p_ct, p_mr = _centroid(case.labels, organ), _centroid(case.labels_mr, organ)
            assert np.linalg.norm(p_mr - p_ct) > 1.0, "the MR anatomy should be moved"
            assert np.linalg.norm(case.rigid.apply(p_ct)[0] - p_mr) < voxel
            np.testing.assert_allclose(case.rigid.apply_inverse(p_mr)[0], p_ct, atol=voxel)


def test_rigid_matches_simpleitk_euler3d(cases: list[PhantomCase]) -> None:
    case = cases[0]
    rigid = case.rigid
    assert max(abs(a) for a in rigid.angles_deg) <= case.spec.max_rotation_deg
    assert 0 < np.linalg.norm(rigid.translation_mm) <= case.spec.max_translation_mm
    tx = rigid.to_sitk()
    pts = case.landmarks.ct
    via_sitk = np.array([tx.TransformPoint(tuple(p)) for p in pts])
    np.testing.assert_allclose(via_sitk, rigid.apply(pts), atol=1e-9)
    np.testing.assert_allclose(case.landmarks.mr, rigid.apply(pts), atol=1e-9)
    homog = np.c_[pts, np.ones(len(pts))] @ rigid.matrix.T
    np.testing.assert_allclose(homog[:, :3], case.landmarks.mr, atol=1e-9)
    # resampling the MR labels with the transform onto the CT grid aligns them
    back = sitk.Resample(case.labels_mr.to_sitk(), case.labels.to_sitk(), tx, sitk.sitkNearestNeighbor, 0)
    aligned = sitk.GetArrayFromImage(back).transpose(2, 1, 0)
    for organ in (LIVER, SPLEEN):
        before = _dice(case.labels_mr.array == organ, case.labels.array == organ)
        after = _dice(aligned == organ, case.labels.array == organ)
        assert after > 0.9 and after > before + 0.05


def test_deformation_convention_on_landmarks(cases: list[PhantomCase]) -> None:
    for case in cases:
        u = case.deformation
        voxel = max(case.ct.spacing)
        moved = 0
        for organ in (SPLEEN, KIDNEY_L, KIDNEY_R):
            p = _centroid(case.labels, organ)
            q = _centroid(case.labels_deformed, organ)
            assert np.linalg.norm(u.source_points(q)[0] - p) < voxel  # deformed(x) = ct(x + u(x))
            if np.linalg.norm(u.displacement(q)) > 1.5:
                moved += 1
                assert np.linalg.norm(q - u.displacement(q)[0] - p) > np.linalg.norm(u.source_points(q)[0] - p)
        assert moved, "the field should move at least one organ by more than 1.5 mm"
        np.testing.assert_allclose(u.source_points(case.landmarks.deformed), case.landmarks.ct, atol=1e-6)


def test_displacement_grid_matches_the_field(cases: list[PhantomCase]) -> None:
    case = cases[0]
    disp = case.displacement.array
    assert case.displacement.field.same_grid(case.ct) and disp.shape == (*case.ct.shape, 3) and disp.dtype == np.float32
    ijk = np.array([[0, 0, 0], [10, 40, 7], [63, 63, 31]])
    pts = case.ct.world(ijk)
    np.testing.assert_allclose(disp[tuple(ijk.T)], case.deformation.displacement(pts), atol=1e-4)
    peak = np.linalg.norm(disp, axis=-1).max()
    assert 0.5 * case.spec.max_deformation_mm < peak <= case.spec.max_deformation_mm + 1e-4


def test_displacement_matches_simpleitk_field_convention(cases: list[PhantomCase]) -> None:
    case = cases[0]
    ref = case.labels.to_sitk()
    warped = sitk.Resample(ref, ref, case.displacement_sitk(), sitk.sitkNearestNeighbor, 0)
    arr = sitk.GetArrayFromImage(warped).transpose(2, 1, 0)
    for organ in (LIVER, SPLEEN, KIDNEY_L, KIDNEY_R):
        truth = case.labels_deformed.array == organ
        assert _dice(arr == organ, truth) > 0.85
        assert _dice(arr == organ, truth) > _dice(case.labels.array == organ, truth)


# -- files --------------------------------------------------------------------
def test_nifti_round_trip_with_ras_affine(cases: list[PhantomCase], written: dict[str, Path]) -> None:
    case = cases[0]
    img = nib.load(written["ct"])
    expected_ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ case.ct.affine
    np.testing.assert_allclose(img.affine, expected_ras, atol=1e-5)
    assert img.affine[0, 0] == pytest.approx(-1.5) and img.affine[1, 1] == pytest.approx(-1.5)
    assert img.affine[0, 3] == pytest.approx(-case.ct.origin[0])
    np.testing.assert_array_equal(np.asarray(img.dataobj), case.ct.array)
    _arrays_equal(case, read_case(written["truth"].parent))
    field = sitk.ReadImage(str(written["displacement"]))  # ITK reads the vectors as LPS components
    assert field.GetNumberOfComponentsPerPixel() == 3
    np.testing.assert_allclose(sitk.GetArrayFromImage(field).transpose(2, 1, 0, 3), case.displacement.array)


def test_truth_json_records_ground_truth(cases: list[PhantomCase], written: dict[str, Path]) -> None:
    truth = json.loads(written["truth"].read_text())
    case = cases[0]
    assert truth["labels"]["3"] == "liver" and truth["spec"] == case.spec.to_dict()
    assert truth["rigid"]["fixed"] == "CT" and truth["rigid"]["moving"] == "MR"
    np.testing.assert_allclose(truth["rigid"]["matrix"], case.rigid.matrix)
    assert set(truth["landmarks"]) == set(case.landmarks.names)
    assert truth["identifiers"]["PatientName"] == "PHANTOM^CASE000"
    assert len(truth["lesions"]) == case.n_lesions


def test_dicom_series_matches_ct(cases: list[PhantomCase], written: dict[str, Path]) -> None:
    case = cases[0]
    files = sorted(written["dicom_ct"].glob("*.dcm"))
    assert len(files) == case.ct.shape[2]
    datasets = sorted((pydicom.dcmread(f) for f in files), key=lambda d: float(d.ImagePositionPatient[2]))
    hu = np.stack([d.pixel_array.T * float(d.RescaleSlope) + float(d.RescaleIntercept) for d in datasets], axis=2)
    assert np.abs(hu - case.ct.array).max() <= 0.5
    first = datasets[0]
    np.testing.assert_allclose([float(v) for v in first.ImagePositionPatient], case.ct.origin, atol=1e-4)
    np.testing.assert_allclose([float(v) for v in first.PixelSpacing], case.ct.spacing[1::-1])
    for key, value in case.identifiers.items():
        assert str(first.data_element(key).value) == value, key

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(written["dicom_ct"])))
    image = reader.Execute()
    np.testing.assert_allclose(image.GetSpacing(), case.ct.spacing, atol=1e-5)
    np.testing.assert_allclose(image.GetOrigin(), case.ct.origin, atol=1e-4)
    np.testing.assert_allclose(np.reshape(image.GetDirection(), (3, 3)), case.ct.direction, atol=1e-6)
    assert np.abs(sitk.GetArrayFromImage(image).transpose(2, 1, 0) - case.ct.array).max() <= 0.5


def test_identifiers_are_unique_per_case(cases: list[PhantomCase]) -> None:
    a, b = (c.identifiers for c in cases)
    for key in ("PatientName", "PatientID", "AccessionNumber", "OtherPatientIDs"):
        assert a[key] != b[key], key


def test_write_case_refuses_existing_folder(cases: list[PhantomCase], written: dict[str, Path]) -> None:
    before = written["ct"].stat().st_mtime_ns
    with pytest.raises(FileExistsError):
        write_case(cases[0], written["truth"].parent)
    assert written["ct"].stat().st_mtime_ns == before


def test_read_case_names_missing_file(tmp_path: Path) -> None:
    paths = write_case(generate_case(SMALL, 0), tmp_path / "c")
    paths["pet"].unlink()
    with pytest.raises(DataError, match="pet.nii.gz"):
        read_case(tmp_path / "c")


# -- cohort and cache ---------------------------------------------------------
def test_cohort_cache_hit_does_not_regenerate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = load_cohort(SMALL, cache_dir=tmp_path)
    assert not first.from_cache and first.root == tmp_path / "phantom" / SMALL.key()
    assert len(first) == 2 and first.case_ids == ("case000", "case001")
    mtimes = {p: p.stat().st_mtime_ns for p in first.root.rglob("*") if p.is_file()}
    digest = cohort_hash(first)

    def boom(*_args, **_kwargs):
        raise AssertionError("generate_case must not run on a cache hit")

    monkeypatch.setattr(phantom, "generate_case", boom)
    second = load_cohort(SMALL, cache_dir=tmp_path)
    assert second.from_cache
    assert {p: p.stat().st_mtime_ns for p in second.root.rglob("*") if p.is_file()} == mtimes
    assert cohort_hash(second) == digest
    monkeypatch.undo()
    _arrays_equal(generate_case(SMALL, 1), second.case(1))
    assert second.case("case001").case_id == "case001"
    with pytest.raises(ConfigError):
        second.case(5)


def test_cohort_summary_and_hash(tmp_path: Path) -> None:
    cohort = load_cohort(SMALL, cache_dir=tmp_path)
    table = cohort.summary()
    assert list(table.index) == ["case000", "case001"]
    for i, case in enumerate(cohort.cases):
        row = table.loc[case.case_id]
        assert row["n_lesions"] == case.n_lesions
        stats = sitk.LabelStatisticsImageFilter()  # an independent implementation, on the files written to disk
        paths = cohort.paths(i)
        stats.Execute(sitk.ReadImage(str(paths["ct"])), sitk.ReadImage(str(paths["labels"])))
        assert row["liver_hu"] == pytest.approx(stats.GetMean(LIVER), abs=0.01)
        voxel_ml = float(np.prod(case.ct.spacing)) / 1000.0
        assert row["liver_ml"] == pytest.approx(stats.GetCount(LIVER) * voxel_ml, rel=1e-6)
        assert row["rot_z_deg"] == pytest.approx(case.rigid.angles_deg[2], abs=1e-3)
        assert set(cohort.paths(i)) >= {"ct", "pet", "t1", "t2", "labels", "lesions", "displacement", "truth", "dicom_ct"}
    digest = cohort_hash(cohort)
    rebuilt = load_cohort(SMALL, cache_dir=tmp_path, refresh=True)
    assert not rebuilt.from_cache
    assert cohort_hash(rebuilt) == digest, "regeneration must be byte-identical"
    pet = cohort.paths(0)["pet"]
    os.chmod(pet, 0o644)
    pet.write_bytes(pet.read_bytes() + b"\0")
    assert cohort_hash(cohort) != digest


def test_medbench_cache_env_is_respected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(cache.ENV_VAR, str(tmp_path / "envcache"))
    assert cache.cache_root() == tmp_path / "envcache"
    assert cache.cache_root(tmp_path / "explicit") == tmp_path / "explicit"
    spec = PhantomSpec(n_cases=1, shape=(32, 32, 16), spacing=(3.0, 3.0, 6.0), seed=3)
    cohort = load_cohort(spec)
    assert cohort.root == tmp_path / "envcache" / "phantom" / spec.key()
    assert (cohort.root / "case000" / "ct.nii.gz").is_file()
    monkeypatch.delenv(cache.ENV_VAR)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert cache.cache_root() == tmp_path / "home" / ".cache" / "medbench"


def test_failed_build_leaves_no_cohort(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_write = phantom.write_case

    def fail_on_second(case: PhantomCase, out_dir: Path) -> dict[str, Path]:
        if case.index == 1:
            raise RuntimeError("simulated crash")
        return real_write(case, out_dir)

    monkeypatch.setattr(phantom, "write_case", fail_on_second)
    with pytest.raises(RuntimeError, match="simulated crash"):
        load_cohort(SMALL, cache_dir=tmp_path)
    assert list((tmp_path / "phantom").iterdir()) == []
    monkeypatch.undo()
    assert not load_cohort(SMALL, cache_dir=tmp_path).from_cache


def test_incomplete_cache_entry_is_rebuilt(tmp_path: Path) -> None:
    root = phantom.cohort_root(SMALL, tmp_path)
    (root / "case000").mkdir(parents=True)
    (root / "case000" / "ct.nii.gz").write_bytes(b"partial")
    cohort = load_cohort(SMALL, cache_dir=tmp_path)
    assert not cohort.from_cache
    assert cohort.case(0).ct.shape == SMALL.shape
    assert sorted(p.name for p in (tmp_path / "phantom").iterdir()) == [SMALL.key()]
