"""``conceptlab.plot`` draws from the objects the API returns, and draws what they hold: bar
lengths are the contributions, heatmap cells the head's weights, curve points the accuracies."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import conceptlab
from conceptlab import plot
from conceptlab.bottleneck.heads import HeadConfig
from conceptlab.bottleneck.training import TrainConfig
from conceptlab.concepts.bank import ConceptBank
from conceptlab.errors import ConceptlabValueError
from tests.planted import PLANTED


@pytest.fixture(scope="module")
def fitted() -> tuple[Any, np.ndarray]:
    X, y, vectors, _, _ = PLANTED.data(400, seed=1)
    bank = ConceptBank(vectors=vectors.astype(np.float32),
                       names=[f"concept {k}" for k in range(PLANTED.K)])
    model = conceptlab.ConceptBottleneckModel(
        bank, [f"class {c}" for c in range(PLANTED.C)], objective="l1",
        train=TrainConfig(max_epochs=5), head=HeadConfig(nec=3)).fit(X, y)
    return model, X


def test_explanation_bars_are_the_contributions(fitted: tuple[Any, np.ndarray]) -> None:
    model, X = fitted
    explained = model.explain(X[:3], top=5)
    fig = plot.explanation(explained)  # the list: its first row
    ax = fig.axes[0]
    widths = [p.get_width() for p in ax.patches][::-1]  # drawn bottom-up
    assert widths == pytest.approx([c["contribution"] for c in explained[0]["concepts"]])
    labels = [t.get_text() for t in ax.get_yticklabels()][::-1]
    assert labels == [c["concept"] for c in explained[0]["concepts"]]
    assert explained[0]["prediction"] in ax.get_title()


def test_weight_map_cells_are_the_head_weights(fitted: tuple[Any, np.ndarray]) -> None:
    model, _ = fitted
    fig = plot.weights(model)
    cells = fig.axes[0].images[0].get_array()
    w = np.asarray(model.head_.weight, dtype=np.float64)
    used = np.flatnonzero(np.abs(w).sum(0) > 0)
    assert cells.shape == (PLANTED.C, len(used))
    assert np.allclose(np.sort(cells.ravel()), np.sort(w[:, used].ravel()))
    arr = plot.weights(w, model.class_names, model.concept_names)  # an array and names
    assert np.allclose(arr.axes[0].images[0].get_array(), cells)


def test_intervention_and_depth_curves_draw_their_points() -> None:
    curve = [{"n_corrected": n, "accuracy": a} for n, a in [(0, 0.6), (1, 0.7), (2, 0.9)]]
    line = plot.intervention({"l1": curve}).axes[0].lines[0]
    assert list(line.get_ydata()) == [0.6, 0.7, 0.9]
    layers = [{"accuracy": {"value": v, "lo": v - 0.05, "hi": v + 0.05},
               "control": {"accuracy": {"value": 0.5}}} for v in (0.55, 0.8, 0.95, 0.96)]
    probe = {"concepts": [{"name": "animals", "depth": 7, "depth_index": 2, "layers": layers}]}
    ax = plot.depth(probe).axes[0]
    assert list(ax.lines[0].get_ydata()) == [0.55, 0.8, 0.95, 0.96]
    marker = next(ln for ln in ax.lines if ln.get_marker() == "o")
    assert list(marker.get_xdata()) == [2]  # the depth's position, not its layer id
    assert "depth 2" in ax.get_legend().get_texts()[0].get_text()


def test_wrong_objects_are_refused_with_a_clear_error() -> None:
    with pytest.raises(ConceptlabValueError, match=r"model\.explain"):
        plot.explanation({"prediction": "x"})
    with pytest.raises(ConceptlabValueError, match="class_names"):
        plot.weights(np.zeros((2, 3)))
    with pytest.raises(ConceptlabValueError, match="run_lm_probe"):
        plot.depth({"concepts": []})
    bank = ConceptBank(vectors=np.eye(3, dtype=np.float32), names=["a", "b", "c"])
    with pytest.raises(ConceptlabValueError, match="not fitted"):
        plot.weights(conceptlab.ConceptBottleneckModel(bank, ["x", "y"], objective="l1"))
