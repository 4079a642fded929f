"""The analytic abdomen of one case, in world millimetres, and its rendering onto any grid.

Coordinates are LPS mm (+x patient left, +y posterior, +z superior), origin
at the centre of the CT field of view. The anatomy is drawn once per case
(:func:`draw_anatomy`) and rendered onto a grid through an affine
:class:`Mapping` (identity for CT and PET, the inverse CT->MR rigid
transform for MR, a scale for the "scale" shift), so labels and images of
every modality and every profile come from the same analytic truth;
profiles change only the sampling.

The torso: an outline (a rounded ellipse whose size varies slowly along z)
with subcutaneous fat, a muscular wall and an abdominal cavity — an elliptic
cylinder that does not vary along z, so the breathing motion of its contents
slides exactly along its wall. Behind the cavity: the spine (vertebral
bodies with a thin cortex around cancellous bone, discs, canal with CSF,
arch, spinous and transverse processes) and the paraspinal muscles; ribs in
the wall above the lower costal margin. Inside: lung bases above the two
hemidiaphragm domes, the heart/mediastinum, liver (three lobes with portal
and hepatic vessels), spleen, kidneys (with renal pelvis and gapped
perirenal fat), stomach (wall, contents, gas cap), pancreas, gallbladder,
aorta, IVC, portal and splenic veins, psoas muscles, and bowel loops (wall,
fluid, gas, patches of physiological uptake) mixed with mesenteric fat
filling the rest. Organ volumes follow per-case log-normal targets
(:data:`VOLUME_TARGETS`), positions vary by 5-15 mm, shapes by smooth modes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

import numpy as np

from medbench.data.phantom.fields import FieldBank
from medbench.data.phantom.labels import (
    AORTA,
    BONE,
    BOWEL,
    FAT,
    GALLBLADDER,
    IVC,
    KIDNEY_L,
    KIDNEY_R,
    LIVER,
    LUNG,
    MUSCLE,
    PANCREAS,
    PORTAL_VEIN,
    SOFT,
    SPINAL_CANAL,
    SPLEEN,
    STOMACH,
    T,
)
from medbench.data.phantom.shapes import AABB, Blob, Capsule, Shape, Union, ZTube, perturbation, tight_aabb
from medbench.image.transforms import RigidTransform, euler_zxy
from medbench.image.volume import Volume

#: Per-case organ volume targets (mL): log-normal median, log-SD, and clip range.
#: Literature: liver 1200-2000 mL, spleen 100-350 mL, kidneys 100-200 mL each (adult CT volumetry).
VOLUME_TARGETS: dict[int, tuple[float, float, float, float]] = {
    LIVER: (1550.0, 0.26, 800.0, 2800.0),
    SPLEEN: (190.0, 0.40, 60.0, 600.0),
    KIDNEY_L: (150.0, 0.24, 70.0, 280.0),
    KIDNEY_R: (145.0, 0.24, 70.0, 280.0),
}
#: Filler tissue id before the bowel / mesenteric-fat split (internal).
_FILLER = 255
_NORMAL = NormalDist()
_WHOLE: AABB = (np.full(3, -1e4), np.full(3, 1e4))


def _rot(ax: float = 0.0, ay: float = 0.0, az: float = 0.0) -> np.ndarray:
    return euler_zxy(np.array([ax, ay, az]))


def _rounded_radius(x: np.ndarray, y: np.ndarray, a: Any, b: Any, w: float) -> np.ndarray:
    """``(1 - w) |(x/a, y/b)|_2 + w |(x/a, y/b)|_4``: an ellipse (w = 0) rounded towards a rectangle."""
    xa = np.asarray(x, np.float32) / np.asarray(a, np.float32)
    yb = np.asarray(y, np.float32) / np.asarray(b, np.float32)
    u2 = xa * xa
    v2 = yb * yb
    r = np.sqrt(u2 + v2)
    if w:
        r = np.float32(1 - w) * r + np.float32(w) * np.sqrt(np.sqrt(u2 * u2 + v2 * v2))
    return r


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


@dataclass(frozen=True, eq=False)
class Torso:
    """Body outline, subcutaneous fat, muscular wall and the abdominal cavity (a z-invariant cylinder).

    ``half`` is the outline's half width/depth (mm) at its mean size; the
    outline scales by ``1 + wobble sin(2 pi z / period + phase)``. The cavity
    is the rounded ellipse ``cavity_half`` (constant along z) cut posteriorly
    by ``y < posterior_y(x)``: in front of the vertebral body near the
    midline, behind the kidneys laterally.
    """

    center: np.ndarray  # (x, y)
    half: np.ndarray  # (a, b)
    squareness: float
    wobble: float
    period: float
    phase: float
    fat: float
    wall: float
    cavity_half: np.ndarray
    spine_half_x: float
    spine_front_y: float  # anterior surface of the vertebral bodies (absolute y)
    spine_back_y: float  # posterior limit of the cavity lateral to the spine (absolute y)

    def size(self, z: np.ndarray) -> np.ndarray:
        zz = np.asarray(z, np.float32)
        return np.float32(1.0) + np.float32(self.wobble) * np.sin(
            zz * np.float32(2 * np.pi / self.period) + np.float32(self.phase))

    def body_radius(self, pts: np.ndarray, inset_mm: float = 0.0) -> np.ndarray:
        s = self.size(pts[:, 2])
        a, b = np.float32(self.half[0]), np.float32(self.half[1])
        return _rounded_radius(pts[:, 0] - np.float32(self.center[0]), pts[:, 1] - np.float32(self.center[1]),
                               a * s - np.float32(inset_mm), b * s - np.float32(inset_mm), self.squareness)

    def posterior_y(self, x: np.ndarray) -> np.ndarray:
        t = _smoothstep((np.abs(np.asarray(x, np.float32) - np.float32(self.center[0]))
                         - np.float32(self.spine_half_x + 2.0)) / np.float32(28.0))
        return np.float32(self.spine_front_y) + np.float32(self.spine_back_y - self.spine_front_y) * t

    def cavity_radius(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return _rounded_radius(np.asarray(x, np.float32) - np.float32(self.center[0]),
                               np.asarray(y, np.float32) - np.float32(self.center[1]),
                               float(self.cavity_half[0]), float(self.cavity_half[1]), self.squareness)

    def cavity(self, pts: np.ndarray, margin_mm: float = 0.0) -> np.ndarray:
        x, y = pts[:, 0], pts[:, 1]
        lim = 1.0 - margin_mm / float(min(self.cavity_half))
        return (self.cavity_radius(x, y) <= lim) & (y < self.posterior_y(x) - margin_mm)


@dataclass(frozen=True, eq=False)
class Dome:
    """The two hemidiaphragm domes: ``z = apex - depth * r^2 - tilt * y`` (right and left; the higher wins)."""

    apex: tuple[float, float]  # right, left apex z (mm)
    center_x: tuple[float, float]
    center_y: float
    radius: tuple[float, float]  # (x, y) mm: where the dome has fallen by ``depth``
    depth: float
    tilt: float  # mm per mm of y: posterior recesses are deeper

    def z(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        x, y = np.asarray(x, np.float32), np.asarray(y, np.float32)
        dy = (y - np.float32(self.center_y)) / np.float32(self.radius[1])
        common = np.float32(self.depth) * dy * dy + np.float32(self.tilt * self.radius[1]) * dy
        out = None
        for apex, cx in zip(self.apex, self.center_x):
            dx = (x - np.float32(cx)) / np.float32(self.radius[0])
            zz = np.float32(apex) - np.float32(self.depth) * dx * dx
            out = zz if out is None else np.maximum(out, zz)
        assert out is not None
        return out - common


@dataclass(frozen=True, eq=False)
class Spine:
    """Lower thoracic / lumbar spine along z: vertebral bodies, discs, canal, arch and processes."""

    center: np.ndarray  # (x, y) of the vertebral body
    half: np.ndarray  # (x, y) half-axes of the vertebral body
    cortex: float
    period: float
    disc: float
    phase: float
    canal: float
    arch: float
    process: float
    transverse: float

    @property
    def canal_center_y(self) -> float:
        return float(self.center[1] + self.half[1] + self.canal + 1.0)

    def aabb(self) -> AABB:
        lo = np.array([self.center[0] - self.half[0] - self.transverse - 6, self.center[1] - self.half[1] - 2, -1e4])
        hi = np.array([self.center[0] + self.half[0] + self.transverse + 6,
                       self.center[1] + self.half[1] + 2 * self.canal + self.arch + self.process + 4, 1e4])
        return lo, hi

    def tissues(self, pts: np.ndarray) -> np.ndarray:
        """Tissue id per point (0 = not spine); the label is bone except the canal (spinal_canal)."""
        dx = pts[:, 0] - self.center[0]
        dy = pts[:, 1] - self.center[1]
        out = np.zeros(len(pts), np.uint8)
        vb = (dx / self.half[0]) ** 2 + (dy / self.half[1]) ** 2
        inner = (dx / (self.half[0] - self.cortex)) ** 2 + (dy / (self.half[1] - self.cortex)) ** 2
        zz = np.mod(pts[:, 2] - self.phase, self.period)
        disc = zz < self.disc
        plate = (zz < self.disc + self.cortex) | (zz > self.period - self.cortex)
        in_vb = vb <= 1.0
        out[in_vb & ~disc] = T["cancellous_bone"]
        out[in_vb & ~disc & ((inner > 1.0) | plate)] = T["cortical_bone"]
        out[in_vb & disc] = T["disc"]
        cy = self.canal_center_y
        r = np.hypot(dx, pts[:, 1] - cy)
        vert = ~disc
        arch = vert & (r >= self.canal) & (r <= self.canal + self.arch) & (pts[:, 1] >= cy - 0.2 * self.canal)
        top = cy + self.canal + self.arch * 0.5
        spinous = vert & (np.abs(dx) <= 3.0) & (pts[:, 1] >= top) & (pts[:, 1] <= top + self.process)
        trans = vert & (np.abs(pts[:, 1] - cy) <= 4.0) & (np.abs(dx) >= self.canal) \
            & (np.abs(dx) <= self.half[0] + self.transverse)
        out[arch | spinous | trans] = T["cortical_bone"]
        out[r < self.canal] = 0  # the canal is its own layer (spinal_canal, CSF)
        return out


@dataclass(frozen=True, eq=False)
class Ribs:
    """Ribs in the abdominal wall above ``z_low``: bands periodic along an oblique z, cortex around marrow."""

    torso: Torso
    z_low: float
    period: float
    height: float
    thickness: float
    slope: float
    phase: float

    def tissues(self, pts: np.ndarray, cavity_radius: np.ndarray) -> np.ndarray:
        t = self.torso
        x, y, z = pts[:, 0], pts[:, 1], pts[:, 2]
        mm = float(min(t.cavity_half))
        r = cavity_radius
        ring = (r > 1.0 + 0.5 / mm) & (r < 1.0 + self.thickness / mm)
        zphase = np.mod(z + self.slope * (t.center[1] - y) - self.phase, self.period)
        band = zphase < self.height
        gap = ((np.abs(x - t.center[0]) < 0.3 * t.cavity_half[0]) & (y < t.center[1])) \
            | ((np.abs(x - t.center[0]) < t.spine_half_x + 20.0) & (y > t.spine_front_y))
        rib = ring & band & ~gap & (z > self.z_low - self.slope * (y - t.center[1]))
        out = np.zeros(len(pts), np.uint8)
        edge = (zphase < 1.6) | (zphase > self.height - 1.6) | (r < 1.0 + 2.0 / mm) \
            | (r > 1.0 + (self.thickness - 1.5) / mm)
        out[rib] = T["cancellous_bone"]
        out[rib & edge] = T["cortical_bone"]
        return out


# --------------------------------------------------------------------------
# rendering machinery
# --------------------------------------------------------------------------
class PointSet:
    """Voxels of a grid being painted (flat indices) with their anatomy points and lazily cached regions."""

    def __init__(self, ctx: RenderContext, flat: np.ndarray):
        self.ctx, self.flat = ctx, flat
        self.pts = ctx.pts.reshape(-1, 3)[flat]
        self._regions: dict[str, np.ndarray] = {}

    def region(self, name: str) -> np.ndarray:
        """Float32 fields at the points: body / under-fat / cavity radius, posterior offset, height above the dome."""
        if name not in self._regions:
            p, a = self.pts, self.ctx.anatomy
            if name == "body_radius":
                v = a.torso.body_radius(p)
            elif name == "fat_radius":
                v = a.torso.body_radius(p, inset_mm=a.torso.fat)
            elif name == "cavity_radius":
                v = a.torso.cavity_radius(p[:, 0], p[:, 1])
            elif name == "posterior":
                v = p[:, 1] - a.torso.posterior_y(p[:, 0])
            elif name == "above_dome":
                v = p[:, 2] - a.dome.z(p[:, 0], p[:, 1])
            else:
                raise KeyError(name)
            self._regions[name] = np.asarray(v, dtype=np.float32)
        return self._regions[name]


class View:
    """The voxels a layer is about to paint: their anatomy points, current labels and cached regions."""

    def __init__(self, points: PointSet, sel: np.ndarray):
        self.points, self.sel = points, sel
        self._pts: np.ndarray | None = None

    @property
    def pts(self) -> np.ndarray:
        if self._pts is None:
            self._pts = self.points.pts[self.sel]
        return self._pts

    @property
    def labels(self) -> np.ndarray:
        return self.points.ctx.label.reshape(-1)[self.points.flat[self.sel]]

    def region(self, name: str) -> np.ndarray:
        return self.points.region(name)[self.sel]

    def cavity(self, margin_mm: float = 0.0) -> np.ndarray:
        torso = self.points.ctx.anatomy.torso
        lim = 1.0 - margin_mm / float(min(torso.cavity_half))
        return (self.region("cavity_radius") <= lim) & (self.region("posterior") < -margin_mm)

    def subset(self, keep: np.ndarray) -> View:
        return View(self.points, self.sel[keep])


Where = Callable[[View], np.ndarray]
TissueFn = Callable[[View], np.ndarray]


@dataclass(frozen=True, eq=False)
class Layer:
    """One painting step: where ``shape`` (and ``where``) holds, set ``label`` and ``tissue``.

    ``label`` None keeps the label (tissue-only detail such as vessels inside
    the liver). ``tissue`` is a tissue id or a function of the :class:`View`
    returning ids (0 = leave the voxel alone). ``box`` bounds the layer
    (anatomy mm). ``thin`` layers (thinner than two voxels somewhere) are
    always painted at full resolution, after the thick ones.
    """

    name: str
    shape: Shape | None
    label: int | None
    tissue: int | TissueFn
    where: Where | None = None
    box: AABB | None = None
    thin: bool = False

    def aabb(self) -> AABB:
        if self.box is not None:
            return self.box
        return _WHOLE if self.shape is None else self.shape.aabb()


@dataclass(frozen=True, eq=False)
class Anatomy:
    """One case's analytic anatomy (everything in mm) and what the renderer needs to paint it."""

    torso: Torso
    dome: Dome
    spine: Spine
    ribs: Ribs
    organs: dict[str, Shape]  # named shapes ("liver", "spleen", "kidney_left", "kidney_right", ...)
    layers: tuple[Layer, ...]
    fields: FieldBank
    visceral_fat: float  # fraction of the free cavity that is mesenteric fat
    filler: Callable[[np.ndarray], np.ndarray]  # tissue of the free cavity (bowel or mesenteric fat) at points
    landmarks: dict[str, np.ndarray] = field(default_factory=dict)

    def host_shape(self, label: int) -> Shape:
        names = {LIVER: "liver", SPLEEN: "spleen", KIDNEY_L: "kidney_left", KIDNEY_R: "kidney_right"}
        return self.organs[names[label]]


