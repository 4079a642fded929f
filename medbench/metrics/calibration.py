"""Calibration and uncertainty quality of voxel-wise class probabilities.

* :func:`reliability_table` / :func:`expected_calibration_error`: the
  top-label reliability diagram and ECE (Guo et al. 2017) with equal-width
  confidence bins: ECE = sum_b |B_b|/N * |accuracy(B_b) - confidence(B_b)|.
* :func:`predictive_entropy`: entropy (nats) of a probability map.
* :func:`uncertainty_error_auroc`: how well an uncertainty map ranks the
  voxels a model got wrong above the ones it got right (0.5 = no better than
  chance, 1 = every error more uncertain than every correct voxel).

Probabilities are ``(C, ...)`` arrays summing to 1 over axis 0 and labels
integer maps of the same spatial shape; an optional ``mask`` restricts the
voxels (e.g. the body, so the easy air around the patient does not flatter
the numbers).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from medbench.errors import DataError


def _flatten(probs: np.ndarray, labels: np.ndarray, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels)
    if p.shape[1:] != y.shape:
        raise DataError(f"probabilities {p.shape} and labels {y.shape} do not match (expected (C, *labels.shape))")
    p = p.reshape(p.shape[0], -1)
    y = y.reshape(-1)
    if mask is not None:
        m = np.asarray(mask, bool).reshape(-1)
        p, y = p[:, m], y[m]
    if y.size == 0:
        raise DataError("no voxels to evaluate (empty mask)")
    return p, y


def reliability_table(
    probs: np.ndarray, labels: np.ndarray, n_bins: int = 15, mask: np.ndarray | None = None
) -> pd.DataFrame:
    """One row per confidence bin: ``low``, ``high``, ``count``, ``confidence`` (mean top probability), ``accuracy``."""
    p, y = _flatten(probs, labels, mask)
    conf = p.max(axis=0)
    correct = p.argmax(axis=0) == y
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)
    rows = []
    for b in range(n_bins):
        sel = idx == b
        n = int(sel.sum())
        rows.append({"low": edges[b], "high": edges[b + 1], "count": n,
                     "confidence": float(conf[sel].mean()) if n else np.nan,
                     "accuracy": float(correct[sel].mean()) if n else np.nan})
    return pd.DataFrame(rows)


def expected_calibration_error(
    probs: np.ndarray, labels: np.ndarray, n_bins: int = 15, mask: np.ndarray | None = None
) -> float:
    """Top-label ECE in [0, 1] with ``n_bins`` equal-width confidence bins."""
    table = reliability_table(probs, labels, n_bins, mask)
    used = table[table["count"] > 0]
    weights = used["count"] / used["count"].sum()
    return float((weights * (used["accuracy"] - used["confidence"]).abs()).sum())


def predictive_entropy(probs: np.ndarray) -> np.ndarray:
    """Entropy (nats) over axis 0 of a ``(C, ...)`` probability map."""
    p = np.clip(np.asarray(probs, dtype=np.float64), 1e-12, 1.0)
    return -(p * np.log(p)).sum(axis=0)


def uncertainty_error_auroc(uncertainty: np.ndarray, error: np.ndarray, mask: np.ndarray | None = None) -> float:
    """AUROC of ``uncertainty`` as a detector of ``error`` voxels (nan when there are no errors or no correct voxels)."""
    from sklearn.metrics import roc_auc_score

    u = np.asarray(uncertainty, dtype=np.float64).reshape(-1)
    e = np.asarray(error, bool).reshape(-1)
    if mask is not None:
        m = np.asarray(mask, bool).reshape(-1)
        u, e = u[m], e[m]
    if e.all() or not e.any():
        return float("nan")
    return float(roc_auc_score(e, u))
