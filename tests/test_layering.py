"""The package's layering: a room imports only from rooms in lower layers (DESIGN §2).

Every ``import`` and ``from ... import`` in ``medbench/`` counts, including
imports inside functions (a lazy import is still a dependency). Rooms in the
same layer are independent of each other unless listed in ``SIBLINGS``.
A new room must be placed here before it can be imported by anything.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "medbench"

#: Bottom to top. A room is a top-level module or package of medbench.
LAYERS: list[set[str]] = [
    {"errors"},
    {"atomic", "hashing"},
    {"image"},
    {"config", "repro"},
    {"report"},
    {"io"},
    {"metrics", "physics"},
    {"data"},
    {"baselines"},
    {"viz"},
    {"audit", "models", "registration"},
    {"engine"},
    {"restoration", "explain"},
    {"bench"},
    {"recipes"},
    {"runner"},
    {"cli"},
]

#: Allowed imports between rooms of one layer: (importer, imported).
SIBLINGS: set[tuple[str, str]] = set()

RANK = {room: n for n, layer in enumerate(LAYERS) for room in layer}


def _room(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "medbench" else None


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported medbench module) for every import in a file."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "medbench":
                out += [(node.lineno, f"medbench.{a.name}") for a in node.names]
            elif node.module.startswith("medbench."):
                out.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.startswith("medbench.")]
    return out


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        out.append((".".join(rel.parts), path))
    return out


def violations(modules: list[tuple[str, Path]]) -> list[str]:
    problems = []
    for module, path in modules:
        src = _room(module)
        if src is None or src == "__init__":
            continue
        if src not in RANK:
            problems.append(f"{module}: room {src!r} is not placed in LAYERS")
            continue
        for line, target in _imports(path):
            dst = _room(target)
            if dst is None or dst == src:
                continue
            if dst not in RANK:
                problems.append(f"{module}:{line} imports {target}: room {dst!r} is not placed in LAYERS")
            elif RANK[dst] > RANK[src] or (RANK[dst] == RANK[src] and (src, dst) not in SIBLINGS):
                problems.append(f"{module}:{line} imports {target}: {src!r} (layer {RANK[src]}) may not depend on "
                                f"{dst!r} (layer {RANK[dst]})")
    return problems


def test_no_room_imports_from_a_room_above_it() -> None:
    assert violations(_modules()) == []


def test_data_no_longer_depends_on_viz_config_or_repro() -> None:
    data_imports = {_room(t) for m, p in _modules() if _room(m) == "data" for _, t in _imports(p)}
    assert not data_imports & {"viz", "config", "repro", "report", "recipes"}


def test_the_check_catches_an_upward_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from medbench.viz import montage\n")  # lazy, still a dependency
    sibling = tmp_path / "sib.py"
    sibling.write_text("import medbench.registration.rigid\n")
    unplaced = tmp_path / "new.py"
    unplaced.write_text("x = 1\n")
    found = violations([("medbench.image.bad", bad), ("medbench.audit.sib", sibling),
                        ("medbench.newroom.mod", unplaced)])
    assert len(found) == 3
    assert "'image' (layer 2) may not depend on 'viz'" in found[0]
    assert "'audit' (layer 10) may not depend on 'registration' (layer 10)" in found[1]
    assert "room 'newroom' is not placed in LAYERS" in found[2]


@pytest.mark.parametrize("room", sorted({p.name if p.is_dir() else p.stem for p in ROOT.iterdir()
                                          if (p.is_dir() and (p / "__init__.py").exists()) or p.suffix == ".py"}
                                         - {"__init__", "__main__"}))
def test_every_room_is_placed(room: str) -> None:
    assert room in RANK, f"add {room!r} to LAYERS"
