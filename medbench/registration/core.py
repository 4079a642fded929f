"""Intensity-based registration over SimpleITK's ``ImageRegistrationMethod`` and its demons filters.

Conventions (the same as :mod:`medbench.image.transforms`): every transform
maps points of the **fixed** image (LPS mm) to points of the **moving** image,
so ``resample_to(moving, fixed, result.transform)`` aligns moving onto fixed.

* :func:`register`: a parametric transform — ``euler`` / ``versor`` (rigid),
  ``affine`` or ``bspline`` (free-form deformation on a control-point mesh) —
  optimised on Mattes mutual information, mean squares or correlation, over a
  multi-resolution pyramid, with a sampling strategy and optimiser scales
  estimated from physical shifts;
* :func:`demons`: a dense displacement field (diffeomorphic or symmetric-forces
  demons) over a pyramid, for same-modality pairs;
* :func:`initial_transform`: centred initialisation by geometry (the grids'
  centres) or by moments (the centroids of the two foregrounds).

Every call returns a :class:`RegistrationResult`: the transform, the metric at
every iteration, the optimiser's stop condition, the wall time and a status.
Bad input (a label map or vector field where an image is needed, a 2D image,
non-finite values, an empty mask, fields of view that do not overlap) raises
:class:`~medbench.errors.RegistrationError`. An optimisation that throws
(every sample mapped outside the moving image) or ends worse than it started
or with a non-finite metric is returned with ``status`` ``"failed"`` or
``"diverged"`` and its stop condition — never as a silent identity.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from medbench.atomic import atomic_path
from medbench.errors import ConfigError, RegistrationError
from medbench.image.resample import resample_to
from medbench.image.transforms import DisplacementField, RigidTransform
from medbench.image.volume import Volume

TransformKind = Literal["euler", "versor", "affine", "bspline"]
MetricName = Literal["mattes", "mean_squares", "correlation"]
Initialisation = Literal["geometry", "moments", "none"]
Sampling = Literal["random", "regular", "none"]

TRANSFORMS: tuple[str, ...] = ("euler", "versor", "affine", "bspline")
METRICS: tuple[str, ...] = ("mattes", "mean_squares", "correlation")
INITIALISATIONS: tuple[str, ...] = ("geometry", "moments", "none")
SAMPLINGS: tuple[str, ...] = ("random", "regular", "none")

#: Called after every optimiser iteration with (level, iteration, metric value).
IterationCallback = Callable[[int, int, float], None]


@dataclass
class RegistrationResult:
    """What a registration produced and how it ended.

    ``transform`` maps fixed points to moving points (a SimpleITK transform;
    composites hold the initial transform too). ``history`` has one row per
    optimiser iteration: ``level`` (0 = coarsest), ``iteration``, ``metric``
    (the value the optimiser minimises: negative for MI and correlation).
    ``status`` is ``"converged"`` (the optimiser stopped normally and improved
    the metric), ``"diverged"`` (non-finite or worse final metric), or
    ``"failed"`` (SimpleITK raised; ``stop_condition`` says why and
    ``transform`` is the initial transform, so nothing downstream mistakes it
    for a result).
    """

    method: str
    metric: str
    transform: Any
    history: pd.DataFrame
    stop_condition: str
    wall_time_s: float
    status: Literal["converged", "diverged", "failed"]
    fixed: Volume
    engine: str = "SimpleITK"
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "converged"

    @property
    def initial_metric(self) -> float:
        return float(self.history["metric"].iloc[0]) if len(self.history) else math.nan

    @property
    def final_metric(self) -> float:
        return float(self.history["metric"].iloc[-1]) if len(self.history) else math.nan

    @property
    def iterations(self) -> int:
        return len(self.history)

    def check(self) -> RegistrationResult:
        """Raise :class:`RegistrationError` unless the registration converged; return self otherwise."""
        if not self.ok:
            raise RegistrationError(f"{self.method} registration ({self.metric}) {self.status}: {self.stop_condition}")
        return self

    def resample(self, moving: Volume, *, interpolator: str | None = None, default: float | None = None) -> Volume:
        """``moving`` on the fixed grid through the transform (labels nearest neighbour, images linear)."""
        fill = float(moving.array.min()) if default is None and not moving.is_label else (default or 0.0)
        return resample_to(moving, self.fixed, self.transform, interpolator=interpolator, default=fill)

    def map_points(self, points: np.ndarray) -> np.ndarray:
        """Fixed points (N, 3) LPS mm -> their estimated positions in the moving image."""
        return map_points(self.transform, points)

    def displacement(self, grid: Volume | None = None) -> DisplacementField:
        """The transform sampled as u(x) = T(x) - x on ``grid`` (default: the fixed grid)."""
        return DisplacementField.from_transform(self.transform, grid or self.fixed)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the transform (``.tfm`` text or ``.h5``; see :func:`save_transform`)."""
        return save_transform(self.transform, path)

    def summary(self) -> dict[str, Any]:
        return {"method": self.method, "metric": self.metric, "engine": self.engine, "status": self.status,
                "iterations": self.iterations, "initial_metric": self.initial_metric,
                "final_metric": self.final_metric, "wall_time_s": self.wall_time_s,
                "stop_condition": self.stop_condition}

    def __repr__(self) -> str:
        return (f"RegistrationResult({self.engine} {self.method}/{self.metric}: {self.status} after "
                f"{self.iterations} iterations in {self.wall_time_s:.2f} s; {self.stop_condition})")


