"""Packaging facts: environment.yml matches pyproject, the package is typed, the CLI is installed."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import tomllib
import yaml

ROOT = Path(__file__).resolve().parent.parent


def _split(req: str) -> tuple[str, str]:
    m = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", req)
    assert m, req
    return m.group(1).lower().replace("_", "-"), m.group(2).replace(" ", "")


def test_environment_yml_lists_exactly_the_pyproject_dependencies() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = dict(_split(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"])
    wanted["torch"] = "==2.13.0"  # the Makefile's pinned CPU build, stricter than pyproject's range
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    listed: dict[str, str] = {}
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            listed.update(_split(r) for r in dep["pip"] if not r.startswith("-e"))
        elif not dep.startswith(("python=", "pip")) or dep.startswith("pip-"):
            listed.update([_split(dep)])
    assert listed == wanted


def test_makefile_pins_the_same_torch_as_environment_yml() -> None:
    assert "TORCH_SPEC ?= torch==2.13.0" in (ROOT / "Makefile").read_text()


def test_package_is_typed_and_cli_entry_point_works() -> None:
    import medbench

    assert (Path(medbench.__file__).parent / "py.typed").is_file()
    out = subprocess.run([sys.executable, "-m", "medbench.cli", "--help"], capture_output=True, text=True, check=True)
    for command in ("run", "notebooks", "phantom", "audit", "deid", "fetch", "bench"):
        assert command in out.stdout
