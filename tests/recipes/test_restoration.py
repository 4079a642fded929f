"""03_restoration recipe: schema, QUICK, checked metrics (known answers) and a seconds-long functional run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from medbench import recipes
from medbench.errors import ConfigError
from medbench.recipes import restoration as rs


def test_schema_quick_and_profiles_validate() -> None:
    cfg = rs.Params()
    assert cfg.data.n_cases == 10 and cfg.models == list(rs.LEARNED)
    assert recipes.validate("03_restoration", rs.QUICK).train.epochs == 1
    full = recipes.resolve("03_restoration", "full")
    assert full.data.image_size == [256, 256, 64] and cfg.data.image_size == [128, 128, 16]
    with pytest.raises(ConfigError, match="filters"):
        recipes.validate("03_restoration", {"filters": ["wiener"]})
    with pytest.raises(ConfigError, match="crop"):
        recipes.validate("03_restoration", {"crop": 200})
    with pytest.raises(ConfigError, match="discriminator"):
        recipes.validate("03_restoration", {"crop": 16, "model_disc_layers": 3})


def _evaluation() -> rs.Evaluation:
    rows = [
        {"method": "degraded", "kind": "input", "contrast_recovery": 0.95, "psnr_db": 30.0, "ssim": 0.8, "lesions_erased": 3,
         "lesions_created": 9, "dice_organs": 0.7},
        {"method": "tv", "kind": "classical", "contrast_recovery": 0.5, "psnr_db": 33.0, "ssim": 0.9, "lesions_erased": 4,
         "lesions_created": 1, "dice_organs": 0.75},
        {"method": "red_cnn", "kind": "learned", "contrast_recovery": 0.9, "psnr_db": 35.5, "ssim": 0.95, "lesions_erased": 1,
         "lesions_created": 0, "dice_organs": 0.8},
        {"method": "cgan", "kind": "learned", "contrast_recovery": 0.8, "psnr_db": 34.0, "ssim": 0.93, "lesions_erased": 2,
         "lesions_created": 2, "dice_organs": 0.78},
        {"method": "noise-free (reference)", "kind": "reference", "contrast_recovery": 1.0, "psnr_db": np.nan, "ssim": np.nan,
         "lesions_erased": 0, "lesions_created": 0, "dice_organs": 0.82},
    ]
    return rs.Evaluation(pd.DataFrame(rows).set_index("method"), {})


def test_checked_metrics_known_answers() -> None:
    out = rs.checked_metrics(_evaluation())
    assert out["gain_db_best_learned"] == pytest.approx(5.5) and out["best_learned"] == "red_cnn"
    assert out["margin_db_over_classical"] == pytest.approx(2.5) and out["best_classical"] == "tv"
    assert out["created_cgan"] == 2 and out["erased_tv"] == 4 and out["dice_noise_free"] == pytest.approx(0.82)
    assert "psnr_noise_free" not in out
    assert set(rs.results_table(_evaluation())["gain_db"].dropna().round(1)) == {0.0, 3.0, 5.5, 4.0}


def test_reading_names_the_winner_its_lesion_cost_and_the_downstream_spread() -> None:
    text = rs.reading(_evaluation()).splitlines()
    assert text[0] == "Highest PSNR: red_cnn (+5.50 dB over the low-dose input)."
    assert text[1] == "Best classical: tv (+3.00 dB)."
    assert text[2].startswith("red_cnn erases 1 planted lesions and creates 0; the input itself shows 9")
    assert text[3].startswith("Fewest lesions erased: red_cnn (1 erased, 0 created")
    assert text[4] == "Downstream organ Dice: low-dose 0.700, noise-free 0.820, red_cnn 0.800; spread over methods 0.120."


@pytest.mark.slow
def test_quick_run_end_to_end() -> None:
    cfg = recipes.validate("03_restoration", {**rs.QUICK, "models": ["red_cnn", "cgan"], "seg_enabled": False})
    assert isinstance(cfg, rs.Params)
    data = rs.load_data(cfg)
    assert data.test.clean.shape == data.test.degraded.shape and data.test.lesions.max() >= 1
    assert np.abs(data.test.degraded - data.test.clean).std() > 5  # the low-dose scan is noisy
    tuned = rs.tune_filters(cfg, data)
    assert set(tuned) == {"gaussian", "median"}
    trained = rs.train(cfg, data)
    ev = rs.evaluate(cfg, data, tuned, trained)
    assert list(ev.table.index) == ["degraded", "gaussian", "median", "red_cnn", "cgan"]
    assert ev.table.loc["gaussian", "psnr_db"] > ev.table.loc["degraded", "psnr_db"]
    demo = rs.degradation_demo(cfg, data)
    assert (demo.dose_table["noise_sd_hu"].diff().dropna() > 0).all()  # lower dose, more noise
    checked = rs.checked_metrics(ev, demo)
    assert {"psnr_red_cnn", "created_cgan", "gain_db_best_learned", "dose_sd_ratio_max_dev"} <= set(checked)
