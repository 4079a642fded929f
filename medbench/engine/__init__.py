"""medbench.engine: the one training/evaluation loop (DESIGN §12).

* :func:`fit` (``loop.py``) trains any :class:`Task`; :class:`StepContext` is what a task's step uses.
* :class:`TrainParams` (``params.py``): the ``train`` section of every training notebook.
* :class:`SegmentationTask` (``tasks.py``): DiceCE + sliding-window validation.
* ``inference.py``: sliding-window logits and MC-dropout uncertainty.
* ``distributed.py``: torchrun / DistributedDataParallel plumbing (gloo on CPU, nccl on CUDA).
"""

from __future__ import annotations

from medbench.engine.inference import mc_dropout, predict_probabilities, sliding_window_logits
from medbench.engine.loop import FitResult, StepContext, Task, fit, headless
from medbench.engine.params import AugmentParams, TrainParams
from medbench.engine.tasks import SegmentationTask

__all__ = [
    "AugmentParams",
    "FitResult",
    "SegmentationTask",
    "StepContext",
    "Task",
    "TrainParams",
    "fit",
    "headless",
    "mc_dropout",
    "predict_probabilities",
    "sliding_window_logits",
]
