"""medbench.repro: seeding, deterministic mode, run records, canonical metrics."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from medbench import repro


def _draws() -> tuple[float, float, float]:
    return random.random(), float(np.random.rand()), float(torch.rand(1))


def test_seed_everything_makes_all_generators_repeat() -> None:
    repro.seed_everything(3)
    a = _draws()
    repro.seed_everything(3)
    assert _draws() == a
    repro.seed_everything(4)
    assert _draws() != a


@pytest.mark.parametrize("bad", [-1, 1.5, True, "3"])
def test_seed_must_be_a_non_negative_int(bad: object) -> None:
    with pytest.raises(ValueError, match="seed"):
        repro.seed_everything(bad)  # type: ignore[arg-type]


def test_deterministic_mode_toggles_torch() -> None:
    try:
        info = repro.set_deterministic(True)
        assert torch.are_deterministic_algorithms_enabled()
        assert info["tf32"] is False and info["CUBLAS_WORKSPACE_CONFIG"]
        repro.set_deterministic(False)
        assert not torch.are_deterministic_algorithms_enabled()
    finally:
        repro.set_deterministic(False)


def test_metrics_json_is_canonical() -> None:
    a = repro.metrics_json({"b": 1.23456789012, "a": np.float32(0.5), "c": [np.int64(2)], "d": -0.0000000001})
    b = repro.metrics_json({"d": 0.0, "c": [2], "a": 0.5, "b": 1.234568})
    assert a == b
    assert list(json.loads(a)) == ["a", "b", "c", "d"]


def test_format_metrics_sorted_fixed_decimals() -> None:
    assert repro.format_metrics({"z": 1, "a": 0.12345}) == "a: 0.123\nz: 1"


def test_run_record_contents(tmp_path: Path) -> None:
    run = repro.start_run("00_tour", {"seed": 5, "n_cases": 1}, output_dir=tmp_path / "run", deterministic=False)
    data_file = tmp_path / "d.bin"
    data_file.write_bytes(b"abc")
    digest = run.add_data("input", data_file)
    assert digest == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"  # sha256("abc")
    run.finish({"x": 1.0})
    rec = json.loads((tmp_path / "run" / "run.json").read_text())
    assert rec["status"] == "completed" and rec["seeds"] == {"seed": 5}
    assert rec["params"]["n_cases"] == 1 and rec["data"]["input"] == digest
    for pkg in ("python", "torch", "monai", "SimpleITK", "pydicom", "nibabel", "captum", "numpy"):
        assert rec["versions"][pkg] not in ("", None)
    assert rec["device"]["device"] in ("cpu", "cuda")
    assert set(rec["git"]) >= {"commit", "dirty"}
    assert json.loads((tmp_path / "run" / "metrics.json").read_text()) == {"x": 1.0}


def test_hash_path_folder_depends_on_names_and_contents(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "f").write_text("1")
    h1 = repro.hash_path(tmp_path / "a")
    (tmp_path / "a" / "f").write_text("2")
    h2 = repro.hash_path(tmp_path / "a")
    (tmp_path / "a" / "f").rename(tmp_path / "a" / "g")
    assert len({h1, h2, repro.hash_path(tmp_path / "a")}) == 3


class _NoisyDataset(torch.utils.data.Dataset):
    """Each item draws from numpy's global RNG, as many augmentation pipelines do."""

    def __len__(self) -> int:
        return 8

    def __getitem__(self, i: int) -> float:
        return float(np.random.rand())


def _epoch(seed: int) -> list[float]:
    repro.seed_everything(seed)
    loader = torch.utils.data.DataLoader(_NoisyDataset(), batch_size=2, shuffle=True, num_workers=2)
    return [float(v) for batch in loader for v in batch]


@pytest.mark.slow
def test_seed_everything_makes_multi_worker_loading_repeat() -> None:
    first = _epoch(0)
    assert _epoch(0) == first
    assert _epoch(1) != first
    assert len(set(first)) == len(first), "workers must not share one numpy stream"
