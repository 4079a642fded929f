"""Parameter schemas: nested sections, optional values, unknown keys rejected (DESIGN §4).

Every notebook has one schema, a :class:`Params` subclass in its recipe
(:mod:`medbench.recipes`), built from :class:`Section` models (pydantic v2,
``extra="forbid"``, strict, frozen). Defaults are the ``smoke`` profile; other
profiles are YAML files next to the recipes.

**Flat and nested names.** A schema is nested (``data.n_cases``,
``train.epochs``) but a papermill ``parameters`` cell is a flat list of
assignments. The mapping is mechanical: a flat name is the path joined by
``_``::

    schema path          parameters cell / papermill -p
    seed                 seed = 0
    data.n_cases         data_n_cases = 2
    train.epochs         train_epochs = 3

Every entry point accepts both spellings: ``medbench run NB -p train.epochs=3``,
``medbench run NB -p train_epochs=3``, ``papermill NB.ipynb out.ipynb -p
train_epochs 3``, and profile YAML with nested mappings (``train: {epochs: 3}``)
or dotted keys. A schema whose flat names would collide is rejected when it is
first used.

**Validation.** Types are strict (``"3"`` is not an int, ``True`` is not an int,
an int is accepted for a float); unknown names fail with a "did you mean"
hint; cross-field rules live in each schema's validators. Every problem is a
:class:`~medbench.errors.ConfigError` naming the parameter in both spellings.
"""

from __future__ import annotations

import ast
import difflib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from medbench.errors import ConfigError, format_validation_error

PROFILES = ("smoke", "full")

S = TypeVar("S", bound="Section")


