"""medbench.image.resample: labels stay labels, images interpolate, transforms follow ITK's direction."""

from __future__ import annotations

import numpy as np
import pytest

from medbench.errors import ConfigError, GeometryError
from medbench.image import RigidTransform, Volume


def _pair() -> tuple[Volume, Volume]:
    arr = np.zeros((20, 20, 10), np.float32)
    arr[5:15, 5:15, 3:7] = 100.0
    img = Volume.from_spacing(arr, (1.0, 1.0, 2.0), (-10.0, -10.0, -10.0))
    return img, img.with_array((arr > 0).astype(np.uint8) * 3, role="label")


def test_labels_resample_with_nearest_neighbour_and_keep_their_ids() -> None:
    img, lab = _pair()
    fine = Volume.from_spacing(np.zeros((40, 40, 20), np.float32), (0.5, 0.5, 1.0), (-10.25, -10.25, -10.5))
    out = lab.resample_to(fine)
    assert out.is_label and out.array.dtype == np.uint8 and set(np.unique(out.array)) == {0, 3}
    smooth = img.resample_to(fine)
    assert len(np.unique(smooth.array)) > 2, "images interpolate linearly"
    with pytest.raises(ConfigError, match="nearest neighbour"):
        lab.resample_to(fine, interpolator="linear")


def test_translation_moves_content_the_itk_way() -> None:
    img, lab = _pair()
    shift = RigidTransform((0.0, 0.0, 0.0), (2.0, 0.0, 0.0))  # fixed point x samples moving at x + 2 mm
    out = lab.resample_to(lab, shift.to_sitk())
    np.testing.assert_array_equal(out.array[3:13], lab.array[5:15])
    assert out.array[13:15].max() == 0


def test_vector_fields_refuse_a_transform() -> None:
    img, _ = _pair()
    field = Volume(np.zeros((*img.shape, 3), np.float32), img.affine, role="vector")
    assert field.resample_to(img).role == "vector"
    with pytest.raises(GeometryError, match="vectors rotated"):
        field.resample_to(img, RigidTransform.identity().to_sitk())
