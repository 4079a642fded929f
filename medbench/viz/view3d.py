"""3D viewing with a backend that suits where the notebook runs.

Backends and what is known about them on these machines (DESIGN §9):

``"niivue"`` (ipyniivue 2.4.4, a core dependency)
    Bundles its NiiVue viewer in the Python package: offline it renders
    orthogonal slices and 3D volume renderings in JupyterLab (checked in
    headless Chromium with software WebGL), and papermill runs notebooks that
    use it in seconds. The volume is passed in memory as gzipped NIfTI bytes
    with its RAS affine; no file is written. Shown radiologically with the
    sagittal nose to the left, like every medbench figure, with a label legend
    under it; the widget is a :class:`~medbench.viz.niivue.NiiVueView`
    (``.niivue`` is the ipyniivue widget) whose display data also carries a
    static PNG.
``"slices"`` (:class:`~medbench.viz.viewer.SliceViewer`)
    ipywidgets + matplotlib, no WebGL, no JavaScript of its own: works in any
    front end, offline, and redraws on every slider move.
``"itk"`` (itkwidgets 1.0 pre-release, the optional extra ``medbench[itk]``)
    At display time it loads scripts from a CDN and its viewer from an IPFS
    address. Offline it shows an empty box **and holds every later cell** until
    a viewer connects: the next cell hung for minutes in JupyterLab and timed
    out under papermill. Its ImJoy lab extension also contacts a CDN on every
    page. So it is opt-in only: ``"auto"`` never picks it, and it must never be
    used in smoke or headless runs. Note that itkwidgets displays its viewer
    itself as soon as it is created (its own behaviour, not medbench's).

``"auto"`` is ``$MEDBENCH_VIEW3D`` when that is set, else ``"niivue"`` when
ipyniivue imports, else ``"slices"``. An explicit ``backend=`` argument always
wins over the environment variable. Nothing here blocks or calls ``display()``
(except itkwidgets itself, see above).
"""

from __future__ import annotations

import gzip
import importlib
import os
from typing import Any

import numpy as np

from medbench.errors import ConfigError
from medbench.image.volume import Volume
from medbench.image.windowing import WindowSpec
from medbench.viz.figures import HiddenLabels, LabelNames, names_of
from medbench.viz.slicing import as_volume, labels_array, window_for
from medbench.viz.viewer import SliceViewer

#: Backends that :func:`view3d` can build.
BACKENDS = ("niivue", "slices", "itk")
#: Environment variable that sets the backend ``"auto"`` resolves to.
ENV_VAR = "MEDBENCH_VIEW3D"

_ITK_HINT = (
    "install the optional extra with `pip install 'medbench[itk]'`. It is opt-in because itkwidgets loads "
    "its viewer from the internet when displayed and, offline, hangs every later cell (DESIGN §9); "
    "use backend='niivue' or 'slices' for offline and headless work"
)


def choose_backend(backend: str = "auto") -> tuple[str, str]:
    """``(backend name, one-line reason)`` for a requested backend, without building anything.

    Raises :class:`ConfigError` for unknown names (in the argument or in
    ``$MEDBENCH_VIEW3D``) and for a requested backend whose package is missing.
    """
    name = _normalise(backend, "backend")
    if name != "auto":
        return name, _require(name, "requested explicitly")
    env = os.environ.get(ENV_VAR, "").strip()
    chosen = _normalise(env, f"${ENV_VAR}") if env else "auto"
    if chosen != "auto":
        return chosen, _require(chosen, f"chosen by {ENV_VAR}={env}")
    try:
        module = importlib.import_module("ipyniivue")
    except ImportError as exc:
        return "slices", f"ipyniivue is not importable ({exc}); the matplotlib slice viewer works everywhere"
    version = getattr(module, "__version__", "?")
    return "niivue", f"ipyniivue {version} is installed; it bundles its viewer and works offline"


