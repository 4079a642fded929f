"""medbench.baselines: the non-learning baselines every notebook compares its learned method against.

DESIGN §11: every notebook that trains a model prints its result beside the
best non-learning baseline, and nbval checks the margin. The baselines are
honest — fitted on training cases, chosen on validation cases, never on test.

Interface (all label outputs are label :class:`~medbench.image.volume.Volume`
objects on the CT grid; scoring uses :func:`medbench.metrics.dice`):

* segmentation (:mod:`.segmentation`): ``segment_threshold(case_or_ct, rule)``
  (HU band + smoothing + opening + connected component nearest the expected
  position, per organ; the rule from ``fit_threshold_rule(train_cases)``),
  ``atlas_vote(train_label_maps, target_grid)`` (image-free majority vote),
  ``best_segmentation_baseline(train, test, classes, val=...)`` ->
  ``(name, {case_id: label Volume})``;
* lesions (:mod:`.lesions`): ``ct_lesion_rule`` (an HU band inside the
  organs; ``oracle_ct_lesion`` picks the band on the case itself, an upper
  bound), ``pet_lesion_rule`` (an SUV threshold, fitted on training cases),
  ``ct_pet_lesion_rule`` (PET finds, CT localises and refines; parameters
  from ``fit_ct_pet_lesion_rule``);
* restoration (:mod:`.denoise`): ``nlm_denoise`` (scikit-image non-local
  means with its documented defaults, noise SD estimated from the image) and
  ``psnr_gain_db``; the classical filters (Gaussian, median, TV, NLM, BM3D)
  on 2D slices, each tuned on validation slices (``tune_classical``);
* registration (:mod:`.alignment`): ``centre_of_mass_align(fixed, moving)`` ->
  :class:`~medbench.image.transforms.RigidTransform` (translation between the
  foreground centroids).
"""

from __future__ import annotations

from medbench.baselines.alignment import centre_of_mass_align, foreground_mask
from medbench.baselines.denoise import (
    CLASSICAL_FILTERS,
    CLASSICAL_GRIDS,
    TunedFilter,
    classical_denoise,
    nlm_denoise,
    psnr_gain_db,
    tune_classical,
)
from medbench.baselines.lesions import (
    ct_lesion_rule,
    ct_pet_lesion_rule,
    fit_ct_pet_lesion_rule,
    fit_pet_lesion_rule,
    oracle_ct_lesion,
    pet_lesion_rule,
    pet_on_ct_grid,
)
from medbench.baselines.segmentation import (
    SEGMENTATION_BASELINES,
    ThresholdRule,
    atlas_vote,
    best_segmentation_baseline,
    fit_threshold_rule,
    mean_dice,
    segment_threshold,
)

__all__ = [
    "CLASSICAL_FILTERS",
    "CLASSICAL_GRIDS",
    "TunedFilter",
    "classical_denoise",
    "tune_classical",
    "SEGMENTATION_BASELINES",
    "ThresholdRule",
    "atlas_vote",
    "best_segmentation_baseline",
    "centre_of_mass_align",
    "ct_lesion_rule",
    "ct_pet_lesion_rule",
    "fit_ct_pet_lesion_rule",
    "fit_pet_lesion_rule",
    "fit_threshold_rule",
    "foreground_mask",
    "mean_dice",
    "nlm_denoise",
    "oracle_ct_lesion",
    "pet_lesion_rule",
    "pet_on_ct_grid",
    "psnr_gain_db",
    "segment_threshold",
]
