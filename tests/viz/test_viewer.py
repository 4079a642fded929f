from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from medbench.errors import ConfigError, GeometryError
from medbench.image.volume import Volume
from medbench.image.windowing import apply_window, percentile_window
from medbench.viz.viewer import SliceViewer, series_browser


def test_slice_slider_changes_png_and_current_slice(ct: Volume) -> None:
    viewer = SliceViewer(ct)
    assert viewer.slice_slider.value == 5 and viewer.slice_slider.max == 9
    first = bytes(viewer.image.value)
    assert first.startswith(b"\x89PNG")
    np.testing.assert_array_equal(viewer.current_slice, ct.array[:, :, 5].T)
    viewer.slice_slider.value = 2
    assert viewer.image.value != first
    np.testing.assert_array_equal(viewer.current_slice, ct.array[:, :, 2].T)
    np.testing.assert_array_equal(viewer.current_image, apply_window(ct.array[:, :, 2].T, 40, 400))
    assert "z = 105.0 mm" in viewer.caption.value


def test_png_has_the_physical_aspect_ratio(ct: Volume) -> None:
    png = SliceViewer(ct).render()
    width, height = Image.open(io.BytesIO(png)).size
    # axial slice: 24 columns x 0.5 mm wide, 20 rows x 1.0 mm high
    assert height / width == pytest.approx(20.0 / 12.0, rel=0.02)


def test_window_sliders_and_presets(ct: Volume) -> None:
    viewer = SliceViewer(ct, window="soft_tissue")
    assert viewer.window == (40.0, 400.0) and viewer.preset.value == "soft_tissue"
    before = viewer.image.value
    viewer.width_slider.value = 100.0
    assert viewer.image.value != before
    assert viewer.preset.value == "custom"
    np.testing.assert_array_equal(viewer.current_image, apply_window(viewer.current_slice, 40, 100))
    viewer.preset.value = "lung"
    assert viewer.window == (-600.0, 1500.0)
    viewer.center_slider.value = 40.0
    viewer.width_slider.value = 400.0
    assert viewer.preset.value == "soft_tissue"


def test_opacity_changes_image_only_with_labels(ct: Volume, labels: np.ndarray) -> None:
    viewer = SliceViewer(ct, labels)
    viewer.slice_slider.value = 6
    viewer.opacity_slider.value = 0.0
    clear = viewer.image.value
    viewer.opacity_slider.value = 1.0
    assert viewer.image.value != clear
    assert not viewer.opacity_slider.disabled
    assert SliceViewer(ct).opacity_slider.disabled


def test_axis_toggle(ct: Volume) -> None:
    viewer = SliceViewer(ct, axis=2)
    viewer.axis_toggle.value = 0
    assert viewer.slice_slider.max == ct.shape[0] - 1 and viewer.slice_slider.value == 12
    np.testing.assert_array_equal(viewer.current_slice, ct.array[12, :, :].T[::-1])
    viewer.axis_toggle.value = 1
    np.testing.assert_array_equal(viewer.current_slice, ct.array[:, 10, :].T[::-1])
    with pytest.raises(ConfigError):
        SliceViewer(ct, axis=5)


def test_series_browser_switches_volume_window_and_table(ct: Volume, labels: np.ndarray) -> None:
    mr = Volume.from_spacing(np.random.default_rng(3).uniform(0, 900, (16, 12, 6)), (1.0, 1.0, 4.0),
                             meta={"modality": "MR", "sequence": "T2w", "verdict": "ok"})
    browser = series_browser({"ct": ct, "t2": mr}, labels={"ct": labels})
    assert browser.viewer.volume is ct and browser.viewer.window == (40.0, 400.0)
    assert "24 × 20 × 10" in browser.info.value
    browser.dropdown.value = "t2"
    assert browser.viewer.volume is mr
    assert browser.viewer.window == pytest.approx(percentile_window(mr.array))
    assert browser.viewer.opacity_slider.disabled  # no labels for t2
    np.testing.assert_array_equal(browser.viewer.current_slice, mr.array[:, :, 3].T)
    info = browser.info.value
    assert "T2w" in info and "ok" in info and "16 × 12 × 6" in info
    assert "spacing (mm)</th><td>1 × 1 × 4</td>" in info, info
    with pytest.raises(ConfigError, match="unknown series"):
        series_browser({"ct": ct}, labels={"pet": labels})
    with pytest.raises(GeometryError):
        series_browser({"ct": ct}, labels={"ct": labels[:, :, :3]})


def test_caption_uses_the_sliders_zero_based_index(ct: Volume) -> None:
    viewer = SliceViewer(ct)
    assert viewer.slice_slider.value == 5
    assert "axial k=5 of 0–9" in viewer.caption.value
    viewer.slice_slider.value = 0
    assert "axial k=0 of 0–9" in viewer.caption.value and "z = 100.0 mm" in viewer.caption.value
    viewer.axis_toggle.value = 0
    assert f"sagittal i={viewer.slice_slider.value} of 0–23" in viewer.caption.value


def test_legend_names_the_drawn_labels_and_context_classes_are_not_drawn(ct: Volume, labels: np.ndarray) -> None:
    viewer = SliceViewer(ct, labels, label_names={1: "soft_tissue", 3: "lesion"})
    assert "lesion" in viewer.legend.value and "not drawn: soft_tissue" in viewer.legend.value
    viewer.slice_slider.value = 4  # only label 1 (soft_tissue) on this slice: nothing is tinted
    viewer.opacity_slider.value = 1.0
    tinted = viewer.image.value
    viewer.opacity_slider.value = 0.0
    assert viewer.image.value == tinted
    every = SliceViewer(ct, labels, label_names={1: "soft_tissue", 3: "lesion"}, hide_labels=())
    every.slice_slider.value = 4
    every.opacity_slider.value = 1.0
    assert every.image.value != tinted and "not drawn" not in every.legend.value


def _bundle_png(widget) -> tuple[dict, Image.Image]:
    data, _ = widget._repr_mimebundle_()
    return data, Image.open(io.BytesIO(base64.b64decode(data["image/png"])))


def test_display_data_carries_a_picture_of_the_current_state(ct: Volume, labels: np.ndarray) -> None:
    viewer = SliceViewer(ct, labels, label_names={1: "liver", 3: "lesion"})
    data, first = _bundle_png(viewer)
    assert "application/vnd.jupyter.widget-view+json" in data
    assert data["text/plain"].startswith("SliceViewer of ct: axial k=5 of 0–9")
    assert np.asarray(first.convert("L")).std() > 10
    viewer.slice_slider.value = 6
    data, moved = _bundle_png(viewer)
    assert "k=6" in data["text/plain"] and not np.array_equal(np.asarray(first), np.asarray(moved))
    browser = series_browser({"ct": ct, "other": ct})
    data, picture = _bundle_png(browser)
    assert data["text/plain"].startswith("SeriesBrowser of 2 series; showing ct")
    assert picture.width > 300


def test_closed_widget_has_no_display(ct: Volume) -> None:
    viewer = SliceViewer(ct)
    viewer.close()
    assert viewer._repr_mimebundle_ is None or viewer._repr_mimebundle_() is None