# ---- input checks ---------------------------------------------------------------------------------------------


def _as_volume(image: Any, what: str) -> Volume:
    import SimpleITK as sitk

    if isinstance(image, sitk.Image):
        if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
            raise RegistrationError(
                f"{what} image is {image.GetDimension()}D with {image.GetNumberOfComponentsPerPixel()} "
                "component(s) per pixel; registration here needs two 3D scalar images")
        image = Volume.from_sitk(image, {"name": what})
    if not isinstance(image, Volume):
        raise RegistrationError(f"{what} image must be a medbench Volume or a SimpleITK image, got {type(image)}")
    name = image.meta.get("name", what)
    if image.role != "image":
        raise RegistrationError(
            f"{what} image {name!r} has role {image.role!r}: register intensity images and propagate label maps "
            "with the result (nearest neighbour), never the other way round")
    if image.array.ndim != 3:
        raise RegistrationError(f"{what} image {name!r} has {image.n_channels} channels; pick one (Volume.channel)")
    if not (np.issubdtype(image.array.dtype, np.floating) or np.issubdtype(image.array.dtype, np.integer)):
        raise RegistrationError(f"{what} image {name!r} has pixel type {image.array.dtype}; need integer or float")
    if min(image.shape) < 4:
        raise RegistrationError(f"{what} image {name!r} is {image.shape} voxels: too thin for a 3D registration")
    if not np.isfinite(image.array).all():
        raise RegistrationError(f"{what} image {name!r} contains NaN or infinite values")
    if float(np.ptp(image.array)) == 0.0:
        raise RegistrationError(f"{what} image {name!r} is constant: there is nothing to align")
    return image


def _mask(mask: Any, image: Volume, what: str) -> Any:
    if mask is None:
        return None
    arr = mask.array if isinstance(mask, Volume) else np.asarray(mask)
    if isinstance(mask, Volume):
        image.check_same_grid(mask, f"{what} mask")
    elif arr.shape != image.shape:
        raise RegistrationError(f"{what} mask has shape {arr.shape}, the {what} image {image.shape}")
    if not np.any(arr):
        raise RegistrationError(f"{what} mask is empty: no voxel would be sampled")
    return image.with_array((arr > 0).astype(np.uint8), role="label").to_sitk()


#: CT value (HU) at and above which a voxel counts as bone for a sampling mask: above soft tissue and contrast-free
#: organs (< ~100 HU), below cancellous bone (~200-300 HU).
BONE_HU = 150.0


def threshold_mask(image: Volume, lower: float, dilate_voxels: int = 1) -> np.ndarray:
    """Voxels of ``image`` at or above ``lower``, dilated by ``dilate_voxels``: a sampling mask (e.g. bone on CT).

    A rigid registration of two CTs of one patient sampled only on bone aligns the skeleton, which breathing
    does not move, instead of a compromise between the sliding organs and the static body wall. Raises
    :class:`RegistrationError` when nothing reaches ``lower`` (a registration would sample no voxel).
    """
    from scipy import ndimage

    if dilate_voxels < 0:
        raise ConfigError(f"dilate_voxels must be >= 0, got {dilate_voxels}")
    mask = np.asarray(image.array) >= lower
    if not mask.any():
        raise RegistrationError(f"no voxel of {image.meta.get('name', 'the image')!r} reaches {lower:g}: the "
                                f"threshold mask is empty")
    return ndimage.binary_dilation(mask, iterations=dilate_voxels) if dilate_voxels else mask


