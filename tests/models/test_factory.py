"""medbench.models: every architecture builds from the section, runs, and reports parameters and FLOPs."""

from __future__ import annotations

import pytest
import torch

from medbench import config
from medbench.errors import ConfigError
from medbench.models import ARCHITECTURES, ModelParams, build_model, count_parameters, enable_mc_dropout, forward_flops

SMALL = {"base_channels": 4, "levels": 3, "feature_size": 12, "hidden_size": 48, "mlp_dim": 96, "num_heads": 4}
PATCH = {"unet": (16, 16, 16), "attention_unet": (16, 16, 16), "unetr": (32, 32, 16), "swin_unetr": (64, 64, 32),
         "segresnet": (16, 16, 16)}


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_every_architecture_builds_and_maps_channels(name: str) -> None:
    sizes = {**SMALL, "base_channels": 8} if name == "segresnet" else SMALL
    params = ModelParams(name=name, **sizes)  # type: ignore[arg-type]
    model = build_model(params, in_channels=2, out_channels=5, patch=PATCH[name]).eval()
    with torch.no_grad():
        out = model(torch.zeros(1, 2, *PATCH[name]))
    assert tuple(out.shape) == (1, 5, *PATCH[name])
    assert count_parameters(model) > 1000


def test_parameter_count_known_answer() -> None:
    model = torch.nn.Sequential(torch.nn.Conv3d(2, 4, 3), torch.nn.Conv3d(4, 1, 1, bias=False))
    assert count_parameters(model) == 2 * 4 * 27 + 4 + 4
    model[1].weight.requires_grad_(False)
    assert count_parameters(model) == 2 * 4 * 27 + 4 and count_parameters(model, trainable_only=False) == 224


def test_flops_known_answer() -> None:
    conv = torch.nn.Conv3d(2, 4, kernel_size=3, padding=1, bias=False)
    # 2 FLOPs per multiply-add: out voxels x out channels x in channels x kernel volume
    assert forward_flops(conv, (1, 2, 8, 8, 8)) == 2 * 8**3 * 4 * 2 * 27


def test_patch_must_fit_the_architecture() -> None:
    with pytest.raises(ConfigError, match="multiples of 32"):
        build_model(ModelParams(name="swin_unetr"), 1, 2, (48, 48, 48))
    with pytest.raises(ConfigError, match="at least 64"):
        build_model(ModelParams(name="swin_unetr"), 1, 2, (32, 32, 32))
    build_model(ModelParams(name="swin_unetr"), 1, 2, (64, 64, 32))  # a 2 x 2 x 1 bottleneck is enough
    with pytest.raises(ConfigError, match="multiple of num_heads"):
        config.validate(ModelParams, {"hidden_size": 50, "num_heads": 4})
    with pytest.raises(ConfigError, match="multiple of 8"):
        config.validate(ModelParams, {"name": "segresnet", "base_channels": 4})


def test_mc_dropout_keeps_norms_in_eval_and_needs_dropout() -> None:
    model = build_model(ModelParams(name="unet", dropout=0.2, **{k: SMALL[k] for k in ("base_channels", "levels")}),
                        1, 2, (16, 16, 16))
    model.train()
    n = enable_mc_dropout(model)
    assert n > 0
    modes = {type(m).__name__: m.training for m in model.modules() if "Norm" in type(m).__name__ or "Dropout" in
             type(m).__name__}
    assert modes.get("Dropout") is True and not any(v for k, v in modes.items() if "Norm" in k)
    x = torch.randn(1, 1, 16, 16, 16)
    with torch.no_grad():
        assert not torch.equal(model(x), model(x)), "dropout samples differ between passes"
    no_dropout = build_model(ModelParams(name="unet", dropout=0.0), 1, 2, (16, 16, 16))
    with pytest.raises(ConfigError, match="MC dropout needs dropout layers"):
        enable_mc_dropout(no_dropout)


def test_models_patch_problem_names_the_first_misfit_and_an_empty_list() -> None:
    from medbench.models.factory import models_patch_problem

    assert models_patch_problem(["unet", "swin_unetr"], (64, 64, 32)) is None
    assert models_patch_problem([], (64, 64, 32)) == "models is empty"
    # 40 suits the UNet (multiples of 8) but neither UNETR (16) nor SwinUNETR (32): the first misfit is named
    problem = models_patch_problem(["unet", "unetr", "swin_unetr"], (40, 40, 40))
    assert problem is not None and problem.startswith("data.patch: unetr ") and "multiples of 16" in problem
