"""3D image classifiers from MONAI, configured from one schema section.

=============  ===========================================================================
``name``       MONAI class (and the fields it reads)
=============  ===========================================================================
``densenet``   ``DenseNet`` (DenseNet-121's design at a small width): ``init_features``
               stem channels, ``growth_rate``, ``blocks`` dense layers per block,
               ``dropout`` inside the dense layers (what MC dropout samples)
``resnet``     ``ResNet`` (basic blocks): ``blocks`` blocks per stage, stage widths
               ``init_features * 2**s``; the stem is a stride-2 3x3x3 convolution
               and a max pooling (a 4x smaller grid, as in DenseNet's stem)
=============  ===========================================================================

Inputs are channel-first volumes ``(N, C, i, j, k)``; outputs are class logits ``(N, n_classes)``.
:data:`CAM_LAYERS` names the layer whose activations Grad-CAM explains (the last spatial feature map).
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from medbench.config import Section

ClassifierName = Literal["densenet", "resnet"]
CLASSIFIERS: tuple[str, ...] = ("densenet", "resnet")

#: The last spatial feature map of each architecture (Grad-CAM's target layer), as a dotted module path.
CAM_LAYERS: dict[str, str] = {"densenet": "class_layers.relu", "resnet": "layer4"}


class ClassifierParams(Section):
    """The ``classifier`` section (flat names ``classifier_*``)."""

    name: ClassifierName = Field("densenet", description="Architecture (see medbench.models.classifier).")
    init_features: int = Field(8, ge=2, description="Stem width (DenseNet) / first stage width (ResNet).")
    growth_rate: int = Field(8, ge=2, description="DenseNet growth rate (channels each dense layer adds).")
    blocks: list[int] = Field(default_factory=lambda: [2, 2, 2],
                              description="DenseNet: dense layers per block; ResNet: blocks per stage (1-4 stages).")
    dropout: float = Field(0.1, ge=0.0, lt=1.0, description="Dropout probability (DenseNet; MC dropout samples it).")
    pooling: Literal["max", "avg"] = Field(
        "max", description="Global pooling before the linear layer: 'max' suits 'is a finding anywhere' labels "
                           "(an OR over positions; one small lesion is not averaged away), 'avg' is MONAI's default.")


def build_classifier(params: ClassifierParams, in_channels: int, n_classes: int) -> torch.nn.Module:
    """The MONAI classifier ``params`` describes, for ``in_channels`` inputs and ``n_classes`` logits."""
    from medbench.errors import ConfigError

    if not 1 <= len(params.blocks) <= 4 or min(params.blocks) < 1:
        raise ConfigError(f"classifier.blocks must be 1-4 positive counts, got {params.blocks}")
    if params.name == "densenet":
        from monai.networks.nets import DenseNet

        net = DenseNet(spatial_dims=3, in_channels=in_channels, out_channels=n_classes,
                       init_features=params.init_features, growth_rate=params.growth_rate,
                       block_config=tuple(params.blocks), bn_size=2, dropout_prob=params.dropout)
        if params.pooling == "max":
            net.class_layers.pool = torch.nn.AdaptiveMaxPool3d(1)
        return net
    if params.name == "resnet":
        from monai.networks.nets import ResNet

        layers = list(params.blocks) + [1] * (4 - len(params.blocks))
        widths = [params.init_features * 2 ** s for s in range(4)]
        res = ResNet(block="basic", layers=layers, block_inplanes=widths, spatial_dims=3,
                     n_input_channels=in_channels, conv1_t_size=3, conv1_t_stride=2, no_max_pool=False,
                     num_classes=n_classes)
        if params.pooling == "max":
            res.avgpool = torch.nn.AdaptiveMaxPool3d(1)  # type: ignore[assignment]
        return res
    raise ConfigError(f"unknown classifier {params.name!r}; known: {', '.join(CLASSIFIERS)}")


def get_layer(model: torch.nn.Module, path: str) -> torch.nn.Module:
    """The sub-module at a dotted path (``"class_layers.relu"``); a clear error when it does not exist."""
    from medbench.errors import ConfigError

    names = dict(model.named_modules())
    if path not in names:
        raise ConfigError(f"{type(model).__name__} has no layer {path!r}")
    return names[path]