@dataclass(frozen=True, eq=False)
class Mapping:
    """From a target grid's world points to anatomy points (affine).

    ``p_ct = rigid.apply_inverse(p)`` (MR world -> CT world; ``rigid`` maps
    CT to MR), then ``/ scale`` (the anatomy drawn ``scale`` times its size).
    """

    rigid: RigidTransform | None = None
    scale: float = 1.0

    def matrix(self) -> np.ndarray:
        """4x4 world -> anatomy."""
        m = np.eye(4)
        if self.rigid is not None:
            m = np.linalg.inv(self.rigid.matrix)
        return np.diag([1 / self.scale] * 3 + [1.0]) @ m

    def to_anatomy(self, points: np.ndarray) -> np.ndarray:
        p = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        m = self.matrix()
        return (p @ m[:3, :3].T + m[:3, 3]).astype(np.float32)


#: Coarse-to-fine rendering: an axis is sampled every second voxel first when its spacing is at most this (mm).
COARSE_MAX_SPACING_MM = 4.5


class RenderContext:
    """A grid being painted: the anatomy point of every voxel and the label / tissue arrays."""

    def __init__(self, anatomy: Anatomy, grid: Volume, mapping: Mapping):
        self.anatomy, self.grid = anatomy, grid
        self.vox_to_anat = mapping.matrix() @ grid.affine
        nx, ny, nz = grid.shape
        m = self.vox_to_anat.astype(np.float32)
        i = np.arange(nx, dtype=np.float32)[:, None, None]
        j = np.arange(ny, dtype=np.float32)[None, :, None]
        k = np.arange(nz, dtype=np.float32)[None, None, :]
        self.pts = np.empty((nx, ny, nz, 3), np.float32)
        for c in range(3):
            self.pts[..., c] = m[c, 3] + i * m[c, 0] + j * m[c, 1] + k * m[c, 2]
        self.label = np.zeros(grid.shape, np.uint8)
        self.tissue = np.zeros(grid.shape, np.uint8)

    def box_flat(self, aabb: AABB) -> np.ndarray:
        """Flat indices of the voxels whose anatomy points may lie in ``aabb``."""
        lo, hi = (np.clip(np.asarray(v, float), -1e4, 1e4) for v in aabb)
        corners = np.array([[x, y, z, 1.0] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
        ijk = (corners @ np.linalg.inv(self.vox_to_anat).T)[:, :3]
        a = np.maximum(np.floor(ijk.min(axis=0)).astype(int), 0)
        b = np.minimum(np.ceil(ijk.max(axis=0)).astype(int) + 1, np.asarray(self.grid.shape))
        if np.any(b <= a):
            return np.zeros(0, np.intp)
        nx, ny, nz = self.grid.shape
        ii, jj, kk = (np.arange(a[n], b[n]) for n in range(3))
        return ((ii[:, None, None] * ny + jj[None, :, None]) * nz + kk[None, None, :]).reshape(-1)

    def paint(self, layers: list[Layer], points: PointSet) -> None:
        """Paint ``layers`` in order onto the voxels of ``points``."""
        label, tissue = self.label.reshape(-1), self.tissue.reshape(-1)
        for layer in layers:
            if not len(points.flat):
                return
            lo, hi = layer.aabb()
            p = points.pts
            if layer.box is None and layer.shape is None:
                sel = np.arange(len(p))
            else:
                inside = np.ones(len(p), bool)
                for c in range(3):
                    if lo[c] > -1e3:
                        inside &= p[:, c] >= np.float32(lo[c])
                    if hi[c] < 1e3:
                        inside &= p[:, c] <= np.float32(hi[c])
                sel = np.flatnonzero(inside)
            if layer.shape is not None and len(sel):
                sel = sel[layer.shape.mask(p[sel])]
            view = View(points, sel)
            if layer.where is not None and len(sel):
                view = view.subset(layer.where(view))
            if not len(view.sel):
                continue
            if callable(layer.tissue):
                vals = layer.tissue(view)
                keep = vals > 0
                view, vals = view.subset(keep), vals[keep]
            else:
                vals = np.full(len(view.sel), layer.tissue, np.uint8)
            flat = points.flat[view.sel]
            tissue[flat] = vals
            if layer.label is not None:
                label[flat] = layer.label

    def paint_thick(self, layers: list[Layer]) -> None:
        """Paint thick layers coarse-to-fine: every second voxel first, then only cells whose corners differ."""
        shape = np.asarray(self.grid.shape)
        spacing = np.asarray(self.grid.spacing)
        step = np.where(spacing <= COARSE_MAX_SPACING_MM, 2, 1)
        nx, ny, nz = shape
        if np.all(step == 1):
            self.paint(layers, PointSet(self, np.arange(nx * ny * nz)))
            return
        samples = []
        for n, st in zip(shape, step):
            c = np.arange(0, n, st)
            samples.append(c if c[-1] == n - 1 else np.append(c, n - 1))
        ci, cj, ck = samples
        coarse = ((ci[:, None, None] * ny + cj[None, :, None]) * nz + ck[None, None, :]).reshape(-1)
        self.paint(layers, PointSet(self, coarse))
        key = (self.label.astype(np.uint16) << 8 | self.tissue)[np.ix_(ci, cj, ck)]
        uniform = np.ones(tuple(len(c) - 1 for c in samples), bool)
        for di in (0, 1):
            for dj in (0, 1):
                for dk in (0, 1):
                    uniform &= key[:-1, :-1, :-1] == key[di:len(ci) - 1 + di, dj:len(cj) - 1 + dj,
                                                         dk:len(ck) - 1 + dk]
        cell = [np.clip(np.searchsorted(c, np.arange(n), side="right") - 1, 0, len(c) - 2)
                for c, n in zip(samples, shape)]
        fine_uniform = uniform[np.ix_(*cell)]
        is_sample = np.zeros(tuple(shape), bool)
        is_sample[np.ix_(ci, cj, ck)] = True
        fill = fine_uniform & ~is_sample
        corner = key[np.ix_(*cell)]
        self.label[fill] = (corner[fill] >> 8).astype(np.uint8)
        self.tissue[fill] = (corner[fill] & 0xFF).astype(np.uint8)
        refine = np.flatnonzero(~fine_uniform & ~is_sample)
        self.paint(layers, PointSet(self, refine))


@dataclass
class Rendered:
    """A rendering on one grid: labels, tissue ids and the anatomy point of every voxel."""

    grid: Volume
    label: np.ndarray  # uint8 [i, j, k]
    tissue: np.ndarray  # uint8 [i, j, k]
    points: np.ndarray  # float32 [i, j, k, 3] anatomy-space mm


def classify(anatomy: Anatomy, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Label and tissue id at arbitrary anatomy points (N, 3), painted exactly as :func:`render` paints voxels."""
    pts = np.asarray(points, dtype=np.float32).reshape(-1, 3)
    ctx = RenderContext.__new__(RenderContext)
    ctx.anatomy, ctx.grid = anatomy, None  # type: ignore[assignment]
    ctx.pts = pts.reshape(-1, 1, 1, 3)
    ctx.label = np.zeros((len(pts), 1, 1), np.uint8)
    ctx.tissue = np.zeros((len(pts), 1, 1), np.uint8)
    every = PointSet(ctx, np.arange(len(pts)))
    ctx.paint([layer for layer in anatomy.layers if not layer.thin], every)
    ctx.paint([layer for layer in anatomy.layers if layer.thin], every)
    label, tissue = ctx.label.reshape(-1), ctx.tissue.reshape(-1)
    filler = tissue == _FILLER
    if filler.any():
        tissue[filler] = anatomy.filler(pts[filler])
        label[filler & (tissue != T["fat"])] = BOWEL
    return label, tissue


def render(anatomy: Anatomy, grid: Volume, mapping: Mapping | None = None) -> Rendered:
    """Paint the anatomy onto ``grid`` (voxel centres) through ``mapping`` (default identity)."""
    ctx = RenderContext(anatomy, grid, mapping or Mapping())
    ctx.paint_thick([layer for layer in anatomy.layers if not layer.thin])
    for layer in anatomy.layers:
        if layer.thin:
            flat = ctx.box_flat(layer.aabb())
            if len(flat):
                ctx.paint([layer], PointSet(ctx, flat))
    filler = ctx.tissue == _FILLER
    if filler.any():
        ctx.tissue[filler] = anatomy.filler(ctx.pts[filler])
        ctx.label[filler & (ctx.tissue != T["fat"])] = BOWEL
    return Rendered(grid, ctx.label, ctx.tissue, ctx.pts)


# --------------------------------------------------------------------------
# drawing a case
# --------------------------------------------------------------------------
def _lognormal_target(rng: np.random.Generator, label: int) -> float:
    median, sd, lo, hi = VOLUME_TARGETS[label]
    return float(np.clip(median * np.exp(rng.normal(0.0, sd)), lo, hi))


def _shape_volume_ml(shape: Shape, keep: Callable[[np.ndarray], np.ndarray], step: float = 6.0) -> float:
    lo, hi = shape.aabb()
    axes = [np.arange(a + step / 2, b, step, dtype=np.float32) for a, b in zip(lo, hi)]
    pts = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    inside = shape.mask(pts)
    inside[inside] &= keep(pts[inside])
    return float(inside.sum()) * step**3 / 1000.0


def _fit_volume(make: Callable[[float], Shape], keep: Callable[[np.ndarray], np.ndarray], target_ml: float) -> Shape:
    """Scale a shape uniformly (three steps on the cube root) so its kept volume is ``target_ml``."""
    k = 1.0
    for _ in range(3):
        vol = _shape_volume_ml(make(k), keep)
        k = float(np.clip(k * (target_ml / max(vol, 1.0)) ** (1.0 / 3.0), 0.5, 1.8))
    return make(k)


def _scaled_union(blobs: list[Blob], origin: np.ndarray) -> Callable[[float], Shape]:
    def make(k: float) -> Shape:
        return Union(tuple(b.scaled(k, origin) for b in blobs))
    return make


def draw_anatomy(rng: np.random.Generator, fields: FieldBank) -> Anatomy:
    """A random adult abdomen (see the module doc); every length in mm."""

    def u(lo: float, hi: float) -> float:
        return float(rng.uniform(lo, hi))

    def jitter(sd: float = 7.0) -> np.ndarray:
        return rng.normal(0.0, sd, 3)

    # ---- torso, diaphragm, spine, ribs ----------------------------------------
    a_body = u(145.0, 184.0)  # times the slow size wobble (< 3.5 %): 280-380 mm wide
    b_body = a_body * u(0.68, 0.80)
    squareness = u(0.1, 0.5)
    wobble = u(0.015, 0.035)
    fat = float(np.clip(6.0 + (a_body - 140.0) * 0.45 + rng.normal(0, 4.0), 6.0, 40.0))
    wall = u(10.0, 15.0)
    center = np.array([u(-12.0, 12.0), u(-8.0, 8.0)])  # where the patient lies on the table
    cav = np.array([a_body * (1 - wobble) - fat - wall, b_body * (1 - wobble) - fat - wall])
    z_dome = 72.0 + u(-18.0, 18.0) + rng.normal(0.0, 4.0)  # right hemidiaphragm apex (patient position varies)
    z_left = z_dome - u(8.0, 20.0)  # the left apex is lower
    vb_half = np.array([u(21.0, 26.0), u(16.0, 20.0)])
    canal = u(8.0, 10.0)
    vb_center = np.array([center[0] + rng.normal(0, 2.0), center[1] + 0.42 * cav[1] + rng.normal(0, 3.0)])
    torso = Torso(
        center=center, half=np.array([a_body, b_body]), squareness=squareness, wobble=wobble, period=u(180.0, 260.0),
        phase=u(0.0, 2 * np.pi), fat=fat, wall=wall, cavity_half=cav, spine_half_x=float(vb_half[0]),
        spine_front_y=float(vb_center[1] - vb_half[1] - 3.0),
        spine_back_y=float(vb_center[1] + vb_half[1] + 2 * canal + 8.0),  # behind the transverse processes
    )
    cx, cy = center
    ac, bc = cav
    dome = Dome(apex=(z_dome, z_left), center_x=(cx - 0.45 * ac, cx + 0.45 * ac), center_y=cy - 0.05 * bc,
                radius=(0.62 * ac, 0.95 * bc), depth=u(35.0, 55.0), tilt=u(0.10, 0.25))
    period = u(32.0, 38.0)
    back_room = float(cy + b_body - fat - (vb_center[1] + vb_half[1] + 2 * canal + 6.0))
    spine = Spine(center=vb_center, half=vb_half, cortex=1.5, period=period, disc=0.25 * period, phase=u(0.0, period),
                  canal=canal, arch=5.0, process=float(np.clip(back_room - 10.0, 10.0, u(25.0, 35.0))),
                  transverse=u(10.0, 14.0))  # short: their tips stay outside the cavity
    ribs = Ribs(torso, z_low=z_dome - u(95.0, 125.0), period=u(30.0, 36.0), height=u(9.0, 12.0),
                thickness=float(min(wall - 1.0, 10.0)), slope=u(0.25, 0.45), phase=u(0.0, 36.0))

    def rel(xr: float, yr: float, zr: float) -> np.ndarray:
        return np.array([cx + xr * ac, cy + yr * bc, z_dome + zr])

    def organ_keep(p: np.ndarray) -> np.ndarray:
        return (p[:, 2] < dome.z(p[:, 0], p[:, 1]) - 6.0) & torso.cavity(p, 3.0)

    def blob(c: np.ndarray, half: tuple[float, float, float], rot: np.ndarray, amp: float = 0.08,
             **kw: Any) -> Blob:
        axis_scale = np.exp(rng.normal(0.0, 0.15, 3))
        return Blob(c, np.asarray(half) * axis_scale, rot, **kw, **perturbation(rng, amp))

    # ---- kidneys (with renal pelvis) -------------------------------------------
    def kidney(side: int, label: int, z: float) -> tuple[Shape, Blob, Blob]:
        c = rel(side * 0.58, 0.36, z) + rng.normal(0.0, 1.0, 3) * np.array([9.0, 7.0, 12.0])
        rot = _rot(ay=side * u(5, 12), az=-side * u(18, 32))
        b = blob(c, (27.0, 23.0, 55.0), rot, 0.06, bend=(-side * u(0.15, 0.3), 0.0))
        shape = _fit_volume(_scaled_union([b], c), lambda p: torso.cavity(p, 2.0), _lognormal_target(rng, label))
        assert isinstance(shape, Union) and isinstance(shape.parts[0], Blob)
        kb = shape.parts[0]
        medial = kb.center - side * 0.45 * kb.half[0] * kb.rotation[:, 0]
        pelvis = Blob(medial, np.array([0.34, 0.38, 0.32]) * kb.half, kb.rotation)
        return shape, pelvis, kb

    kidney_l, pelvis_l, kb_l = kidney(+1, KIDNEY_L, z_left - z_dome - 108.0)
    kidney_r, pelvis_r, kb_r = kidney(-1, KIDNEY_R, -138.0)

    # ---- liver: right lobe (tapering downwards), left lobe (pointing left), segment IV / caudate
    liver_origin = rel(-0.30, 0.0, -65.0) + jitter(9.0)
    shift = liver_origin - rel(-0.30, 0.0, -65.0)
    left_axes = np.column_stack([[0, 1, 0], [0, 0, 1], [1, 0, 0]]).astype(float)  # local z -> patient left
    liver_blobs = [
        blob(rel(-0.50, 0.04, -72.0) + shift, (72.0, 80.0, 72.0), _rot(az=u(-12, 6)), 0.10,
             squareness=u(0.1, 0.35), bend=(u(-0.15, 0.15), u(-0.1, 0.1)), taper=(u(0.15, 0.35), u(0.05, 0.25))),
        blob(rel(0.02, -0.45, -45.0) + shift + jitter(5.0), (32.0, 36.0, u(55.0, 90.0)),
             _rot(az=u(-15, 15)) @ left_axes, 0.08, taper=(u(-0.6, -0.3), u(-0.6, -0.3))),
        blob(rel(-0.18, 0.06, -55.0) + shift, (42.0, 48.0, 48.0), _rot(az=u(-10, 10)), 0.08),
    ]

    def liver_keep(p: np.ndarray) -> np.ndarray:
        return organ_keep(p) & ~kidney_r.mask(p)

    liver = _fit_volume(_scaled_union(liver_blobs, liver_origin), liver_keep, _lognormal_target(rng, LIVER))

    # ---- spleen ---------------------------------------------------------------
    spleen_c = rel(0.60, 0.34, z_left - z_dome - 58.0) + jitter()
    spleen_blob = blob(spleen_c, (22.0, 48.0, 52.0), _rot(ax=u(-10, 10), ay=u(-15, 5), az=u(25, 45)), 0.10,
                       bend=(u(0.15, 0.35), 0.0))

    def spleen_keep(p: np.ndarray) -> np.ndarray:
        return organ_keep(p) & ~kidney_l.mask(p)

    spleen = _fit_volume(_scaled_union([spleen_blob], spleen_c), spleen_keep, _lognormal_target(rng, SPLEEN))

    # ---- stomach, pancreas, gallbladder -----------------------------------------
    distension = u(0.7, 1.25)
    st_shift = jitter()
    stomach_blobs = [
        Blob(rel(0.40, 0.0, z_left - z_dome - 35.0) + st_shift, np.array([44.0, 42.0, 40.0]) * distension,
             _rot(az=u(-10, 10)), **perturbation(rng, 0.08)),
        Blob(rel(0.28, -0.42, -80.0) + st_shift, np.array([40.0, 28.0, 45.0]) * distension,
             _rot(ax=u(-20, 0), az=u(20, 40)), **perturbation(rng, 0.08)),
        Blob(rel(0.0, -0.55, -112.0) + st_shift, np.array([36.0, 20.0, 22.0]) * distension, _rot(az=u(-10, 10)),
             **perturbation(rng, 0.06)),
    ]
    stomach = Union(tuple(stomach_blobs))
    lumen = Union(tuple(b.shrunk(4.0) for b in stomach_blobs))
    st_lo, st_hi = tight_aabb(stomach, step=6.0, margin=0.0)
    gas_y = float(st_lo[1] + u(0.10, 0.30) * (st_hi[1] - st_lo[1]))

    pj = jitter(5.0)
    head, neck = rel(-0.22, -0.22, -140.0) + pj, rel(-0.03, -0.24, -126.0) + pj
    body_, tail = rel(0.25, -0.16, -115.0) + pj, spleen_c + np.array([-0.15 * ac, -0.12 * bc, -25.0])
    pancreas = Union((Capsule(head, neck, u(13, 16), 11.0), Capsule(neck, body_, 11.0, 10.0),
                      Capsule(body_, tail, 10.0, u(7, 9))))
    gb = Blob(rel(-0.32, -0.40, -100.0) + shift + jitter(4.0), np.array([15.0, 14.0, 34.0]) * u(0.75, 1.2),
              _rot(ax=u(20, 40), az=u(-20, 0)), taper=(0.25, 0.25), **perturbation(rng, 0.05))
    has_gb = rng.uniform() < 0.85

    # ---- vessels -------------------------------------------------------------------
    r_aorta = u(9.0, 14.0)
    ax0 = cx + 12.0 + rng.normal(0, 3.0)
    ay0 = vb_center[1] - vb_half[1] - r_aorta - 2.0
    aorta = ZTube(-400.0, 400.0, (u(-0.03, 0.03), ax0), (u(0.0, 0.06), ay0), (r_aorta,), (r_aorta,))
    ivc_x = cx - 24.0 + rng.normal(0, 3.0)
    ivc_y = vb_center[1] - vb_half[1] - 9.0
    ivc_top = float(dome.z(np.array([ivc_x]), np.array([ivc_y - 12.0]))[0]) + 5.0
    ivc = ZTube(-400.0, ivc_top, (0.0, ivc_x), (-0.12, ivc_y - 0.12 * (100.0 - z_dome)), (u(10.0, 13.0),),
                (u(7.0, 10.0),))
    porta = rel(-0.32, -0.08, -80.0) + shift
    confluence = neck + np.array([0.0, 14.0, 0.0])
    portal = Union((Capsule(confluence, porta, u(6.0, 8.0), 6.5),
                    Capsule(confluence, tail + np.array([0.0, 12.0, 0.0]), 4.5, 4.0)))
    ivc_top_pt = np.array([ivc_x, ivc_y - 12.0, ivc_top - 10.0])
    liver_vessels = Union(tuple(
        [Capsule(porta, porta + d, 5.0, 1.8) for d in (np.array([-0.40 * ac, 0.05 * bc, 10.0]),
                                                        np.array([-0.15 * ac, -0.30 * bc, 25.0]),
                                                        np.array([0.30 * ac, -0.30 * bc, 25.0]))]
        + [Capsule(ivc_top_pt, ivc_top_pt + d, 5.5, 1.8) for d in (np.array([-0.50 * ac, -0.05 * bc, -20.0]),
                                                                   np.array([-0.25 * ac, -0.45 * bc, -15.0]),
                                                                   np.array([0.20 * ac, -0.40 * bc, -15.0]))]))

    # ---- muscles -------------------------------------------------------------------
    psoas_top = z_dome - u(80.0, 100.0)
    psoas = []
    for side in (-1, 1):
        r0, grow = u(6.0, 8.0), u(0.08, 0.12)
        xoff = vb_half[0] + 2.0
        # radius r(z) = r0 + grow * (psoas_top - z); the centre follows so the muscle hugs the vertebrae
        psoas.append(ZTube(-400.0, psoas_top, (-side * grow, cx + side * (xoff + r0 + grow * psoas_top)),
                           (vb_center[1] + 2.0,), (-grow, r0 + grow * psoas_top),
                           (-0.85 * grow, 0.85 * (r0 + grow * psoas_top))))
    para_y = vb_center[1] + vb_half[1] + 2 * canal + 20.0
    paraspinal = [ZTube(-400.0, 400.0, (cx + side * (0.9 * vb_half[0] + 12.0),), (para_y,), (u(24.0, 30.0),),
                        (u(20.0, 26.0),)) for side in (-1, 1)]

    # ---- the free cavity: bowel loops and mesenteric fat -----------------------------
    visceral_fat = float(np.clip(0.15 + (a_body - 140.0) / 50.0 * 0.35 + rng.normal(0, 0.08), 0.08, 0.65))
    gas_thr, fluid_thr, hot_thr = (_NORMAL.inv_cdf(q) for q in (u(0.88, 0.96), u(0.15, 0.35), u(0.90, 0.97)))
    fat_thr = _NORMAL.inv_cdf(visceral_fat)
    perirenal_thr = _NORMAL.inv_cdf(u(0.3, 0.8))  # the fraction of the perirenal fat shell that is missing

    def filler_tissue(p: np.ndarray) -> np.ndarray:
        """Bowel (wall, fluid, gas, wall with uptake) or mesenteric fat, from three smooth fields."""
        content = fields.sample("bowel", p)
        out = np.full(len(p), T["bowel_wall"], np.uint8)
        out[content > gas_thr] = T["gas"]
        out[content < fluid_thr] = T["bowel_fluid"]
        wall_ = out == T["bowel_wall"]
        out[wall_] = np.where(fields.sample("hot", p[wall_]) > hot_thr, T["bowel_hot"], T["bowel_wall"])
        out[fields.sample("filler", p) < fat_thr] = T["fat"]
        return out

    # ---- painting order (later layers win) ---------------------------------------------
    def organ_where(v: View) -> np.ndarray:
        return v.cavity(3.0) & (v.region("above_dome") < -6.0)

    def in_cavity(v: View) -> np.ndarray:
        return v.cavity()

    def under_fat(v: View) -> np.ndarray:
        return v.region("fat_radius") <= 1.0

    def where_label(*labels: int) -> Where:
        return lambda v: np.isin(v.labels, labels)

    def above_dome(mediastinum: bool) -> Where:
        def where(v: View) -> np.ndarray:
            p = v.pts
            med = (np.abs(p[:, 0] - cx - 0.05 * ac) < 0.32 * ac) & (p[:, 1] < cy + 0.30 * bc)
            return v.cavity() & (v.region("above_dome") > 0) & (med if mediastinum else ~med)
        return where

    def perirenal(kidney_shape: Shape) -> Where:
        def where(v: View) -> np.ndarray:
            keep = v.cavity() & ~kidney_shape.mask(v.pts)
            keep[keep] &= fields.sample("perirenal", v.pts[keep]) > perirenal_thr
            return keep
        return where

    def grown(shape: Shape, mm: float) -> Union:
        assert isinstance(shape, Union)
        return Union(tuple(b.grown(mm) for b in shape.parts if isinstance(b, Blob)))

    def stomach_tissue(v: View) -> np.ndarray:
        out = np.full(len(v.sel), T["stomach_wall"], np.uint8)
        inner = lumen.mask(v.pts)
        out[inner] = T["stomach_content"]
        out[inner & (v.pts[:, 1] < gas_y)] = T["gas"]
        return out

    def spine_tissue(v: View) -> np.ndarray:
        return spine.tissues(v.pts)

    def rib_tissue(v: View) -> np.ndarray:
        return ribs.tissues(v.pts, v.region("cavity_radius"))

    chest: AABB = (np.array([-1e4, -1e4, min(z_dome, z_left) - 2.5 * 55.0 - 10.0]), np.full(3, 1e4))
    rib_box: AABB = (np.array([-1e4, -1e4, ribs.z_low - ribs.slope * 2 * bc - 5.0]), np.full(3, 1e4))
    peri_l, peri_r = grown(kidney_l, u(8.0, 15.0)), grown(kidney_r, u(8.0, 15.0))

    def box(shape: Shape) -> AABB:
        return tight_aabb(shape, step=8.0, margin=10.0)

    layers = [
        Layer("subcutaneous_fat", None, FAT, T["fat"], lambda v: v.region("body_radius") <= 1.0),
        Layer("body_wall", None, SOFT, T["muscle"], under_fat),
        Layer("viscera", None, FAT, _FILLER, lambda v: v.cavity() & (v.region("above_dome") <= -6.0)),
        Layer("diaphragm", None, SOFT, T["muscle"],
              lambda v: v.cavity() & (np.abs(v.region("above_dome") + 3.0) <= 3.0), chest),
        Layer("lung", None, LUNG, T["lung"], above_dome(False), chest),
        Layer("mediastinum", None, SOFT, T["muscle"], above_dome(True), chest),
        *[Layer("paraspinal", s, MUSCLE, T["muscle"], under_fat) for s in paraspinal],
        *[Layer("psoas", s, MUSCLE, T["muscle"]) for s in psoas],
        Layer("stomach", stomach, STOMACH, stomach_tissue, organ_where, box(stomach)),
        Layer("pancreas", pancreas, PANCREAS, T["pancreas"], organ_where),
        Layer("spleen", spleen, SPLEEN, T["spleen"], organ_where, box(spleen)),
        Layer("liver", liver, LIVER, T["liver"], organ_where, box(liver)),
        Layer("perirenal_fat_left", peri_l, FAT, T["fat"], perirenal(kidney_l), box(peri_l)),
        Layer("perirenal_fat_right", peri_r, FAT, T["fat"], perirenal(kidney_r), box(peri_r)),
        Layer("kidney_left", kidney_l, KIDNEY_L, T["kidney"], in_cavity, box(kidney_l)),
        Layer("kidney_right", kidney_r, KIDNEY_R, T["kidney"], in_cavity, box(kidney_r)),
        *([Layer("gallbladder", gb, GALLBLADDER, T["bile"], organ_where)] if has_gb else []),
        Layer("ribs", None, BONE, rib_tissue, None, rib_box),  # >= 9 mm in every direction: thick enough
        # thin structures: painted at full resolution after the thick ones
        Layer("pelvis_left", pelvis_l, None, T["urine"], where_label(KIDNEY_L), thin=True),
        Layer("pelvis_right", pelvis_r, None, T["urine"], where_label(KIDNEY_R), thin=True),
        Layer("liver_vessels", liver_vessels, None, T["liver_vessel"], where_label(LIVER), thin=True),
        Layer("portal_vein", portal, PORTAL_VEIN, T["blood"], in_cavity, thin=True),
        Layer("ivc", ivc, IVC, T["blood"], under_fat, thin=True),
        Layer("aorta", aorta, AORTA, T["blood"], under_fat, thin=True),
        Layer("spine", None, BONE, spine_tissue, None, spine.aabb(), thin=True),
        Layer("spinal_canal", ZTube(-400.0, 400.0, (float(vb_center[0]),), (spine.canal_center_y,), (canal,), (canal,)),
              SPINAL_CANAL, T["csf"], thin=True),
    ]
    organs: dict[str, Shape] = {"liver": liver, "spleen": spleen, "kidney_left": kidney_l, "kidney_right": kidney_r,
                                "stomach": stomach, "pancreas": pancreas}
    landmarks = {
        "liver_right_lobe": liver_blobs[0].center,
        "liver_left_lobe": liver_blobs[1].center,
        "porta_hepatis": porta,
        "spleen": spleen_c,
        "kidney_left": kb_l.center,
        "kidney_left_upper_pole": kb_l.center + 0.7 * kb_l.half[2] * kb_l.rotation[:, 2],
        "kidney_left_lower_pole": kb_l.center - 0.7 * kb_l.half[2] * kb_l.rotation[:, 2],
        "kidney_right": kb_r.center,
        "kidney_right_upper_pole": kb_r.center + 0.7 * kb_r.half[2] * kb_r.rotation[:, 2],
        "kidney_right_lower_pole": kb_r.center - 0.7 * kb_r.half[2] * kb_r.rotation[:, 2],
        "pancreas_head": head,
        "pancreas_tail": 0.5 * (body_ + tail),
        "portal_confluence": confluence,
        "stomach_fundus": stomach_blobs[0].center,
        "aorta_upper": np.array([np.polyval(aorta.cx, z_dome - 60), np.polyval(aorta.cy, z_dome - 60), z_dome - 60]),
        "aorta_lower": np.array([np.polyval(aorta.cx, z_dome - 170), np.polyval(aorta.cy, z_dome - 170),
                                 z_dome - 170]),
        "vertebral_body_upper": np.array([vb_center[0], vb_center[1], z_dome - 60]),
        "vertebral_body_lower": np.array([vb_center[0], vb_center[1], z_dome - 170]),
    }
    return Anatomy(torso, dome, spine, ribs, organs, tuple(layers), fields, visceral_fat, filler_tissue,
                   {k: np.asarray(v, dtype=float) for k, v in landmarks.items()})