class Section(BaseModel):
    """A group of parameters: unknown keys rejected, strict types, immutable."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, validate_default=True)


class Params(Section):
    """Base of every notebook schema: the parameters every notebook takes."""

    #: Notebook stem (``00_tour``); set by each recipe's schema.
    notebook: ClassVar[str] = ""

    seed: int = Field(0, ge=0, description="Seed for every random number generator of the run.")

    # -- flat <-> nested ---------------------------------------------------------
    @classmethod
    def flat_fields(cls) -> dict[str, tuple[str, ...]]:
        """Flat parameter name -> path in the schema (e.g. ``data_n_cases`` -> ``("data", "n_cases")``)."""
        return flat_fields(cls)

    def to_flat(self) -> dict[str, Any]:
        """Flat name -> value (what a parameters cell holds)."""
        nested = self.model_dump(mode="python")
        return {name: _get(nested, path) for name, path in self.flat_fields().items()}

    @classmethod
    def defaults_flat(cls) -> dict[str, Any]:
        """The schema defaults (= the smoke profile) by flat name."""
        return cls().to_flat()

    @classmethod
    def validate_values(cls: type[P], values: Mapping[str, Any], *, where: str = "") -> P:
        """Build the schema from flat names, dotted paths or nested mappings (mixing is fine)."""
        return validate(cls, values, where=where)

    @classmethod
    def from_namespace(cls: type[P], namespace: Mapping[str, Any]) -> P:
        """Validate the parameters a notebook's ``parameters`` cell (and papermill's injected cell) defined.

        Call from the setup cell as ``cfg = tour.Params.from_namespace(globals())``.
        See :func:`from_namespace`.
        """
        return from_namespace(cls, namespace)


P = TypeVar("P", bound=Params)


def _fields_of(model: type[BaseModel]) -> dict[str, Any]:
    return dict(model.model_fields)


def _is_section(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, Section)


def flat_fields(schema: type[Section], prefix: tuple[str, ...] = ()) -> dict[str, tuple[str, ...]]:
    """Flat name -> path for every leaf parameter of ``schema``; colliding flat names are an error."""
    out: dict[str, tuple[str, ...]] = {}
    for name, info in _fields_of(schema).items():
        path = (*prefix, name)
        if _is_section(info.annotation):
            sub = flat_fields(info.annotation, path)
        else:
            sub = {"_".join(path): path}
        for flat, p in sub.items():
            if flat in out:
                raise ConfigError(
                    f"schema {schema.__name__}: parameters {'.'.join(out[flat])} and {'.'.join(p)} "
                    f"both have the flat name {flat!r}"
                )
            out[flat] = p
    return out


def _get(nested: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = nested
    for part in path:
        value = value[part]
    return value


def _set(nested: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = nested
    for part in path[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"parameter {'.'.join(path)}: {part!r} is a section, not a value")
    node[path[-1]] = value


def normalise(schema: type[Section], values: Mapping[str, Any], *, where: str = "") -> dict[str, dict[str, Any] | Any]:
    """Turn flat names, dotted paths and nested mappings into one nested dict; unknown names fail."""
    leaves = flat_fields(schema)
    by_dotted = {".".join(p): p for p in leaves.values()}
    sections = _section_paths(schema)
    nested: dict[str, Any] = {}
    unknown: list[str] = []

    def visit(key: str, value: Any, prefix: tuple[str, ...]) -> None:
        path = (*prefix, *key.split("."))
        if path in sections and isinstance(value, Mapping):
            for k, v in value.items():
                visit(str(k), v, path)
            return
        flat = "_".join(path)
        if isinstance(value, tuple):  # a tuple literal is as good as a list for a parameter
            value = list(value)
        if ".".join(path) in by_dotted:
            _set(nested, by_dotted[".".join(path)], value)
        elif not prefix and "." not in key and flat in leaves:
            _set(nested, leaves[flat], value)
        else:
            unknown.append(".".join(path))

    for key, value in values.items():
        visit(str(key), value, ())
    if unknown:
        names = sorted(set(leaves) | set(by_dotted))
        parts = []
        for key in sorted(unknown):
            hint = difflib.get_close_matches(key, names, n=1, cutoff=0.7)
            parts.append(f"{key!r}" + (f" (did you mean {hint[0]!r}?)" if hint else ""))
        raise ConfigError(
            f"{where or schema.__name__}: unknown parameter {', '.join(parts)}; "
            f"valid parameters: {', '.join(sorted(by_dotted))}"
        )
    return nested


def validate(schema: type[S], values: Mapping[str, Any], *, where: str = "") -> S:
    """Build ``schema`` from ``values``: unknown keys, wrong types and failed checks are ConfigErrors."""
    where = where or getattr(schema, "notebook", "") or schema.__name__
    nested = normalise(schema, values, where=where)
    try:
        return schema.model_validate(nested)
    except ValidationError as exc:
        raise ConfigError(f"{where}: {format_validation_error(exc)}") from None


# -- profiles -----------------------------------------------------------------------
def read_profiles(path: Path, where: str = "") -> dict[str, dict[str, Any]]:
    """All profiles of a YAML file (profile name -> partial parameters)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"{where or path}: profile file {path} is missing") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) or v is None for v in data.values()):
        raise ConfigError(f"{path}: expected a mapping of profile name -> parameters")
    return {str(k): dict(v or {}) for k, v in data.items()}


def merged(schema: type[S], *layers: Mapping[str, Any] | None, where: str = "") -> S:
    """Defaults, then each layer in order (profiles, overrides), validated once at the end.

    A layer merges into the schema's *sections* key by key (``train: {epochs: 4}`` keeps the other
    ``train`` values), while every parameter's value replaces the one before it whole, a mapping-valued
    parameter such as ``epochs_by_model`` included: a profile's ``epochs_by_model: {}`` clears the
    defaults' per-model epochs instead of adding nothing to them.
    """
    nested: dict[str, Any] = schema().model_dump(mode="python") if _all_defaults(schema) else {}
    sections = _section_paths(schema)
    for layer in layers:
        if layer:
            _deep_update(nested, normalise(schema, layer, where=where), sections)
    return validate(schema, nested, where=where)


def _section_paths(schema: type[Section]) -> set[tuple[str, ...]]:
    """The paths of the schema's nested sections (``("train",)``), as opposed to its parameters."""
    return {p[:n] for p in flat_fields(schema).values() for n in range(1, len(p))}


