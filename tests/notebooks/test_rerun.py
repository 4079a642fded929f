"""Every notebook runs twice in one kernel, as "Run All" twice in JupyterLab does.

The second pass is what a workshop participant does after editing a
parameter: the setup cell must validate only what the parameter cells assign
(``config.from_namespace`` reads them from IPython's ``In``), not the
variables later cells created on the first pass.
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from medbench import recipes
from medbench.runner import kernel_manager_class

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _with_quick_parameters(nb: nbformat.NotebookNode, stem: str) -> nbformat.NotebookNode:
    """Inject the recipe's ``QUICK`` parameters after the parameters cell, as papermill injects ``-p`` values.

    Training notebooks define ``QUICK`` (a functional run in seconds) so that executing every notebook twice
    stays inside the test budget; what is tested — that a second pass in one kernel works and repeats
    itself — does not depend on the run's size.
    """
    quick = getattr(recipes.recipe(stem), "QUICK", None)
    if not quick:
        return nb
    index = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    source = "# Parameters\n" + "\n".join(f"{k} = {v!r}" for k, v in quick.items()) + "\n"
    nb.cells.insert(index + 1, nbformat.v4.new_code_cell(source))
    return nb


def _errors(nb: nbformat.NotebookNode) -> list[str]:
    return [f"{o['ename']}: {o['evalue']}" for c in nb.cells if c.cell_type == "code"
            for o in c.outputs if o.get("output_type") == "error"]


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_run_all_twice_in_one_kernel(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDBENCH_REPORTS", str(tmp_path / "reports"))
    nb = _with_quick_parameters(nbformat.read(path, as_version=4), path.stem)
    client = NotebookClient(nb, kernel_name="medbench", timeout=600, kernel_manager_class=kernel_manager_class(),
                            resources={"metadata": {"path": str(path.parent)}})
    checked = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and "# NBVAL_CHECK_OUTPUT" in c.source]
    printed = []
    with client.setup_kernel(env={**os.environ}):
        for _ in range(2):
            for index, cell in enumerate(nb.cells):
                client.execute_cell(cell, index)  # raises CellExecutionError on the first error
            assert _errors(nb) == []
            printed.append("".join(o.get("text", "") for o in nb.cells[checked[0]].outputs))
    assert printed[0] == printed[1] and printed[0].strip(), "the second pass must print the same checked metrics"
    assert nb.cells[checked[0]].execution_count > sum(c.cell_type == "code" for c in nb.cells)
