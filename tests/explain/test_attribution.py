"""medbench.explain on small models whose true cause is known by construction."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medbench.errors import ConfigError
from medbench.explain import (
    METHODS,
    MethodParams,
    RegionTarget,
    attribute,
    cascading_randomisation,
    deletion_insertion,
    inpaint,
    max_sensitivity,
    measure_peak,
    parameter_blocks,
    removal_effect,
    sanity_verdict,
)
from medbench.metrics.attribution import dilate, mask_fraction, relevance_mass

SHAPE = (16, 16, 8)
FAST = MethodParams(n_steps=8, internal_batch_size=4, nt_samples=4, occlusion_window=(2, 2, 2),
                    occlusion_stride=(2, 2, 2), perturbations_per_eval=64)


def _box() -> np.ndarray:
    m = np.zeros(SHAPE, bool)
    m[4:8, 6:10, 2:4] = True
    return m


class BoxModel(torch.nn.Module):
    """Class 1's logit is the (positive) feature sum inside a box; class 0's is its negative.

    ``features`` (a 1x1x1 convolution and a ReLU) is the layer Grad-CAM reads.
    """

    def __init__(self, box: np.ndarray) -> None:
        super().__init__()
        self.conv = torch.nn.Conv3d(2, 3, 1)
        with torch.no_grad():
            self.conv.weight.fill_(0.5)
            self.conv.bias.zero_()
        self.features = torch.nn.ReLU()
        self.register_buffer("box", torch.as_tensor(box, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = (self.features(self.conv(x)) * self.box).sum(dim=(1, 2, 3, 4)) / 50.0
        return torch.stack([-s, s], dim=1)


def _image(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand((1, 2, *SHAPE), generator=g) * 0.5 + 0.25


@pytest.mark.parametrize("method", [m for m in METHODS if m not in ("gradcam", "gradcampp")])
def test_methods_find_the_known_cause(method: str) -> None:
    box = _box()
    a = attribute(BoxModel(box), _image(), method, target=1, params=FAST)
    assert a.raw.shape == (2, *SHAPE) and a.relevance.shape == SHAPE
    assert (a.relevance >= 0).all()
    assert relevance_mass(a.relevance, box) > 0.95


@pytest.mark.parametrize("method", ["gradcam", "gradcampp"])
def test_gradcam_is_upsampled_to_the_input_and_needs_a_layer(method: str) -> None:
    box = _box()
    model = BoxModel(box)
    a = attribute(model, _image(), method, target=1, layer="features")
    assert a.relevance.shape == SHAPE and (a.relevance >= 0).all() and a.relevance.max() > 0
    with pytest.raises(ConfigError, match="layer"):
        attribute(model, _image(), method, target=1)
    with pytest.raises(ConfigError, match="no layer"):
        attribute(model, _image(), method, target=1, layer="nope")
    # the model the caller holds keeps no hooks from MONAI
    assert not model.features._forward_hooks and not model.features._backward_hooks


def test_attribution_of_the_other_class_is_outside_the_evidence() -> None:
    box = _box()
    a = attribute(BoxModel(box), _image(), "integrated_gradients", target=0, params=FAST)
    assert a.relevance.sum() == 0  # every voxel is evidence against class 0: nothing positive remains


def test_region_target_explains_a_segmentation_network() -> None:
    torch.manual_seed(0)
    seg = torch.nn.Sequential(torch.nn.Conv3d(2, 3, 3, padding=1))
    region = _box()
    wrapped = RegionTarget(seg, class_index=2, region=region)
    x = _image()
    out = wrapped(x)
    assert tuple(out.shape) == (1, 1)
    assert float(out.detach()) == pytest.approx(float((seg(x)[0, 2] * torch.as_tensor(region)).sum().detach()), rel=1e-5)
    a = attribute(wrapped, x, "saliency", target=0, params=FAST)
    grown = np.zeros(SHAPE, bool)
    grown[3:9, 5:11, 1:5] = True  # the region plus the 3x3x3 receptive field
    assert (np.abs(a.raw).sum(0)[~grown] == 0).all() and np.abs(a.raw).sum() > 0
    with pytest.raises(ConfigError, match="non-empty"):
        RegionTarget(seg, 0, np.zeros(SHAPE, bool))


def test_deletion_and_insertion_rank_a_true_map_above_a_random_one() -> None:
    box = _box()
    model = BoxModel(box)
    x = _image()
    good = deletion_insertion(model, x, box.astype(float), target=1, steps=8)
    rnd = deletion_insertion(model, x, np.random.default_rng(0).random(SHAPE), target=1, steps=8)
    assert good.deletion[0] == pytest.approx(rnd.deletion[0])
    assert good.deletion_auc < rnd.deletion_auc - 0.1
    assert good.insertion_auc > rnd.insertion_auc + 0.1
    assert len(good.fractions) == 9 and good.fractions[-1] == 1.0


def test_max_sensitivity_zero_for_a_constant_map_and_positive_for_gradients_x_input() -> None:
    model = BoxModel(_box())
    x = _image()
    # saliency of a piecewise-linear model does not change under small noise; IG (x * grad) does
    assert max_sensitivity(model, x, "saliency", 1, params=FAST, radius=0.01) == pytest.approx(0.0, abs=1e-6)
    assert max_sensitivity(model, x, "integrated_gradients", 1, params=FAST, radius=0.05) > 0.0


def test_cascading_randomisation_changes_gradient_maps() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv3d(2, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv3d(4, 4, 3, padding=1),
                                torch.nn.ReLU(), torch.nn.AdaptiveMaxPool3d(1), torch.nn.Flatten(), torch.nn.Linear(4, 2))
    assert parameter_blocks(model) == ["6", "2", "0"]
    before = [p.detach().clone() for p in model.parameters()]
    table = cascading_randomisation(model, _image(), ["saliency"], target=1, params=FAST, stages=3)
    assert list(table["stage"]) == [0, 1, 2, 3]
    assert table["spearman"].iloc[0] == 1.0 and table["fraction"].iloc[-1] == 1.0
    assert abs(table["spearman"].iloc[-1]) < 0.9
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # the caller's model is untouched


def test_sanity_verdict_threshold() -> None:
    assert sanity_verdict(0.1) and sanity_verdict(-0.3) and sanity_verdict(float("nan"))
    assert not sanity_verdict(0.8) and not sanity_verdict(-0.6)


def test_unknown_method_and_bad_input() -> None:
    model = BoxModel(_box())
    with pytest.raises(ConfigError, match="unknown attribution method"):
        attribute(model, _image(), "lime", 1)
    with pytest.raises(ConfigError, match="one channel-first volume"):
        attribute(model, _image()[0], "saliency", 1)


def test_measure_peak_sees_a_large_allocation() -> None:
    def allocate() -> float:
        a = np.ones(64 * 2**20 // 8)  # 64 MiB
        return float(a.sum())

    value, stats = measure_peak(allocate)
    assert value == 64 * 2**20 // 8
    assert stats["peak_delta_mb"] > 40 and stats["seconds"] >= 0


def test_random_relevance_is_at_chance() -> None:
    box = _box()
    r = np.random.default_rng(3).random(SHAPE)
    assert abs(relevance_mass(r, box) - mask_fraction(box)) < 0.02


def test_inpaint_fills_the_grown_mask_with_its_surroundings_and_nothing_else() -> None:
    image = torch.full((2, *SHAPE), 0.2)
    image[1] = 0.6
    lesion = np.zeros(SHAPE, bool)
    lesion[7:9, 7:9, 3:5] = True
    image[:, torch.from_numpy(lesion)] = 0.9  # a hot spot in both channels
    out = inpaint(image, lesion, margin=1, ring=2)
    grown = dilate(lesion, 1)
    assert torch.equal(out[:, torch.from_numpy(~grown)], image[:, torch.from_numpy(~grown)])
    assert torch.allclose(out[0][torch.from_numpy(grown)], torch.tensor(0.2))
    assert torch.allclose(out[1][torch.from_numpy(grown)], torch.tensor(0.6))
    assert float(image[0, 7, 7, 3]) == pytest.approx(0.9)  # the input is untouched
    assert torch.equal(inpaint(image, np.zeros(SHAPE, bool)), image)  # nothing to remove
    with pytest.raises(ConfigError, match="does not match"):
        inpaint(image, np.zeros((4, 4, 4), bool))
    with pytest.raises(ConfigError, match="whole grid"):
        inpaint(image, np.ones(SHAPE, bool))


def test_removal_effect_sees_what_the_model_uses() -> None:
    box = _box()
    model = BoxModel(box).eval()
    x = _image()[0]
    x[:, torch.from_numpy(box)] = 1.0  # the evidence: a bright box
    before, after = removal_effect(model, x, box, 1, margin=0, ring=1)
    assert before > after + 0.1  # the box is the model's only evidence: removing it changes the output
    other = np.zeros(SHAPE, bool)
    other[12:15, 1:4, 5:7] = True  # far from the box: the model never looks there
    before2, after2 = removal_effect(model, x, other, 1, margin=0, ring=1)
    assert before2 == pytest.approx(before) and after2 == pytest.approx(before)