def _all_defaults(schema: type[Section]) -> bool:
    try:
        schema()
        return True
    except ValidationError:
        return False


def _deep_update(base: dict[str, Any], update: Mapping[str, Any], sections: set[tuple[str, ...]],
                 prefix: tuple[str, ...] = ()) -> None:
    for key, value in update.items():
        path = (*prefix, key)
        if path in sections and isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _deep_update(base[key], value, sections, path)
        else:
            base[key] = value


def diff(params: Section, reference: Section) -> dict[str, Any]:
    """Dotted name -> value of every parameter of ``params`` that differs from ``reference``."""
    a, b = params.model_dump(mode="json"), reference.model_dump(mode="json")
    out: dict[str, Any] = {}
    for path in flat_fields(type(params)).values():
        va, vb = _get(a, path), _get(b, path)
        if va != vb:
            out[".".join(path)] = va
    return out


# -- command-line overrides ----------------------------------------------------------
def parse_override(text: str) -> tuple[str, Any]:
    """Parse one ``-p KEY=VALUE``; KEY is flat (``train_epochs``) or dotted (``train.epochs``).

    The value is read as a YAML scalar or list (``3``, ``true``, ``[1, 2]``, ``null``).
    """
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or not all(part.isidentifier() for part in key.split(".")):
        raise ConfigError(f"malformed parameter {text!r}: expected KEY=VALUE, e.g. -p seed=1 or -p train.epochs=3")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        raise ConfigError(f"malformed parameter {text!r}: the value is not a valid literal") from None
    return key, value


# -- notebooks ------------------------------------------------------------------------
def literal_assignments(source: str) -> dict[str, Any] | None:
    """``{name: value}`` when ``source`` holds only ``name = <literal>`` statements (and comments), else None.

    This is the shape of a papermill ``parameters`` cell and of the cell papermill injects.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    out: dict[str, Any] = {}
    for node in tree.body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            return None
        try:
            out[node.targets[0].id] = ast.literal_eval(node.value)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            return None
    return out


#: First line of the cell papermill injects after the ``parameters`` cell.
PAPERMILL_INJECTED_HEADER = "# Parameters"


def parameter_cells(history: Iterable[str]) -> dict[str, Any] | None:
    """Names defined by the parameter cells that ran just before the current cell.

    ``history`` is IPython's ``In`` (the current cell last). The cell before
    the current one counts when it is made only of literal assignments (the
    ``parameters`` cell); when it is papermill's injected cell (first line
    ``# Parameters``), the tagged cell before it counts too. None when the
    cell before is something else (the setup cell was re-run on its own).
    """
    cells = [c for c in list(history)[:-1] if c.strip()]
    names: dict[str, Any] = {}
    if not cells:
        return None
    last = literal_assignments(cells[-1])
    if not last:
        return None
    names.update(last)
    if cells[-1].lstrip().startswith(PAPERMILL_INJECTED_HEADER) and len(cells) > 1:
        before = literal_assignments(cells[-2])
        for k, v in (before or {}).items():
            names.setdefault(k, v)
    return names


def from_namespace(schema: type[P], namespace: Mapping[str, Any]) -> P:
    """Validate the parameters defined in a notebook's namespace.

    The names checked are those the ``parameters`` cell and papermill's
    injected cell assign (read from IPython's input history ``In``), so a
    misspelt ``papermill -p seeed 3`` fails here instead of being a silent
    warning, while variables that later cells created (``metrics``, ``cols``)
    are never mistaken for parameters: "Run All" works twice in one kernel.
    Values are taken from the namespace (the cells' latest assignments).
    Outside IPython (no ``In``), or when the setup cell is re-run on its own,
    only the schema's own names are read from the namespace.
    """
    leaves = flat_fields(schema)
    history = namespace.get("In")
    candidates = parameter_cells(history) if isinstance(history, list) and history else None
    names = set(candidates) if candidates is not None else set()
    names |= {k for k in leaves if k in namespace}
    values = {k: namespace[k] for k in sorted(names) if k in namespace}
    return validate(schema, values)
