"""The NiiVue backend of :func:`medbench.viz.view3d` (ipyniivue, bundles its viewer, works offline).

Display conventions, the same as every medbench figure (:mod:`medbench.viz.slicing`):
radiological (patient right on the screen's left in axial and coronal views;
``is_radiological_convention``) and sagittal views with the nose to the left
(anterior on the left, ``sagittal_nose_left``). The volume reaches NiiVue as
gzipped NIfTI bytes with its RAS affine, so NiiVue orients it from the header.

Colour bars: one for the image (its window in the image's units, e.g. HU);
none for the label layer, whose colours are categories, named by an HTML
legend under the viewer instead. Context classes (``soft_tissue``, ...) are not drawn
(same rule and ``hide_labels`` argument as the figures).

Imported only when the backend is used (ipyniivue is imported here).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ipyniivue
import ipywidgets as widgets
import numpy as np

from medbench.image.volume import Volume
from medbench.viz.figures import HiddenLabels, LabelNames, label_style, orthogonal
from medbench.viz.slicing import volume_name
from medbench.viz.static import figure_png, with_picture
from medbench.viz.view3d import label_dtype, nifti_bytes


class NiiVueView(widgets.VBox):
    """ipyniivue's NiiVue viewer with a label legend under it, shown as a static picture where no kernel runs.

    :attr:`niivue` is the ``ipyniivue.NiiVue`` widget (its whole API: slice
    type, crosshair, colormaps, ...), :attr:`legend` the HTML legend of the
    drawn labels (NiiVue draws no legend for label volumes). The display data
    carries, besides the widget view, a PNG of the axial, coronal and sagittal
    planes through the volume's centre with the same window, labels and
    orientation (what the viewer opens on), drawn with matplotlib.
    """

    def __init__(self, niivue: Any, legend_html: str, picture: Callable[[], Any], description: str) -> None:
        self.niivue = niivue
        self.legend = widgets.HTML(legend_html)
        self._picture = picture
        self._description = description
        super().__init__(children=[niivue, self.legend] if legend_html else [niivue])

    @property
    def volumes(self) -> list[Any]:
        """The NiiVue volume layers (image first, then labels)."""
        return list(self.niivue.volumes)

    def snapshot(self) -> bytes:
        """The static picture (PNG bytes)."""
        return figure_png(self._picture())

    def _repr_mimebundle_(self, **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]] | None:
        return with_picture(super()._repr_mimebundle_(**kwargs), self.snapshot(), self._description)


def build(volume: Volume, labels: np.ndarray | None, center: float, width: float, *,
          label_names: LabelNames | None = None, hide_labels: HiddenLabels = None, height: int = 420) -> NiiVueView:
    """A :class:`NiiVueView`: the image (grey, windowed, colour bar), the drawn labels and their legend."""
    stem = volume_name(volume, "image").split(".")[0] or "image"
    style = label_style(labels, label_names, hide_labels)

    def picture() -> Any:
        fig = orthogonal(volume, window=(center, width), labels=labels, label_names=label_names,
                         hide_labels=hide_labels)
        fig.suptitle(f"{stem}: static picture of the NiiVue 3D viewer (axial, coronal, sagittal through the centre;"
                     " run the notebook for the interactive 3D view)", fontsize="small")
        return fig

    shape = " × ".join(str(n) for n in volume.shape)
    viewer = ipyniivue.NiiVue(
        height=height, is_radiological_convention=True, sagittal_nose_left=True, is_colorbar=True,
        multiplanar_show_render=ipyniivue.ShowRender.ALWAYS,
    )
    viewer.add_volume(ipyniivue.Volume(data=nifti_bytes(volume), name=f"{stem}.nii.gz", colormap="gray",
                                       cal_min=center - width / 2, cal_max=center + width / 2))
    if labels is not None and style is not None:
        drawn = np.where(np.isin(labels, style.values), labels, 0)
        layer = ipyniivue.Volume(data=nifti_bytes(volume.with_array(drawn), label_dtype(drawn)),
                                 name=f"{stem}_labels.nii.gz", opacity=0.5, colorbar_visible=False)
        rgba = style.rgba()
        layer.set_colormap_label({
            "R": [0, *(c[0] for c in rgba)], "G": [0, *(c[1] for c in rgba)], "B": [0, *(c[2] for c in rgba)],
            "A": [0, *([255] * len(rgba))], "I": [0, *(int(v) for v in style.values)],
            "labels": ["", *style.names],
        })
        viewer.add_volume(layer)
    description = f"NiiVue 3D viewer of {stem} ({shape} voxels, window C{center:.4g} W{width:.4g})"
    return NiiVueView(viewer, "" if style is None else style.legend_html(), picture, description)
