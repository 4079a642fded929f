"""A generated cohort in the cache: :func:`load_cohort`, :class:`Cohort` (splits, summary), :func:`cohort_hash`."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from medbench.atomic import write_text
from medbench.data.cache import build_entry, cache_root, is_complete
from medbench.data.phantom import case as case_mod
from medbench.data.phantom import files
from medbench.data.phantom.case import PhantomCase
from medbench.data.phantom.spec import PHANTOM_VERSION, SPLITS, PhantomSpec, case_plans
from medbench.errors import ConfigError, DataError

COHORT_FILE = "cohort.json"


@dataclass(frozen=True)
class Cohort:
    """A generated cohort on disk; cases are read from ``root`` when asked for."""

    spec: PhantomSpec
    root: Path
    case_ids: tuple[str, ...]
    from_cache: bool = False

    def __len__(self) -> int:
        return len(self.case_ids)

    def _case_dir(self, i: int | str) -> Path:
        if isinstance(i, str):
            if i not in self.case_ids:
                raise ConfigError(f"cohort {self.root} has no case {i!r}; cases: {list(self.case_ids)}")
            return self.root / i
        if not -len(self) <= i < len(self):
            raise ConfigError(f"cohort {self.root} has {len(self)} cases; index {i} is out of range")
        return self.root / self.case_ids[i]

    def case(self, i: int | str) -> PhantomCase:
        """Load case ``i`` (index or case id) from disk."""
        return files.read_case(self._case_dir(i))

    @property
    def cases(self) -> list[PhantomCase]:
        """Every case, loaded (each access reads the files again)."""
        return [self.case(i) for i in range(len(self))]

    def __iter__(self) -> Iterator[PhantomCase]:
        return (self.case(i) for i in range(len(self)))

    @property
    def split(self) -> dict[str, list[str]]:
        """Case ids per split: ``{"train": [...], "val": [...], "test": [...]}`` (planned, see ``spec.case_plans``)."""
        plans = case_plans(self.spec)
        return {s: [self.case_ids[p.index] for p in plans if p.split == s] for s in SPLITS}

    def cases_in(self, split: str) -> list[PhantomCase]:
        """The loaded cases of one split."""
        if split not in SPLITS:
            raise ConfigError(f"unknown split {split!r}; splits: {', '.join(SPLITS)}")
        return [self.case(c) for c in self.split[split]]

    def paths(self, i: int | str) -> dict[str, Path]:
        """File paths of case ``i`` by name (volumes, displacement, truth, dicom_ct, dicom_pet, dicom_t1, dicom_t2)."""
        root = self._case_dir(i)
        return files.case_paths(root, tuple(self.truth(i)["volumes"]))

    def truth(self, i: int | str) -> dict[str, Any]:
        """The parsed truth.json of case ``i``."""
        path = self._case_dir(i) / files.TRUTH_FILE
        try:
            return dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError) as err:
            raise DataError(f"cannot read phantom truth file {path}: {err}") from None

    def summary(self) -> pd.DataFrame:
        """One row per case: split, label, lesion counts, organ volumes (mL), mean HU, motion."""
        return pd.DataFrame([self.truth(i)["stats"] for i in range(len(self))]).set_index("case_id")

    def lesions(self) -> pd.DataFrame:
        """Every lesion of the cohort, one row each (``case_id`` + the case's lesion table)."""
        rows = [{"case_id": cid, **rec} for cid in self.case_ids for rec in self.truth(cid)["lesions"]]
        return pd.DataFrame(rows)

    def __repr__(self) -> str:
        return f"Cohort({len(self)} cases, spec key {self.spec.key()}, root {self.root})"


def cohort_root(spec: PhantomSpec, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The cache folder of ``spec``: ``<cache>/phantom/<spec.key()>``."""
    return cache_root(cache_dir) / "phantom" / spec.key()


def _cohort_record(spec: PhantomSpec) -> dict[str, Any]:
    plans = case_plans(spec)
    return {
        "phantom_version": PHANTOM_VERSION,
        "spec": spec.to_dict(),
        "key": spec.key(),
        "case_ids": [f"case{i:03d}" for i in range(spec.n_cases)],
        "split": {s: [f"case{p.index:03d}" for p in plans if p.split == s] for s in SPLITS},
    }


def _write_case(spec: PhantomSpec, i: int, tmp: Path) -> None:
    case = case_mod.generate_case(spec, i)
    files.write_case(case, tmp / case.case_id)


def generation_workers(n_cases: int) -> int:
    """Processes that generate a cohort's cases: ``$MEDBENCH_PHANTOM_WORKERS`` (unset: 1), never more than the
    cases. Cases are seeded independently, so the files do not depend on it.

    One by default because the workers are *spawned*, and a spawned worker re-imports the parent's main script:
    a plain script without an ``if __name__ == "__main__":`` guard would start generating again in every worker.
    The ``medbench`` commands (and the notebooks they run) set it to the CPUs, at most 4; ``make`` to 2.
    """
    env = os.environ.get("MEDBENCH_PHANTOM_WORKERS", "").strip()
    try:
        wanted = int(env) if env else 1
    except ValueError:
        raise ConfigError(f"MEDBENCH_PHANTOM_WORKERS must be an integer, got {env!r}") from None
    return max(1, min(wanted, n_cases))


def _build_cohort(spec: PhantomSpec, tmp: Path) -> None:
    workers = generation_workers(spec.n_cases)
    if workers == 1:
        for i in range(spec.n_cases):
            _write_case(spec, i, tmp)
    else:
        # spawned (not forked) workers: the caller may hold torch / OpenMP threads a fork would copy mid-state
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            for done in [pool.submit(_write_case, spec, i, tmp) for i in range(spec.n_cases)]:
                done.result()  # a failed case raises here; build_entry then discards the partial folder
    write_text(tmp / COHORT_FILE, json.dumps(_cohort_record(spec), indent=1, sort_keys=True) + "\n")


def _matches(root: Path, spec: PhantomSpec) -> bool:
    try:
        return bool(json.loads((root / COHORT_FILE).read_text(encoding="utf-8")) == _cohort_record(spec))
    except (OSError, ValueError):
        return False


def load_cohort(
    spec: PhantomSpec | None = None,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    refresh: bool = False,
) -> Cohort:
    """The cohort of ``spec`` (default: the smoke spec), generated into the cache on first use.

    The cache folder is ``cache_dir``, else ``$MEDBENCH_CACHE``, else
    ``~/.cache/medbench``; the cohort lives in ``phantom/<spec.key()>/``. A
    later call finds it there and generates nothing; ``refresh=True``
    rebuilds it (the old copy is replaced only once the new one is whole).
    """
    spec = spec or PhantomSpec()
    root = cohort_root(spec, cache_dir)
    stale = is_complete(root, COHORT_FILE) and not _matches(root, spec)
    built = build_entry(root, lambda tmp: _build_cohort(spec, tmp), marker=COHORT_FILE, refresh=refresh or stale)
    return Cohort(spec, root, tuple(_cohort_record(spec)["case_ids"]), from_cache=not built)


def cohort_hash(cohort: Cohort | str | os.PathLike[str]) -> str:
    """sha256 over every file of the cohort (relative path and content), for run records."""
    root = cohort.root if isinstance(cohort, Cohort) else Path(cohort)
    if not root.is_dir():
        raise DataError(f"cohort folder {root} does not exist")
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        digest.update(rel.encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()
