"""Parameter sections shared by several notebooks' schemas."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pydantic import Field, field_validator

from medbench.config import Section
from medbench.data.phantom import PhantomSpec

if TYPE_CHECKING:
    from medbench.engine import TrainParams


class PhantomData(Section):
    """Which synthetic cohort a notebook runs on (the ``data`` section; flat names ``data_*``).

    The anatomy is in millimetres: ``image_size`` x ``spacing`` is the CT field
    of view (keep it near 400 x 400 x 256 mm so the body fits); PET and MR
    grids follow from it. Smoke: 6 cases at 6.25 x 6.25 x 8 mm (train 4 / val 1
    / test 1); full: 24 cases at 1.5625 x 1.5625 x 3.2 mm.
    """

    n_cases: int = Field(6, ge=1, description="Number of synthetic cases (split 60/20/20 into train/val/test).")
    image_size: list[int] = Field(default_factory=lambda: [64, 64, 32], description="CT grid (i, j, k) in voxels.")
    spacing: list[float] = Field(default_factory=lambda: [6.25, 6.25, 8.0],
                                 description="CT voxel spacing (i, j, k) in mm.")

    @field_validator("image_size")
    @classmethod
    def _grid(cls, v: list[int]) -> list[int]:
        if len(v) != 3 or min(v) < 8:
            raise ValueError("must be three integers, each >= 8")
        return v

    @field_validator("spacing")
    @classmethod
    def _spacing(cls, v: list[float]) -> list[float]:
        if len(v) != 3 or min(v) <= 0:
            raise ValueError("must be three positive numbers (mm)")
        return [float(x) for x in v]

    def spec(self, seed: int) -> PhantomSpec:
        """The phantom cohort these parameters describe."""
        return PhantomSpec(n_cases=self.n_cases, shape=tuple(self.image_size), spacing=tuple(self.spacing), seed=seed)


class PerModelEpochs:
    """Methods for a schema with a ``train`` section and ``epochs_by_model`` (model name -> epochs).

    Several models share one ``train`` section; at the smoke profile each gets about the same CPU time, so the
    slower ones train fewer epochs. A mixin for :class:`medbench.config.Params` subclasses (it adds no fields).
    """

    if TYPE_CHECKING:
        train: TrainParams
        epochs_by_model: dict[str, int]

    def epochs_by_model_problem(self, known: Sequence[str], what: str = "models") -> str | None:
        """Why ``epochs_by_model`` is invalid (a name not in ``known``, or fewer than one epoch), or None."""
        unknown = sorted(set(self.epochs_by_model) - set(known))
        if unknown:
            return f"epochs_by_model names {unknown}, which are not {what} ({', '.join(known)})"
        if any(v < 1 for v in self.epochs_by_model.values()):
            return "epochs_by_model values must be >= 1"
        return None

    def train_for(self, name: str) -> TrainParams:
        """The train section for one model (its epochs from ``epochs_by_model`` when given)."""
        epochs = self.epochs_by_model.get(name)
        return self.train if epochs is None else self.train.model_copy(update={"epochs": epochs})
