"""medbench.models: network factories configured from a schema section.

* :mod:`~medbench.models.factory`: MONAI UNet, AttentionUnet, UNETR, SwinUNETR and
  SegResNet from one :class:`ModelParams` section, with parameter counts and FLOPs.
* :mod:`~medbench.models.fusion`: early, late and intermediate (attention) fusion of several
  modalities on those backbones, with missing modalities and modality dropout.
* :mod:`~medbench.models.classifier`, :mod:`~medbench.models.registration`,
  :mod:`~medbench.models.restoration`: the classifier, registration and restoration networks.
"""

from __future__ import annotations

from medbench.models.factory import (
    ARCHITECTURES,
    ModelParams,
    build_model,
    count_parameters,
    enable_mc_dropout,
    forward_flops,
    model_summary,
)
from medbench.models.fusion import FusionParams, build_fusion, modality_dropout, subsets

__all__ = [
    "ARCHITECTURES",
    "FusionParams",
    "ModelParams",
    "build_fusion",
    "build_model",
    "count_parameters",
    "enable_mc_dropout",
    "forward_flops",
    "modality_dropout",
    "model_summary",
    "subsets",
]
