"""The notebook series: anatomy (DESIGN §4), parameters = smoke defaults,
determinism of metrics.json, and proof that the nbval regression check can fail.

The nbval run itself (`make test`, second pytest call) compares every
`# NBVAL_CHECK_OUTPUT` cell against the committed outputs.
"""

from __future__ import annotations

import ast
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from medbench import config, recipes, runner
from tools import nbval_tolerance as nt
from tools.test_jobs import NBVAL

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
TOLERANCE = ROOT / "tests" / "notebooks" / "tolerance.yaml"


def _nbval(target: Path, cwd: Path, env: dict[str, str] | None = None, timeout: int = 600) -> str:
    """Real nbval, as `make test` runs it (with the tolerance plugin), over one notebook; its stdout."""
    env = {**(env or os.environ), "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, "-m", "pytest", *NBVAL, "-q", str(target)], capture_output=True, text=True,
                         cwd=cwd, env=env, timeout=timeout)
    return res.stdout


def _params_cell(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, "exactly one cell must be tagged 'parameters'"
    return cells[0]


def _checked_cell(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    cells = [c for c in nb.cells if c.cell_type == "code" and "# NBVAL_CHECK_OUTPUT" in c.source]
    assert len(cells) == 1, "exactly one checked metrics cell"
    return cells[0]


def _shows_something(source: str) -> bool:
    """True when a cell's last statement is an expression (Jupyter displays it) or it calls display()/print()."""
    body = ast.parse(source).body
    if not body:
        return False
    last = body[-1]
    calls = {n.func.id for n in ast.walk(ast.Module(body=body, type_ignores=[]))
             if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    return isinstance(last, ast.Expr) or bool(calls & {"display", "print"})


def test_every_registered_notebook_exists_and_vice_versa() -> None:
    assert [p.stem for p in NOTEBOOKS] == list(recipes.NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_parameters_cell_equals_schema_defaults(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    values = config.literal_assignments(_params_cell(nb).source)
    assert values is not None, "the parameters cell holds only literal assignments"
    assert values == recipes.defaults(path.stem)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_anatomy(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    assert "from_namespace" in "".join(c.source for c in code), "setup must validate parameters"
    assert _checked_cell(nb).outputs, "the checked metrics cell is committed with its output"
    silent = [c.source.splitlines()[0] for c in code if _shows_something(c.source) and not c.outputs]
    assert not silent, f"cells that display something are committed without output: {silent}"
    assert all(c.execution_count is not None for c in code), "commit executed notebooks (make notebooks)"
    assert nb.cells[-1].cell_type == "markdown", "end with summary / exercises / references"
    for c in code:  # parsed, so a parameter such as `fusion_late_per_class = True` is not mistaken for a class
        defined = [n for n in ast.walk(ast.parse(c.source))
                   if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda))]
        assert not defined, f"logic belongs in medbench/: {c.source.splitlines()[0]}"


@pytest.mark.slow
def test_same_seed_gives_byte_identical_metrics(tmp_path: Path) -> None:
    results = [runner.execute("00_tour", recipes.resolve("00_tour"), tmp_path / f"run{i}", profile="smoke",
                              progress=False) for i in range(2)]
    assert [r.status for r in results] == ["completed", "completed"], [r.error for r in results]
    first, second = ((r.run_dir / "metrics.json").read_bytes() for r in results)
    assert first == second and len(first) > 50


@pytest.mark.slow
def test_nbval_fails_when_a_checked_number_changes(tmp_path: Path) -> None:
    src = ROOT / "notebooks" / "00_tour.ipynb"
    nb = nbformat.read(src, as_version=4)
    cell = _params_cell(nb)
    assert "seed = 0" in cell.source
    cell.source = cell.source.replace("seed = 0", "seed = 1")  # committed outputs stay those of seed 0
    changed = tmp_path / "00_tour.ipynb"
    nbformat.write(nb, changed)
    out = _nbval(changed, tmp_path, {**os.environ, "MEDBENCH_REPORTS": str(tmp_path / "reports")})
    assert "NBVAL_CHECK_OUTPUT" in out and "1 failed" in out, out[-3000:]


def _shift(value: str, by: float) -> str:
    """A printed number moved by ``by``, printed with the same decimals."""
    decimals = len(value.partition(".")[2])
    return f"{float(value) + by:.{decimals}f}"


def _variants(line: str, tol: float | None) -> tuple[str | None, str | None]:
    """``(beyond, within)``: the line changed by the smallest printable step beyond its tolerance (must fail;
    for an exact line, its last digit), and by the largest printable move within it (must pass; None for an
    exact line or a tolerance below the printed precision)."""
    key, sep, value = line.partition(": ")
    if not sep:
        return None, None
    if value in ("True", "False"):
        return f"{key}: {'False' if value == 'True' else 'True'}", None
    if tol is not None and nt.LINE.match(line):
        step = 10.0 ** -len(value.partition(".")[2])
        inside = math.floor(tol / step + 1e-9) * step  # the largest printable move within the tolerance
        within = f"{key}: {_shift(value, inside)}" if inside > 0 else None
        return f"{key}: {_shift(value, inside + step)}", within
    match = list(re.finditer(r"\d", value))
    if not match:
        return None, None
    i = match[-1].start()
    return f"{key}: {value[:i]}{(int(value[i]) + 1) % 10}{value[i + 1:]}", None


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_nbval_compares_every_checked_line(path: Path, tmp_path: Path) -> None:
    """Each checked line, changed beyond its tolerance (tests/notebooks/tolerance.yaml; none: by one digit),
    makes nbval fail, and a tolerated line moved by the most its tolerance allows passes.

    A synthetic notebook (named like the real one, so its rules apply) holds one
    cell per variant: it prints the committed output with one line changed, and
    carries the committed output as its expected output. A control cell prints it
    unchanged. Real nbval, with the sanitize file and the tolerance plugin, must
    fail exactly the beyond-tolerance cells.
    """
    rules = nt.load_rules(TOLERANCE)
    text = nt.checked_text(path)
    lines = text.rstrip("\n").split("\n")
    assert len(lines) >= 3, f"{path.stem}: the checked cell prints too little to regress against"
    beyond, within = [], []
    for n, line in enumerate(lines):
        m = nt.LINE.match(line)
        b, w = _variants(line, nt.tolerance(rules, path.stem, m["key"]) if m else None)
        beyond += [(n, b)] if b is not None else []
        within += [(n, w)] if w is not None else []
    assert beyond, "no checked line holds a number"
    probe = nbformat.v4.new_notebook()
    probe.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for n, variant in [(-1, None), *beyond, *within]:
        printed = text if variant is None else "\n".join(lines[:n] + [variant] + lines[n + 1:]) + "\n"
        c = nbformat.v4.new_code_cell(f"# NBVAL_CHECK_OUTPUT\nprint({printed.rstrip(chr(10))!r})")
        c.outputs = [nbformat.v4.new_output("stream", name="stdout", text=text)]
        c.execution_count = len(probe.cells) + 1
        probe.cells.append(c)
    target = tmp_path / f"{path.stem}.ipynb"
    nbformat.write(probe, target)
    out = _nbval(target, tmp_path, timeout=300)
    assert f"{len(beyond)} failed, {1 + len(within)} passed" in out, out[-3000:]
