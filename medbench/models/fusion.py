"""Multimodal segmentation fusion (CT + PET + MR): early, late and intermediate fusion on one backbone family.

Every network takes the modalities as the channels of one volume ``(N, M, i, j, k)``, in the order of
:attr:`FusionParams.modalities`, and returns class **logits** ``(N, n_classes, i, j, k)``, so the engine's
:class:`~medbench.engine.tasks.SegmentationTask` (MONAI ``DiceCELoss(softmax=True)``), sliding-window inference
and argmax treat them like any network of :mod:`medbench.models.factory`. The backbones are built by
:func:`~medbench.models.factory.build_model` from the same :class:`~medbench.models.factory.ModelParams`
section, so a fusion row and a plain row of a table differ only in how the modalities meet.

================  ====================================================================================
``level``         network
================  ====================================================================================
``early``         :class:`EarlyFusion`: one backbone over the M channels concatenated (the plain
                  multichannel network); a missing modality's channel is set to zero.
``late``          :class:`LateFusion`: one backbone per modality (1 input channel each); their softmax
                  probabilities are combined by a convex combination over the *present* modalities:
                  the mean, or learned weights (``late_weights="learned"``, per class when
                  ``late_per_class``), softmax-normalised over the present modalities. The output is the
                  log of the fused probabilities (normalised log-probabilities; see below).
``intermediate``  :class:`IntermediateFusion`: a small convolutional encoder per modality, an attention
                  block (:class:`ModalityAttention`) that weights the modalities voxel by voxel (softmax
                  over the present ones, scores computed from the features), and one shared decoder
                  backbone over the fused feature map.
================  ====================================================================================

**Missing modalities.** ``forward(x, present=None)`` takes ``present``, a boolean ``(N, M)`` tensor saying
which modalities each sample has (``None``: all). The values of a missing channel never reach the output:
they are replaced by zeros before any layer sees them (so even NaNs in an absent channel are harmless),
early fusion then sees a zero channel, and late / intermediate fusion give the absent modality a weight of
exactly 0 (the softmax of a masked ``-inf`` score), so their output equals that of the same network fed only
the present modalities. A sample with no modality at all is refused (:class:`~medbench.errors.ConfigError`):
there is nothing to average, and a silent zero input would produce a confident-looking guess.

**Modality dropout.** With ``dropout_p > 0`` a network in training mode, called without ``present`` (as the
engine calls it), draws ``present`` with :func:`modality_dropout` from torch's global generator (seeded by
:func:`medbench.repro.seed_everything`): each sample loses a random proper subset of its modalities with
probability ``dropout_p``. This is what makes a fusion network usable when a modality is missing at test
time; without it early fusion in particular has never seen a zero channel. An explicit ``present`` is used as
given (no dropout), and evaluation mode never drops.

**Why late fusion returns log-probabilities.** A mixture of probabilities is not a softmax of a mixture of
logits, so the fused probabilities ``p`` are computed exactly (in log space: ``logsumexp`` over modalities
of ``log w_m + log_softmax(z_m)``, which needs no epsilon and never divides) and ``log p`` is returned.
These are valid logits: ``softmax(log p) = p``, so ``DiceCELoss(softmax=True)`` scores the fused
probabilities, its cross-entropy term is ``-log p[target]``, and the argmax is the fused decision.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Literal

import torch
from pydantic import Field, field_validator

from medbench.config import Section
from medbench.errors import ConfigError
from medbench.models.factory import PATCH_MINIMUM, PATCH_MULTIPLE, ModelParams, build_model

FusionLevel = Literal["early", "late", "intermediate"]
FUSION_LEVELS: tuple[str, ...] = ("early", "late", "intermediate")


class FusionParams(Section):
    """The ``fusion`` section (flat names ``fusion_*``); the backbone itself is the ``model`` section."""

    level: FusionLevel = Field("early", description="Where the modalities meet: 'early' (input channels), 'late' "
                                                    "(per-modality networks' probabilities) or 'intermediate' "
                                                    "(per-modality encoders' features, attention-weighted).")
    modalities: list[str] = Field(default_factory=lambda: ["ct", "pet", "t1", "t2"],
                                  description="Input modalities, in channel order (names as in the datalist).")
    late_weights: Literal["mean", "learned"] = Field(
        "mean", description="Late fusion: average the present modalities' probabilities, or weight them with "
                            "learned weights (softmax over the present modalities; they start equal, i.e. at "
                            "the mean).")
    late_per_class: bool = Field(True, description="Late fusion with learned weights: one weight per modality and "
                                                   "class (PET may be trusted for lesions, CT for bone), rather "
                                                   "than one per modality.")
    dropout_p: float = Field(0.0, ge=0.0, le=1.0,
                             description="Probability that a training sample loses a random proper subset of its "
                                         "modalities (modality dropout); 0 disables it.")
    encoder_channels: int = Field(8, ge=2, description="Intermediate fusion: feature channels of each per-modality "
                                                       "encoder (and of the fused map the decoder reads).")
    encoder_depth: int = Field(2, ge=1, le=4, description="Intermediate fusion: 3x3x3 convolution blocks per "
                                                          "modality encoder (full resolution).")
    attention_channels: int = Field(8, ge=1, description="Intermediate fusion: hidden width of the per-voxel "
                                                         "attention scoring head.")

    @field_validator("modalities")
    @classmethod
    def _distinct_names(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one modality is needed")
        if any(not name for name in value):
            raise ValueError("modality names must not be empty")
        if len(set(value)) != len(value):
            raise ValueError(f"modality names must be distinct, got {value}")
        return value


# -- modality bookkeeping ---------------------------------------------------------------------------


def subsets(modalities: Sequence[str]) -> list[tuple[str, ...]]:
    """Every non-empty subset of ``modalities``, largest first (the rows of a missing-modality table).

    Within one size the subsets come in ``itertools.combinations`` order, which keeps each subset's names
    in the given channel order; ``2**n - 1`` subsets in all.
    """
    names = list(modalities)
    if len(set(names)) != len(names):
        raise ConfigError(f"modality names must be distinct, got {names}")
    return [c for k in range(len(names), 0, -1) for c in itertools.combinations(names, k)]


def presence(modalities: Sequence[str], keep: Sequence[str], batch_size: int = 1) -> torch.Tensor:
    """The ``present`` mask ``(batch_size, M)`` for keeping the modalities named in ``keep``."""
    unknown = [k for k in keep if k not in modalities]
    if unknown:
        raise ConfigError(f"unknown modalities {unknown}; the network takes {list(modalities)}")
    row = torch.tensor([m in keep for m in modalities], dtype=torch.bool)
    return row.expand(batch_size, len(modalities)).clone()


def modality_dropout(batch_size: int, n_modalities: int, p: float,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Which modalities each training sample keeps: a bool tensor ``(batch_size, n_modalities)`` on the CPU.

    With probability ``p`` (independently per sample) the sample keeps a uniformly random non-empty
    *proper* subset of its modalities (one of ``2**n - 2``), otherwise all of them. Every modality is never
    dropped at once, and with one modality there is nothing to drop (all kept). Both random draws are made
    for every sample whatever ``p``, from ``generator`` (torch's global generator when None), so a seeded
    generator gives the same masks for the same calls.
    """
    if not 0.0 <= p <= 1.0:
        raise ConfigError(f"modality dropout probability must be in [0, 1], got {p}")
    if n_modalities < 1:
        raise ConfigError(f"modality dropout needs at least one modality, got {n_modalities}")
    if n_modalities > 30:
        raise ConfigError(f"modality dropout draws subsets as bit masks; {n_modalities} modalities are too many")
    keep = torch.ones(batch_size, n_modalities, dtype=torch.bool)
    drop = torch.rand(batch_size, generator=generator) < p
    # subset codes 1 .. 2**n - 2: bit m set = modality m kept; 0 (none) and 2**n - 1 (all) excluded
    code = torch.randint(1, max(2**n_modalities - 1, 2), (batch_size,), generator=generator)
    bits = ((code[:, None] >> torch.arange(n_modalities)) & 1).bool()
    if n_modalities > 1:
        keep[drop] = bits[drop]
    return keep


