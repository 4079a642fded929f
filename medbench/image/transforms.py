"""Ground-truth spatial transforms: rigid, dense displacement fields, analytic deformations, landmarks.

One convention everywhere, ITK's: a transform maps points of the **fixed**
(reference) space to points of the **moving** space, so resampling the moving
image through it onto the fixed grid aligns the two. The phantom uses these
types to state its ground truth, and registration evaluation compares
estimated transforms against them.

* :class:`RigidTransform`: ``p_moving = R (p_fixed - c) + c + t`` with ITK's
  Euler3D angle order (R = Rz Rx Ry); converts to and from
  ``SimpleITK.Euler3DTransform``.
* :class:`DisplacementField`: a dense vector :class:`Volume` u(x) in LPS mm;
  ``apply(x) = x + u(x)`` (trilinear), the convention of ITK's
  ``DisplacementFieldTransform``.
* :class:`SmoothDeformation`: an analytic field (sum of Gaussian bumps) that
  can be evaluated anywhere and inverted at points.
* :class:`Landmarks`: named points with their positions in several spaces.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from medbench.errors import GeometryError
from medbench.image.volume import Volume


def euler_zxy(angles_deg: np.ndarray | tuple[float, float, float]) -> np.ndarray:
    """ITK Euler3DTransform rotation (default order): R = Rz @ Rx @ Ry, angles about x, y, z in degrees."""
    ax, ay, az = np.deg2rad(np.asarray(angles_deg, dtype=float))
    cx, sx, cy, sy, cz, sz = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay), np.cos(az), np.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ rx @ ry


def _points(points: np.ndarray) -> np.ndarray:
    pts = np.atleast_2d(np.asarray(points, dtype=float))
    if pts.shape[-1] != 3:
        raise GeometryError(f"points must be (N, 3) in mm, got shape {pts.shape}")
    return pts


@dataclass(frozen=True, eq=False)
class RigidTransform:
    """Rigid map from fixed points to moving points (LPS mm).

    ``p_moving = R (p_fixed - center) + center + translation`` with ``R`` built
    from ``angles_deg`` (about x, y, z) in ITK's Euler3DTransform order
    (R = Rz Rx Ry), so :attr:`sitk_parameters` plug straight into SimpleITK.
    """

    angles_deg: tuple[float, float, float]
    translation_mm: tuple[float, float, float]
    center_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @classmethod
    def identity(cls) -> RigidTransform:
        return cls((0.0, 0.0, 0.0), (0.0, 0.0, 0.0))

    @property
    def rotation(self) -> np.ndarray:
        return euler_zxy(np.asarray(self.angles_deg))

    @property
    def rotation_angle_deg(self) -> float:
        """The total rotation angle (axis-angle magnitude) in degrees."""
        cos = (np.trace(self.rotation) - 1.0) / 2.0
        return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))

    @property
    def matrix(self) -> np.ndarray:
        """4x4 homogeneous matrix of the fixed -> moving map."""
        r, c = self.rotation, np.asarray(self.center_mm)
        m = np.eye(4)
        m[:3, :3] = r
        m[:3, 3] = c + np.asarray(self.translation_mm) - r @ c
        return m

    @property
    def sitk_parameters(self) -> list[float]:
        """Euler3DTransform parameters: [angle_x, angle_y, angle_z (radians), tx, ty, tz (mm)]."""
        return [float(v) for v in np.deg2rad(self.angles_deg)] + [float(v) for v in self.translation_mm]

    @property
    def sitk_fixed_parameters(self) -> list[float]:
        """Euler3DTransform fixed parameters: [cx, cy, cz, compute_zyx=0]."""
        return [float(v) for v in self.center_mm] + [0.0]

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Map fixed points (N, 3) to moving points."""
        pts = _points(points)
        return pts @ self.matrix[:3, :3].T + self.matrix[:3, 3]

    def apply_inverse(self, points: np.ndarray) -> np.ndarray:
        """Map moving points (N, 3) back to fixed points."""
        pts = _points(points)
        return (pts - self.matrix[:3, 3]) @ self.matrix[:3, :3]

    def to_sitk(self) -> Any:
        """The equivalent ``SimpleITK.Euler3DTransform``."""
        import SimpleITK as sitk

        tx = sitk.Euler3DTransform()
        tx.SetFixedParameters(self.sitk_fixed_parameters)
        tx.SetParameters(self.sitk_parameters)
        return tx

    @classmethod
    def from_sitk(cls, tx: Any) -> RigidTransform:
        """From a SimpleITK Euler3D / VersorRigid3D transform (or a composite holding one)."""
        import SimpleITK as sitk

        if isinstance(tx, sitk.CompositeTransform):
            if tx.GetNumberOfTransforms() != 1:
                raise GeometryError("from_sitk: a composite of several transforms is not one rigid transform")
            tx = tx.GetNthTransform(0)
        name = tx.GetName()
        if name not in ("Euler3DTransform", "VersorRigid3DTransform"):
            try:
                tx = {"Transform": sitk.Euler3DTransform}.get(name, sitk.Euler3DTransform)(tx)
            except RuntimeError:
                raise GeometryError(f"from_sitk: {name} is not a rigid transform") from None
        euler = sitk.Euler3DTransform()
        euler.SetCenter(tx.GetCenter())
        euler.SetMatrix(tx.GetMatrix())
        euler.SetTranslation(tx.GetTranslation())
        p = euler.GetParameters()
        return cls(tuple(float(np.degrees(a)) for a in p[:3]), tuple(float(t) for t in p[3:]),  # type: ignore[arg-type]
                   tuple(float(c) for c in euler.GetCenter()))  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, Any]:
        return {
            "direction": "maps fixed points (LPS mm) to moving points: p_moving = R (p_fixed - c) + c + t",
            "angles_deg": list(self.angles_deg),
            "translation_mm": list(self.translation_mm),
            "center_mm": list(self.center_mm),
            "rotation_order": "R = Rz @ Rx @ Ry (ITK Euler3DTransform default)",
            "matrix": self.matrix.tolist(),
            "sitk_euler3d_parameters": self.sitk_parameters,
            "sitk_euler3d_fixed_parameters": self.sitk_fixed_parameters,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RigidTransform:
        return cls(tuple(d["angles_deg"]), tuple(d["translation_mm"]), tuple(d["center_mm"]))

    def __repr__(self) -> str:
        rot = ", ".join(f"{a:.2f}" for a in self.angles_deg)
        tr = ", ".join(f"{t:.2f}" for t in self.translation_mm)
        return f"RigidTransform(angles ({rot}) deg, translation ({tr}) mm)"


@dataclass(frozen=True, eq=False)
class DisplacementField:
    """A dense displacement u(x) on a grid: ``apply(x) = x + u(x)`` (fixed -> moving), LPS mm.

    ``field`` is a :class:`Volume` with role ``"vector"``. Between voxel
    centres u is interpolated trilinearly; outside the grid it is the nearest
    edge value (``mode="nearest"``), as ITK does with its default settings.
    """

    field: Volume

    def __post_init__(self) -> None:
        if self.field.role != "vector":
            raise GeometryError(f"DisplacementField needs a vector Volume [i, j, k, 3], got role {self.field.role!r}")

    @classmethod
    def from_array(cls, u: np.ndarray, grid: Volume, **meta: Any) -> DisplacementField:
        """From an array ``[i, j, k, 3]`` (LPS mm) on ``grid``."""
        return cls(Volume(np.asarray(u, dtype=np.float32), grid.affine, dict(meta), role="vector"))

    @classmethod
    def zeros(cls, grid: Volume) -> DisplacementField:
        return cls.from_array(np.zeros((*grid.shape, 3), np.float32), grid)

    @property
    def array(self) -> np.ndarray:
        """The field as ``[i, j, k, 3]`` (LPS mm)."""
        return self.field.array

    @property
    def magnitude(self) -> np.ndarray:
        """|u| per voxel (mm)."""
        return np.linalg.norm(self.field.array, axis=-1)

    def displacement(self, points: np.ndarray) -> np.ndarray:
        """u at arbitrary LPS points (N, 3), trilinear."""
        from scipy import ndimage

        ijk = self.field.index(_points(points))
        return np.stack(
            [ndimage.map_coordinates(self.field.array[..., c], ijk.T, order=1, mode="nearest") for c in range(3)],
            axis=-1,
        )

    def apply(self, points: np.ndarray) -> np.ndarray:
        """x + u(x) for fixed points (N, 3)."""
        pts = _points(points)
        return pts + self.displacement(pts)

    def to_sitk(self) -> Any:
        """A ``SimpleITK.DisplacementFieldTransform`` (a copy: the field is not consumed)."""
        import SimpleITK as sitk

        img = sitk.Cast(self.field.to_sitk(), sitk.sitkVectorFloat64)
        return sitk.DisplacementFieldTransform(img)

    @classmethod
    def from_transform(cls, transform: Any, grid: Volume) -> DisplacementField:
        """Sample any SimpleITK transform (or a :class:`RigidTransform`) on ``grid`` as u(x) = T(x) - x."""
        if isinstance(transform, RigidTransform):
            pts = grid.grid_points()
            u = (transform.apply(pts) - pts).reshape(*grid.shape, 3)
            return cls.from_array(u, grid)
        import SimpleITK as sitk

        ref = grid.to_sitk() if grid.array.ndim == 3 else grid.channel(0).to_sitk()
        flt = sitk.TransformToDisplacementFieldFilter()
        flt.SetReferenceImage(ref)
        flt.SetOutputPixelType(sitk.sitkVectorFloat64)
        img = flt.Execute(transform)
        return cls(Volume.from_sitk(img, role="vector"))


@dataclass(frozen=True, eq=False)
class SmoothDeformation:
    """An analytic displacement u(x) = sum_k a_k exp(-|x - c_k|^2 / (2 s_k^2)) (LPS mm).

    ``apply(x) = x + u(x)``: the moving (source) position of a fixed point. For a
    deformed image made as ``deformed(x) = original(x + u(x))`` the fixed
    space is the deformed image and the moving space the original.
    """

    centers_mm: np.ndarray  # (K, 3)
    sigmas_mm: np.ndarray  # (K,)
    amplitudes_mm: np.ndarray  # (K, 3)

    def displacement(self, points: np.ndarray) -> np.ndarray:
        """u at points (N, 3) -> (N, 3) mm."""
        pts = _points(points)
        out = np.zeros_like(pts)
        for c, s, a in zip(self.centers_mm, self.sigmas_mm, self.amplitudes_mm):
            w = np.exp(-np.sum((pts - c) ** 2, axis=1) / (2.0 * s * s))
            out += w[:, None] * a
        return out

    def apply(self, points: np.ndarray) -> np.ndarray:
        """x + u(x)."""
        pts = _points(points)
        return pts + self.displacement(pts)

    #: Alias kept for readability where the direction matters: deformed-image points -> original points.
    source_points = apply

    def apply_inverse(self, points: np.ndarray, iterations: int = 50) -> np.ndarray:
        """The q with q + u(q) = p (fixed-point iteration; converges for |grad u| < 1)."""
        p = _points(points)
        q = p.copy()
        for _ in range(iterations):
            q = p - self.displacement(q)
        return q

    deformed_points = apply_inverse

    def sample(self, grid: Volume) -> DisplacementField:
        """The dense field on ``grid``."""
        u = self.displacement(grid.grid_points()).reshape(*grid.shape, 3)
        return DisplacementField.from_array(u, grid)

    def to_dict(self) -> dict[str, Any]:
        return {
            "convention": "deformed(x) = original(x + u(x)); u in LPS mm; u = sum_k a_k exp(-|x-c_k|^2/(2 s_k^2))",
            "centers_mm": np.asarray(self.centers_mm).tolist(),
            "sigmas_mm": np.asarray(self.sigmas_mm).tolist(),
            "amplitudes_mm": np.asarray(self.amplitudes_mm).tolist(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SmoothDeformation:
        return cls(
            np.asarray(d["centers_mm"], dtype=float).reshape(-1, 3),
            np.asarray(d["sigmas_mm"], dtype=float).reshape(-1),
            np.asarray(d["amplitudes_mm"], dtype=float).reshape(-1, 3),
        )


@dataclass(frozen=True, eq=False)
class Landmarks:
    """Named points (LPS mm) and their positions in several spaces (e.g. ``ct``, ``mr``, ``deformed``).

    ``landmarks.ct`` (attribute access) or ``landmarks["ct"]`` gives the (N, 3) array of a space.
    """

    names: tuple[str, ...]
    points: Mapping[str, np.ndarray]

    def __post_init__(self) -> None:
        fixed = {}
        for space, arr in self.points.items():
            a = np.asarray(arr, dtype=float).reshape(-1, 3)
            if len(a) != len(self.names):
                raise GeometryError(f"landmarks: space {space!r} has {len(a)} points for {len(self.names)} names")
            fixed[str(space)] = a
        object.__setattr__(self, "points", fixed)

    @property
    def spaces(self) -> tuple[str, ...]:
        return tuple(self.points)

    def __getitem__(self, space: str) -> np.ndarray:
        try:
            return self.points[space]
        except KeyError:
            raise KeyError(f"landmarks have no space {space!r}; spaces: {', '.join(self.points)}") from None

    def __getattr__(self, space: str) -> np.ndarray:
        if space.startswith("_") or space in ("names", "points"):
            raise AttributeError(space)
        try:
            return self.__dict__["points"][space]
        except KeyError:
            raise AttributeError(f"landmarks have no space {space!r}") from None

    def __len__(self) -> int:
        return len(self.names)

    def table(self) -> pd.DataFrame:
        """One row per landmark, columns ``{space}_{x,y,z}``."""
        cols = {f"{space}_{axis}": arr[:, n] for space, arr in self.points.items() for n, axis in enumerate("xyz")}
        return pd.DataFrame(cols, index=pd.Index(self.names, name="landmark"))

    def _repr_html_(self) -> str:
        return str(self.table().round(2)._repr_html_())

    def to_dict(self) -> dict[str, Any]:
        return {
            name: {space: arr[n].tolist() for space, arr in self.points.items()} for n, name in enumerate(self.names)
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Landmarks:
        names = tuple(d)
        spaces = list(next(iter(d.values()))) if names else []
        return cls(names, {s: np.asarray([d[n][s] for n in names], dtype=float).reshape(-1, 3) for s in spaces})
