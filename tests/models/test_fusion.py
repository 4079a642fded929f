"""medbench.models.fusion: early / late / intermediate fusion, missing modalities, modality dropout."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from medbench import config
from medbench.errors import ConfigError
from medbench.models.factory import ModelParams, build_model, count_parameters
from medbench.models.fusion import (
    EarlyFusion,
    FusionParams,
    IntermediateFusion,
    LateFusion,
    build_fusion,
    modality_dropout,
    presence,
    subsets,
    with_modalities,
)

MODS = ["ct", "pet", "t1", "t2"]
SIDE = 16
#: Tiny UNet: 4-8-16 channels, no dropout (so train and eval passes agree where the test needs it)
MODEL = ModelParams(base_channels=4, levels=3, num_res_units=1, dropout=0.0)
N_CLASSES = 3
LEVELS = [("early", "mean"), ("late", "mean"), ("late", "learned"), ("intermediate", "mean")]


def _net(level: str, late_weights: str = "mean", **kw: object) -> torch.nn.Module:
    torch.manual_seed(0)
    params = FusionParams(level=level, modalities=MODS, late_weights=late_weights,  # type: ignore[arg-type]
                          encoder_channels=4, attention_channels=4, **kw)  # type: ignore[arg-type]
    return build_fusion(params, MODEL, N_CLASSES).eval()


def _x(seed: int = 1) -> torch.Tensor:
    return torch.randn(2, len(MODS), SIDE, SIDE, SIDE, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(autouse=True)
def _few_threads() -> object:
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


@pytest.mark.parametrize(("level", "weights"), LEVELS)
def test_output_is_class_logits_on_the_input_grid(level: str, weights: str) -> None:
    net = _net(level, weights)
    with torch.no_grad():
        out = net(_x())
    assert tuple(out.shape) == (2, N_CLASSES, SIDE, SIDE, SIDE)
    assert torch.isfinite(out).all()


def test_networks_and_parameter_counts_follow_the_level() -> None:
    single = count_parameters(build_model(MODEL, 1, N_CLASSES, (SIDE,) * 3))
    early, late = _net("early"), _net("late")
    assert isinstance(early, EarlyFusion) and isinstance(late, LateFusion)
    assert isinstance(_net("intermediate"), IntermediateFusion)
    assert count_parameters(early) == count_parameters(build_model(MODEL, len(MODS), N_CLASSES, (SIDE,) * 3))
    assert count_parameters(late) == len(MODS) * single
    assert count_parameters(_net("late", "learned")) == len(MODS) * single + len(MODS) * N_CLASSES
    assert count_parameters(_net("late", "learned", late_per_class=False)) == len(MODS) * single + len(MODS)
    # the intermediate network is one decoder backbone plus small encoders, not M backbones
    assert single < count_parameters(_net("intermediate")) < len(MODS) * single


def test_late_mean_is_the_mean_of_the_present_modalities_probabilities() -> None:
    net = _net("late")
    assert isinstance(net, LateFusion)
    x = _x()
    present = torch.tensor([[True, False, True, False], [False, True, True, True]])
    with torch.no_grad():
        out = net(x, present=present)
        probs = torch.stack([torch.softmax(b(x[:, m:m + 1]), dim=1) for m, b in enumerate(net.backbones)], dim=1)
    w = present.float() / present.sum(dim=1, keepdim=True)
    expected = (probs * w[:, :, None, None, None, None]).sum(dim=1)
    # the output is log-probabilities: exp sums to 1 over classes and equals the mean of the present ones
    torch.testing.assert_close(out.exp().sum(dim=1), torch.ones(2, SIDE, SIDE, SIDE))
    torch.testing.assert_close(out.exp(), expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(torch.softmax(out, dim=1), expected, rtol=1e-5, atol=1e-6)


def test_learned_late_weights_start_at_the_mean_and_stay_normalised() -> None:
    mean, learned = _net("late", "mean"), _net("late", "learned")
    assert isinstance(learned, LateFusion) and learned.weight_logits is not None
    learned.load_state_dict(mean.state_dict(), strict=False)  # same backbones; weight logits start at zero
    x, present = _x(), torch.tensor([[True, True, False, True], [True, False, False, False]])
    with torch.no_grad():
        torch.testing.assert_close(learned(x, present=present), mean(x, present=present))
        learned.weight_logits.copy_(torch.randn(len(MODS), N_CLASSES))
        out = learned(x, present=present)
    assert not torch.allclose(out, mean(x, present=present))
    torch.testing.assert_close(out.exp().sum(dim=1), torch.ones(2, SIDE, SIDE, SIDE))


def test_one_present_modality_equals_that_modalitys_own_network() -> None:
    x, only_pet = _x(), presence(MODS, ["pet"], batch_size=2)
    late, inter = _net("late"), _net("intermediate")
    assert isinstance(late, LateFusion) and isinstance(inter, IntermediateFusion)
    with torch.no_grad():
        torch.testing.assert_close(late(x, present=only_pet), torch.log_softmax(late.backbones[1](x[:, 1:2]), dim=1))
        alone = inter.decoder(inter.encoders[1](x[:, 1:2]))  # attention weight 1 on the only present modality
        torch.testing.assert_close(inter(x, present=only_pet), alone, rtol=1e-5, atol=1e-6)
        maps = inter.attention_maps(x, present=only_pet)
    assert tuple(maps.shape) == (2, len(MODS), SIDE, SIDE, SIDE)
    assert torch.equal(maps[:, 1], torch.ones_like(maps[:, 1])) and not maps[:, [0, 2, 3]].any()


@pytest.mark.parametrize(("level", "weights"), LEVELS)
def test_an_absent_modalitys_values_do_not_reach_the_output(level: str, weights: str) -> None:
    net = _net(level, weights)
    x = _x()
    present = torch.tensor([[True, False, True, True], [True, True, False, True]])  # pet absent in 0, t1 in 1
    changed_absent = x.clone()
    changed_absent[0, 1] = 100 * torch.randn(SIDE, SIDE, SIDE)
    changed_absent[1, 2] = float("nan")  # even a NaN in a missing channel must not leak
    changed_present = x.clone()
    changed_present[0, 0] += 1.0
    with torch.no_grad():
        out = net(x, present=present)
        assert torch.equal(net(changed_absent, present=present), out)
        assert not torch.allclose(net(changed_present, present=present)[0], out[0]), "present data must matter"
        # and the mask matters: with every modality present the output is a different one
        assert not torch.allclose(net(x), out)


def test_early_fusion_sees_a_zero_channel_for_a_missing_modality() -> None:
    net = _net("early")
    assert isinstance(net, EarlyFusion)
    x = _x()
    zeroed = x.clone()
    zeroed[:, 3] = 0
    with torch.no_grad():
        torch.testing.assert_close(net(x, present=presence(MODS, ["ct", "pet", "t1"], 2)), net.backbone(zeroed))


def test_with_modalities_fixes_the_mask_for_one_argument_callers() -> None:
    net = _net("intermediate")
    assert isinstance(net, IntermediateFusion)
    x = _x()
    with torch.no_grad():
        torch.testing.assert_close(with_modalities(net, ["t2", "ct"])(x),
                                   net(x, present=presence(MODS, ["ct", "t2"], 2)))
    with pytest.raises(ConfigError, match="unknown modalities"):
        with_modalities(net, ["mr"])


@pytest.mark.parametrize(("level", "weights"), LEVELS)
def test_a_sample_with_no_modality_is_refused(level: str, weights: str) -> None:
    net = _net(level, weights)
    present = torch.tensor([[True, False, False, False], [False, False, False, False]])
    with pytest.raises(ConfigError, match=r"at least one of .*sample\(s\) \[1\]"):
        net(_x(), present=present)
    with pytest.raises(ConfigError, match="one channel per modality"):
        net(torch.zeros(1, 3, SIDE, SIDE, SIDE))
    with pytest.raises(ConfigError, match="present must be"):
        net(_x(), present=torch.ones(2, 3, dtype=torch.bool))


@pytest.mark.parametrize(("level", "weights"), LEVELS)
def test_gradients_flow_through_dice_ce_with_a_missing_modality(level: str, weights: str) -> None:
    from monai.losses import DiceCELoss

    net = _net(level, weights).train()
    x = _x()
    y = torch.randint(0, N_CLASSES, (2, 1, SIDE, SIDE, SIDE), generator=torch.Generator().manual_seed(2))
    present = torch.tensor([[True, False, True, True], [True, True, True, True]])
    loss = DiceCELoss(to_onehot_y=True, softmax=True)(net(x, present=present), y)
    assert torch.isfinite(loss)
    loss.backward()
    grads = {name: p.grad for name, p in net.named_parameters()}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values()), "every parameter gets a finite grad"
    assert all(g is not None and g.abs().sum() > 0 for name, g in grads.items() if name.startswith(("backbone", "decoder"))
               and name.endswith("weight"))
    if level == "late" and weights == "learned":
        assert grads["weight_logits"] is not None and grads["weight_logits"].abs().sum() > 0
    if level == "intermediate":
        assert any(g is not None and g.abs().sum() > 0 for name, g in grads.items() if name.startswith("attention"))


def test_training_mode_draws_modality_dropout_from_the_global_generator() -> None:
    net = _net("late", dropout_p=1.0).train()  # MODEL has no dropout and instance norm: train == eval otherwise
    x = _x()
    with torch.no_grad():
        torch.manual_seed(5)
        dropped = net(x)
        expected_mask = modality_dropout(2, len(MODS), 1.0, torch.Generator().manual_seed(5))
        assert not expected_mask.all(dim=1).any()
        torch.testing.assert_close(dropped, net(x, present=expected_mask))  # explicit present: used as given
        net.eval()
        torch.testing.assert_close(net(x), net(x, present=torch.ones(2, len(MODS), dtype=torch.bool)))


# -- modality dropout and subsets ----------------------------------------------------------------------


def test_modality_dropout_never_drops_everything_and_p0_keeps_all() -> None:
    g = torch.Generator().manual_seed(0)
    masks = modality_dropout(20000, 4, 0.7, g)
    assert masks.dtype == torch.bool and tuple(masks.shape) == (20000, 4)
    assert masks.any(dim=1).all()
    assert modality_dropout(1000, 4, 0.0, g).all()
    assert modality_dropout(1000, 1, 1.0, g).all()  # one modality: nothing can be dropped
    full = modality_dropout(1000, 3, 1.0, g)
    assert not full.all(dim=1).any() and full.any(dim=1).all()  # p = 1: always a non-empty proper subset


def test_modality_dropout_frequency_and_uniform_subsets() -> None:
    n, p = 20000, 0.3
    masks = modality_dropout(n, 4, p, torch.Generator().manual_seed(1))
    rate = float((~masks.all(dim=1)).float().mean())
    assert abs(rate - p) < 5 * math.sqrt(p * (1 - p) / n)  # 5 sigma = 0.016
    dropped = masks[~masks.all(dim=1)]
    codes = (dropped.long() * (2 ** torch.arange(4))).sum(dim=1)
    counts = torch.bincount(codes, minlength=16).float()
    assert counts[0] == 0 and counts[15] == 0
    expected = len(dropped) / 14  # 2**4 - 2 proper non-empty subsets, uniformly
    assert (counts[1:15] - expected).abs().max() < 5 * math.sqrt(expected)


def test_modality_dropout_is_deterministic_under_a_seed_and_checks_p() -> None:
    a = modality_dropout(64, 4, 0.5, torch.Generator().manual_seed(3))
    assert torch.equal(a, modality_dropout(64, 4, 0.5, torch.Generator().manual_seed(3)))
    assert not torch.equal(a, modality_dropout(64, 4, 0.5, torch.Generator().manual_seed(4)))
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        modality_dropout(2, 4, 1.5)


@pytest.mark.parametrize("n", [1, 2, 4, 5])
def test_subsets_are_every_nonempty_subset_largest_first(n: int) -> None:
    names = [f"m{i}" for i in range(n)]
    out = subsets(names)
    assert len(out) == 2**n - 1 == len(set(out))
    assert out[0] == tuple(names) and all(len(s) == 1 for s in out[-n:])
    assert [len(s) for s in out] == sorted((len(s) for s in out), reverse=True)
    assert set(out) == {c for k in range(1, n + 1) for c in itertools.combinations(names, k)}


def test_fusion_section_validates() -> None:
    assert config.validate(FusionParams, {"level": "late", "dropout_p": 0.25}).dropout_p == 0.25
    with pytest.raises(ConfigError, match="distinct"):
        config.validate(FusionParams, {"modalities": ["ct", "ct"]})
    with pytest.raises(ConfigError, match="at least one modality"):
        config.validate(FusionParams, {"modalities": []})
    with pytest.raises(ConfigError, match="dropout_p"):
        config.validate(FusionParams, {"dropout_p": 1.5})
    with pytest.raises(ConfigError, match="level"):
        config.validate(FusionParams, {"level": "middle"})
    with pytest.raises(ConfigError, match="at least 2 classes"):
        build_fusion(FusionParams(), MODEL, 1)
    with pytest.raises(ConfigError, match="needs the patch"):
        build_fusion(FusionParams(), ModelParams(name="unetr"), 3)
