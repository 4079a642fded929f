"""Shared schema parts: per-model epochs (04, 03 and 07 share ``train`` + ``epochs_by_model``)."""

from __future__ import annotations

from types import ModuleType

import pytest

from medbench.recipes import inference_benchmark, restoration, segmentation


@pytest.mark.parametrize(("module", "model"), [(segmentation, "unetr"), (restoration, "cgan"),
                                               (inference_benchmark, "unetr")],
                         ids=lambda v: getattr(v, "NOTEBOOK", v))
def test_per_model_epochs_override_one_model_and_reject_unknown_names_and_zero(module: ModuleType, model: str) -> None:
    cfg = module.Params.validate_values({"epochs_by_model": {model: 3}, "train_epochs": 5})
    assert cfg.train_for(model).epochs == 3
    assert cfg.train_for("another").epochs == 5 and cfg.train_for("another") is cfg.train
    assert cfg.train.epochs == 5  # the shared section is not changed by an override
    with pytest.raises(Exception, match=r"epochs_by_model names \['vnet'\], which are not"):
        module.Params.validate_values({"epochs_by_model": {"vnet": 3}})
    with pytest.raises(Exception, match="epochs_by_model values must be >= 1"):
        module.Params.validate_values({"epochs_by_model": {model: 0}})
