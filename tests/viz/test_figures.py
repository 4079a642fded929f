from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure

from medbench.errors import ConfigError, GeometryError
from medbench.image.volume import Volume
from medbench.image.windowing import apply_window, percentile_window, window_stats
from medbench.viz.figures import evenly_spaced, modality_grid, montage, orthogonal, overlay, window_comparison


def shown(ax) -> np.ndarray:
    return np.asarray(ax.images[0].get_array())


def test_montage_axes_images_titles_and_aspect(ct: Volume) -> None:
    fig = montage(ct, n_slices=4, window="lung")
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 4
    assert evenly_spaced(10, 4) == [1, 3, 6, 8]
    for ax, k in zip(fig.axes, [1, 3, 6, 8]):
        np.testing.assert_array_equal(shown(ax), apply_window(ct.array[:, :, k].T, -600, 1500))
        assert ax.get_title() == f"z = {100.0 + 2.5 * k:.1f} mm"
        assert ax.get_aspect() == pytest.approx(1.0 / 0.5)  # row (j) spacing / column (i) spacing
    assert "lung" in fig._suptitle.get_text()


def test_montage_clamps_slices_and_honours_axis_spacing(ct: Volume) -> None:
    fig = montage(ct, n_slices=50, axis=1)
    assert len(fig.axes) == ct.shape[1]
    assert fig.axes[0].get_aspect() == pytest.approx(2.5 / 0.5)  # coronal: z spacing / x spacing
    np.testing.assert_array_equal(shown(fig.axes[0]), apply_window(ct.array[:, 0, :].T[::-1], 40, 400))
    with pytest.raises(ConfigError):
        montage(ct, n_slices=0)
    with pytest.raises(ConfigError, match="axis"):
        montage(ct, axis=3)


def test_montage_label_overlay_and_legend(ct: Volume, labels: np.ndarray) -> None:
    fig = montage(ct, n_slices=10, labels=labels, label_names={1: "liver", 3: "lesion"})
    overlay_img = np.ma.asarray(fig.axes[6].images[1].get_array())
    np.testing.assert_array_equal(~overlay_img.mask, labels[:, :, 6].T > 0)
    assert len(fig.axes[0].images) == 2
    legend_texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend_texts == ["liver", "lesion"]
    assert len(montage(ct, n_slices=3, labels=labels, alpha=0.0).axes[0].images) == 1


def test_plain_array_is_taken_with_unit_spacing() -> None:
    array = np.arange(24 * 20 * 10, dtype=float).reshape(24, 20, 10)
    fig = montage(array, n_slices=2, window=(100, 1000))
    assert fig.axes[0].get_aspect() == pytest.approx(1.0)
    np.testing.assert_array_equal(shown(fig.axes[0]), apply_window(array[:, :, 2].T, 100, 1000))


def test_reoriented_volume_is_displayed_like_the_lps_one(ct: Volume) -> None:
    # Same patient, stored with i running to the patient's right: the picture must not change.
    flipped = Volume.from_spacing(ct.array[::-1].copy(), ct.spacing, origin=(-6.0 + 23 * 0.5, 10.0, 100.0),
                                  direction=np.diag([-1.0, 1.0, 1.0]))
    np.testing.assert_allclose(flipped.world([23, 0, 0]), ct.world([0, 0, 0]))
    a, b = montage(ct, n_slices=3), montage(flipped, n_slices=3)
    for ax_a, ax_b in zip(a.axes, b.axes):
        np.testing.assert_array_equal(shown(ax_a), shown(ax_b))
        assert ax_a.get_title() == ax_b.get_title()


def test_overlay_picks_most_labelled_slice(ct: Volume, labels: np.ndarray) -> None:
    fig = overlay(ct, labels, window="bone", label_names=["liver", "kidney", "lesion"])
    assert len(fig.axes) == 1
    ax = fig.axes[0]
    np.testing.assert_array_equal(shown(ax), apply_window(ct.array[:, :, 6].T, 400, 1800))
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["liver", "lesion"]
    assert "z = 115.0 mm" in ax.get_title()
    fig = overlay(ct, labels, slice_index=4)
    np.testing.assert_array_equal(shown(fig.axes[0]), apply_window(ct.array[:, :, 4].T, 40, 400))


def test_overlay_2d_and_mismatched_labels(ct: Volume, labels: np.ndarray) -> None:
    image = ct.array[:, :, 6].T
    fig = overlay(image, labels[:, :, 6].T, window=(0, 100))
    np.testing.assert_array_equal(shown(fig.axes[0]), apply_window(image, 0, 100))
    with pytest.raises(GeometryError):
        overlay(ct, labels[:, :, :5])
    other = Volume.from_spacing(labels, (1.0, 1.0, 1.0))
    with pytest.raises(GeometryError, match="affines differ"):
        overlay(ct, other)


