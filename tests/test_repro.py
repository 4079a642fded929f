"""medbench.repro: seeding, deterministic mode, the environment fingerprint."""

from __future__ import annotations

import random

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


def test_environment_names_installed_versions_exactly() -> None:
    from importlib import metadata

    env = repro.environment()
    for pkg in ("torch", "monai", "SimpleITK", "pydicom", "nibabel", "captum", "numpy"):
        assert env["versions"][pkg] == metadata.version(pkg)
    assert env["versions"]["python"].count(".") == 2
    assert env["device"]["device"] in ("cpu", "cuda") and env["device"]["torch_threads"] == torch.get_num_threads()
    assert set(env["git"]) >= {"commit", "dirty"}
    assert env["cpu"]["cpu_count"] >= 1


def test_missing_package_is_none_not_a_fake_version() -> None:
    assert repro.package_versions(("no-such-package-medbench",))["no-such-package-medbench"] is None


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
