"""Ground-truth motion: the CT -> MR rigid transform and a breathing-like deformation for CT <-> CT.

* :func:`draw_rigid`: Euler angles uniform in +-``max_rotation_deg`` about
  each axis and a translation of 10-30 mm in a random 3D direction (z
  included), about the patient origin. It maps CT world points to MR world
  points (ITK's fixed -> moving with fixed = CT, moving = MR).
* :class:`BreathingDeformation`: the displacement ``u(x)`` (LPS mm) with
  ``deformed(x) = ct(x + u(x))`` (ITK's convention: fixed = deformed CT,
  moving = CT). Inside the abdominal cavity — a cylinder whose cross-section
  does not change along z — the contents move inferiorly by
  ``amplitude * g(z) * h(x, y)`` (10-20 mm at the liver) and anteriorly by a
  few mm that fade to zero at the wall; outside it (body wall, spine,
  paraspinal muscles, ribs) nothing moves. The jump at the cavity wall is a
  sliding interface: its normal has no z component, so the motion is purely
  tangential there and the map stays one-to-one. ``g`` is 1 below the
  diaphragm and decreases towards the lung apices and the pelvis; ``h``
  reduces the motion next to the spine (aorta, IVC, psoas move little).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from medbench.data.phantom.anatomy import Torso, _rounded_radius, _smoothstep
from medbench.image.transforms import DisplacementField, RigidTransform
from medbench.image.volume import Volume


def draw_rigid(rng: np.random.Generator, max_rotation_deg: float,
               translation_mm: tuple[float, float]) -> RigidTransform:
    """Random CT -> MR rigid transform (see the module doc)."""
    angles = rng.uniform(-max_rotation_deg, max_rotation_deg, 3)
    direction = rng.normal(size=3)
    direction /= np.linalg.norm(direction)
    translation = direction * rng.uniform(*translation_mm)
    return RigidTransform(tuple(float(a) for a in angles), tuple(float(t) for t in translation),  # type: ignore[arg-type]
                          (0.0, 0.0, 0.0))


@dataclass(frozen=True, eq=False)
class BreathingDeformation:
    """Analytic breathing motion (see the module doc); every length in mm, world (CT) coordinates."""

    center: tuple[float, float]
    cavity_half: tuple[float, float]
    squareness: float
    spine_half_x: float
    spine_front_y: float
    spine_back_y: float
    amplitude_mm: float  # inferior motion below the diaphragm
    anterior_mm: float  # anterior motion in the middle of the cavity
    z_dome: float  # where g starts to fall towards the apices
    z_top: float  # g = top_fraction above this
    top_fraction: float
    bottom_drop: float  # g falls by this fraction over 200 mm below the dome

    @classmethod
    def draw(cls, rng: np.random.Generator, torso: Torso, z_dome: float, scale: float,
             amplitude_mm: tuple[float, float]) -> BreathingDeformation:
        """A random breathing motion for a torso (anatomy mm, scaled by ``scale`` into world mm)."""
        s = float(scale)
        return cls(
            center=(float(torso.center[0]) * s, float(torso.center[1]) * s),
            cavity_half=(float(torso.cavity_half[0]) * s, float(torso.cavity_half[1]) * s),
            squareness=float(torso.squareness),
            spine_half_x=float(torso.spine_half_x) * s,
            spine_front_y=float(torso.spine_front_y) * s,
            spine_back_y=float(torso.spine_back_y) * s,
            amplitude_mm=float(rng.uniform(*amplitude_mm)),
            anterior_mm=float(rng.uniform(2.0, 5.0)),
            z_dome=float(z_dome) * s,
            z_top=float(z_dome) * s + 90.0,
            top_fraction=float(rng.uniform(0.3, 0.5)),
            bottom_drop=float(rng.uniform(0.15, 0.3)),
        )

    @property
    def max_displacement_mm(self) -> float:
        return float(np.hypot(self.amplitude_mm, self.anterior_mm))

    def _profile(self, z: np.ndarray) -> np.ndarray:
        up = _smoothstep((z - self.z_dome) / (self.z_top - self.z_dome))
        down = np.clip((self.z_dome - z) / 200.0, 0.0, 1.0)
        return 1.0 - (1.0 - self.top_fraction) * up - self.bottom_drop * down

    def displacement(self, points: np.ndarray) -> np.ndarray:
        """u at world points (N, 3) -> (N, 3) mm (float64 in, float64 out; float32 in, float32 out)."""
        p = np.asarray(points).reshape(-1, 3)
        if p.dtype != np.float32:
            p = p.astype(np.float64)
        x, y, z = p[:, 0], p[:, 1], p[:, 2]
        cx = self.center[0]
        r = _rounded_radius(x - cx, y - self.center[1], self.cavity_half[0], self.cavity_half[1], self.squareness)
        t = _smoothstep((np.abs(x - cx) - self.spine_half_x - 2.0) / 28.0)
        post = self.spine_front_y + (self.spine_back_y - self.spine_front_y) * t
        inside = (r <= 1.0) & (y < post)
        near_spine = _smoothstep((np.abs(x - cx) - self.spine_half_x) / 25.0)
        h = 0.35 + 0.65 * np.maximum(near_spine, _smoothstep((self.spine_front_y - 15.0 - y) / 20.0))
        g = self._profile(z)
        fade = _smoothstep((1.0 - r) / 0.3) * _smoothstep((post - y) / 30.0)
        u = np.zeros_like(p)
        u[:, 2] = np.where(inside, self.amplitude_mm * g * h, 0.0)
        u[:, 1] = np.where(inside, -self.anterior_mm * g * fade, 0.0)
        return u

    def apply(self, points: np.ndarray) -> np.ndarray:
        """x + u(x): deformed-CT points -> CT points."""
        p = np.asarray(points, dtype=float).reshape(-1, 3)
        return p + self.displacement(p)

    source_points = apply

    def apply_inverse(self, points: np.ndarray, iterations: int = 60) -> np.ndarray:
        """The q with q + u(q) = p (CT points -> deformed-CT points), by fixed-point iteration."""
        p = np.asarray(points, dtype=float).reshape(-1, 3)
        q = p.copy()
        for _ in range(iterations):
            q = p - self.displacement(q)
        return q

    deformed_points = apply_inverse

    def sample(self, grid: Volume) -> DisplacementField:
        """The dense field on ``grid`` (float32, LPS mm), for :class:`DisplacementField` consumers."""
        m = grid.affine.astype(np.float32)
        axes = [np.arange(n, dtype=np.float32) for n in grid.shape]
        pts = np.empty((*grid.shape, 3), np.float32)
        for c in range(3):
            pts[..., c] = (m[c, 3] + axes[0][:, None, None] * m[c, 0] + axes[1][None, :, None] * m[c, 1]
                           + axes[2][None, None, :] * m[c, 2])
        u = self.displacement(pts.reshape(-1, 3)).reshape(*grid.shape, 3)
        return DisplacementField.from_array(u.astype(np.float32), grid, name="displacement")

    def to_dict(self) -> dict[str, Any]:
        return {
            "convention": "deformed(x) = ct(x + u(x)); u in LPS mm; fixed = deformed CT, moving = CT",
            "model": "breathing: inferior motion amplitude*g(z)*h(x,y) and anterior motion inside the abdominal "
                     "cavity (z-invariant cylinder), zero outside (sliding at the wall)",
            **{k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> BreathingDeformation:
        names = cls.__dataclass_fields__
        values: dict[str, Any] = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k in names}
        return cls(**values)
