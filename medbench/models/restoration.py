"""Image-to-image networks for restoration and synthesis, built from MONAI blocks.

* :class:`RedCNN` — a residual encoder-decoder CNN after RED-CNN (Chen et al.
  2017): ``depth`` unpadded convolutions, then ``depth`` transposed
  convolutions, with shortcuts adding the input of every second convolution
  to the output of its mirror (and the network input to its output: the body
  of the network predicts the noise). MONAI ``Convolution`` blocks.
* ``"autoencoder"`` — MONAI ``AutoEncoder``: a strided encoder and decoder with
  no skip connections (the information must pass a bottleneck of
  ``1 / 4^levels`` of the pixels), residual over the input like the others.
* ``"unet"`` — MONAI ``UNet`` (the pix2pix generator), residual over the input
  when ``residual`` is set (restoration), plain for synthesis (CT -> PET).
* :func:`patch_discriminator` — MONAI ``PatchDiscriminator`` (pix2pix's
  70 x 70 PatchGAN at its default depth): a map of real / fake logits, one
  per receptive-field patch, for an input of ``condition`` and ``image``
  concatenated on channels.
* :class:`ConditionalGAN` — the pair (generator, discriminator) as one module
  whose ``forward`` is the generator's, so inference, checkpoints and the
  engine treat it like any network.

All networks are 2D or 3D (``spatial_dims``), channels first, and keep the
input's spatial size (RED-CNN for any size; the autoencoder and U-Net for
sizes divisible by ``2^levels``).
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
from pydantic import Field

from medbench.config import Section
from medbench.errors import ConfigError

RestorationArch = Literal["red_cnn", "autoencoder", "unet"]
RESTORATION_ARCHITECTURES: tuple[str, ...] = get_args(RestorationArch)


class RestorationModelParams(Section):
    """Width and depth of the restoration networks (the ``model`` section of the restoration notebook)."""

    channels: int = Field(32, ge=4, description="Feature channels of RED-CNN / the first level of U-Net and autoencoder.")
    red_depth: int = Field(4, ge=2, le=10, description="RED-CNN convolutions (and as many transposed convolutions).")
    levels: int = Field(3, ge=1, le=5, description="U-Net / autoencoder resolution levels (each halves the size).")
    num_res_units: int = Field(1, ge=0, le=4, description="Residual units per U-Net / autoencoder level.")
    disc_channels: int = Field(32, ge=4, description="PatchGAN discriminator channels of its first layer.")
    disc_layers: int = Field(3, ge=1, le=5, description="PatchGAN strided layers (3: a 70 x 70 receptive field).")


class RedCNN(torch.nn.Module):
    """Residual encoder-decoder CNN (module doc): unpadded 3x3 (de)convolutions, ReLU, mirrored shortcuts.

    The last transposed convolution starts at zero, so the untrained network is the identity.
    """

    def __init__(self, spatial_dims: int = 2, in_channels: int = 1, out_channels: int = 1, channels: int = 32,
                 depth: int = 4) -> None:
        super().__init__()
        from monai.networks.blocks import Convolution

        if in_channels != out_channels:
            raise ConfigError("RED-CNN adds its input to its output: in_channels must equal out_channels")
        self.depth = depth
        self.encoder = torch.nn.ModuleList(
            Convolution(spatial_dims, in_channels if n == 0 else channels, channels, kernel_size=3, padding=0,
                        act="relu", norm=None) for n in range(depth))
        self.decoder = torch.nn.ModuleList(
            Convolution(spatial_dims, channels, out_channels if n == depth - 1 else channels, kernel_size=3,
                        padding=0, is_transposed=True, act=None, norm=None, conv_only=True) for n in range(depth))
        self.relu = torch.nn.ReLU()
        zero_output_layers(self.decoder[-1], out_channels)  # starts as the identity (the shortcut from the input)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcuts = {0: x}
        h = x
        for n, conv in enumerate(self.encoder):
            h = conv(h)
            if n % 2 == 1 and n < self.depth - 1:
                shortcuts[n + 1] = h
        for n, deconv in enumerate(self.decoder):
            h = deconv(h)
            mirror = self.depth - 1 - n  # the encoder layer whose input this decoder layer reconstructs
            if mirror in shortcuts:
                h = h + shortcuts[mirror]
            if n < self.depth - 1:
                h = self.relu(h)
        return h


def zero_output_layers(net: torch.nn.Module, out_channels: int) -> torch.nn.Module:
    """Zero the weights and biases of every convolution producing ``out_channels`` channels (the output layers).

    A residual network then starts as the identity (its correction is 0)
    instead of adding a random image of the input's magnitude: training
    starts from the input's quality rather than far below it.
    """
    for module in net.modules():
        if isinstance(module, torch.nn.modules.conv._ConvNd) and module.out_channels == out_channels:
            torch.nn.init.zeros_(module.weight)
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
    return net


class Residual(torch.nn.Module):
    """``x + body(x)``: the body predicts the correction (the noise, with its sign flipped); starts as identity."""

    def __init__(self, body: torch.nn.Module, out_channels: int = 1) -> None:
        super().__init__()
        self.body = zero_output_layers(body, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = x + self.body(x)
        return out


def _strides(levels: int) -> tuple[int, ...]:
    return (2,) * levels


def build_restoration_model(
    name: str,
    params: RestorationModelParams | None = None,
    *,
    spatial_dims: int = 2,
    in_channels: int = 1,
    out_channels: int = 1,
    residual: bool = True,
) -> torch.nn.Module:
    """One network of :data:`RESTORATION_ARCHITECTURES` (module doc); ``residual`` adds the input to the output."""
    from monai.networks.nets import AutoEncoder, UNet

    p = params or RestorationModelParams()
    c = p.channels
    if name == "red_cnn":
        return RedCNN(spatial_dims, in_channels, out_channels, c, p.red_depth)
    widths = tuple(c * 2**n for n in range(p.levels + 1))
    body: torch.nn.Module
    if name == "unet":
        body = UNet(spatial_dims, in_channels, out_channels, channels=widths, strides=_strides(p.levels),
                    num_res_units=p.num_res_units, norm="batch")
    elif name == "autoencoder":
        body = AutoEncoder(spatial_dims, in_channels, out_channels, channels=widths[:-1], strides=_strides(p.levels),
                           num_res_units=p.num_res_units, norm="batch")
    else:
        raise ConfigError(f"unknown restoration architecture {name!r}; choose from "
                          f"{', '.join(RESTORATION_ARCHITECTURES)}")
    if residual:
        if in_channels != out_channels:
            raise ConfigError(f"a residual {name} needs in_channels == out_channels, got {in_channels}, {out_channels}")
        return Residual(body, out_channels)
    return body


def patch_discriminator(params: RestorationModelParams | None = None, *, spatial_dims: int = 2,
                        in_channels: int = 2) -> torch.nn.Module:
    """MONAI's PatchGAN discriminator; input = condition and image on channels; output = a logit map."""
    from monai.networks.nets import PatchDiscriminator

    p = params or RestorationModelParams()
    return _LastOutput(PatchDiscriminator(spatial_dims=spatial_dims, num_layers_d=p.disc_layers,
                                          channels=p.disc_channels, in_channels=in_channels, out_channels=1,
                                          norm="INSTANCE"))


