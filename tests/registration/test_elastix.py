"""The elastix engine (optional extra): same result object, same conventions as SimpleITK."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medbench.errors import RegistrationError
from medbench.image.resample import resample_to
from medbench.image.transforms import RigidTransform
from medbench.metrics import landmark_tre
from medbench.registration.elastix import elastix_available, elastix_register

from .test_registration import _blobs

AVAILABLE, REASON = elastix_available()


def test_availability_is_reported_with_a_reason() -> None:
    assert isinstance(AVAILABLE, bool)
    assert AVAILABLE == (REASON == "")
    if not AVAILABLE:
        assert "medbench[elastix]" in REASON
        with pytest.raises(RegistrationError, match="itk-elastix"):
            elastix_register(_blobs(), _blobs())


@pytest.mark.skipif(not AVAILABLE, reason="itk-elastix (the optional extra medbench[elastix]) is not installed")
def test_elastix_rigid_recovers_a_known_transform_in_the_itk_convention(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    fixed = _blobs()
    truth = RigidTransform((0.0, 0.0, 4.0), (7.0, -3.0, 4.0), tuple(fixed.center))  # type: ignore[arg-type]
    moving = resample_to(fixed, fixed, truth.to_sitk().GetInverse())
    res = elastix_register(fixed, moving, kind="rigid", resolutions=2, iterations=100, threads=2)
    assert res.ok and res.engine == "elastix" and res.iterations > 0
    pts = fixed.center + np.array([[20.0, 10, 5], [-15, -12, -10], [5, 20, -15]])
    assert landmark_tre(res.transform, pts, truth.apply(pts))["mean"] < 1.5
    assert list(tmp_path.iterdir()) == []  # elastix and transformix wrote nothing into the working directory
    with pytest.raises(RegistrationError, match="role 'label'"):
        elastix_register(fixed, fixed.with_array(np.round(fixed.array)).as_label())
