"""medbench.image.volume: the Volume type's invariants (roles, channels, geometry)."""

from __future__ import annotations

import numpy as np
import pytest

from medbench.errors import GeometryError
from medbench.image import Volume
from medbench.image.transforms import euler_zxy


def _oblique(shape: tuple[int, ...] = (6, 5, 4), role: str = "image", dtype: type = np.float32) -> Volume:
    direction = euler_zxy((10.0, -5.0, 30.0))
    arr = np.arange(int(np.prod(shape)), dtype=dtype).reshape(shape)
    return Volume.from_spacing(arr, (0.8, 1.2, 2.5), (10.0, -20.0, 5.0), direction, role=role)  # type: ignore[arg-type]


def test_geometry_properties_agree_with_the_affine() -> None:
    v = _oblique()
    np.testing.assert_allclose(v.spacing, (0.8, 1.2, 2.5))
    np.testing.assert_allclose(v.direction @ v.direction.T, np.eye(3), atol=1e-12)
    assert v.origin == pytest.approx((10.0, -20.0, 5.0))
    assert v.voxel_volume_ml == pytest.approx(0.8 * 1.2 * 2.5 / 1000)
    ijk = np.array([[0, 0, 0], [5, 4, 3], [2.5, 1, 0.5]])
    np.testing.assert_allclose(v.index(v.world(ijk)), ijk, atol=1e-9)
    np.testing.assert_allclose(v.world([[1, 0, 0]])[0] - v.origin, 0.8 * v.direction[:, 0])
    pts = v.grid_points()
    assert pts.shape == (6 * 5 * 4, 3)
    np.testing.assert_allclose(pts[1], v.world([[0, 0, 1]])[0])  # C order over [i, j, k]
    np.testing.assert_allclose(v.center, v.world([[2.5, 2, 1.5]])[0])
    np.testing.assert_allclose(v.affine_ras[:2], -v.affine[:2])


@pytest.mark.parametrize(
    ("affine", "message"),
    [(np.zeros((4, 4)), "homogeneous"), (np.diag([1.0, 0.0, 1.0, 1.0]), "singular"),
     (np.full((4, 4), np.nan), "finite")],
)
def test_bad_affines_are_refused(affine: np.ndarray, message: str) -> None:
    with pytest.raises(GeometryError, match=message):
        Volume(np.zeros((2, 2, 2)), affine)


def test_roles_check_their_arrays() -> None:
    with pytest.raises(GeometryError, match="integer class ids"):
        Volume(np.zeros((2, 2, 2), np.float32), np.eye(4), role="label")
    with pytest.raises(GeometryError, match=r"\[i, j, k, 3\]"):
        Volume(np.zeros((2, 2, 2, 2)), np.eye(4), role="vector")
    with pytest.raises(GeometryError, match="role must be one of"):
        Volume(np.zeros((2, 2, 2)), np.eye(4), role="mask")  # type: ignore[arg-type]
    with pytest.raises(GeometryError, match="3D array"):
        Volume(np.zeros((2, 2)), np.eye(4))
    assert Volume(np.ones((2, 2, 2), bool), np.eye(4), role="label").array.dtype == np.uint8


def test_shape_is_spatial_and_channels_are_last() -> None:
    v = Volume(np.zeros((4, 3, 2, 5), np.float32), np.eye(4))
    assert v.shape == (4, 3, 2) and v.n_channels == 5
    assert v.channel(2).shape == (4, 3, 2) and v.channel(2).n_channels == 1
    with pytest.raises(GeometryError, match="has 5 channels"):
        v.channel(5)
    assert _oblique().n_channels == 1


def test_with_array_keeps_the_grid_and_sets_the_role() -> None:
    v = _oblique()
    lab = v.with_array((v.array > 50).astype(np.uint8), role="label", name="mask")
    assert lab.is_label and lab.meta["name"] == "mask" and np.array_equal(lab.affine, v.affine)
    with pytest.raises(GeometryError, match="does not match the grid"):
        v.with_array(np.zeros((6, 5, 3)))


def test_as_label_accepts_integral_values_only() -> None:
    v = _oblique()
    assert v.with_array(np.rint(v.array / 10)).as_label().array.dtype == np.uint8
    with pytest.raises(GeometryError, match="non-integer"):
        v.with_array(v.array + 0.5).as_label()


def test_stack_requires_one_grid_and_names_the_channels() -> None:
    a, b = _oblique(), _oblique()
    s = Volume.stack([a.with_array(a.array, name="ct"), b.with_array(b.array * 2, name="pet")])
    assert s.n_channels == 2 and s.meta["channels"] == ["ct", "pet"]
    np.testing.assert_array_equal(s.channel(1).array, b.array * 2)
    shifted = b.affine.copy()
    shifted[0, 3] += 1.0  # one millimetre along x
    moved = Volume(b.array, shifted)
    with pytest.raises(GeometryError, match="affine differs"):
        Volume.stack([a, moved])
    assert a.same_grid(b) and not a.same_grid(moved)
