"""The phantom cohort (smoke profile): anatomy in mm, tissue values, lesions, modalities, ground truth.

Expected values come from outside the generator: literature ranges (HU,
SUV, relaxation-time ordering), geometry measured on the images, and
SimpleITK as an independent implementation of every transform convention.
The targets that need the full profile are in tests/baselines/test_targets.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from medbench.data.phantom import (
    AORTA,
    BONE,
    CYST,
    FAT,
    KIDNEY_L,
    KIDNEY_R,
    LABELS,
    LESION_LABELS,
    LIVER,
    LUNG,
    MALIGNANT,
    MUSCLE,
    ORGAN_LABELS,
    SPINAL_CANAL,
    SPLEEN,
    PhantomCase,
    PhantomSpec,
    case_anatomy,
    generate_case,
)
from medbench.data.phantom.anatomy import render
from medbench.data.phantom.spec import case_plans
from medbench.errors import ConfigError


@pytest.fixture(scope="module")
def cases() -> list[PhantomCase]:
    """Three cases of the smoke spec (generated once)."""
    return [generate_case(PhantomSpec(), i) for i in range(3)]


def _interior(mask: np.ndarray, iterations: int = 1) -> np.ndarray:
    inner = ndimage.binary_erosion(mask, iterations=iterations)
    return inner if inner.sum() >= 5 else mask


def _centroid(vol, value: int) -> np.ndarray:
    ijk = np.argwhere(vol.array == value)
    assert len(ijk), f"label {value} is empty"
    return vol.world(ijk.mean(axis=0))[0]


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b))


# -- determinism ----------------------------------------------------------------------------
def test_same_spec_gives_identical_case_and_leaves_global_rng_alone(cases: list[PhantomCase]) -> None:
    np.random.seed(1234)
    before = np.random.get_state()[1].copy()
    again = generate_case(PhantomSpec(), 0)
    np.testing.assert_array_equal(np.random.get_state()[1], before)
    for name, vol in cases[0].volumes().items():
        np.testing.assert_array_equal(again.volumes()[name].array, vol.array, err_msg=name)
    np.testing.assert_array_equal(again.displacement.array, cases[0].displacement.array)
    assert again.lesion_info == cases[0].lesion_info and again.acquisition == cases[0].acquisition


def test_different_seed_or_index_gives_different_case(cases: list[PhantomCase]) -> None:
    other = generate_case(PhantomSpec(seed=1), 0)
    assert not np.array_equal(other.labels.array, cases[0].labels.array)
    assert not np.array_equal(cases[1].labels.array, cases[0].labels.array)
    assert other.rigid.translation_mm != cases[0].rigid.translation_mm


def test_index_out_of_the_cohort_is_refused() -> None:
    with pytest.raises(ConfigError, match="case index"):
        generate_case(PhantomSpec(n_cases=2), 2)


# -- grids ---------------------------------------------------------------------------------------
def test_each_modality_has_its_own_grid(cases: list[PhantomCase]) -> None:
    case = cases[0]
    spec = case.spec
    assert case.ct.shape == spec.shape and case.ct.spacing == pytest.approx(spec.spacing)
    assert case.pet.spacing == pytest.approx((4.0, 4.0, 4.0))  # 2-4 mm: a PET scanner's grid
    np.testing.assert_allclose(np.asarray(case.pet.shape) * case.pet.spacing, np.asarray(spec.shape) * spec.spacing)
    fov_mr = np.asarray(case.t1.shape) * case.t1.spacing
    assert np.all(fov_mr < np.asarray(spec.shape) * spec.spacing) and case.t1.spacing != case.ct.spacing
    for vol in (case.ct, case.pet, case.t1):
        np.testing.assert_allclose(vol.center, 0.0, atol=1e-6)  # every grid centred on its frame's origin
    assert case.labels_pet.same_grid(case.pet) and case.labels_mr.same_grid(case.t1)
    assert case.labels_deformed.same_grid(case.ct) and case.displacement.field.same_grid(case.ct)
    full = PhantomSpec(shape=(256, 256, 80), spacing=(1.5625, 1.5625, 3.2))
    assert full.pet_grid().spacing == pytest.approx((3.125,) * 3) and full.pet_grid().shape == (128, 128, 82)


# -- anatomy in millimetres --------------------------------------------------------------------------
def test_profiles_change_the_grid_not_the_anatomy() -> None:
    """The same case rendered at the smoke and at the full grid: organ volumes agree within 15 %."""
    spec = PhantomSpec()
    anatomy = case_anatomy(spec, 1)
    smoke = render(anatomy, spec.grid()).label
    full_spec = PhantomSpec(shape=(256, 256, 80), spacing=(1.5625, 1.5625, 3.2))
    full = render(anatomy, full_spec.grid()).label
    for organ in (LIVER, SPLEEN, KIDNEY_L, KIDNEY_R, AORTA, LUNG):
        v_smoke = np.count_nonzero(smoke == organ) * spec.grid().voxel_volume_ml
        v_full = np.count_nonzero(full == organ) * full_spec.grid().voxel_volume_ml
        assert v_smoke == pytest.approx(v_full, rel=0.15), LABELS[organ]


def test_sizes_are_adult_sizes_in_mm(cases: list[PhantomCase]) -> None:
    for case in cases:
        lab = case.labels.array
        body = lab > 0
        widths = [np.ptp(np.argwhere(body[:, :, k])[:, 0]) + 1 for k in range(lab.shape[2]) if body[:, :, k].any()]
        assert 270 <= np.median(widths) * case.ct.spacing[0] <= 390  # 280-380 mm wide, +-1 voxel
        ml = case.labels.voxel_volume_ml
        assert 700 < np.count_nonzero(lab == LIVER) * ml < 3000  # 1200-2000 mL typical
        assert 50 < np.count_nonzero(lab == SPLEEN) * ml < 650  # 100-350 mL typical
        for kidney in (KIDNEY_L, KIDNEY_R):
            assert 60 < np.count_nonzero(lab == kidney) * ml < 300  # 100-200 mL typical
        aorta = lab[:, :, lab.shape[2] // 2] == AORTA
        diameter = 2 * np.sqrt(aorta.sum() * case.ct.spacing[0] * case.ct.spacing[1] / np.pi)
        assert 14 < diameter < 32  # 18-28 mm (+- a voxel)


def test_every_label_appears_and_ids_are_stable(cases: list[PhantomCase]) -> None:
    assert (LABELS[3], LABELS[4], LABELS[5], LABELS[6], LABELS[7], LABELS[9]) == (
        "liver", "spleen", "kidney_left", "kidney_right", "bone", "aorta")  # v1 ids kept
    assert set(LESION_LABELS) == {MALIGNANT, CYST} and not set(LESION_LABELS) & set(ORGAN_LABELS)
    seen: set[int] = set()
    for case in cases:
        assert set(np.unique(case.labels.array)) <= set(LABELS)
        seen |= set(np.unique(case.labels.array).tolist())
    missing = set(ORGAN_LABELS) - seen
    assert not missing, [LABELS[m] for m in missing]


# -- CT values (literature) and noise ----------------------------------------------------------------
def test_ct_values_match_the_literature(cases: list[PhantomCase]) -> None:
    for case in cases:
        lab, clean, ct = case.labels.array, case.ct_clean.array, case.ct.array
        assert case.ct.meta["units"] == "HU" and ct.dtype == np.float32
        assert ct.min() >= -1024 and ct.max() <= 3071
        np.testing.assert_array_equal(ct, np.round(ct))  # stored as a scanner stores them

        def hu(label: int, lab: np.ndarray = lab, clean: np.ndarray = clean) -> float:
            return float(np.median(clean[_interior(lab == label)]))

        liver = hu(LIVER)
        steatotic = case.tissue_values["steatotic"]
        assert (12 <= liver < 45) if steatotic else (35 <= liver <= 85)  # normal 58 +- 9; steatosis < 40 HU
        assert 30 <= hu(SPLEEN) <= 65 and 25 <= hu(KIDNEY_L) <= 55 and 35 <= hu(MUSCLE) <= 65
        assert 25 <= hu(AORTA) <= 55  # unenhanced blood
        assert -130 <= hu(FAT) <= -70 and -950 <= hu(LUNG) <= -750
        assert float(np.max(clean[lab == BONE])) > 300  # cortex
        assert -5 <= hu(SPINAL_CANAL) <= 60  # CSF (partial volume with the arch at this grid)


def test_ct_noise_follows_the_case_and_the_dose(cases: list[PhantomCase]) -> None:
    for case in cases:
        lab = case.labels.array
        noise = (case.ct.array - case.ct_clean.array)[_interior(lab == LIVER)]
        target = case.acquisition["ct_noise_target_hu"]
        assert 8 <= target <= 25
        assert noise.std() == pytest.approx(target, rel=0.25)
        assert abs(noise.mean()) < 0.25 * noise.std()
    case = cases[0]
    low = case.low_dose_ct(0.25, seed=1)
    liver = _interior(case.labels.array == LIVER)
    ratio = (low.array - case.ct_clean.array)[liver].std() / (case.ct.array - case.ct_clean.array)[liver].std()
    assert ratio == pytest.approx(2.0, rel=0.2)  # a quarter of the dose: twice the noise


# -- lesions ------------------------------------------------------------------------------------------
def test_lesion_table_and_maps_agree(cases: list[PhantomCase]) -> None:
    for case in cases:
        lab, inst = case.labels.array, case.lesions.array
        table = case.lesion_table()
        assert 0 <= len(table) <= 8
        np.testing.assert_array_equal(inst > 0, np.isin(lab, LESION_LABELS))
        for n, row in table.iterrows():
            assert row["class"] in ("malignant", "cyst")
            lo, hi = (8.0, 40.0) if row["class"] == "malignant" else (5.0, 30.0)
            assert lo - 1e-6 <= row["diameter_mm"] <= hi + 1e-6
            label = MALIGNANT if row["class"] == "malignant" else CYST
            assert set(np.unique(lab[inst == n])) <= {label}
            assert row["ct_occult"] == (abs(row["ct_hu"] - row["host_ct_hu"]) <= 5.0)
        assert case.label == int((table["class"] == "malignant").any()) if len(table) else case.label == 0


def test_lesion_contrasts_need_two_modalities() -> None:
    """Measured on the noise-free images: malignant lesions are PET-hot, cysts are water on CT and T2-bright."""
    spec = PhantomSpec()
    malignant, cysts = 0, 0
    for i in range(6):
        case = generate_case(spec, i)
        pet, lab_pet = case.pet_clean.array, case.labels_pet.array
        liver_suv = float(pet[lab_pet == LIVER].mean())
        assert 1.2 < liver_suv < 3.0  # FDG liver SUVmean 1.8-2.6, lowered by partial volume at the edges
        for row in case.lesion_info:
            if row["class"] == "malignant":
                malignant += 1
                assert row["pet_suv"] >= 2.5 * 1.8  # true uptake well above any liver
                assert row["pet_peak_to_liver"] >= 2.5
            else:
                cysts += 1
                assert 0.0 <= row["ct_hu"] <= 15.0 and row["pet_suv"] < 1.0 and row["t2_to_host"] > 3.0
    assert malignant >= 2 and cysts >= 2


def test_pet_confounders_and_grain(cases: list[PhantomCase]) -> None:
    for case in cases:
        pet, lab = case.pet_clean.array, case.labels_pet.array
        liver = float(pet[lab == LIVER].mean())
        kidneys = np.isin(lab, (KIDNEY_L, KIDNEY_R))
        assert pet[kidneys].max() > 2.0 * liver  # urine in the renal pelvis: hot, not a lesion
        noise = case.pet.array - pet
        body = _interior(lab > 0, 2)
        a, b = noise[:-1][body[:-1] & body[1:]], noise[1:][body[:-1] & body[1:]]
        rho = np.corrcoef(a, b)[0, 1]  # neighbour correlation along i: a Gaussian autocorrelation exp(-d^2 / (2 s^2))
        grain_fwhm = 2.355 * case.pet.spacing[0] / np.sqrt(-2.0 * np.log(rho))
        assert 0.6 <= grain_fwhm / case.acquisition["pet_resolution_fwhm_mm"] <= 1.5  # grain ~ resolution
        assert 0.05 < noise[lab == LIVER].std() / liver < 0.35  # clinical liver COV ~ 10-15 %


def test_mr_contrast_follows_relaxation_times(cases: list[PhantomCase]) -> None:
    for case in cases:
        lab, t1, t2 = case.labels_mr.array, case.t1.array, case.t2.array

        def med(img: np.ndarray, label: int, lab: np.ndarray = lab) -> float:
            return float(np.median(img[_interior(lab == label)]))

        assert med(t1, FAT) > med(t1, LIVER) > med(t1, SPLEEN)  # short T1 is bright on T1w (fat 260, liver 586, spleen 1057 ms)
        assert med(t2, SPINAL_CANAL) > 2 * med(t2, LIVER)  # CSF: long T2
        assert med(t2, SPLEEN) > med(t2, LIVER)  # spleen T2 79 vs liver 46 ms
        assert t1.min() >= 0 and t2.min() >= 0  # magnitude images
        fat = t1[_interior(lab == FAT)]
        assert fat.std() / fat.mean() > 0.05  # the bias field makes one tissue vary across the field of view
    gains = [c.acquisition["mr_gain"] for c in cases]
    assert len(set(gains)) == len(gains)


# -- ground truth: rigid (SimpleITK cross-check) ----------------------------------------------------------
def test_rigid_matches_simpleitk_and_moves_the_mr_anatomy(cases: list[PhantomCase]) -> None:
    for case in cases:
        rigid = case.rigid
        assert max(abs(a) for a in rigid.angles_deg) <= 10.0
        assert 10.0 <= np.linalg.norm(rigid.translation_mm) <= 30.0
        tx = rigid.to_sitk()
        pts = case.landmarks.ct
        np.testing.assert_allclose([tx.TransformPoint(tuple(p)) for p in pts], rigid.apply(pts), atol=1e-9)
        np.testing.assert_allclose(case.landmarks.mr, rigid.apply(pts), atol=1e-9)
        for organ in (LIVER, SPLEEN):
            p_ct, p_mr = _centroid(case.labels, organ), _centroid(case.labels_mr, organ)
            assert np.linalg.norm(rigid.apply(p_ct)[0] - p_mr) < max(case.t1.spacing)
    case = cases[0]
    back = sitk.Resample(case.labels_mr.to_sitk(), case.labels.to_sitk(), case.rigid.to_sitk(),
                         sitk.sitkNearestNeighbor, 0)
    aligned = sitk.GetArrayFromImage(back).transpose(2, 1, 0)
    before = _dice(case.labels_mr.resample_to(case.labels).array == LIVER, case.labels.array == LIVER)
    after = _dice(aligned == LIVER, case.labels.array == LIVER)
    assert after > 0.85 and after > before + 0.1


# -- ground truth: breathing deformation ------------------------------------------------------------------
def test_displacement_field_matches_simpleitk_exactly(cases: list[PhantomCase]) -> None:
    case = cases[0]
    ref = case.labels.to_sitk()
    warped = sitk.GetArrayFromImage(sitk.Resample(ref, ref, case.displacement_sitk(), sitk.sitkNearestNeighbor, 255))
    warped = warped.transpose(2, 1, 0)
    inside = warped != 255  # ITK leaves points that map outside the grid at the default value
    assert inside.mean() > 0.8
    agree = np.mean(warped[inside] == case.labels_deformed.array[inside])
    assert agree > 0.999


def test_deformation_is_breathing_with_sliding(cases: list[PhantomCase]) -> None:
    for case in cases:
        u = case.displacement.array
        lab = case.labels.array
        liver = lab == LIVER
        lm = case.landmarks
        for name in ("liver_right_lobe", "spleen", "kidney_left"):
            motion = lm.ct[lm.names.index(name)] - lm.deformed[lm.names.index(name)]
            assert 8.0 <= motion[2] <= 21.0, name  # organs move 10-20 mm inferiorly during breathing
            assert np.linalg.norm(motion[:2]) < 6.0, name
        shift = _centroid(case.labels, LIVER) - _centroid(case.labels_deformed, LIVER)
        liver_motion = lm.ct[lm.names.index("liver_right_lobe")] - lm.deformed[lm.names.index("liver_right_lobe")]
        assert abs(shift[2] - liver_motion[2]) <= case.ct.spacing[2]  # the label map follows (nearest neighbour)
        assert np.median(u[..., 2][liver]) > 8.0
        # nothing moves outside the cavity (spine, ribs, subcutaneous fat): the organs slide along its wall
        assert np.abs(u[lab == BONE]).max() == 0.0
        in_plane = np.zeros((3, 3, 3), bool)
        in_plane[:, :, 1] = ndimage.generate_binary_structure(2, 1)
        body_fat = (lab == FAT) & ~ndimage.binary_erosion(lab > 0, in_plane, iterations=2)  # subcutaneous
        assert np.abs(u[body_fat]).max() == 0.0
        np.testing.assert_allclose(case.deformation.apply(case.landmarks.deformed), case.landmarks.ct, atol=1e-3)
        tx = case.displacement_sitk()
        ct_from_sitk = np.array([tx.TransformPoint(tuple(p)) for p in case.landmarks.deformed])
        np.testing.assert_allclose(ct_from_sitk, case.landmarks.ct, atol=0.3 * max(case.ct.spacing))


# -- classification, cue, splits, shift -----------------------------------------------------------------------
def test_cause_and_planted_cue() -> None:
    base = dict(n_cases=10, shape=(32, 32, 16), spacing=(12.5, 12.5, 16.0), pet_spacing=(10.0, 10.0, 10.0))
    spec, plain = PhantomSpec(**base, spurious_cue=True), PhantomSpec(**base)
    seen = []
    for i in range(spec.n_cases):
        case = generate_case(spec, i)
        cause = case.cause_mask().array.astype(bool)
        assert cause.any() == bool(case.label)
        if case.label:
            assert (case.labels.array[cause] != 0).all()
        cue = case.cue_mask().array.astype(bool)
        assert cue.any() == case.classification["cue"]
        if cue.any():  # the same patient without the cue differs only where the marker is
            diff = case.ct_clean.array - generate_case(plain, i).ct_clean.array
            assert diff[cue].max() > 100 and not diff[~cue].any()
            assert not (case.labels.array[cue] > 0).all()  # on the skin, not in the anatomy
        seen.append((case.split, case.label, case.classification["cue"]))
    train = [(label, cue) for split, label, cue in seen if split == "train"]
    agree = np.mean([label == cue for label, cue in train])
    assert agree >= 0.8  # correlated with the label in the chosen split (0.9 by construction)
    assert generate_case(PhantomSpec(**{**base, "n_cases": 2}), 0).cue_mask().array.sum() == 0


def test_cue_radius_sets_the_marker_size_and_the_default_keeps_old_keys() -> None:
    base = dict(n_cases=10, shape=(32, 32, 16), spacing=(12.5, 12.5, 16.0), pet_spacing=(10.0, 10.0, 10.0),
                spurious_cue=True, cue_correlation=1.0)
    small, large = PhantomSpec(**base), PhantomSpec(**base, cue_radius_mm=14.0)
    index = next(p.index for p in case_plans(small) if p.cue)
    a, b = generate_case(small, index), generate_case(large, index)
    assert b.classification["cue_radius_mm"] == 14.0 and a.classification["cue_radius_mm"] == 6.0
    added_a = (a.ct_clean.array - generate_case(PhantomSpec(**{**base, "spurious_cue": False}), index).ct_clean.array)
    added_b = (b.ct_clean.array - generate_case(PhantomSpec(**{**base, "spurious_cue": False}), index).ct_clean.array)
    # the marker's added attenuation grows with its volume ((14 / 6)^3 = 12.7x; partial volume at the skin blurs it)
    assert added_b.sum() > 5 * added_a.sum() > 0
    assert b.cue_mask().array.sum() > a.cue_mask().array.sum()
    # a spec at the default radius has the key and the dict it had before the field existed
    assert "cue_radius_mm" not in small.to_dict() and PhantomSpec(**base, cue_radius_mm=6.0).key() == small.key()
    assert large.key() != small.key() and PhantomSpec.from_dict(large.to_dict()) == large


def test_lesion_rich_cohorts_have_more_positives_and_malignant_lesions() -> None:
    base = dict(n_cases=10, shape=(32, 32, 16), spacing=(12.5, 12.5, 16.0), pet_spacing=(10.0, 10.0, 10.0))
    plain = PhantomSpec(**base)
    # the default is half of each split positive (the odd one out positive), and its key is unchanged
    for split in ("train", "val", "test"):
        labels = [p.label for p in case_plans(plain) if p.split == split]
        assert labels and sum(labels) == (len(labels) + 1) // 2
    assert not {"positive_fraction", "extra_malignant_mean"} & set(plain.to_dict())
    assert PhantomSpec(**base, positive_fraction=0.5, extra_malignant_mean=1.0).key() == plain.key()
    every = PhantomSpec(**base, positive_fraction=1.0)
    none = PhantomSpec(**base, positive_fraction=0.0)
    assert all(p.label == 1 for p in case_plans(every)) and not any(p.label for p in case_plans(none))
    quarter = [p.label for p in case_plans(PhantomSpec(**{**base, "n_cases": 20}, positive_fraction=0.25))]
    assert sum(quarter) in (5, 6, 7)  # a quarter of each split, rounded per split
    rich = PhantomSpec(**base, positive_fraction=1.0, extra_malignant_mean=3.0)
    assert rich.key() != every.key() and PhantomSpec.from_dict(rich.to_dict()) == rich
    # a positive case's malignant lesions: 1 + min(Poisson(mean), 3); more on average with a larger mean
    n_every = [generate_case(every, i).classification["n_malignant"] for i in range(6)]
    n_rich = [generate_case(rich, i).classification["n_malignant"] for i in range(6)]
    assert min(n_every) >= 1 and max(n_rich) <= 4
    assert sum(n_rich) > sum(n_every)


def test_shifted_test_cases_keep_the_anatomy() -> None:
    base = dict(n_cases=3, shape=(32, 32, 16), spacing=(12.5, 12.5, 16.0), pet_spacing=(10.0, 10.0, 10.0))
    plain = PhantomSpec(**base)
    index = next(i for i in range(3) if generate_case(plain, i).split == "test")
    ref = generate_case(plain, index)
    liver = _interior(ref.labels.array == LIVER)
    noise = generate_case(PhantomSpec(**base, shift="noise"), index)
    np.testing.assert_array_equal(noise.labels.array, ref.labels.array)
    sd = (noise.ct.array - noise.ct_clean.array)[liver].std() / (ref.ct.array - ref.ct_clean.array)[liver].std()
    assert sd == pytest.approx(2.0, rel=0.25) and noise.acquisition["ct_dose"] == 0.25
    contrast = generate_case(PhantomSpec(**base, shift="contrast"), index)
    gain = np.median(contrast.ct_clean.array[liver]) - np.median(ref.ct_clean.array[liver])
    assert 40 <= gain <= 70  # portal-venous liver enhancement ~50-60 HU
    scaled = generate_case(PhantomSpec(**base, shift="scale"), index)
    ratio = np.count_nonzero(scaled.labels.array == LIVER) / np.count_nonzero(ref.labels.array == LIVER)
    assert ratio == pytest.approx(0.85**3, rel=0.15)
    train = next(i for i in range(3) if generate_case(plain, i).split == "train")
    np.testing.assert_array_equal(generate_case(PhantomSpec(**base, shift="noise"), train).ct.array,
                                  generate_case(plain, train).ct.array)  # only the test split is shifted


def test_cohort_files_do_not_depend_on_the_generation_workers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from medbench.data.phantom import cohort_hash, load_cohort
    from medbench.data.phantom.cohort import generation_workers

    spec = PhantomSpec(n_cases=3, shape=(32, 32, 16), spacing=(12.5, 12.5, 16.0), pet_spacing=(10.0, 10.0, 10.0))
    hashes = []
    for workers in ("1", "2"):
        monkeypatch.setenv("MEDBENCH_PHANTOM_WORKERS", workers)
        assert generation_workers(spec.n_cases) == int(workers)
        hashes.append(cohort_hash(load_cohort(spec, cache_dir=tmp_path / workers)))
    assert hashes[0] == hashes[1]
    assert generation_workers(1) == 1  # never more workers than cases
    monkeypatch.delenv("MEDBENCH_PHANTOM_WORKERS")
    assert generation_workers(3) == 1  # unset: one at a time (an unguarded script must not respawn itself)
    monkeypatch.setenv("MEDBENCH_PHANTOM_WORKERS", "many")
    with pytest.raises(ConfigError, match="MEDBENCH_PHANTOM_WORKERS"):
        generation_workers(3)
