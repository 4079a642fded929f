"""medbench.registration: known-answer recoveries, bad input, failure reporting, transform files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from medbench.errors import ConfigError, RegistrationError
from medbench.image.resample import resample_to
from medbench.image.transforms import RigidTransform
from medbench.image.volume import Volume
from medbench.metrics import landmark_tre
from medbench.registration import (
    demons,
    initial_transform,
    load_transform,
    register,
    save_transform,
    threshold_mask,
)

SPACING = (5.0, 5.0, 5.0)
TRUTH = RigidTransform((3.0, -2.0, 4.0), (6.0, -4.0, 5.0), (0.0, 0.0, 0.0))


def _blobs(shape: tuple[int, int, int] = (32, 32, 24)) -> Volume:
    """An ellipsoidal body with three inner blobs of different brightness (asymmetric: no rotational ambiguity)."""
    grid = Volume.from_spacing(np.zeros(shape, np.float32), SPACING, meta={"name": "blobs"})
    pts = grid.grid_points().reshape(*shape, 3) - grid.center
    body = ((pts / np.array([60.0, 45.0, 40.0])) ** 2).sum(-1) < 1
    arr = np.where(body, 100.0, 0.0)
    for c, s, a in (((20, 10, 5), 8, 150), ((-15, -12, -10), 10, 250), ((5, 20, -15), 6, -60)):
        arr += a * np.exp(-((pts - np.array(c)) ** 2).sum(-1) / (2 * s * s)) * body
    return grid.with_array(arr.astype(np.float32))


@pytest.fixture(scope="module")
def pair() -> tuple[Volume, Volume, np.ndarray]:
    fixed = _blobs()
    moving_grid = fixed  # moving sampled so that moving(TRUTH(x)) = fixed(x)
    moving = resample_to(fixed, moving_grid, TRUTH.to_sitk().GetInverse())
    pts = fixed.center + np.array([[20.0, 10, 5], [-15, -12, -10], [5, 20, -15], [0, 0, 0]])
    return fixed, moving, pts


def test_rigid_mean_squares_recovers_a_known_transform(pair: tuple[Volume, Volume, np.ndarray]) -> None:
    fixed, moving, pts = pair
    before = landmark_tre(RigidTransform.identity(), pts, TRUTH.apply(pts))["mean"]
    res = register(fixed, moving, metric="mean_squares", sampling="none", threads=2)
    assert res.ok and res.iterations > 0 and res.wall_time_s > 0
    assert list(res.history.columns) == ["level", "iteration", "metric"]
    assert sorted(res.history["level"].unique()) == [0, 1, 2]
    assert before > 8.0
    assert landmark_tre(res.transform, pts, TRUTH.apply(pts))["mean"] < 1.0


def test_per_level_schedule_caps_each_level_and_still_recovers(pair: tuple[Volume, Volume, np.ndarray]) -> None:
    fixed, moving, pts = pair
    res = register(fixed, moving, metric="mean_squares", iterations=(40, 20, 3), learning_rate=(1.0, 0.5, 0.1),
                   sampling_fraction=(1.0, 0.5, 0.3), threads=2)
    per_level = res.history.groupby("level").size()
    assert res.ok and list(per_level.index) == [0, 1, 2]
    assert (per_level.to_numpy() <= [40, 20, 3]).all() and per_level[2] == 3  # the finest level stops at its cap
    assert res.settings["per_level_optimisation"] and res.stop_condition.count("level ") == 3
    assert landmark_tre(res.transform, pts, TRUTH.apply(pts))["mean"] < 1.0
    with pytest.raises(ConfigError, match="iterations has 2 values for 3 pyramid level"):
        register(fixed, moving, iterations=(10, 10))
    with pytest.raises(ConfigError, match="sampling_fraction"):
        register(fixed, moving, sampling_fraction=(1.0, 0.5, 0.0))


def test_mutual_information_handles_inverted_contrast_where_mean_squares_fails(
        pair: tuple[Volume, Volume, np.ndarray]) -> None:
    fixed, moving, pts = pair
    inverted = moving.with_array(400.0 - moving.array)
    mi = register(fixed, inverted, metric="mattes", histogram_bins=24, sampling_fraction=0.5, threads=2)
    ms = register(fixed, inverted, metric="mean_squares", threads=2)
    assert landmark_tre(mi.transform, pts, TRUTH.apply(pts))["mean"] < 2.0
    assert landmark_tre(ms.transform, pts, TRUTH.apply(pts))["mean"] > 5.0


def test_initialisation_by_geometry_and_moments(pair: tuple[Volume, Volume, np.ndarray]) -> None:
    fixed, moving, _ = pair
    aff = moving.affine.copy()
    aff[:3, 3] += (40.0, 0.0, 0.0)
    far = Volume(moving.array, aff)
    geo = initial_transform(fixed, far, "geometry")
    assert np.allclose(geo.GetTranslation(), (40.0, 0.0, 0.0), atol=1e-6)
    mom = initial_transform(fixed, far, "moments")
    # the body's centroid moved by the truth (rotation about the origin, then translation) plus the origin shift
    expected = TRUTH.apply(fixed.center)[0] - fixed.center + (40.0, 0.0, 0.0)
    assert np.allclose(mom.GetTranslation(), expected, atol=3.0)
    assert np.allclose(initial_transform(fixed, far, "none").GetTranslation(), 0.0)
    with pytest.raises(ConfigError, match="unknown initialisation"):
        initial_transform(fixed, far, "centre")  # type: ignore[arg-type]


def test_affine_and_bspline_compose_on_the_initial_transform(pair: tuple[Volume, Volume, np.ndarray]) -> None:
    fixed, moving, pts = pair
    aff = register(fixed, moving, transform="affine", metric="mean_squares", initialisation=TRUTH, iterations=5,
                   threads=2)
    assert aff.transform.GetName() == "AffineTransform"
    assert landmark_tre(aff.transform, pts, TRUTH.apply(pts))["mean"] < 1.0
    bs = register(fixed, moving, transform="bspline", metric="mean_squares", initialisation=TRUTH, iterations=2,
                  shrink_factors=(1,), smoothing_sigmas=(0.0,), bspline_mesh_mm=60.0, threads=2)
    assert bs.transform.GetName() == "CompositeTransform"
    # the initial transform is applied after the (near-zero) B-spline: T(x) ~ TRUTH(x)
    assert landmark_tre(bs.transform, pts, TRUTH.apply(pts))["mean"] < 1.0


def test_demons_reduces_a_translation_and_does_not_fold(pair: tuple[Volume, Volume, np.ndarray]) -> None:
    fixed, _, pts = pair
    shift = RigidTransform((0.0, 0.0, 0.0), (5.0, 0.0, 0.0))
    moving = resample_to(fixed, fixed, shift.to_sitk().GetInverse())
    res = demons(fixed, moving, iterations=30, smoothing_mm=6.0, shrink_factors=(1,), threads=2)
    assert res.ok and res.method == "demons_diffeomorphic"
    assert res.history["metric"].iloc[-1] < res.history["metric"].iloc[0]
    inner = pts[:3]
    assert landmark_tre(res.transform, inner, shift.apply(inner))["mean"] < 2.5
    assert res.displacement().magnitude.max() < 15.0


def test_bad_input_is_refused_with_a_reason(pair: tuple[Volume, Volume, np.ndarray]) -> None:
    fixed, moving, _ = pair
    with pytest.raises(RegistrationError, match="role 'label'"):
        register(fixed, fixed.with_array(np.round(fixed.array)).as_label())
    with pytest.raises(RegistrationError, match="2D"):
        register(fixed, sitk.Image(16, 16, sitk.sitkFloat32))
    with pytest.raises(RegistrationError, match="channels"):
        register(Volume.stack([fixed, fixed]), moving)
    with pytest.raises(RegistrationError, match="NaN"):
        register(fixed, moving.with_array(np.where(moving.array > 200, np.nan, moving.array)))
    with pytest.raises(RegistrationError, match="constant"):
        register(fixed, moving.with_array(np.ones(moving.shape, np.float32)))
    with pytest.raises(RegistrationError, match="mask is empty"):
        register(fixed, moving, fixed_mask=np.zeros(fixed.shape, bool))
    with pytest.raises(RegistrationError, match="mask has shape"):
        register(fixed, moving, moving_mask=np.ones((3, 3, 3), bool))
    aff = moving.affine.copy()
    aff[:3, 3] += (5000.0, 0.0, 0.0)
    with pytest.raises(RegistrationError, match="do not overlap"):
        register(fixed, Volume(moving.array, aff), initialisation="none")
    with pytest.raises(ConfigError, match="unknown metric"):
        register(fixed, moving, metric="ncc")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="equal length"):
        register(fixed, moving, shrink_factors=(2, 1), smoothing_sigmas=(1.0,))


def test_a_failed_optimisation_is_reported_not_returned_as_a_result(pair: tuple[Volume, Volume, np.ndarray]) -> None:
    fixed, moving, _ = pair
    res = register(fixed, moving, metric="mean_squares", learning_rate=1e5, shrink_factors=(1,),
                   smoothing_sigmas=(0.0,), iterations=20, threads=2)
    assert res.status in ("failed", "diverged")
    assert res.stop_condition
    with pytest.raises(RegistrationError, match=res.status):
        res.check()


def test_transforms_round_trip_through_files(tmp_path: Path, pair: tuple[Volume, Volume, np.ndarray]) -> None:
    fixed, _, pts = pair
    rigid = TRUTH.to_sitk()
    back = load_transform(save_transform(TRUTH, tmp_path / "rigid.tfm"))
    assert np.allclose([back.TransformPoint(tuple(p)) for p in pts], [rigid.TransformPoint(tuple(p)) for p in pts])
    field = sitk.TransformToDisplacementField(rigid, sitk.sitkVectorFloat64, fixed.to_sitk().GetSize(),
                                              fixed.to_sitk().GetOrigin(), fixed.to_sitk().GetSpacing())
    dense = sitk.DisplacementFieldTransform(field)
    back = load_transform(save_transform(dense, tmp_path / "dense.h5"))
    assert np.allclose(back.TransformPoint(tuple(pts[0])), rigid.TransformPoint(tuple(pts[0])), atol=1e-3)
    with pytest.raises(ConfigError, match="extension"):
        save_transform(rigid, tmp_path / "rigid.json")
    with pytest.raises(RegistrationError, match="does not exist"):
        load_transform(tmp_path / "missing.tfm")
    (tmp_path / "broken.tfm").write_text("not a transform")
    with pytest.raises(RegistrationError, match="cannot be read"):
        load_transform(tmp_path / "broken.tfm")


def test_threshold_mask_keeps_the_voxels_above_the_threshold_and_dilates_them() -> None:
    arr = np.zeros((9, 9, 9), np.float32)
    arr[4, 4, 4] = 700.0  # one bone voxel
    arr[0, 0, 0] = 149.0  # just below the threshold
    vol = Volume.from_spacing(arr, (2.0, 2.0, 3.0), meta={"name": "ct"})
    assert threshold_mask(vol, 150.0, dilate_voxels=0).sum() == 1
    mask = threshold_mask(vol, 150.0, dilate_voxels=1)
    assert mask.sum() == 7 and mask[3, 4, 4] and mask[4, 4, 5] and not mask[3, 3, 4]  # a 6-connected cross
    assert not mask[0, 0, 0]
    with pytest.raises(RegistrationError, match="'ct'.*empty"):
        threshold_mask(vol, 800.0)
    with pytest.raises(ConfigError, match="dilate_voxels"):
        threshold_mask(vol, 150.0, dilate_voxels=-1)
