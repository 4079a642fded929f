"""In a real Jupyter kernel: figures display exactly once as PNG, widgets as widget views."""

from __future__ import annotations

import nbformat
import pytest
from nbclient import NotebookClient

CELLS = [
    # No pyplot anywhere: the bare Figure must still render as an image, once.
    "import numpy as np\nfrom medbench.viz import montage, SliceViewer\nmontage(np.zeros((8, 8, 4)), n_slices=2)",
    "SliceViewer(np.zeros((8, 8, 4)))",
]


@pytest.mark.slow
def test_figure_displays_once_and_viewer_as_widget() -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in CELLS]
    NotebookClient(nb, kernel_name="python3", timeout=120,
                   resources={"metadata": {"path": "."}}).execute()
    figure_outputs, viewer_outputs = (cell.outputs for cell in nb.cells)
    assert [sorted(o.get("data", {})) for o in figure_outputs] == [["image/png", "text/plain"]]
    assert "application/vnd.jupyter.widget-view+json" in viewer_outputs[0]["data"]
