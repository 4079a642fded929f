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


def test_pooled_grid_centres_are_block_means_and_pool_image_matches() -> None:
    from medbench.image.resample import pool_image, pooled_grid

    rotation = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    grid = Volume.from_spacing(np.zeros((16, 12, 9), np.float32), (2.0, 3.0, 4.0), (10.0, -5.0, 7.0), rotation)
    coarse = pooled_grid(grid, 2)
    assert coarse.shape == (8, 6, 4)  # the remainder (the ninth slice) is dropped
    block = np.array([[2 * 3 + a, 2 * 2 + b, 2 * 1 + c] for a in (0, 1) for b in (0, 1) for c in (0, 1)], float)
    np.testing.assert_allclose(coarse.world(np.array([[3.0, 2.0, 1.0]]))[0], grid.world(block).mean(0), atol=1e-9)
    arr = np.arange(16 * 12 * 9, dtype=np.float32).reshape(16, 12, 9)
    pooled = pool_image(arr, 2)
    assert pooled.shape == coarse.shape and pooled.dtype == np.float32
    assert pooled[3, 2, 1] == pytest.approx(arr[6:8, 4:6, 2:4].mean())
    assert pooled_grid(grid, 1).same_grid(grid) and np.array_equal(pool_image(arr, 1), arr)
    with pytest.raises(GeometryError, match="cannot be pooled"):
        pooled_grid(grid, 10)
    with pytest.raises(GeometryError, match="cannot be pooled"):
        pool_image(arr, 10)
    with pytest.raises(ConfigError, match="factor"):
        pooled_grid(grid, 0)
