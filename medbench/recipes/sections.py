"""Parameter sections shared by several notebooks' schemas."""

from __future__ import annotations

from pydantic import Field, field_validator

from medbench.config import Section
from medbench.data.phantom import PhantomSpec


class PhantomData(Section):
    """Which synthetic cohort a notebook runs on (the ``data`` section; flat names ``data_*``)."""

    n_cases: int = Field(2, ge=1, description="Number of synthetic cases.")
    image_size: list[int] = Field(default_factory=lambda: [64, 64, 32], description="Phantom grid (i, j, k) in voxels.")
    spacing: list[float] = Field(default_factory=lambda: [1.5, 1.5, 3.0], description="Voxel spacing (i, j, k) in mm.")

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
