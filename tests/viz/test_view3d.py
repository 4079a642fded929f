from __future__ import annotations

import base64
import gzip
import io
import sys
import types

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from medbench.errors import ConfigError
from medbench.image.volume import Volume
from medbench.viz.view3d import ENV_VAR, choose_backend, view3d
from medbench.viz.viewer import SliceViewer


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)


def _decode(niivue_volume) -> nib.Nifti1Image:
    return nib.Nifti1Image.from_bytes(gzip.decompress(niivue_volume.data))


def test_auto_uses_niivue_with_the_volume_loaded(ct: Volume, labels: np.ndarray,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("ipyniivue", reason="ipyniivue is a core dependency; this checks its widget state")
    widget, backend = view3d(ct, labels, label_names={1: "liver", 3: "lesion"})
    assert backend == "niivue"
    assert type(widget).__name__ == "NiiVueView" and type(widget.niivue).__name__ == "NiiVue"
    assert "niivue" in capsys.readouterr().out
    image, layer = widget.volumes
    decoded = _decode(image)
    np.testing.assert_array_equal(np.asanyarray(decoded.dataobj), ct.array)
    np.testing.assert_allclose(decoded.affine, ct.affine_ras)
    assert (image.cal_min, image.cal_max) == (40 - 200, 40 + 200)
    np.testing.assert_array_equal(np.asanyarray(_decode(layer).dataobj), labels)
    lut = layer.colormap_label  # dense over 0..3: one RGBA per value
    assert (lut.min, lut.max) == (0, 3)
    assert [lut.labels[v] for v in (1, 3)] == ["liver", "lesion"]
    alphas = lut.lut[3::4]
    assert alphas == [0, 255, 0, 255]  # background and the absent value 2 are transparent


def test_niivue_conventions_colour_bars_and_legend(ct: Volume, labels: np.ndarray) -> None:
    """One orientation convention (radiological, nose left like the figures); a colour bar only for the image."""
    pytest.importorskip("ipyniivue", reason="ipyniivue is a core dependency; this checks its widget state")
    names = {1: "soft_tissue", 3: "lesion"}
    widget, _ = view3d(ct, labels, label_names=names, quiet=True)
    opts = widget.niivue.opts
    assert opts.is_radiological_convention and opts.sagittal_nose_left and opts.is_colorbar
    image, layer = widget.volumes
    assert image.colorbar_visible and not layer.colorbar_visible
    # soft_tissue is a context class: not sent to the viewer, named as left out in the legend
    np.testing.assert_array_equal(np.asanyarray(_decode(layer).dataobj), np.where(labels == 3, 3, 0))
    assert "lesion" in widget.legend.value and "not drawn: soft_tissue" in widget.legend.value
    every, _ = view3d(ct, labels, label_names=names, quiet=True, hide_labels=())
    np.testing.assert_array_equal(np.asanyarray(_decode(every.volumes[1]).dataobj), labels)


def test_niivue_display_data_carries_a_picture(ct: Volume, labels: np.ndarray) -> None:
    pytest.importorskip("ipyniivue", reason="ipyniivue is a core dependency; this checks its widget state")
    widget, _ = view3d(ct, labels, quiet=True)
    data, _meta = widget._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in data
    png = base64.b64decode(data["image/png"])
    picture = Image.open(io.BytesIO(png))
    assert picture.width > 400 and np.asarray(picture.convert("L")).std() > 10
    assert "NiiVue 3D viewer of ct" in data["text/plain"] and "object at 0x" not in data["text/plain"]


def test_auto_falls_back_to_slices_without_ipyniivue(ct: Volume, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ipyniivue", None)  # makes `import ipyniivue` fail
    widget, backend = view3d(ct, quiet=True)
    assert backend == "slices" and isinstance(widget, SliceViewer)
    assert "not importable" in choose_backend()[1]
    with pytest.raises(ConfigError, match="ipyniivue"):
        view3d(ct, backend="niivue", quiet=True)


def test_slices_backend(ct: Volume, labels: np.ndarray) -> None:
    widget, backend = view3d(ct, labels, backend="slices", window="bone", quiet=True)
    assert backend == "slices" and isinstance(widget, SliceViewer)
    assert widget.volume is ct and widget.window == (400.0, 1800.0)


def test_itk_missing_raises_with_install_hint(ct: Volume, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "itkwidgets", None)
    with pytest.raises(ConfigError) as err:
        view3d(ct, backend="itk")
    assert "pip install 'medbench[itk]'" in str(err.value) and "offline" in str(err.value)


def test_itk_backend_passes_geometry(ct: Volume, labels: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: dict = {}
    fake_wasm = types.SimpleNamespace(
        ImageType=lambda **kw: kw, PixelTypes=types.SimpleNamespace(Scalar="Scalar"), Image=lambda **kw: kw)
    fake_widgets = types.SimpleNamespace(view=lambda **kw: calls.update(kw) or "viewer")
    monkeypatch.setitem(sys.modules, "itkwasm", fake_wasm)
    monkeypatch.setitem(sys.modules, "itkwidgets", fake_widgets)
    widget, backend = view3d(ct, labels, backend="itk", quiet=True)
    assert (widget, backend) == ("viewer", "itk")
    image = calls["image"]
    assert image["spacing"] == list(ct.spacing) and image["origin"] == list(ct.origin)
    assert image["size"] == [24, 20, 10] and image["data"].shape == (10, 20, 24)
    np.testing.assert_array_equal(image["data"][3, 2, 1], ct.array[1, 2, 3])
    assert calls["label_image"]["imageType"]["componentType"] == "uint16"


def test_environment_variable_overrides_auto_only(ct: Volume, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, "slices")
    widget, backend = view3d(ct, quiet=True)
    assert backend == "slices" and isinstance(widget, SliceViewer)
    assert ENV_VAR in choose_backend()[1]
    pytest.importorskip("ipyniivue", reason="explicit niivue needs ipyniivue (a core dependency)")
    assert view3d(ct, backend="niivue", quiet=True)[1] == "niivue"
    monkeypatch.setenv(ENV_VAR, "vtk")
    with pytest.raises(ConfigError, match=ENV_VAR):
        view3d(ct, quiet=True)


def test_unknown_backend(ct: Volume) -> None:
    with pytest.raises(ConfigError, match="valid values are auto, niivue, slices, itk"):
        view3d(ct, backend="pyvista")
