"""nbval with a stated tolerance for learned numbers: ``pytest -p tools.nbval_tolerance --nbval-tolerance FILE``.

Why. nbval compares a checked cell's printed text exactly. A notebook that
trains a model prints numbers that two runs on one machine reproduce bit for
bit (seeds, deterministic algorithms, pinned threads: DESIGN §6), but two
machines of the kind CI runs on need not: the same code, seed and thread count
gave 04_segmentation's UNet a test Dice of 0.64 on an AMD Zen 5 and 0.62 on an
Intel Xeon (Sapphire Rapids), both AVX-512, because oneDNN and MKL choose
their kernels (and so the order of float sums) by CPU, and training amplifies
the last bits. Rounding cannot absorb that: any rounding has boundaries that a
small change crosses.

What. ``FILE`` (YAML) names, per notebook, the checked keys that may move and
by how much: ``{notebook_stem: {key_glob: absolute_tolerance}}``. Before nbval
compares a checked cell, each printed ``key: number`` line whose key has a rule
and whose number is within the tolerance of the committed line's number is
replaced by the committed line. Everything else is compared exactly as before:
a key without a rule, a non-numeric value, a number beyond its tolerance, an
added or missing line. So the check still fails when a learned number moves by
more than the machines' spread, and the committed outputs stay the reference.
"""

from __future__ import annotations

import copy
import fnmatch
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

LINE = re.compile(r"^(?P<key>[^\s:][^:]*): (?P<value>[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?)$")

Rules = Mapping[str, Mapping[str, float]]


def load_rules(path: str | Path) -> dict[str, dict[str, float]]:
    """The tolerance file: ``{notebook: {key_glob: tolerance}}``, tolerances finite and >= 0."""
    raw = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a mapping of notebook -> {{key glob: tolerance}}")
    rules: dict[str, dict[str, float]] = {}
    for notebook, keys in raw.items():
        if not isinstance(keys, dict) or not keys:
            raise ValueError(f"{path}: {notebook}: expected a non-empty mapping of key glob -> tolerance")
        rules[str(notebook)] = {}
        for glob, tol in keys.items():
            if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not 0 <= float(tol) < float("inf"):
                raise ValueError(f"{path}: {notebook}: {glob}: tolerance must be a number >= 0, got {tol!r}")
            rules[str(notebook)][str(glob)] = float(tol)
    return rules


def tolerance(rules: Rules, notebook: str, key: str) -> float | None:
    """The tolerance of ``key`` in ``notebook`` (the first matching glob, in file order), or None (exact)."""
    for glob, tol in rules.get(notebook, {}).items():
        if fnmatch.fnmatchcase(key, glob):
            return tol
    return None


def reconcile(test: str, reference: str, rules: Rules, notebook: str) -> str:
    """``test`` with each tolerated ``key: number`` line within tolerance of ``reference`` replaced by it.

    Lines are matched by key (the checked cells print sorted ``key: value`` lines).
    A key printed twice, or absent from the reference, is left for the exact comparison.
    """
    refs: dict[str, list[tuple[str, float]]] = {}
    for line in reference.split("\n"):
        m = LINE.match(line)
        if m:
            refs.setdefault(m["key"], []).append((line, float(m["value"])))
    out = []
    for line in test.split("\n"):
        m = LINE.match(line)
        if m and len(refs.get(m["key"], [])) == 1:
            tol = tolerance(rules, notebook, m["key"])
            ref_line, ref_value = refs[m["key"]][0]
            if tol is not None and abs(float(m["value"]) - ref_value) <= tol + 1e-9:
                line = ref_line
        out.append(line)
    return "\n".join(out)


def checked_text(path: str | Path) -> str:
    """The committed stdout of a notebook's ``# NBVAL_CHECK_OUTPUT`` cell (the first one)."""
    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    cell = next(c for c in nb.cells if c.cell_type == "code" and "# NBVAL_CHECK_OUTPUT" in c.source)
    return "".join(o.get("text", "") for o in cell.outputs if o.get("output_type") == "stream")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--nbval-tolerance", default=None, metavar="FILE",
                     help="YAML of per-notebook key globs and the absolute tolerance of their printed numbers")


def pytest_configure(config: pytest.Config) -> None:
    path = config.getoption("--nbval-tolerance")
    if not path:
        return
    from nbval.plugin import IPyNbCell

    rules = load_rules(path)
    original = IPyNbCell.compare_outputs
    if getattr(original, "_medbench_tolerance", False):
        return

    def compare_outputs(self: Any, test: list[Any], ref: list[Any], skip_compare: Any = None) -> bool:
        notebook = Path(str(self.fspath)).stem
        ref_text = {o.get("name"): o.get("text", "") for o in ref if o.get("output_type") == "stream"}
        adjusted = []
        for o in test:
            if o.get("output_type") == "stream" and o.get("name") in ref_text:
                o = copy.copy(o)
                o["text"] = reconcile(o.get("text", ""), ref_text[o.get("name")], rules, notebook)
            adjusted.append(o)
        return bool(original(self, adjusted, ref, skip_compare))

    compare_outputs._medbench_tolerance = True  # type: ignore[attr-defined]
    IPyNbCell.compare_outputs = compare_outputs  # type: ignore[method-assign]
