"""The ``train`` section every training notebook shares (flat names ``train_*``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from medbench.config import Section


class TrainParams(Section):
    """How the engine trains: schedule, batches, precision, validation, stopping.

    ``batch_size`` is per process: under ``torchrun --nproc_per_node N`` the
    global batch is ``N * batch_size`` (times ``grad_accum``).
    """

    epochs: int = Field(10, ge=1, description="Passes over the training set.")
    batch_size: int = Field(2, ge=1, description="Samples per step and process.")
    shuffle: bool = Field(True, description="Shuffle the training set each epoch (seeded by the run seed and epoch).")
    samples_per_volume: int = Field(4, ge=1, description="Random patches drawn per cached volume and epoch.")
    lr: float = Field(2e-3, gt=0, description="Peak learning rate (AdamW).")
    weight_decay: float = Field(1e-4, ge=0, description="AdamW weight decay.")
    warmup_epochs: int = Field(0, ge=0, description="Linear warm-up before the cosine decay.")
    grad_accum: int = Field(1, ge=1, description="Micro-batches accumulated per optimiser step.")
    clip_grad: float | None = Field(None, gt=0, description="Gradient norm clipping (None: off).")
    amp: Literal["auto", "on", "off"] = Field(
        "auto", description="Mixed precision: auto = on for CUDA only (CPU autocast is slow without bf16 hardware)."
    )
    val_every: int = Field(1, ge=1, description="Validate every this many epochs.")
    patience: int | None = Field(None, ge=1, description="Stop after this many validations without improvement.")
    num_workers: int = Field(0, ge=0, description="DataLoader worker processes (0: load in the training process).")
    cache_rate: float = Field(1.0, ge=0.0, le=1.0, description="Fraction of volumes CacheDataset keeps in memory.")


class AugmentParams(Section):
    """The ``augment`` section (flat names ``augment_*``): probabilities and strengths of the random transforms."""

    flip_prob: float = Field(
        0.0, ge=0, le=1,
        description="Probability of a flip along each axis (off by default: a left-right flip turns a left kidney "
                    "into a right one, so it only suits tasks without laterality).")
    rotate_prob: float = Field(0.2, ge=0, le=1, description="Probability of a small rotation.")
    rotate_deg: float = Field(10.0, ge=0, le=45, description="Largest rotation about each axis (degrees).")
    elastic_prob: float = Field(0.0, ge=0, le=1, description="Probability of a 3D elastic deformation (slow on CPU).")
    intensity_prob: float = Field(0.3, ge=0, le=1, description="Probability of intensity scale / shift jitter.")
    intensity_scale: float = Field(0.1, ge=0, le=1, description="Relative intensity scale jitter.")
    intensity_shift: float = Field(0.05, ge=0, le=1, description="Intensity shift jitter (normalised units).")
