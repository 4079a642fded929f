"""The second engine: elastix (``itk-elastix``, an optional extra), returning the same :class:`RegistrationResult`.

Why elastix and not ANTsPy (``antspyx``), measured on these machines: the
antspyx 0.6.2 / 0.6.3 wheels (22 MB, self-contained) require
``numpy<2.4`` and ``scipy<1.16``, so installing them would downgrade the
numpy and scipy every other part of medbench is tested with (and pull
statsmodels); ``itk-elastix`` 0.25 (22 MB plus about 300 MB of ITK 5.4
wheels) installs without touching any installed package. Reliability beats
size here, and the size is why it is an extra (``pip install medbench[elastix]``)
rather than a core dependency: without it :func:`elastix_available` says why,
and benchmarks and notebooks show an ``unavailable`` row.

The result's transform is elastix's final map sampled as a dense
``DisplacementFieldTransform`` on the fixed grid (``transformix``'s
deformation field; elastix, like ITK, maps fixed points to moving points), so
every metric treats both engines alike. The metric per iteration comes from
elastix's ``IterationInfo`` files.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from medbench.errors import ConfigError, RegistrationError
from medbench.image.transforms import DisplacementField
from medbench.image.volume import Volume
from medbench.registration.core import RegistrationResult, _as_volume, _sitk_message


def elastix_available() -> tuple[bool, str]:
    """Whether ``itk-elastix`` imports here, and if not, why (one line)."""
    try:
        import itk

        itk.ParameterObject  # noqa: B018  (the lazy module loads elastix here)
    except Exception as exc:  # ImportError, or a broken ITK install
        return False, f"itk-elastix is not installed ({type(exc).__name__}: {exc}); pip install 'medbench[elastix]'"
    return True, ""


def _to_itk(vol: Volume) -> Any:
    import itk

    img = itk.image_from_array(np.ascontiguousarray(vol.array.astype(np.float32).transpose(2, 1, 0)))
    img.SetSpacing([float(s) for s in vol.spacing])
    img.SetOrigin([float(o) for o in vol.origin])
    img.SetDirection(itk.matrix_from_array(np.ascontiguousarray(vol.direction, dtype=np.float64)))
    return img


def _history(folder: Path) -> pd.DataFrame:
    rows = []
    for f in sorted(folder.glob("IterationInfo.*.txt")):
        parts = f.name.split(".")  # IterationInfo.<map>.R<level>.txt
        level = int(parts[2].lstrip("R")) if len(parts) > 3 and parts[2].startswith("R") else 0
        try:
            t = pd.read_csv(f, sep="\t")
        except (pd.errors.EmptyDataError, pd.errors.ParserError):
            continue
        metric_col = next((c for c in t.columns if c.split(":")[-1].strip() == "Metric"), None)
        if metric_col is None:
            continue
        for it, value in enumerate(pd.to_numeric(t[metric_col], errors="coerce")):
            rows.append((int(parts[1]) * 100 + level, it, float(value)))
    return pd.DataFrame(rows, columns=["level", "iteration", "metric"])


def elastix_register(
    fixed: Volume,
    moving: Volume,
    *,
    kind: Literal["rigid", "bspline"] = "bspline",
    resolutions: int = 3,
    grid_spacing_mm: float = 50.0,
    iterations: int = 256,
    threads: int | None = None,
) -> RegistrationResult:
    """Register with elastix's default parameter maps: ``rigid``, or ``bspline`` (rigid, then a B-spline).

    Mattes mutual information (elastix's defaults; the B-spline adds a bending-energy
    penalty), ``resolutions`` pyramid levels, a final control-point spacing of
    ``grid_spacing_mm``, ``iterations`` per level. Raises :class:`RegistrationError` when
    elastix is missing or refuses the input; an elastix run that throws is a ``failed`` result.
    """
    ok, reason = elastix_available()
    if not ok:
        raise RegistrationError(reason)
    import itk
    import SimpleITK as sitk

    if kind not in ("rigid", "bspline"):
        raise ConfigError(f"unknown elastix kind {kind!r}; choose rigid or bspline")
    fixed_v, moving_v = _as_volume(fixed, "fixed"), _as_volume(moving, "moving")
    params = itk.ParameterObject.New()
    maps = ["rigid"] if kind == "rigid" else ["rigid", "bspline"]
    for name in maps:
        pm = params.GetDefaultParameterMap(name, int(resolutions), float(grid_spacing_mm))
        pm["MaximumNumberOfIterations"] = [str(int(iterations))]
        pm["WriteIterationInfo"] = ["true"]  # IterationInfo.<map>.R<level>.txt: the metric per iteration
        if threads:
            pm["MaximumNumberOfThreads"] = [str(int(threads))]
        params.AddParameterMap(pm)
    f_img, m_img = _to_itk(fixed_v), _to_itk(moving_v)
    status: Literal["converged", "diverged", "failed"] = "converged"
    with tempfile.TemporaryDirectory(prefix="medbench-elastix-") as tmp:
        start = time.perf_counter()
        try:
            _, result_params = itk.elastix_registration_method(f_img, m_img, parameter_object=params,
                                                               output_directory=tmp, log_to_console=False)
            # transformix writes deformationField.nii into its output directory (the cwd unless given)
            field = itk.transformix_deformation_field(m_img, result_params, output_directory=tmp,
                                                      log_to_console=False)
            stop = f"elastix {'+'.join(maps)}: {resolutions} level(s), {iterations} iterations per level"
        except (RuntimeError, ValueError) as exc:
            status, stop, field = "failed", _sitk_message(exc), None
        wall = time.perf_counter() - start
        history = _history(Path(tmp))
    if field is None:
        transform: Any = sitk.Transform()
    else:
        u = np.asarray(itk.array_from_image(field), dtype=np.float64).transpose(2, 1, 0, 3)
        if not np.isfinite(u).all():
            status, stop = "diverged", f"non-finite displacement; {stop}"
            u = np.nan_to_num(u)
        transform = DisplacementField.from_array(u, fixed_v).to_sitk()
    return RegistrationResult(method=f"elastix_{kind}", metric="mattes", transform=transform, history=history,
                              stop_condition=stop, wall_time_s=wall, status=status, fixed=fixed_v, engine="elastix",
                              settings={"maps": maps, "resolutions": resolutions, "grid_spacing_mm": grid_spacing_mm,
                                        "iterations": iterations})
