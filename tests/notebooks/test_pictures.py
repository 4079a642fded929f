"""Committed notebooks show a picture for every figure and widget wherever they are opened.

A widget-view reference is only drawable while the kernel that made it runs;
committed notebooks carry no widget state, so such a reference would render as
"model not found" (JupyterLab) or an empty box (GitHub, nbviewer). `make
notebooks` stores every widget output as the PNG picture the widget puts in its
display data, with its readable text.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_widget_output_is_a_picture(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    assert "widgets" not in nb.metadata, "widget state is not committed (make notebooks drops it)"
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "data" in o]
    assert not [o for o in outputs if WIDGET_VIEW in o["data"]], "dead widget views: re-run `make notebooks`"
    for o in outputs:
        text = "".join(o["data"].get("text/plain", ""))
        assert not re.search(r"<[\w.]+ object at 0x[0-9a-f]+>", text), f"bare Python repr shown: {text[:80]}"
        if text.startswith(("SliceViewer of", "SeriesBrowser of", "NiiVue 3D viewer of")):
            assert "image/png" in o["data"], text[:80]