def _float_image(vol: Volume) -> Any:
    import SimpleITK as sitk

    return sitk.Cast(vol.to_sitk(), sitk.sitkFloat32)


def _bbox_overlap(fixed: Volume, moving: Volume, transform: Any) -> float:
    """Fraction of a regular subsample of the fixed grid that the transform maps inside the moving grid."""
    step = [max(1, s // 12) for s in fixed.shape]
    ijk = np.stack(np.meshgrid(*[np.arange(0, s, st) for s, st in zip(fixed.shape, step)], indexing="ij"), -1)
    pts = fixed.world(ijk.reshape(-1, 3).astype(float))
    idx = moving.index(map_points(transform, pts))
    inside = np.all((idx >= -0.5) & (idx <= np.asarray(moving.shape) - 0.5), axis=1)
    return float(inside.mean())


def map_points(transform: Any, points: np.ndarray) -> np.ndarray:
    """Apply a SimpleITK transform (or a medbench transform with ``apply``) to (N, 3) LPS points."""
    pts = np.atleast_2d(np.asarray(points, dtype=float))
    if hasattr(transform, "apply"):
        return np.asarray(transform.apply(pts))
    return np.array([transform.TransformPoint(tuple(float(v) for v in p)) for p in pts]).reshape(-1, 3)


# ---- initialisation -------------------------------------------------------------------------------------------


def initial_transform(fixed: Volume, moving: Volume, how: Initialisation = "geometry") -> Any:
    """A centred rigid ``Euler3DTransform`` to start from (fixed -> moving).

    ``geometry``: the two grids' centres coincide (ITK ``CenteredTransformInitializer``, GEOMETRY);
    ``moments``: the centroids of the two foregrounds (largest region above Otsu's threshold)
    coincide — robust to different fields of view, and independent of the intensity scale, unlike
    ITK's intensity-weighted MOMENTS (CT's -1000 HU air would weigh negatively);
    ``none``: identity, with the centre of rotation at the fixed grid's centre.
    """
    import SimpleITK as sitk

    fixed, moving = _as_volume(fixed, "fixed"), _as_volume(moving, "moving")
    tx = sitk.Euler3DTransform()
    if how == "geometry":
        return sitk.Euler3DTransform(sitk.CenteredTransformInitializer(
            _float_image(fixed), _float_image(moving), tx, sitk.CenteredTransformInitializerFilter.GEOMETRY))
    if how == "moments":
        from medbench.baselines.alignment import centre_of_mass_align, foreground_mask

        shift = centre_of_mass_align(fixed, moving)
        tx.SetCenter(tuple(float(v) for v in fixed.world(np.argwhere(foreground_mask(fixed)).mean(axis=0))[0]))
        tx.SetTranslation(tuple(float(v) for v in shift.translation_mm))
        return tx
    if how == "none":
        tx.SetCenter(tuple(float(v) for v in fixed.center))
        return tx
    raise ConfigError(f"unknown initialisation {how!r}; choose one of {', '.join(INITIALISATIONS)}")


# ---- parametric registration ----------------------------------------------------------------------------------


def _levels(shrink_factors: Sequence[int], smoothing_sigmas: Sequence[float]) -> None:
    if len(shrink_factors) != len(smoothing_sigmas) or not shrink_factors:
        raise ConfigError(f"shrink_factors {list(shrink_factors)} and smoothing_sigmas {list(smoothing_sigmas)} "
                          "must be non-empty and of equal length (one per pyramid level)")
    if any(int(s) < 1 for s in shrink_factors) or any(s < 0 for s in smoothing_sigmas):
        raise ConfigError("shrink factors must be >= 1 and smoothing sigmas >= 0")


def _silent_threads(threads: int | None) -> contextlib.AbstractContextManager[None]:
    import SimpleITK as sitk

    @contextlib.contextmanager
    def ctx() -> Any:
        before = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
        if threads:
            sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(int(threads))
        try:
            yield
        finally:
            sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(before)

    return ctx()


def register(
    fixed: Volume,
    moving: Volume,
    *,
    transform: TransformKind = "euler",
    metric: MetricName = "mattes",
    initialisation: Initialisation | Any = "geometry",
    shrink_factors: Sequence[int] = (4, 2, 1),
    smoothing_sigmas: Sequence[float] = (2.0, 1.0, 0.0),
    sampling: Sampling = "random",
    sampling_fraction: float | Sequence[float] = 0.2,
    iterations: int | Sequence[int] = 100,
    learning_rate: float | Sequence[float] = 2.0,
    histogram_bins: int = 32,
    bspline_mesh_mm: float = 60.0,
    fixed_mask: Volume | np.ndarray | None = None,
    moving_mask: Volume | np.ndarray | None = None,
    seed: int = 0,
    threads: int | None = None,
    gradient_images: bool = True,
    on_iteration: IterationCallback | None = None,
) -> RegistrationResult:
    """Register ``moving`` to ``fixed`` with one parametric transform; see the module doc.

    ``initialisation`` is a name (:func:`initial_transform`) or a transform to start from
    (a SimpleITK transform or a :class:`RigidTransform`): for ``euler``/``versor``/``affine`` it
    is the starting point of the optimisation; for ``bspline`` it stays fixed and the
    free-form deformation is optimised on top of it (the result is the composite).
    ``smoothing_sigmas`` are in voxels of each level; ``shrink_factors`` (4, 2, 1) is a
    three-level pyramid, (1,) a single resolution. ``sampling_fraction`` is the share of
    fixed voxels sampled per iteration (``random`` draws them with ``seed``; ``none`` uses all).
    Rigid and affine use regular-step gradient descent (the step starts at ``learning_rate``, in
    units of the physical shift the scales are estimated from, and shrinks by 0.6 at every
    direction reversal until it is below 1e-3) with scales from physical shifts; B-splines use
    L-BFGS-B.

    Per-level schedule: ``iterations``, ``learning_rate`` and ``sampling_fraction`` also take one
    value per pyramid level (coarsest first). A per-level ``iterations`` or ``learning_rate`` runs
    the levels as successive optimisations, each starting from the previous level's result (ITK's
    own pyramid restarts every level with the same step and iteration cap): the coarse levels,
    where an iteration is cheap, do the long-range search, and the finest level only refines
    (a small first step and a low cap). Scalars keep ITK's single multi-level optimisation.

    ``gradient_images``: ITK's default (True) takes the metric's image gradients from
    Gaussian-derivative images of both whole images, recomputed at every level (a smoother
    metric landscape, at the cost of a pass over each image per level); False takes finite
    differences at the sampled points only (cheaper with sparse sampling and short levels).
    """
    import SimpleITK as sitk

    fixed_v, moving_v = _as_volume(fixed, "fixed"), _as_volume(moving, "moving")
    if transform not in TRANSFORMS:
        raise ConfigError(f"unknown transform {transform!r}; choose one of {', '.join(TRANSFORMS)}")
    if metric not in METRICS:
        raise ConfigError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    if sampling not in SAMPLINGS:
        raise ConfigError(f"unknown sampling {sampling!r}; choose one of {', '.join(SAMPLINGS)}")
    _levels(shrink_factors, smoothing_sigmas)
    n_levels = len(shrink_factors)
    per_level = not (_is_scalar(iterations) and _is_scalar(learning_rate))
    its = _per_level(iterations, n_levels, "iterations")
    rates = _per_level(learning_rate, n_levels, "learning_rate")
    fractions = _per_level(sampling_fraction, n_levels, "sampling_fraction")
    if any(not 0 < f <= 1 for f in fractions):
        raise ConfigError(f"sampling_fraction must be in (0, 1], got {sampling_fraction}")
    if any(int(n) < 1 for n in its) or any(not r > 0 for r in rates):
        raise ConfigError(f"iterations must be >= 1 and learning_rate > 0, got {iterations} and {learning_rate}")
    f_img, m_img = _float_image(fixed_v), _float_image(moving_v)
    f_mask, m_mask = _mask(fixed_mask, fixed_v, "fixed"), _mask(moving_mask, moving_v, "moving")

    if isinstance(initialisation, str):
        init = initial_transform(fixed_v, moving_v, initialisation)  # type: ignore[arg-type]
    elif isinstance(initialisation, RigidTransform):
        init = initialisation.to_sitk()
    else:
        init = initialisation
    overlap = _bbox_overlap(fixed_v, moving_v, init)
    if overlap == 0.0:
        raise RegistrationError(
            f"the fields of view do not overlap: no point of the fixed image {fixed_v.meta.get('name', '')!r} maps "
            f"inside the moving image {moving_v.meta.get('name', '')!r} under the initial transform; "
            "initialise by geometry or moments, or check the images' origins")

    reg = sitk.ImageRegistrationMethod()
    if metric == "mattes":
        reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=int(histogram_bins))
    elif metric == "mean_squares":
        reg.SetMetricAsMeanSquares()
    else:
        reg.SetMetricAsCorrelation()
    if sampling == "random":
        reg.SetMetricSamplingStrategy(reg.RANDOM)
    elif sampling == "regular":
        reg.SetMetricSamplingStrategy(reg.REGULAR)
    else:
        reg.SetMetricSamplingStrategy(reg.NONE)
    if f_mask is not None:
        reg.SetMetricFixedMask(f_mask)
    if m_mask is not None:
        reg.SetMetricMovingMask(m_mask)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetMetricUseFixedImageGradientFilter(bool(gradient_images))
    reg.SetMetricUseMovingImageGradientFilter(bool(gradient_images))
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()

    def _schedule(levels: Sequence[int]) -> None:
        """Pyramid levels, sampling and optimiser settings of one Execute call."""
        reg.SetShrinkFactorsPerLevel([int(shrink_factors[i]) for i in levels])
        # one level per call: its images come smoothed already (see _smoothed)
        reg.SetSmoothingSigmasPerLevel([0.0 if per_level else float(smoothing_sigmas[i]) for i in levels])
        if sampling != "none":
            reg.SetMetricSamplingPercentagePerLevel([float(fractions[i]) for i in levels], int(seed) + 1)
        n_it, rate = int(its[levels[0]]), float(rates[levels[0]])
        if transform == "bspline":
            reg.SetOptimizerAsLBFGSB(gradientConvergenceTolerance=1e-5, numberOfIterations=n_it,
                                     maximumNumberOfCorrections=5, maximumNumberOfFunctionEvaluations=4 * n_it,
                                     costFunctionConvergenceFactor=1e7)
        else:
            reg.SetOptimizerAsRegularStepGradientDescent(learningRate=rate, minStep=1e-3, numberOfIterations=n_it,
                                                         relaxationFactor=0.6, gradientMagnitudeTolerance=1e-8)
            reg.SetOptimizerScalesFromPhysicalShift()

    if transform == "bspline":
        extent = np.asarray(fixed_v.shape) * np.asarray(fixed_v.spacing)
        mesh = [max(1, int(round(e / bspline_mesh_mm))) for e in extent]
        tx_opt: Any = sitk.BSplineTransformInitializer(f_img, mesh, order=3)
        reg.SetMovingInitialTransform(init)
        reg.SetInitialTransform(tx_opt, inPlace=True)
    else:
        if transform == "euler":
            tx_opt = sitk.Euler3DTransform(init) if init.GetName() == "Euler3DTransform" else _rigid_from(init)
        elif transform == "versor":
            tx_opt = sitk.VersorRigid3DTransform()
            src = _rigid_from(init)
            tx_opt.SetCenter(src.GetCenter())
            tx_opt.SetMatrix(src.GetMatrix())
            tx_opt.SetTranslation(src.GetTranslation())
        else:
            src = _rigid_from(init)
            tx_opt = sitk.AffineTransform(3)
            tx_opt.SetCenter(src.GetCenter())
            tx_opt.SetMatrix(src.GetMatrix())
            tx_opt.SetTranslation(src.GetTranslation())
        reg.SetInitialTransform(tx_opt, inPlace=True)

    rows: list[tuple[int, int, float]] = []
    level_offset = [0]

    def _iteration() -> None:
        level = int(reg.GetCurrentLevel()) + level_offset[0]
        it, value = int(reg.GetOptimizerIteration()), float(reg.GetMetricValue())
        rows.append((level, it, value))
        if on_iteration is not None:
            on_iteration(level, it, value)

    reg.AddCommand(sitk.sitkIterationEvent, _iteration)
    settings = {"transform": transform, "metric": metric, "shrink_factors": list(shrink_factors),
                "smoothing_sigmas": list(smoothing_sigmas), "sampling": sampling,
                "sampling_fraction": fractions, "iterations": its, "learning_rate": rates,
                "per_level_optimisation": per_level, "gradient_images": gradient_images, "seed": seed,
                "initialisation": initialisation if isinstance(initialisation, str) else "given",
                "initial_overlap": overlap}
    start = time.perf_counter()
    status: Literal["converged", "diverged", "failed"] = "converged"
    with _silent_threads(threads):
        calls = [[i] for i in range(n_levels)] if per_level else [list(range(n_levels))]
        stops = []
        for levels in calls:
            _schedule(levels)
            level_offset[0] = levels[0]
            try:
                if per_level:
                    sigma = float(smoothing_sigmas[levels[0]])
                    reg.Execute(_smoothed(f_img, sigma), _smoothed(m_img, sigma))
                else:
                    reg.Execute(f_img, m_img)
            except RuntimeError as exc:
                status, stop = "failed", _sitk_message(exc)
                break
            stops.append((f"level {levels[0]}: " if per_level else "")
                         + str(reg.GetOptimizerStopConditionDescription()))
        else:
            stop = "; ".join(stops)
    wall = time.perf_counter() - start
    history = pd.DataFrame(rows, columns=["level", "iteration", "metric"])
    if status == "failed":
        final: Any = init
    elif transform == "bspline":
        final = sitk.CompositeTransform([init, tx_opt])
    else:
        final = tx_opt
    if status == "converged":
        values = history["metric"].to_numpy()
        final_overlap = _bbox_overlap(fixed_v, moving_v, final) if not _params_invalid(final) else 0.0
        settings["final_overlap"] = final_overlap
        if final_overlap < 0.01:
            status, stop = "failed", (f"the result maps {final_overlap:.1%} of the fixed image inside the moving "
                                      f"image (the optimisation left the overlap); {stop}")
        elif len(values) and not np.isfinite(values).all():
            status, stop = "diverged", f"non-finite metric value; {stop}"
        elif _params_invalid(final):
            status, stop = "diverged", f"non-finite transform parameters; {stop}"
        elif len(values) > 1 and _final_worse(f_img, m_img, metric, histogram_bins, final, init):
            status, stop = "diverged", f"the final metric is worse than the initial one; {stop}"
    return RegistrationResult(method=transform, metric=metric, transform=final, history=history,
                              stop_condition=stop, wall_time_s=wall, status=status, fixed=fixed_v, settings=settings)


def _smoothed(image: Any, sigma_voxels: float) -> Any:
    """``image`` smoothed by a Gaussian of ``sigma_voxels`` (in the image's own voxels, as ITK's pyramid does).

    scipy's separable filter on the array: a few ms at the smoke grid, where ITK's discrete Gaussian
    inside the registration costs more than the coarse level's whole optimisation.
    """
    if sigma_voxels <= 0:
        return image
    import SimpleITK as sitk
    from scipy.ndimage import gaussian_filter

    out = sitk.GetImageFromArray(gaussian_filter(sitk.GetArrayViewFromImage(image), sigma_voxels, mode="nearest"))
    out.CopyInformation(image)
    return out


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating))


