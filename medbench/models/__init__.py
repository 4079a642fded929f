"""medbench.models: network factories configured from a schema section.

* :mod:`~medbench.models.factory`: MONAI UNet, AttentionUnet, UNETR, SwinUNETR and
  SegResNet from one :class:`ModelParams` section, with parameter counts and FLOPs.
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

__all__ = [
    "ARCHITECTURES",
    "ModelParams",
    "build_model",
    "count_parameters",
    "enable_mc_dropout",
    "forward_flops",
    "model_summary",
]