def _spatial(mask: torch.Tensor, ndim: int) -> torch.Tensor:
    """``(N, M)`` -> ``(N, M, 1, ..., 1)`` to broadcast over ``ndim - 2`` spatial axes."""
    return mask.reshape(*mask.shape, *([1] * (ndim - 2)))


# -- networks ---------------------------------------------------------------------------------------


class FusionNet(torch.nn.Module):
    """Base of the fusion networks: checks the input, resolves ``present`` (module doc), zeroes absent channels.

    Subclasses implement :meth:`fuse` on inputs whose absent channels are already zero.
    """

    def __init__(self, modalities: Sequence[str], dropout_p: float = 0.0) -> None:
        super().__init__()
        self.modalities = tuple(modalities)
        self.dropout_p = float(dropout_p)

    @property
    def n_modalities(self) -> int:
        return len(self.modalities)

    def resolve_present(self, x: torch.Tensor, present: torch.Tensor | None = None) -> torch.Tensor:
        """The bool ``(N, M)`` mask this forward pass uses, on ``x``'s device (module doc for the rules)."""
        n, m = x.shape[0], self.n_modalities
        if x.ndim < 3 or x.shape[1] != m:
            raise ConfigError(f"a fusion network over {list(self.modalities)} needs an input (N, {m}, ...) with one "
                              f"channel per modality, got shape {tuple(x.shape)}")
        if present is None:
            if self.training and self.dropout_p > 0:
                present = modality_dropout(n, m, self.dropout_p)
            else:
                present = torch.ones(n, m, dtype=torch.bool)
        present = torch.as_tensor(present)
        if present.ndim == 1:
            present = present.expand(n, -1)
        if tuple(present.shape) != (n, m):
            raise ConfigError(f"present must be a (batch, modalities) = ({n}, {m}) mask, got shape "
                              f"{tuple(present.shape)}")
        present = (present != 0).to(x.device)
        empty = (~present.any(dim=1)).nonzero().flatten().tolist()
        if empty:
            raise ConfigError(f"fusion needs at least one of {list(self.modalities)} per sample; sample(s) {empty} "
                              f"of the batch have none present")
        return present

    def forward(self, x: torch.Tensor, present: torch.Tensor | None = None) -> torch.Tensor:
        """Class logits ``(N, n_classes, ...)`` from ``x`` ``(N, M, ...)``; ``present`` ``(N, M)`` (module doc)."""
        mask = self.resolve_present(x, present)
        # where, not a product: a NaN or inf in an absent channel must not leak (0 * nan = nan)
        x = torch.where(_spatial(mask, x.ndim), x, torch.zeros((), dtype=x.dtype, device=x.device))
        return self.fuse(x, mask)

    def fuse(self, x: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class EarlyFusion(FusionNet):
    """One backbone over the modalities as input channels; absent channels are zero (the base class does it)."""

    def __init__(self, backbone: torch.nn.Module, modalities: Sequence[str], dropout_p: float = 0.0) -> None:
        super().__init__(modalities, dropout_p)
        self.backbone = backbone

    def fuse(self, x: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.backbone(x)
        return out


class LateFusion(FusionNet):
    """One single-channel backbone per modality; a convex combination of their probabilities (module doc).

    ``weights``: ``"mean"`` (equal weights over the present modalities) or ``"learned"``: a parameter
    ``(M, n_classes)`` (``per_class``) or ``(M, 1)``, softmax-normalised over the present modalities of
    each sample and started at zero (equal weights: training starts from the mean). Per-class weights
    make the class-wise mixture unnormalised, so the fused probabilities are renormalised over classes.
    Returns normalised log-probabilities (valid logits, see the module doc).
    """

    def __init__(self, backbones: Sequence[torch.nn.Module], modalities: Sequence[str], n_classes: int,
                 weights: Literal["mean", "learned"] = "mean", per_class: bool = True,
                 dropout_p: float = 0.0) -> None:
        super().__init__(modalities, dropout_p)
        if len(backbones) != len(self.modalities):
            raise ConfigError(f"late fusion needs one backbone per modality: {len(backbones)} backbones for "
                              f"{list(self.modalities)}")
        self.backbones = torch.nn.ModuleList(backbones)
        self.weight_logits: torch.nn.Parameter | None = None
        if weights == "learned":
            self.weight_logits = torch.nn.Parameter(torch.zeros(len(self.modalities), n_classes if per_class else 1))
        elif weights != "mean":
            raise ConfigError(f"late fusion weights must be 'mean' or 'learned', got {weights!r}")

    def modality_weights(self, present: torch.Tensor) -> torch.Tensor:
        """Log-weights ``(N, M, C or 1)`` of each modality for each sample: ``-inf`` for absent modalities."""
        n, m = present.shape
        logits = torch.zeros(m, 1, device=present.device) if self.weight_logits is None else self.weight_logits
        logits = logits.unsqueeze(0).expand(n, -1, -1)
        masked = logits.masked_fill(~present[:, :, None], float("-inf"))
        return torch.log_softmax(masked, dim=1)

    def fuse(self, x: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        log_probs: list[torch.Tensor | None] = []
        for m, backbone in enumerate(self.backbones):
            if not self.training and not bool(present[:, m].any()):
                # absent from the whole batch: its weight is 0, skip the work (never in training, where
                # DistributedDataParallel expects every parameter to take part in every step)
                log_probs.append(None)
                continue
            log_probs.append(torch.log_softmax(backbone(x[:, m:m + 1]), dim=1))
        shape = next(lp for lp in log_probs if lp is not None)
        stacked = torch.stack([torch.zeros_like(shape) if lp is None else lp for lp in log_probs], dim=1)
        log_w = self.modality_weights(present).to(stacked.dtype)           # (N, M, C or 1)
        log_w = log_w.reshape(*log_w.shape, *([1] * (stacked.ndim - 3)))  # broadcast over space
        fused = torch.logsumexp(stacked + log_w, dim=1)                     # log sum_m w_m p_m
        return fused - torch.logsumexp(fused, dim=1, keepdim=True)          # renormalise over classes


class ModalityAttention(torch.nn.Module):
    """Per-voxel softmax attention over modalities, computed from their features, masked for absent ones.

    Each modality's score at a voxel comes from its own features and the mean of the present modalities'
    features there (so the weight of PET can depend on what CT shows), through a shared two-layer 1x1x1
    head. Scores of absent modalities are ``-inf`` before the softmax, so their weights are exactly 0
    and the present ones sum to 1; the fused map is the weighted sum of the features.
    """

    def __init__(self, channels: int, hidden: int, spatial_dims: int = 3) -> None:
        super().__init__()
        from monai.networks.blocks import Convolution

        self.score = torch.nn.Sequential(
            Convolution(spatial_dims, 2 * channels, hidden, kernel_size=1, act="prelu", norm=None),
            Convolution(spatial_dims, hidden, 1, kernel_size=1, conv_only=True),
        )

    def weights(self, features: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """Attention weights ``(N, M, ...)`` for features ``(N, M, F, ...)`` of which ``present`` ``(N, M)`` count."""
        n, m = features.shape[:2]
        mask = _spatial(present, features.ndim)  # (N, M, 1, ...)
        zero = torch.zeros((), dtype=features.dtype, device=features.device)
        features = torch.where(mask, features, zero)
        n_present = present.sum(dim=1).to(features.dtype)  # >= 1: checked by FusionNet.resolve_present
        context = features.sum(dim=1) / _spatial(n_present[:, None], features.ndim - 1)  # (N, F, ...)
        pairs = torch.cat([features, context.unsqueeze(1).expand_as(features)], dim=2)  # (N, M, 2F, ...)
        scores = self.score(pairs.flatten(0, 1)).reshape(n, m, *features.shape[3:])  # (N, M, ...)
        scores = scores.masked_fill(~mask.squeeze(2), float("-inf"))
        return torch.softmax(scores, dim=1)

    def forward(self, features: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """The fused map ``(N, F, ...)``."""
        w = self.weights(features, present)
        zero = torch.zeros((), dtype=features.dtype, device=features.device)
        features = torch.where(_spatial(present, features.ndim), features, zero)
        return (w.unsqueeze(2) * features).sum(dim=1)


class IntermediateFusion(FusionNet):
    """Per-modality encoders, :class:`ModalityAttention`, one shared decoder backbone (module doc)."""

    def __init__(self, encoders: Sequence[torch.nn.Module], attention: ModalityAttention, decoder: torch.nn.Module,
                 modalities: Sequence[str], dropout_p: float = 0.0) -> None:
        super().__init__(modalities, dropout_p)
        if len(encoders) != len(self.modalities):
            raise ConfigError(f"intermediate fusion needs one encoder per modality: {len(encoders)} encoders for "
                              f"{list(self.modalities)}")
        self.encoders = torch.nn.ModuleList(encoders)
        self.attention = attention
        self.decoder = decoder

    def features(self, x: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """Per-modality feature maps ``(N, M, F, ...)`` (zeros for a modality absent from the whole batch)."""
        feats: list[torch.Tensor | None] = []
        for m, encoder in enumerate(self.encoders):
            if not self.training and not bool(present[:, m].any()):
                feats.append(None)  # weight 0 everywhere: skip (not in training: DDP wants every parameter used)
                continue
            feats.append(encoder(x[:, m:m + 1]))
        like = next(f for f in feats if f is not None)
        return torch.stack([torch.zeros_like(like) if f is None else f for f in feats], dim=1)

    def attention_maps(self, x: torch.Tensor, present: torch.Tensor | None = None) -> torch.Tensor:
        """The attention weights ``(N, M, ...)`` the fusion uses (for display: which modality counts where)."""
        mask = self.resolve_present(x, present)
        x = torch.where(_spatial(mask, x.ndim), x, torch.zeros((), dtype=x.dtype, device=x.device))
        return self.attention.weights(self.features(x, mask), mask)

    def fuse(self, x: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.decoder(self.attention(self.features(x, present), present))
        return out


class WithModalities(torch.nn.Module):
    """A fusion network with a fixed set of present modalities, called as ``model(x)``.

    Sliding-window inference and the engine call networks with one argument; wrap a trained network
    with :func:`with_modalities` to evaluate it with some modalities missing (the missing-modality table).
    """

    def __init__(self, net: FusionNet, present: torch.Tensor) -> None:
        super().__init__()
        self.net = net
        self.present: torch.Tensor
        self.register_buffer("present", present.bool(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mask = self.present.to(x.device).expand(x.shape[0], -1)
        out: torch.Tensor = self.net(x, present=mask)
        return out


def with_modalities(net: FusionNet, keep: Sequence[str]) -> WithModalities:
    """``net`` seeing only the modalities named in ``keep`` (the others are treated as missing)."""
    if not keep:
        raise ConfigError(f"with_modalities needs at least one of {list(net.modalities)} to keep")
    return WithModalities(net, presence(net.modalities, keep)[0])


# -- factory ----------------------------------------------------------------------------------------


def _encoder(channels: int, depth: int, dropout: float) -> torch.nn.Module:
    """A full-resolution per-modality encoder: ``depth`` MONAI 3x3x3 convolution blocks (instance norm, PReLU,
    as in the UNet's own blocks), 1 -> ``channels`` channels."""
    from monai.networks.blocks import Convolution

    return torch.nn.Sequential(*(Convolution(3, 1 if d == 0 else channels, channels, kernel_size=3,
                                             dropout=dropout or None) for d in range(depth)))


def _backbone_patch(model: ModelParams, patch: Sequence[int] | None) -> Sequence[int]:
    """The patch the backbones are built for: ``patch`` when given (checked by the factory), else a nominal one
    that every architecture but UNETR accepts (their construction does not depend on the patch)."""
    if patch is not None:
        return patch
    if model.name == "unetr":
        raise ConfigError("a fusion network with a unetr backbone needs the patch (its ViT embeds a fixed grid): "
                          "pass patch=")
    side = max(PATCH_MULTIPLE[model.name], PATCH_MINIMUM.get(model.name, 0))
    return (side, side, side)


def build_fusion(fusion: FusionParams, model: ModelParams, n_classes: int,
                 patch: Sequence[int] | None = None) -> FusionNet:
    """The fusion network ``fusion.level`` names, with ``model``'s backbone, for ``n_classes`` classes (logits).

    Backbones come from :func:`~medbench.models.factory.build_model` (any of its architectures; ``patch``,
    when given, is checked against it and is required for UNETR). Sizes relative to one plain backbone
    ``B(c)`` with ``c`` input channels: early ``B(M)``; late ``M x B(1)`` (+ ``M x C`` learned weights);
    intermediate ``M`` small encoders + the attention head + ``B(encoder_channels)``.
    """
    if n_classes < 2:
        raise ConfigError(f"a fusion network segments at least 2 classes (background and one more), got {n_classes}")
    mods = list(fusion.modalities)
    size = _backbone_patch(model, patch)
    if fusion.level == "early":
        return EarlyFusion(build_model(model, len(mods), n_classes, size), mods, fusion.dropout_p)
    if fusion.level == "late":
        return LateFusion([build_model(model, 1, n_classes, size) for _ in mods], mods, n_classes,
                          weights=fusion.late_weights, per_class=fusion.late_per_class, dropout_p=fusion.dropout_p)
    if fusion.level == "intermediate":
        c = fusion.encoder_channels
        return IntermediateFusion([_encoder(c, fusion.encoder_depth, model.dropout) for _ in mods],
                                  ModalityAttention(c, fusion.attention_channels),
                                  build_model(model, c, n_classes, size), mods, fusion.dropout_p)
    raise ConfigError(f"unknown fusion level {fusion.level!r}; choose one of {', '.join(FUSION_LEVELS)}")
