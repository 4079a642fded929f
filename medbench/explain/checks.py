"""Model-dependent scores of attribution maps: faithfulness, robustness and the randomisation sanity checks.

* :func:`deletion_insertion` — Petsiuk et al. (2018): the target's probability as
  the most relevant voxels are removed (replaced by the baseline 0) in ``steps``
  equal chunks (deletion: a faithful map makes it fall fast, low AUC), and as they
  are inserted into a blank baseline (insertion: rises fast, high AUC).
* :func:`max_sensitivity` — Yeh et al. (2019): the largest relative change of the
  relevance map, ``||r(x + d) - r(x)|| / ||r(x)||`` over ``samples`` uniform input
  perturbations with ``|d| <= radius`` (normalised input units); lower is more robust.
* :func:`cascading_randomisation` — Adebayo et al. (2018): re-initialise the
  model's parameterised layers from the output back to the input, one more block
  at a time, recompute the map after each step, and compare it with the original
  map (Spearman rank correlation and SSIM). A method *passes* when the map has
  changed: the rank correlation of the fully randomised model's map with the
  original stays below :data:`SANITY_THRESHOLD` in absolute value.
* :func:`label_randomisation_similarity` — the same comparison between the map
  of a model trained on the true labels and one trained on permuted labels.
* :func:`removal_effect` — an intervention that needs no map: the target's
  probability before and after a known structure (the causal lesion, a planted
  cue) is removed from the image by :func:`inpaint`. It says what the *model*
  uses, which is the ground truth a map should be judged against: a map that
  ignores a lesion the model also ignores is faithful, not wrong.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import torch

from medbench.errors import ConfigError
from medbench.explain.attribution import Attribution, MethodParams, attribute
from medbench.metrics.attribution import curve_auc, dilate, map_ssim, rank_correlation

#: Sanity-check pass/fail: a method passes when |Spearman rho| between the original map and the map of the
#: randomised model is below this (Adebayo et al. read "high similarity" as failure; 0.5 is a conservative cut).
SANITY_THRESHOLD = 0.5


def _probability(model: torch.nn.Module, x: torch.Tensor, target: int, batch: int = 8) -> np.ndarray:
    out = []
    with torch.no_grad():
        for s in range(0, x.shape[0], batch):
            logits = model(x[s:s + batch]).float()
            if logits.shape[1] == 1:  # a one-output model (RegionTarget): its raw value
                out.append(logits[:, 0].cpu().numpy())
            else:
                out.append(torch.softmax(logits, dim=1)[:, target].cpu().numpy())
    return np.concatenate(out)


@dataclasses.dataclass
class Curves:
    """Deletion and insertion curves over the fraction of voxels changed, with their normalised AUCs."""

    fractions: np.ndarray
    deletion: np.ndarray
    insertion: np.ndarray
    deletion_auc: float
    insertion_auc: float


def deletion_insertion(model: torch.nn.Module, x: torch.Tensor, relevance: np.ndarray, target: int,
                       steps: int = 16, *, max_fraction: float = 1.0, seed: int = 0) -> Curves:
    """Deletion and insertion curves of ``relevance`` for ``model``'s target probability on ``x`` ``(1, C, ...)``.

    Voxels are ranked by relevance (ties in a seeded random order, so a flat map
    behaves like a random one); all channels of a voxel are removed together.
    ``max_fraction`` < 1 stops the curves early (the AUC is then over that range).
    """
    model.eval()
    r = np.asarray(relevance, dtype=np.float64).reshape(-1)
    n = r.size
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(n), -r))  # most relevant first; random among ties
    fractions = np.linspace(0.0, max_fraction, steps + 1)
    counts = np.round(fractions * n).astype(int)
    flat = x.detach().float().reshape(x.shape[0], x.shape[1], -1)
    deleted, inserted = [], []
    for c in counts:
        keep = torch.ones(n, dtype=torch.float32)
        keep[torch.as_tensor(order[:c])] = 0.0
        deleted.append((flat * keep).reshape(x.shape))
        inserted.append((flat * (1.0 - keep)).reshape(x.shape))
    dele = _probability(model, torch.cat(deleted), target)
    ins = _probability(model, torch.cat(inserted), target)
    return Curves(fractions, dele, ins, curve_auc(dele, fractions), curve_auc(ins, fractions))


def max_sensitivity(model: torch.nn.Module, x: torch.Tensor, method: str, target: int, *, layer: str | None = None,
                    params: MethodParams | None = None, radius: float = 0.02, samples: int = 3, seed: int = 0,
                    reference: Attribution | None = None) -> float:
    """Largest ``||r(x + d) - r(x)||_2 / ||r(x)||_2`` over ``samples`` draws of ``d ~ U(-radius, radius)``."""
    base = reference or attribute(model, x, method, target, layer=layer, params=params, seed=seed)
    norm = float(np.linalg.norm(base.relevance))
    if norm == 0:
        return float("nan")
    gen = torch.Generator().manual_seed(seed)
    worst = 0.0
    for s in range(samples):
        noise = (torch.rand(x.shape, generator=gen) * 2 - 1) * radius
        other = attribute(model, x + noise, method, target, layer=layer, params=params, seed=seed + s + 1)
        worst = max(worst, float(np.linalg.norm(other.relevance - base.relevance)) / norm)
    return worst


def parameter_blocks(model: torch.nn.Module) -> list[str]:
    """Names of the model's leaf modules that hold parameters, from the output back to the input."""
    names = [name for name, m in model.named_modules()
             if name and not list(m.children()) and any(True for _ in m.parameters(recurse=False))]
    return list(reversed(names))


