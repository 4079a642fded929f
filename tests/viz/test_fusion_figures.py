"""The fusion notebook's figures: what each draws, from small arrays and tables with known content."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from medbench.errors import ConfigError
from medbench.viz import fusion as vf

NAMES = {0: "background", 1: "liver", 2: "lesion_malignant", 3: "lesion_cyst"}


def _case() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    image = rng.random((3, 16, 12, 8)).astype(np.float32)
    truth = np.zeros((16, 12, 8), np.int64)
    truth[2:12, 2:10, :] = 1
    truth[4:7, 4:7, 5] = 2  # the malignant lesion is only on slice 5
    truth[9:11, 3:5, 1:3] = 3
    return image, truth


def test_modality_panels_one_panel_per_channel_on_the_lesion_slice() -> None:
    image, truth = _case()
    fig = vf.modality_panels(image, truth, ["ct", "pet", "t2"], NAMES)
    assert isinstance(fig, Figure) and len(fig.axes) == 3
    assert [ax.get_title() for ax in fig.axes] == ["CT", "PET", "T2"]
    assert fig.texts[0].get_text().startswith("slice 5")  # the slice with the most lesion voxels
    assert all(ax.collections for ax in fig.axes), "the lesion outline is drawn on every channel"
    with pytest.raises(ConfigError, match="C = 2"):
        vf.modality_panels(image, truth, ["ct", "pet"], NAMES)


def test_subset_heatmap_has_a_cell_per_row_and_subset() -> None:
    rows = [{"row": r, "subset": s, "n_modalities": s.count("+") + 1, "dice_mean": d}
            for r, values in (("early", (0.8, 0.1, 0.5)), ("early+dropout", (0.75, 0.4, 0.6)))
            for s, d in zip(("ct+pet", "ct", "pet"), values)]
    table = pd.DataFrame(rows).set_index(["row", "subset"])
    fig = vf.subset_heatmap(table)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["ct+pet", "ct", "pet"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["early", "early+dropout"]
    assert sorted(t.get_text() for t in ax.texts) == sorted(f"{d:.2f}" for d in table["dice_mean"])
    with pytest.raises(ConfigError, match="dice_liver"):
        vf.subset_heatmap(table, "dice_liver")


def test_misregistration_curves_one_line_per_row_and_the_tre_marker() -> None:
    table = pd.DataFrame([{"row": r, "shift_mm": s, "dice_organs": 0.8 - s / 20 * k,
                           "dice_lesion_malignant": 0.6 - s / 10 * k}
                          for r, k in (("ct", 0), ("early", 1)) for s in (0.0, 2.0, 8.0)]).set_index(["row", "shift_mm"])
    fig = vf.misregistration_curves(table, tre_mm=3.0)
    assert len(fig.axes) == 2
    lines = fig.axes[1].get_lines()
    early = next(ln for ln in lines if ln.get_label() == "early")
    np.testing.assert_allclose(early.get_xdata(), [0.0, 2.0, 8.0])
    np.testing.assert_allclose(early.get_ydata(), [0.6, 0.4, -0.2])
    assert any(np.allclose(ln.get_xdata(), 3.0) for ln in lines), "the TRE line"
    with pytest.raises(ConfigError, match="dice_spleen"):
        vf.misregistration_curves(table, ["dice_spleen"])


def test_synthesis_panels_true_synthetic_and_difference() -> None:
    _, truth = _case()
    true = (truth == 2).astype(np.float32) * 3.0 + 1.0
    fake = np.ones_like(true)  # the lesion is gone
    fig = vf.synthesis_panels({"true": true, "synthetic": fake, "truth": truth}, NAMES)
    titles = [ax.get_title() for ax in fig.axes[:3]]
    assert titles == ["true", "synthetic", "synthetic - true"]
    diff = fig.axes[2].images[0].get_array()
    assert float(np.min(diff)) == pytest.approx(-3.0)  # the erased lesion shows as a negative difference
    assert fig.texts[0].get_text().startswith("slice 5")
