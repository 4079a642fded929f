"""In a real Jupyter kernel: figures display exactly once as PNG, widgets as widget views plus a PNG picture."""

from __future__ import annotations

import base64

import nbformat
import pytest
from nbclient import NotebookClient

from medbench.runner import kernel_manager_class

CELLS = [
    # No pyplot anywhere: the bare Figure must still render as an image, once.
    "import numpy as np\nfrom medbench.viz import montage, SliceViewer\nmontage(np.zeros((8, 8, 4)), n_slices=2)",
    "SliceViewer(np.zeros((8, 8, 4)))",
]


@pytest.mark.slow
def test_figure_displays_once_and_viewer_as_widget_with_a_picture() -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in CELLS]
    NotebookClient(nb, kernel_name="python3", timeout=120, kernel_manager_class=kernel_manager_class(),
                   resources={"metadata": {"path": "."}}).execute()
    figure_outputs, viewer_outputs = (cell.outputs for cell in nb.cells)
    assert [sorted(o.get("data", {})) for o in figure_outputs] == [["image/png", "text/plain"]]
    data = viewer_outputs[0]["data"]
    assert sorted(data) == ["application/vnd.jupyter.widget-view+json", "image/png", "text/plain"]
    assert base64.b64decode(data["image/png"]).startswith(b"\x89PNG")
    assert data["text/plain"].startswith("SliceViewer of volume: axial k=2 of 0–3")