class _LastOutput(torch.nn.Module):
    """MONAI's PatchDiscriminator returns every layer's features; keep the logits (the last)."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        last: torch.Tensor = out[-1] if isinstance(out, (list, tuple)) else out
        return last


class ConditionalGAN(torch.nn.Module):
    """A pix2pix pair: ``generator`` (condition -> image) and ``discriminator`` (condition + image -> logits)."""

    def __init__(self, generator: torch.nn.Module, discriminator: torch.nn.Module) -> None:
        super().__init__()
        self.generator = generator
        self.discriminator = discriminator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.generator(x)
        return out

    def discriminate(self, condition: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """Real / fake logits (one per patch) of ``image`` given ``condition``."""
        out: torch.Tensor = self.discriminator(torch.cat([condition, image], dim=1))
        return out


def build_pix2pix(
    params: RestorationModelParams | None = None,
    *,
    spatial_dims: int = 2,
    in_channels: int = 1,
    out_channels: int = 1,
    residual: bool = True,
) -> ConditionalGAN:
    """pix2pix: a U-Net generator (residual for restoration) and a PatchGAN discriminator on (input, output)."""
    gen = build_restoration_model("unet", params, spatial_dims=spatial_dims, in_channels=in_channels,
                                  out_channels=out_channels, residual=residual)
    disc = patch_discriminator(params, spatial_dims=spatial_dims, in_channels=in_channels + out_channels)
    return ConditionalGAN(gen, disc)