def _per_level(value: Any, n_levels: int, name: str) -> list[Any]:
    """One value per pyramid level: a scalar repeated, or a sequence of exactly ``n_levels`` values."""
    if _is_scalar(value):
        return [value] * n_levels
    values = list(value)
    if len(values) != n_levels:
        raise ConfigError(f"{name} has {len(values)} values for {n_levels} pyramid level(s): give one value "
                          "or one per level (coarsest first)")
    return values


def _rigid_from(tx: Any) -> Any:
    """An Euler3DTransform with the rotation, translation and centre of a rigid-like initial transform."""
    from medbench.errors import GeometryError

    try:
        return RigidTransform.from_sitk(tx).to_sitk()
    except (GeometryError, RuntimeError, AttributeError):
        raise RegistrationError(f"the initial transform ({type(tx).__name__}) is not rigid; a rigid or affine "
                                "registration starts from a rigid transform") from None


def _params_invalid(tx: Any) -> bool:
    try:
        return not np.isfinite(np.asarray(tx.GetParameters(), dtype=float)).all()
    except (RuntimeError, AttributeError):
        return False


def _final_worse(f_img: Any, m_img: Any, metric: str, bins: int, final: Any, init: Any) -> bool:
    """Whether the metric on every voxel at full resolution is worse after than before (beyond a 1 % margin)."""
    import SimpleITK as sitk

    ev = sitk.ImageRegistrationMethod()
    if metric == "mattes":
        ev.SetMetricAsMattesMutualInformation(int(bins))
    elif metric == "mean_squares":
        ev.SetMetricAsMeanSquares()
    else:
        ev.SetMetricAsCorrelation()
    ev.SetInterpolator(sitk.sitkLinear)
    try:
        ev.SetInitialTransform(init)
        before = ev.MetricEvaluate(f_img, m_img)
        ev.SetInitialTransform(final)
        after = ev.MetricEvaluate(f_img, m_img)
    except RuntimeError:
        return True
    return bool(after > before + 0.01 * abs(before))


