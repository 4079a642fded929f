"""Analytic shape primitives in world millimetres (LPS), evaluated only inside their bounding boxes.

* :class:`Blob`: a rounded box / ellipsoid in its own frame with a bend, a taper and a
  low-frequency surface perturbation that varies along every local axis (so
  an organ's cross-section changes along z: no extrusion).
* :class:`ZTube`: an elliptic tube along z whose centre and radii are
  polynomials in z (aorta, IVC, psoas).
* :class:`Capsule`: the points within ``radius`` of a segment (vessels, pancreas).
* :class:`Union`: several shapes as one.

Every shape has ``aabb()`` (world bounding box, conservative) and
``mask(points)`` for points (N, 3).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

AABB = tuple[np.ndarray, np.ndarray]


def _as_pts(points: np.ndarray) -> np.ndarray:
    return np.asarray(points, dtype=np.float32).reshape(-1, 3)


@dataclass(frozen=True, eq=False)
class Blob:
    """``rho(q) <= 1 + perturbation(q)`` in local coordinates, ``rho = (1 - w) |q|_2 + w |q|_4``.

    ``w`` (``squareness``, 0..1) blends an ellipsoid (0) towards a rounded box;
    ``q = (R^T (p - center)) / half`` with ``R``'s columns the local axes in
    LPS. ``bend`` shifts local x/y by ``bend * q2^2`` (a banana along the local
    z axis); ``taper`` scales the local x/y thickness by ``1 + taper * q2``.
    ``modes`` (K, 3) integer frequencies, ``amps`` (K,) and ``phases`` (K,)
    make the smooth surface perturbation ``sum_k a_k cos(pi m_k . q + phi_k)``.
    """

    center: np.ndarray
    half: np.ndarray
    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))
    squareness: float = 0.0
    bend: tuple[float, float] = (0.0, 0.0)
    taper: tuple[float, float] = (0.0, 0.0)
    modes: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    amps: np.ndarray = field(default_factory=lambda: np.zeros(0))
    phases: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def aabb(self) -> AABB:
        grow = 1.0 + float(np.abs(self.amps).sum()) + max(abs(self.bend[0]), abs(self.bend[1])) \
            + max(abs(self.taper[0]), abs(self.taper[1]))
        extent = np.abs(self.rotation) @ (np.asarray(self.half) * grow)
        return np.asarray(self.center) - extent, np.asarray(self.center) + extent

    def local(self, points: np.ndarray) -> np.ndarray:
        """Normalised local coordinates q (N, 3) before bend/taper."""
        d = _as_pts(points) - np.asarray(self.center, dtype=np.float32)
        return (d @ np.asarray(self.rotation, dtype=np.float32)) / np.asarray(self.half, dtype=np.float32)

    def level(self, points: np.ndarray) -> np.ndarray:
        """``rho / limit`` per point: <= 1 inside."""
        q = self.local(points)
        qz = q[:, 2]
        if self.bend != (0.0, 0.0):
            q[:, 0] -= np.float32(self.bend[0]) * qz * qz
            q[:, 1] -= np.float32(self.bend[1]) * qz * qz
        if self.taper != (0.0, 0.0):
            q[:, 0] /= np.maximum(1.0 + np.float32(self.taper[0]) * qz, 0.2)
            q[:, 1] /= np.maximum(1.0 + np.float32(self.taper[1]) * qz, 0.2)
        q2 = q * q
        rho = np.sqrt(q2.sum(axis=1))
        if self.squareness:
            w = np.float32(self.squareness)
            rho = (1 - w) * rho + w * np.sqrt(np.sqrt((q2 * q2).sum(axis=1)))
        limit = np.ones(len(q), np.float32)
        if len(self.amps):
            phase = (q @ (np.pi * np.asarray(self.modes, dtype=np.float32)).T) + np.asarray(self.phases, np.float32)
            limit += np.cos(phase) @ np.asarray(self.amps, dtype=np.float32)
        return (rho / np.maximum(limit, 0.3)).astype(np.float32)

    def mask(self, points: np.ndarray) -> np.ndarray:
        return self.level(points) <= 1.0

    def scaled(self, factor: np.ndarray | float, origin: np.ndarray) -> Blob:
        """The blob scaled by ``factor`` (per world axis) about ``origin`` (centre and half-axes)."""
        f = np.broadcast_to(np.asarray(factor, dtype=float), (3,))
        center = np.asarray(origin) + f * (np.asarray(self.center) - np.asarray(origin))
        local_f = np.abs(np.asarray(self.rotation)).T @ f / np.abs(np.asarray(self.rotation)).sum(axis=0)
        return Blob(center, np.asarray(self.half) * local_f, self.rotation, self.squareness, self.bend, self.taper,
                    self.modes, self.amps, self.phases)

    def shrunk(self, mm: float) -> Blob:
        """The blob with every half-axis shorter by ``mm`` (an inner surface, e.g. a wall's lumen)."""
        return Blob(self.center, np.maximum(np.asarray(self.half) - mm, 0.5), self.rotation, self.squareness,
                    self.bend, self.taper, self.modes, self.amps, self.phases)

    def grown(self, mm: float) -> Blob:
        return self.shrunk(-mm)


@dataclass(frozen=True, eq=False)
class ZTube:
    """Elliptic tube along z: centre ``(cx(z), cy(z))`` and radii ``(rx(z), ry(z))`` are polynomials in z.

    Coefficients are highest power first (``numpy.polyval``); the tube spans
    ``z0 <= z <= z1``.
    """

    z0: float
    z1: float
    cx: tuple[float, ...]
    cy: tuple[float, ...]
    rx: tuple[float, ...]
    ry: tuple[float, ...]

    def aabb(self) -> AABB:
        z = np.linspace(self.z0, self.z1, 33)
        cx, cy = np.polyval(self.cx, z), np.polyval(self.cy, z)
        rx, ry = np.abs(np.polyval(self.rx, z)), np.abs(np.polyval(self.ry, z))
        lo = np.array([np.min(cx - rx), np.min(cy - ry), self.z0]) - 1.0
        hi = np.array([np.max(cx + rx), np.max(cy + ry), self.z1]) + 1.0
        return lo, hi

    def level(self, points: np.ndarray) -> np.ndarray:
        p = _as_pts(points)
        z = p[:, 2]
        dx = (p[:, 0] - np.polyval(self.cx, z)) / np.polyval(self.rx, z)
        dy = (p[:, 1] - np.polyval(self.cy, z)) / np.polyval(self.ry, z)
        lev = np.sqrt(dx * dx + dy * dy)
        lev[(z < self.z0) | (z > self.z1)] = np.inf
        return lev.astype(np.float32)

    def mask(self, points: np.ndarray) -> np.ndarray:
        return self.level(points) <= 1.0


@dataclass(frozen=True, eq=False)
class Capsule:
    """Points within ``radius`` (linearly varying from ``r0`` at ``a`` to ``r1`` at ``b``) of the segment a-b."""

    a: np.ndarray
    b: np.ndarray
    r0: float
    r1: float

    def aabb(self) -> AABB:
        r = max(self.r0, self.r1) + 1.0
        return np.minimum(self.a, self.b) - r, np.maximum(self.a, self.b) + r

    def level(self, points: np.ndarray) -> np.ndarray:
        p = _as_pts(points)
        a, b = np.asarray(self.a, np.float32), np.asarray(self.b, np.float32)
        ab = b - a
        t = np.clip(((p - a) @ ab) / float(ab @ ab), 0.0, 1.0)
        d = np.linalg.norm(p - (a + t[:, None] * ab), axis=1)
        return (d / (self.r0 + (self.r1 - self.r0) * t)).astype(np.float32)

    def mask(self, points: np.ndarray) -> np.ndarray:
        return self.level(points) <= 1.0


@dataclass(frozen=True, eq=False)
class Union:
    """Several shapes as one (inside any of them)."""

    parts: tuple[Blob | ZTube | Capsule, ...]

    def aabb(self) -> AABB:
        boxes = [p.aabb() for p in self.parts]
        return np.min([b[0] for b in boxes], axis=0), np.max([b[1] for b in boxes], axis=0)

    def level(self, points: np.ndarray) -> np.ndarray:
        return np.min([p.level(points) for p in self.parts], axis=0)

    def mask(self, points: np.ndarray) -> np.ndarray:
        p = _as_pts(points)
        out = np.zeros(len(p), bool)
        for part in self.parts:
            lo, hi = part.aabb()
            near = np.flatnonzero(np.all((p >= lo) & (p <= hi), axis=1))
            if len(near):
                out[near] |= part.mask(p[near])
        return out


Shape = Blob | ZTube | Capsule | Union


def perturbation(rng: np.random.Generator, amplitude: float, k: int = 6) -> dict[str, Any]:
    """Random low-frequency surface modes (frequencies 1-2 along each local axis) for :class:`Blob`."""
    modes = rng.integers(0, 3, size=(k, 3)).astype(float)
    modes[modes.sum(axis=1) == 0, 2] = 1.0
    amps = rng.normal(0.0, 1.0, k)
    amps *= amplitude / max(float(np.abs(amps).sum()), 1e-9) * 1.6
    return {"modes": modes, "amps": amps, "phases": rng.uniform(0.0, 2 * np.pi, k)}


def tight_aabb(shape: Shape, step: float = 4.0, margin: float = 6.0) -> AABB:
    """The bounding box of the points of ``shape`` on a ``step`` mm lattice, grown by ``margin`` mm."""
    lo, hi = shape.aabb()
    axes = [np.arange(a + step / 2, b, step, dtype=np.float32) for a, b in zip(lo, hi)]
    pts = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    inside = pts[shape.mask(pts)]
    if not len(inside):
        return lo, hi
    return np.maximum(inside.min(axis=0) - margin, lo), np.minimum(inside.max(axis=0) + margin, hi)
