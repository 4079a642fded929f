"""medbench.explain: attribution maps (captum, MONAI) and the checks that say whether to trust them.

* :mod:`~medbench.explain.attribution`: Integrated Gradients, saliency, SmoothGrad, GradientShap,
  Grad-CAM / Grad-CAM++, occlusion (:func:`attribute`), and :class:`RegionTarget`, which makes a
  segmentation network explainable (the sum of a class's logits inside a region);
* :mod:`~medbench.explain.checks`: deletion / insertion curves, max sensitivity, the Adebayo
  sanity checks (cascading parameter randomisation, label randomisation) with a stated pass/fail rule,
  and the removal intervention (:func:`removal_effect`: does the model use the lesion at all?);
* :mod:`~medbench.explain.memory`: peak memory of one call.

Localisation scores that need no model (relevance mass, pointing game, rank correlation, SSIM)
live in :mod:`medbench.metrics.attribution`.
"""

from __future__ import annotations

from medbench.explain.attribution import (
    LAYER_METHODS,
    METHODS,
    Attribution,
    MethodParams,
    RegionTarget,
    attribute,
    attribute_all,
)
from medbench.explain.checks import (
    SANITY_THRESHOLD,
    Curves,
    cascading_randomisation,
    deletion_insertion,
    inpaint,
    label_randomisation_similarity,
    max_sensitivity,
    parameter_blocks,
    removal_effect,
    sanity_verdict,
)
from medbench.explain.memory import measure_peak

__all__ = [
    "LAYER_METHODS",
    "METHODS",
    "SANITY_THRESHOLD",
    "Attribution",
    "Curves",
    "MethodParams",
    "RegionTarget",
    "attribute",
    "attribute_all",
    "cascading_randomisation",
    "deletion_insertion",
    "inpaint",
    "label_randomisation_similarity",
    "max_sensitivity",
    "measure_peak",
    "parameter_blocks",
    "removal_effect",
    "sanity_verdict",
]