def _sitk_message(exc: BaseException) -> str:
    """The informative last lines of a SimpleITK exception."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = " ".join(ln for ln in lines if "Description:" in ln or "itk::ERROR" in ln) or (lines[-1] if lines else "")
    return text.replace("Description: ", "")[:400]


# ---- dense: demons ---------------------------------------------------------------------------------------------


def demons(
    fixed: Volume,
    moving: Volume,
    *,
    initialisation: Any = None,
    variant: Literal["diffeomorphic", "symmetric"] = "diffeomorphic",
    iterations: int = 50,
    smoothing_mm: float = 6.0,
    shrink_factors: Sequence[int] = (2, 1),
    histogram_match: bool = False,
    threads: int | None = None,
    on_iteration: IterationCallback | None = None,
) -> RegistrationResult:
    """A dense displacement field by demons (same modality only), over a pyramid.

    ``initialisation``: a transform (fixed -> moving) the field starts from (e.g. a rigid
    result); it is folded into the field. ``smoothing_mm``: the Gaussian regularising the
    displacement field after each iteration (standard deviation, mm; larger = smoother,
    less folding). The metric per iteration is the demons filter's mean squared intensity
    difference. Returns a ``DisplacementFieldTransform`` on the fixed grid. ITK's demons
    filters need both images on one grid: the moving image is first resampled onto the fixed
    grid (identity), so moving content outside the fixed field of view is not used.
    """
    import SimpleITK as sitk

    fixed_v, moving_v = _as_volume(fixed, "fixed"), _as_volume(moving, "moving")
    if variant not in ("diffeomorphic", "symmetric"):
        raise ConfigError(f"unknown demons variant {variant!r}; choose diffeomorphic or symmetric")
    _levels(shrink_factors, [0.0] * len(shrink_factors))
    f_img, m_img = _float_image(fixed_v), _float_image(moving_v)
    if histogram_match:
        m_img = sitk.HistogramMatching(m_img, f_img, 256, 7, True)
    init = initialisation.to_sitk() if isinstance(initialisation, RigidTransform) else initialisation
    if init is not None and _bbox_overlap(fixed_v, moving_v, init) == 0.0:
        raise RegistrationError("the fields of view do not overlap under the initial transform")
    m_fill = float(moving_v.array.min())
    to_field = sitk.TransformToDisplacementFieldFilter()
    to_field.SetOutputPixelType(sitk.sitkVectorFloat64)
    rows: list[tuple[int, int, float]] = []
    field_img: Any = None
    status: Literal["converged", "diverged", "failed"] = "converged"
    stop = ""
    start = time.perf_counter()
    with _silent_threads(threads):
        for level, factor in enumerate(shrink_factors):
            f_lvl = sitk.Shrink(f_img, [int(factor)] * 3) if factor > 1 else f_img
            m_lvl = sitk.Resample(m_img, f_lvl, sitk.Transform(), sitk.sitkLinear, m_fill)
            if field_img is None:
                to_field.SetReferenceImage(f_lvl)
                field_img = to_field.Execute(init if init is not None else sitk.Transform())
            else:
                field_img = sitk.Resample(field_img, f_lvl, sitk.Transform(), sitk.sitkLinear, 0.0,
                                          sitk.sitkVectorFloat64)
            flt = (sitk.DiffeomorphicDemonsRegistrationFilter() if variant == "diffeomorphic"
                   else sitk.FastSymmetricForcesDemonsRegistrationFilter())
            flt.SetNumberOfIterations(int(iterations))
            flt.SetSmoothDisplacementField(True)
            # ITK smooths the field with a Gaussian in voxel units: convert the physical sigma per axis
            flt.SetStandardDeviations([float(smoothing_mm) / sp for sp in f_lvl.GetSpacing()])
            lvl = level

            def _iteration(flt: Any = flt, lvl: int = lvl) -> None:
                value = float(flt.GetMetric())
                rows.append((lvl, int(flt.GetElapsedIterations()), value))
                if on_iteration is not None:
                    on_iteration(lvl, int(flt.GetElapsedIterations()), value)

            flt.AddCommand(sitk.sitkIterationEvent, _iteration)
            try:
                field_img = flt.Execute(f_lvl, m_lvl, field_img)
            except RuntimeError as exc:
                status, stop = "failed", _sitk_message(exc)
                break
            stop = f"level {level}: {flt.GetElapsedIterations()} iterations, RMS change {flt.GetRMSChange():.4g}"
    wall = time.perf_counter() - start
    history = pd.DataFrame(rows, columns=["level", "iteration", "metric"])
    if status == "converged":
        field_img = sitk.Resample(field_img, f_img, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkVectorFloat64)
        arr = sitk.GetArrayViewFromImage(field_img)
        if not np.isfinite(arr).all():
            status, stop = "diverged", f"non-finite displacement; {stop}"
        final: Any = sitk.DisplacementFieldTransform(sitk.Cast(field_img, sitk.sitkVectorFloat64))
        values = history["metric"].to_numpy()
        if status == "converged" and len(values) > 1 and not values[-1] <= values[0] * 1.01:
            status, stop = "diverged", f"the mean squared difference grew; {stop}"
    else:
        final = init if init is not None else sitk.Transform()
    return RegistrationResult(method=f"demons_{variant}", metric="mean_squares", transform=final, history=history,
                              stop_condition=stop, wall_time_s=wall, status=status, fixed=fixed_v,
                              settings={"variant": variant, "iterations": iterations, "smoothing_mm": smoothing_mm,
                                        "shrink_factors": list(shrink_factors)})


# ---- transforms on disk ----------------------------------------------------------------------------------------


def save_transform(transform: Any, path: str | os.PathLike[str]) -> Path:
    """Write a SimpleITK transform atomically: ``.tfm`` / ``.txt`` (ITK text) or ``.h5`` (HDF5; dense fields)."""
    import SimpleITK as sitk

    if isinstance(transform, RigidTransform):
        transform = transform.to_sitk()
    final = Path(path)
    if final.suffix not in (".tfm", ".txt", ".h5", ".hdf5"):
        raise ConfigError(f"transform file {final}: use a .tfm, .txt or .h5 extension")
    with atomic_path(final, suffix=final.suffix) as tmp:
        sitk.WriteTransform(transform, str(tmp))
    return final


def load_transform(path: str | os.PathLike[str]) -> Any:
    """Read a transform written by :func:`save_transform` (or any ITK transform file)."""
    import SimpleITK as sitk

    p = Path(path)
    if not p.is_file():
        raise RegistrationError(f"transform file {p} does not exist")
    try:
        tx = sitk.ReadTransform(str(p))
    except RuntimeError as exc:
        raise RegistrationError(f"transform file {p} cannot be read: {_sitk_message(exc)}") from None
    if isinstance(tx, sitk.CompositeTransform) and tx.GetNumberOfTransforms() == 1:
        return tx.GetNthTransform(0).Downcast()
    return tx.Downcast() if hasattr(tx, "Downcast") else tx
