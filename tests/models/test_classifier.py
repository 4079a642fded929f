"""medbench.models.classifier and the engine's ClassificationTask: build, pool, train on a toy problem."""

from __future__ import annotations

import pytest
import torch

from medbench.engine import TrainParams, fit
from medbench.engine.tasks import ClassificationTask
from medbench.errors import ConfigError
from medbench.models.classifier import CAM_LAYERS, CLASSIFIERS, ClassifierParams, build_classifier, get_layer


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_classifiers_build_pool_and_expose_the_cam_layer(name: str) -> None:
    params = ClassifierParams(name=name, init_features=4, growth_rate=4, blocks=[1, 1])  # type: ignore[arg-type]
    model = build_classifier(params, in_channels=2, n_classes=3).eval()
    with torch.no_grad():
        assert tuple(model(torch.zeros(2, 2, 16, 16, 8)).shape) == (2, 3)
    get_layer(model, CAM_LAYERS[name])
    pools = [m for m in model.modules() if isinstance(m, torch.nn.AdaptiveMaxPool3d)]
    assert len(pools) == 1
    avg = build_classifier(params.model_copy(update={"pooling": "avg"}), 2, 3)
    assert not any(isinstance(m, torch.nn.AdaptiveMaxPool3d) for m in avg.modules())
    with pytest.raises(ConfigError, match="no layer"):
        get_layer(model, "nope")


def test_bad_block_counts_are_refused() -> None:
    with pytest.raises(ConfigError, match="blocks"):
        build_classifier(ClassifierParams(blocks=[1, 1, 1, 1, 1]), 1, 2)


def _toy(n: int, seed: int) -> list[dict[str, torch.Tensor]]:
    """Label 1 = a bright 2-voxel cube somewhere in noise; label 0 = noise only."""
    g = torch.Generator().manual_seed(seed)
    items = []
    for i in range(n):
        x = torch.rand((1, 12, 12, 8), generator=g) * 0.2
        if i % 2:
            a, b, c = (int(v) for v in torch.randint(0, 6, (3,), generator=g))
            x[0, a:a + 2, b:b + 2, c:c + 2] = 1.0
        items.append({"image": x, "label": torch.tensor(i % 2)})
    return items


def test_classification_task_learns_a_toy_problem_through_the_engine() -> None:
    torch.manual_seed(0)
    model = build_classifier(ClassifierParams(init_features=4, growth_rate=4, blocks=[1], dropout=0.0), 1, 2)
    task = ClassificationTask(2)
    before = task.validate(model, _toy(8, 1), torch.device("cpu"))
    result = fit(model, task, _toy(16, 0), _toy(8, 1), TrainParams(epochs=12, batch_size=4, lr=1e-2), seed=0)
    assert set(before) == {"accuracy", "loss", "auroc"}
    assert result.best_metric >= 0.9 and result.best_metric > before["auroc"]
    with pytest.raises(ValueError, match="monitor"):
        ClassificationTask(monitor="f1")
