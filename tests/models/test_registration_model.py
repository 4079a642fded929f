"""The learned registration's parts: the DDF convention against SimpleITK, pooled grids, and a LocalNet that learns."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medbench.engine import TrainParams, fit
from medbench.engine.tasks import RegistrationTask
from medbench.image.resample import pooled_grid
from medbench.image.transforms import DisplacementField
from medbench.image.volume import Volume
from medbench.models.registration import (
    LocalNetParams,
    build_localnet,
    ddf_to_field,
    field_on,
    min_patch_multiple,
    warp,
)

ROTATION = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])


def _grid(shape: tuple[int, int, int] = (16, 12, 8), direction: np.ndarray | None = None) -> Volume:
    return Volume.from_spacing(np.zeros(shape, np.float32), (2.0, 3.0, 4.0), (10.0, -5.0, 7.0), direction)


def _smooth(shape: tuple[int, int, int]) -> np.ndarray:
    i, j, k = np.meshgrid(*[np.linspace(0, np.pi, s) for s in shape], indexing="ij")
    return (np.sin(i) * np.cos(j / 2) + 0.3 * np.sin(2 * k)).astype(np.float32)


def test_a_voxel_step_becomes_the_grid_column_in_mm() -> None:
    grid = _grid(direction=ROTATION)
    ddf = np.zeros((3, *grid.shape), np.float32)
    ddf[0] = 1.0  # one voxel along array axis i
    ddf[2] = -0.5  # half a voxel back along k
    u = ddf_to_field(ddf, grid).array
    expected = ROTATION[:, 0] * 2.0 - 0.5 * ROTATION[:, 2] * 4.0
    np.testing.assert_allclose(u[3, 4, 5], expected, atol=1e-6)
    assert np.allclose(u, expected)


def test_monai_warp_and_simpleitk_resampling_agree_through_the_field() -> None:
    """warp(moving, ddf) and SimpleITK resampling through ddf_to_field(ddf) are the same map (fixed -> moving)."""
    grid = _grid(direction=ROTATION)
    moving = grid.with_array(_smooth(grid.shape))
    ddf = np.zeros((3, *grid.shape), np.float32)
    ddf[0], ddf[1] = 1.5, -0.75
    warped = warp(torch.from_numpy(moving.array)[None, None], torch.from_numpy(ddf)[None])[0, 0].numpy()
    resampled = moving.resample_to(grid, ddf_to_field(ddf, grid).to_sitk(), interpolator="linear").array
    inner = (slice(2, -2), slice(2, -2), slice(1, -1))
    np.testing.assert_allclose(warped[inner], resampled[inner], atol=1e-4)
    assert np.abs(warped[inner] - moving.array[inner]).max() > 0.05  # the shift is not the identity


def test_ddf_to_field_refuses_a_ddf_of_another_grid() -> None:
    from medbench.errors import GeometryError

    with pytest.raises(GeometryError, match="grid needs"):
        ddf_to_field(np.zeros((3, 4, 4, 4)), _grid())


def test_a_linear_field_survives_pooling_and_interpolation_back() -> None:
    grid = _grid((16, 16, 8))
    pts = grid.grid_points().reshape(*grid.shape, 3)
    linear = DisplacementField.from_array(0.05 * pts + np.array([1.0, -2.0, 0.5]), grid)
    coarse = pooled_grid(grid, 2)
    on_coarse = DisplacementField.from_array(linear.displacement(coarse.grid_points()).reshape(*coarse.shape, 3), coarse)
    back = field_on(on_coarse, grid).array
    inner = (slice(1, -1), slice(1, -1), slice(1, -1))
    np.testing.assert_allclose(back[inner], linear.array[inner], atol=1e-4)


def test_localnet_starts_at_the_identity_and_needs_divisible_grids() -> None:
    params = LocalNetParams(channels=4, levels=2)
    assert min_patch_multiple(params) == 4
    net = build_localnet(params)
    with torch.no_grad():
        ddf = net(torch.rand(1, 2, 16, 16, 8))
    assert ddf.shape == (1, 3, 16, 16, 8) and float(ddf.abs().max()) == 0.0


def _toy_pairs(n: int, seed: int) -> list[dict[str, torch.Tensor]]:
    """A ball (label 1) in the fixed image and the same ball shifted 2-3 voxels along i in the moving one."""
    rng = np.random.default_rng(seed)
    i, j, k = np.meshgrid(*[np.arange(s) for s in (16, 16, 16)], indexing="ij")
    out = []
    for _ in range(n):
        c = rng.uniform(6, 10, 3)
        shift = rng.uniform(2, 3)
        fixed = ((i - c[0]) ** 2 + (j - c[1]) ** 2 + (k - c[2]) ** 2 < 16).astype(np.float32)
        moving = ((i - c[0] - shift) ** 2 + (j - c[1]) ** 2 + (k - c[2]) ** 2 < 16).astype(np.float32)
        out.append({"image": torch.from_numpy(np.stack([fixed, moving])),
                    "fixed_label": torch.from_numpy(fixed[None].astype(np.int64)),
                    "moving_label": torch.from_numpy(moving[None].astype(np.int64))})
    return out


@pytest.mark.slow
def test_registration_task_learns_a_shift_through_the_engine() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = build_localnet(LocalNetParams(channels=4, levels=2))
    task = RegistrationTask(2, similarity="mse", bending_weight=0.1, label_weight=1.0)
    val = _toy_pairs(3, seed=1)
    before = task.validate(model, val, torch.device("cpu"))["dice_mean"]
    result = fit(model, task, _toy_pairs(12, seed=0), val, TrainParams(epochs=25, lr=1e-2, batch_size=4,
                                                                        samples_per_volume=1), seed=0)
    assert before < 0.6  # balls of radius 4 shifted by 2-3 voxels overlap poorly
    assert result.best_metric > before + 0.15, (before, result.best_metric)
    ddf = task.predict_ddf(model, val[0]["image"], torch.device("cpu"))
    assert ddf.shape == (3, 16, 16, 16) and float(ddf[0].mean()) > 0.5  # moves along +i, as the shift does


class _ConstantField(torch.nn.Module):
    """A "network" that predicts the same displacement (voxels) for every pair."""

    def __init__(self, shift: tuple[float, float, float]) -> None:
        super().__init__()
        self.shift = torch.tensor(shift).view(1, 3, 1, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shift.expand(x.shape[0], 3, *x.shape[2:]).clone()


def test_field_error_is_the_mean_distance_to_the_known_displacement_where_it_is_known() -> None:
    items = _toy_pairs(2, seed=3)
    true = np.zeros((3, 16, 16, 16), np.float32)
    true[0] = 2.0
    true[:, :4] = np.nan  # unknown here: ignored
    for it in items:
        it["ddf"] = torch.from_numpy(true)
    task = RegistrationTask(2, similarity="mse", monitor="field_error")
    assert (task.monitor, task.mode) == ("field_error", "min")
    cpu = torch.device("cpu")
    assert task.validate(_ConstantField((2.0, 0.0, 0.0)), items, cpu)["field_error"] == pytest.approx(0.0)
    assert task.validate(_ConstantField((0.0, 0.0, 0.0)), items, cpu)["field_error"] == pytest.approx(2.0)
    assert task.validate(_ConstantField((2.0, 3.0, 4.0)), items, cpu)["field_error"] == pytest.approx(5.0)
    assert "field_error" not in task.validate(_ConstantField((0.0, 0.0, 0.0)), _toy_pairs(1, seed=4), cpu)
    assert (RegistrationTask(2).monitor, RegistrationTask(2).mode) == ("dice_mean", "max")


def test_registration_task_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="monitor"):
        RegistrationTask(3, monitor="loss")
    with pytest.raises(ValueError, match="similarity"):
        RegistrationTask(3, similarity="mi")
    with pytest.raises(ValueError, match="n_labels"):
        RegistrationTask(1)