def view3d(
    volume: Volume | np.ndarray,
    labels: Volume | np.ndarray | None = None,
    *,
    backend: str = "auto",
    window: WindowSpec | None = None,
    label_names: LabelNames | None = None,
    height: int = 420,
    quiet: bool = False,
    hide_labels: HiddenLabels = None,
) -> tuple[Any, str]:
    """Build a 3D/multiplanar viewer widget; returns ``(widget, backend name)``.

    Prints one line saying which backend it used and why (``quiet=True``
    silences it; :func:`choose_backend` gives the same line as data).
    ``window`` (preset, pair, or None for the modality default) sets the
    initial display range; labels must be on the volume's grid and are drawn
    like the figures' overlays (``hide_labels``, see :mod:`medbench.viz.figures`).
    """
    vol = as_volume(volume)
    labs = None if labels is None else labels_array(labels, vol)
    label_names = names_of(labels, label_names)
    name, reason = choose_backend(backend)
    if name == "niivue":
        from medbench.viz import niivue

        center, width = window_for(vol, window)
        widget = niivue.build(vol, labs, center, width, label_names=label_names, hide_labels=hide_labels,
                              height=height)
    elif name == "slices":
        widget = SliceViewer(vol, labs, window=window, label_names=label_names, hide_labels=hide_labels)
    else:
        widget = _itk(vol, labs)
    if not quiet:
        print(f"view3d: {name} backend ({reason})")
    return widget, name


def nifti_bytes(volume: Volume, dtype: np.dtype | type | None = None) -> bytes:
    """The volume as gzipped NIfTI-1 bytes (RAS affine in sform and qform), deterministic."""
    import nibabel as nib

    array = np.asarray(volume.array, dtype=dtype or _display_dtype(volume.array))
    image = nib.Nifti1Image(array, volume.affine_ras)
    image.set_sform(volume.affine_ras, code=1)
    image.set_qform(volume.affine_ras, code=1)
    return gzip.compress(image.to_bytes(), compresslevel=1, mtime=0)


# -- backends --------------------------------------------------------------------------------
def _itk(volume: Volume, labels: np.ndarray | None) -> Any:
    import itkwidgets

    kwargs: dict[str, Any] = {"image": _itkwasm_image(volume, volume.array.astype(np.float32), "image")}
    if labels is not None:
        kwargs["label_image"] = _itkwasm_image(volume, labels.astype(np.uint16), "labels")
    return itkwidgets.view(**kwargs)


def _itkwasm_image(volume: Volume, array: np.ndarray, name: str) -> Any:
    """An itkwasm Image (keeps spacing, origin and direction; ITK/LPS like medbench)."""
    import itkwasm

    image_type = itkwasm.ImageType(dimension=3, componentType=str(array.dtype),
                                   pixelType=itkwasm.PixelTypes.Scalar, components=1)
    return itkwasm.Image(imageType=image_type, name=name, origin=list(volume.origin),
                         spacing=list(volume.spacing), direction=volume.direction.astype(np.float64),
                         size=list(volume.shape), data=np.ascontiguousarray(array.transpose(2, 1, 0)))


# -- helpers ---------------------------------------------------------------------------------
def _normalise(value: str, what: str) -> str:
    name = str(value).strip().lower()
    if name not in ("auto", *BACKENDS):
        raise ConfigError(f"unknown 3D viewer {what} {value!r}; valid values are auto, {', '.join(BACKENDS)}")
    return name


def _require(name: str, reason: str) -> str:
    """Check the backend's package imports; return the reason unchanged."""
    if name == "niivue":
        try:
            importlib.import_module("ipyniivue")
        except ImportError as exc:
            raise ConfigError(f"3D backend 'niivue' needs ipyniivue ({exc}); `pip install ipyniivue==2.4.4`") from exc
    elif name == "itk":
        try:
            importlib.import_module("itkwidgets")
        except ImportError as exc:
            raise ConfigError(f"3D backend 'itk' needs itkwidgets, which is not installed ({exc}): {_ITK_HINT}") from exc
    return reason


def _display_dtype(array: np.ndarray) -> np.dtype:
    """A NIfTI data type every viewer reads: keep small ints and float32, else float32."""
    if array.dtype in (np.uint8, np.int16, np.int32, np.float32):
        return array.dtype
    return np.dtype(np.float32)


def label_dtype(labels: np.ndarray) -> np.dtype:
    """The smallest NIfTI integer type that holds every label value."""
    lo, hi = (int(labels.min()), int(labels.max())) if labels.size else (0, 0)
    if lo >= 0 and hi < 256:
        return np.dtype(np.uint8)
    return np.dtype(np.int16) if -32768 <= lo and hi < 32768 else np.dtype(np.int32)
