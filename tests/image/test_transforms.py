"""medbench.image.transforms: conventions checked against SimpleITK, known answers for fields and landmarks."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from medbench.errors import GeometryError
from medbench.image import DisplacementField, Landmarks, RigidTransform, SmoothDeformation, Volume


def _grid() -> Volume:
    return Volume.from_spacing(np.zeros((12, 10, 8), np.float32), (2.0, 2.0, 3.0), (-11.0, -9.0, -10.5))


def test_rigid_matches_simpleitk_euler3d() -> None:
    rigid = RigidTransform((5.0, -3.0, 12.0), (4.0, -2.0, 7.5), (1.0, 2.0, 3.0))
    tx = rigid.to_sitk()
    pts = np.array([[0.0, 0.0, 0.0], [10.0, -5.0, 3.0], [-7.0, 8.0, 20.0]])
    np.testing.assert_allclose(rigid.apply(pts), [tx.TransformPoint(tuple(p)) for p in pts], atol=1e-9)
    np.testing.assert_allclose(rigid.apply_inverse(rigid.apply(pts)), pts, atol=1e-9)
    back = RigidTransform.from_sitk(tx)
    np.testing.assert_allclose(back.matrix, rigid.matrix, atol=1e-9)
    versor = sitk.VersorRigid3DTransform()
    versor.SetCenter(tx.GetCenter())
    versor.SetMatrix(tx.GetMatrix())
    versor.SetTranslation(tx.GetTranslation())
    np.testing.assert_allclose(RigidTransform.from_sitk(versor).matrix, rigid.matrix, atol=1e-9)
    assert RigidTransform.from_dict(rigid.to_dict()).matrix == pytest.approx(rigid.matrix)


def test_rotation_angle_known_answer() -> None:
    assert RigidTransform((0.0, 0.0, 30.0), (0.0, 0.0, 0.0)).rotation_angle_deg == pytest.approx(30.0)
    assert RigidTransform.identity().rotation_angle_deg == pytest.approx(0.0)


def test_from_sitk_refuses_non_rigid() -> None:
    with pytest.raises(GeometryError, match="not a rigid transform|several transforms"):
        RigidTransform.from_sitk(sitk.CompositeTransform([sitk.TranslationTransform(3), sitk.TranslationTransform(3)]))


def test_displacement_field_of_a_translation_is_constant() -> None:
    grid = _grid()
    shift = RigidTransform((0.0, 0.0, 0.0), (1.5, -2.0, 4.0))
    field = DisplacementField.from_transform(shift, grid)
    np.testing.assert_allclose(field.array, np.broadcast_to([1.5, -2.0, 4.0], (*grid.shape, 3)), atol=1e-6)
    assert field.magnitude.max() == pytest.approx(np.linalg.norm([1.5, -2.0, 4.0]), rel=1e-6)
    same = DisplacementField.from_transform(shift.to_sitk(), grid)  # sampled by SimpleITK
    np.testing.assert_allclose(same.array, field.array, atol=1e-6)


def test_displacement_field_apply_matches_simpleitk() -> None:
    grid = _grid()
    bumps = SmoothDeformation(np.array([[0.0, 0.0, 0.0]]), np.array([8.0]), np.array([[2.0, -1.0, 1.5]]))
    field = bumps.sample(grid)
    tx = field.to_sitk()
    pts = grid.world(np.array([[3, 4, 2], [6, 5, 4], [1.5, 2.5, 3.5]]))
    np.testing.assert_allclose(field.apply(pts), [tx.TransformPoint(tuple(p)) for p in pts], atol=1e-5)
    np.testing.assert_allclose(field.apply(pts[:2]), bumps.apply(pts[:2]), atol=1e-5)  # exact at voxel centres


def test_smooth_deformation_inverse_and_round_trip() -> None:
    bumps = SmoothDeformation(np.array([[0.0, 0.0, 0.0], [5.0, 5.0, 0.0]]), np.array([10.0, 6.0]),
                              np.array([[3.0, 0.0, 0.0], [0.0, -2.0, 1.0]]))
    p = np.array([[1.0, 2.0, 3.0], [4.0, 4.0, -1.0]])
    q = bumps.apply_inverse(p)
    np.testing.assert_allclose(bumps.apply(q), p, atol=1e-8)
    again = SmoothDeformation.from_dict(bumps.to_dict())
    np.testing.assert_allclose(again.displacement(p), bumps.displacement(p))


def test_displacement_field_needs_a_vector_volume() -> None:
    with pytest.raises(GeometryError, match="vector Volume"):
        DisplacementField(_grid())


def test_landmarks_spaces_and_round_trip() -> None:
    lm = Landmarks(("a", "b"), {"ct": [[0, 0, 0], [1, 2, 3]], "mr": [[1, 0, 0], [2, 2, 3]]})
    assert lm.spaces == ("ct", "mr") and len(lm) == 2
    np.testing.assert_array_equal(lm.mr, lm["mr"])
    assert list(lm.table().columns) == ["ct_x", "ct_y", "ct_z", "mr_x", "mr_y", "mr_z"]
    np.testing.assert_array_equal(Landmarks.from_dict(lm.to_dict()).ct, lm.ct)
    with pytest.raises(AttributeError, match="no space 'pet'"):
        _ = lm.pet
    with pytest.raises(GeometryError, match="has 1 points for 2 names"):
        Landmarks(("a", "b"), {"ct": [[0, 0, 0]]})
