"""A learned deformable registration network: MONAI LocalNet predicts a dense displacement, MONAI Warp applies it.

The network takes the fixed and the moving image as two channels ``(N, 2, i, j, k)`` and returns a dense
displacement field (DDF) ``(N, 3, i, j, k)`` in **voxels** of the input grid, channel ``c`` along array axis
``c``. :func:`warp` samples the moving image at ``x + ddf(x)`` (MONAI's convention), so the DDF maps fixed
voxels to moving voxels, the same direction as every SimpleITK transform in :mod:`medbench.registration`.
:func:`ddf_to_field` turns it into a :class:`~medbench.image.transforms.DisplacementField` in LPS mm on the
fixed grid, which the registration metrics (dense TRE, Jacobian, propagated labels) score like any other
transform.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
import torch
from pydantic import Field

from medbench.config import Section
from medbench.errors import GeometryError
from medbench.image.transforms import DisplacementField
from medbench.image.volume import Volume


class LocalNetParams(Section):
    """The network's shape (flat names ``learned_*`` in the registration notebook)."""

    channels: int = Field(8, ge=2, description="LocalNet's first-level width (doubles per level).")
    levels: int = Field(3, ge=1, le=4, description="Resolution levels the decoder predicts from (extract levels 0..n).")
    downsample: int = Field(2, ge=1, le=4, description="The network works on the image grid average-pooled by this "
                                                       "factor; its field is interpolated back to the full grid.")


def build_localnet(params: LocalNetParams) -> torch.nn.Module:
    """MONAI LocalNet for 3D pairs (2 input channels, 3 DDF channels), its output layer started at zero
    (the identity map), so training starts from "no motion"."""
    from monai.networks.nets import LocalNet

    return LocalNet(spatial_dims=3, in_channels=2, num_channel_initial=params.channels,
                    extract_levels=tuple(range(params.levels + 1)),  # type: ignore[arg-type]  # MONAI annotates tuple[int]
                    out_kernel_initializer="zeros",
                    out_activation=None, out_channels=3)


def min_patch_multiple(params: LocalNetParams) -> int:
    """Each spatial size of the input must be a multiple of this (LocalNet halves the grid ``levels`` times)."""
    return 2 ** params.levels


def warp(image: torch.Tensor, ddf: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """``image`` ``(N, C, i, j, k)`` sampled at ``x + ddf(x)`` (voxels); ``mode="nearest"`` for label maps.
    Outside the grid the border value is repeated."""
    return _warp_block(mode, str(ddf.device), ddf.dtype)(image, ddf)


@functools.cache
def _warp_block(mode: str, device: str, dtype: torch.dtype) -> torch.nn.Module:
    """One MONAI Warp per interpolation mode, device and dtype, built once (it runs at every training step). Warp has
    no parameters but keeps its last reference grid, checked against the shape only, hence the device and dtype."""
    from monai.networks.blocks import Warp

    with warnings.catch_warnings():  # MONAI announces its (pure PyTorch) grid_sample backend at construction
        warnings.filterwarnings("ignore", message=".*Using PyTorch native grid_sample.*")
        return Warp(mode=mode, padding_mode="border")


@functools.cache
def _bending_loss() -> torch.nn.Module:
    from monai.losses import BendingEnergyLoss

    return BendingEnergyLoss()


def bending_energy(ddf: torch.Tensor) -> torch.Tensor:
    """MONAI's bending energy of a DDF ``(N, 3, i, j, k)`` (the mean squared second derivatives)."""
    with warnings.catch_warnings():  # MONAI slices with a list; torch warns that the spelling is deprecated
        warnings.filterwarnings("ignore", message=".*non-tuple sequence for multidimensional indexing.*")
        return _bending_loss()(ddf)


def ddf_to_field(ddf: np.ndarray | torch.Tensor, grid: Volume) -> DisplacementField:
    """A DDF ``(3, i, j, k)`` in voxels of ``grid`` as a DisplacementField u(x) in LPS mm on ``grid``.

    A voxel step along array axis ``c`` moves by column ``c`` of the grid's affine (spacing and direction),
    so ``u = A[:3, :3] @ ddf`` at every voxel.
    """
    d = ddf.detach().cpu().numpy() if isinstance(ddf, torch.Tensor) else np.asarray(ddf)
    if d.shape != (3, *grid.shape):
        raise GeometryError(f"ddf_to_field: the DDF has shape {d.shape}; the grid needs (3, {', '.join(map(str, grid.shape))})")
    u = np.einsum("rc,c...->...r", np.asarray(grid.affine, dtype=np.float64)[:3, :3], d.astype(np.float64))
    return DisplacementField.from_array(u.astype(np.float32), grid, name="ddf_mm")


def field_on(field: DisplacementField, grid: Volume) -> DisplacementField:
    """``field`` sampled (trilinearly; the edge value outside its grid) at every voxel of ``grid``."""
    if field.field.same_grid(grid):
        return field
    return DisplacementField.from_array(field.displacement(grid.grid_points()).reshape(*grid.shape, 3), grid,
                                        name="ddf_mm")
