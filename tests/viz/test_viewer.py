from __future__ import annotations

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