def _reinitialise(module: torch.nn.Module, gen: torch.Generator) -> None:
    with torch.no_grad():
        for pname, p in module.named_parameters(recurse=False):
            if p.ndim > 1:
                fan_in = int(np.prod(p.shape[1:]))
                bound = float(np.sqrt(6.0 / fan_in))
                p.copy_((torch.rand(p.shape, generator=gen) * 2 - 1) * bound)
            elif pname == "weight":  # normalisation scales
                p.copy_(torch.rand(p.shape, generator=gen) * 2 - 1)
            else:
                p.copy_((torch.rand(p.shape, generator=gen) * 2 - 1) * 0.1)
        for bname, b in module.named_buffers(recurse=False):  # batch-norm running statistics
            if bname == "running_mean":
                b.zero_()
            elif bname == "running_var":
                b.fill_(1.0)


def cascading_randomisation(
    model: torch.nn.Module,
    x: torch.Tensor,
    methods: Sequence[str],
    target: int,
    *,
    layer: str | None = None,
    params: MethodParams | None = None,
    stages: int = 4,
    seed: int = 0,
    originals: dict[str, Attribution] | None = None,
) -> pd.DataFrame:
    """Cascading model-parameter randomisation: similarity to the original map as more layers are re-initialised.

    The parameterised leaf layers (output first) are cut into ``stages`` groups;
    after re-initialising each further group (seeded uniform He-style weights,
    batch-norm statistics reset) every method's map is recomputed. Rows:
    ``method``, ``stage`` (0 = trained model), ``layers_randomised``,
    ``fraction`` (of the parameterised layers), ``spearman``, ``ssim``.
    """
    blocks = parameter_blocks(model)
    groups = [list(g) for g in np.array_split(np.asarray(blocks, dtype=object), stages) if len(g)]
    work = copy.deepcopy(model).eval()
    modules = dict(work.named_modules())
    gen = torch.Generator().manual_seed(seed)
    base = originals or {m: attribute(model, x, m, target, layer=layer, params=params, seed=seed) for m in methods}
    rows = [{"method": m, "stage": 0, "layers_randomised": "none", "fraction": 0.0, "spearman": 1.0, "ssim": 1.0}
            for m in methods]
    done = 0
    for s, group in enumerate(groups, start=1):
        for name in group:
            _reinitialise(modules[str(name)], gen)
        done += len(group)
        for m in methods:
            a = attribute(work, x, m, target, layer=layer, params=params, seed=seed)
            rows.append({"method": m, "stage": s, "layers_randomised": f"{group[0]} .. {group[-1]}",
                         "fraction": done / len(blocks),
                         "spearman": rank_correlation(base[m].relevance, a.relevance),
                         "ssim": map_ssim(base[m].relevance, a.relevance)})
    return pd.DataFrame(rows)


def label_randomisation_similarity(trained: Callable[[str], Attribution], randomised: Callable[[str], Attribution],
                                   methods: Sequence[str]) -> pd.DataFrame:
    """Spearman and SSIM between each method's map from the trained model and from the permuted-label model."""
    rows = []
    for m in methods:
        a, b = trained(m), randomised(m)
        rows.append({"method": m, "spearman": rank_correlation(a.relevance, b.relevance),
                     "ssim": map_ssim(a.relevance, b.relevance)})
    return pd.DataFrame(rows)


def sanity_verdict(similarity: float, threshold: float = SANITY_THRESHOLD) -> bool:
    """True (pass) when the map of the randomised model differs: ``|spearman| < threshold`` (nan: pass, map gone)."""
    return bool(not np.isfinite(similarity) or abs(similarity) < threshold)


def inpaint(image: torch.Tensor, mask: np.ndarray, *, margin: int = 1, ring: int = 2) -> torch.Tensor:
    """A copy of ``image`` ``(C, i, j, k)`` with ``mask`` (grown by ``margin`` voxels) filled by its surroundings.

    Every channel's voxels in the grown mask are replaced by the median of that
    channel over the ``ring`` voxels around it (the grown mask dilated by
    ``ring``, minus the grown mask): a lesion in the liver becomes liver, a skin
    marker becomes skin and air. The margin covers the partial-volume rim and the
    PET blur that spread a structure's signal beyond its mask. Voxels outside the
    grown mask are unchanged and ``image`` itself is never modified.
    """
    m = np.asarray(mask).astype(bool)
    if tuple(m.shape) != tuple(image.shape[1:]):
        raise ConfigError(f"mask {tuple(m.shape)} does not match the image grid {tuple(image.shape[1:])}")
    if ring < 1:
        raise ConfigError(f"ring must be at least one voxel, got {ring}")
    core = dilate(m, margin)
    shell = dilate(core, ring) & ~core
    out = image.detach().clone()
    if not core.any():
        return out
    if not shell.any():
        raise ConfigError("the mask covers the whole grid: nothing around it to fill it with")
    core_t = torch.from_numpy(core)
    for c in range(out.shape[0]):
        out[c][core_t] = out[c][torch.from_numpy(shell)].median()
    return out


def removal_effect(model: torch.nn.Module, image: torch.Tensor, mask: np.ndarray, target: int, *,
                   margin: int = 1, ring: int = 2) -> tuple[float, float]:
    """The target's probability for ``image`` ``(C, i, j, k)`` before and after :func:`inpaint` removes ``mask``.

    A large drop says the model relies on what the mask covers; no drop says it
    decides from elsewhere (whatever its attribution maps show).
    """
    model.eval()
    x = torch.stack([image.float(), inpaint(image.float(), mask, margin=margin, ring=ring)])
    before, after = _probability(model, x, target)
    return float(before), float(after)