def test_orthogonal_views_through_point(ct: Volume) -> None:
    fig = orthogonal(ct, point=(3, 4, 5), window="soft_tissue")
    assert len(fig.axes) == 3
    axial, coronal, sagittal = fig.axes
    np.testing.assert_array_equal(shown(axial), apply_window(ct.array[:, :, 5].T, 40, 400))
    np.testing.assert_array_equal(shown(coronal), apply_window(ct.array[:, 4, :].T[::-1], 40, 400))
    np.testing.assert_array_equal(shown(sagittal), apply_window(ct.array[3, :, :].T[::-1], 40, 400))
    assert [ax.get_aspect() for ax in fig.axes] == pytest.approx([2.0, 5.0, 2.5])
    assert "radiological" in axial.get_title() and "radiological" in coronal.get_title()
    # Crosshair: vertical line at the column, horizontal at the row of the point.
    xs = sorted(line.get_xdata()[0] for line in axial.lines)
    ys = sorted(line.get_ydata()[0] for line in axial.lines)
    assert 3 in xs and 4 in ys
    ys_coronal = [line.get_ydata()[0] for line in coronal.lines]
    assert ct.shape[2] - 1 - 5 in ys_coronal
    assert "(12, 10, 5)" in orthogonal(ct)._suptitle.get_text()
    with pytest.raises(ConfigError):
        orthogonal(ct, point=(0, 0, 10))


def test_window_comparison_titles_carry_stats(ct: Volume) -> None:
    presets = ("soft_tissue", "lung", (0, 50))
    fig = window_comparison(ct, presets, slice_index=2)
    assert len(fig.axes) == 3
    raw = ct.array[:, :, 2].T
    for ax, (c, w) in zip(fig.axes, [(40, 400), (-600, 1500), (0, 50)]):
        np.testing.assert_array_equal(shown(ax), apply_window(raw, c, w))
        stats = window_stats(raw, c, w)
        assert f"below {stats.below:.1%}" in ax.get_title() and f"above {stats.above:.1%}" in ax.get_title()
    assert len(window_comparison(raw).axes) == 4


def test_modality_grid_windows_and_colorbars(ct: Volume) -> None:
    pet = Volume(np.abs(ct.array) / 100.0, ct.affine, {"modality": "PT", "units": "SUV"})
    t2 = np.random.default_rng(1).uniform(0, 800, size=(16, 16, 8))
    fig = modality_grid({"CT": ct, "PET": pet, "T2": t2})
    assert len(fig.axes) == 6  # image + colorbar per series
    images = [ax for ax in fig.axes if ax.images]
    np.testing.assert_array_equal(shown(images[0]), apply_window(ct.array[:, :, 5].T, 40, 400))
    c, w = percentile_window(pet.array)
    np.testing.assert_array_equal(shown(images[1]), apply_window(pet.array[:, :, 5].T, c, w))
    assert images[2].get_title().startswith("T2 (T2)")
    labels_on_axes = {ax.get_ylabel() for ax in fig.axes if not ax.images}
    assert {"HU", "SUV", "a.u."} <= labels_on_axes
    fig = modality_grid({"CT": ct}, windows={"CT": "bone"}, slice_index=1)
    np.testing.assert_array_equal(shown(fig.axes[0]), apply_window(ct.array[:, :, 1].T, 400, 1800))
    with pytest.raises(ConfigError):
        modality_grid({})


def test_figures_are_not_registered_with_pyplot(ct: Volume) -> None:
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    fig = montage(ct, n_slices=2)
    assert plt.get_fignums() == before
    fig.savefig(__import__("io").BytesIO(), format="png")  # still drawable by the caller


def test_context_classes_are_not_drawn_and_the_legend_says_so(ct: Volume, labels: np.ndarray) -> None:
    names = {1: "soft_tissue", 3: "lesion"}
    fig = montage(ct, n_slices=10, labels=labels, label_names=names)
    on_slice_6 = np.ma.asarray(fig.axes[6].images[1].get_array())
    np.testing.assert_array_equal(~on_slice_6.mask, labels[:, :, 6].T == 3)  # lesion only, body untouched
    legend = fig.legends[0]
    assert [t.get_text() for t in legend.get_texts()] == ["lesion"]
    assert legend.get_title().get_text() == "not drawn: soft_tissue"
    every = montage(ct, n_slices=10, labels=labels, label_names=names, hide_labels=())
    np.testing.assert_array_equal(~np.ma.asarray(every.axes[6].images[1].get_array()).mask, labels[:, :, 6].T > 0)
    by_value = montage(ct, n_slices=10, labels=labels, hide_labels=[3])
    assert [t.get_text() for t in by_value.legends[0].get_texts()] == ["label 1"]
    # overlay picks the slice with the most *drawn* voxels: k=6 holds the lesion, k=3..6 the body class
    assert "z = 115.0 mm" in overlay(ct, labels, label_names=names).axes[0].get_title()


def test_label_names_come_from_the_label_volume(ct: Volume, labels: np.ndarray) -> None:
    named = ct.with_array(labels, role="label")
    named.meta["label_names"] = {1: "soft_tissue", 3: "lesion"}
    fig = orthogonal(ct, labels=named)
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["lesion"]
