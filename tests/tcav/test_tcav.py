"""TCAV on a planted network whose answer is known, and its statistics by hand."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
import torch
from torch import nn

from conceptlab.discover.sources import TappedModel
from conceptlab.tcav import fast_cav, fit_cav, holm, svm_cav, tcav_score, two_sided_ttest
from conceptlab.tcav.cavs import CAVError
from conceptlab.tcav.experiment import (
    LayerData,
    LMTarget,
    TappedTarget,
    TCAVError,
    draw_random_sets,
    run_test,
)

D = 8
A = np.eye(D)[0]  # drives class 0
B = np.eye(D)[1]  # the network never reads it
E = np.eye(D)[2]  # a nuisance the class logit reads nonlinearly


class Planted(nn.Module):
    """h = body(x) (identity); logit_0 = softplus(2 h.A) + 0.3 (h.E)^2, logit_1 = -logit_0.

    d logit_0 / dh = 2 sigmoid(2 h.A) A + 0.6 (h.E) E: always positive along A, zero along B.
    """

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(D, D, bias=False)
        with torch.no_grad():
            self.body.weight.copy_(torch.eye(D))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.body(x)
        a, e = torch.tensor(A, dtype=h.dtype), torch.tensor(E, dtype=h.dtype)
        z = nn.functional.softplus(2 * h @ a) + 0.3 * (h @ e) ** 2
        return torch.stack([z, -z], dim=1)


def _stack(items: Sequence[np.ndarray]) -> torch.Tensor:
    return torch.tensor(np.stack(items), dtype=torch.float32)


def planted_layers(n_random: int = 12, size: int = 30) -> tuple[dict[str, LayerData], TappedTarget]:
    rng = np.random.default_rng(0)
    target = TappedTarget(TappedModel(Planted(), "body", _stack, "planted", "planted"))

    def noise(n: int) -> list[np.ndarray]:
        return list(rng.normal(size=(n, D)))

    concepts = {"drives": [x + 3 * A for x in noise(size)],
                "unused": [x + 3 * B for x in noise(size)],
                "opposes": [x - 3 * A for x in noise(size)]}
    pool = noise(400)
    sets = draw_random_sets(len(pool), n_random + 1, size, seed=1)
    pool_acts = target.activations(pool)
    data = LayerData({c: target.activations(v) for c, v in concepts.items()},
                     [pool_acts[s] for s in sets],
                     target.gradients(noise(60), 0))
    return {"body": data}, target


@pytest.mark.parametrize("method", ["svm", "fast"])
def test_planted_concept_that_drives_the_class_is_significant_and_unused_one_is_not(method):
    layers, _ = planted_layers()
    result = run_test(layers, method=method)
    rows = {r["concept"]: r for r in result["rows"]}
    assert rows["drives"]["mean"] > 0.95 and rows["drives"]["significant"]
    assert rows["opposes"]["mean"] < 0.05 and rows["opposes"]["significant"]
    assert not rows["unused"]["significant"]
    assert rows["drives"]["cav_accuracy"] > 0.9
    assert len(rows["drives"]["scores"]) == 12 and len(rows["drives"]["random_scores"]) == 12
    # Holm multiplies the smallest of the 3 p-values by 3
    assert min(r["p_holm"] for r in rows.values()) == pytest.approx(
        min(3 * min(r["p"] for r in rows.values()), 1.0))


def test_gradients_are_the_planted_derivative_and_flatten_matches_mean_on_vectors():
    _, target = planted_layers(n_random=10)
    x = np.random.default_rng(3).normal(size=(5, D))
    g = target.gradients(list(x), 0)
    s = 1 / (1 + np.exp(-2 * x @ A))
    expected = 2 * s[:, None] * A + 0.6 * (x @ E)[:, None] * E
    np.testing.assert_allclose(g, expected, rtol=1e-4, atol=1e-5)
    assert tcav_score(g, A) == 1.0 and tcav_score(g, -A) == 0.0


def test_fewer_than_ten_random_runs_are_refused():
    layers, _ = planted_layers(n_random=10)
    data = layers["body"]
    short = {"body": LayerData(data.concepts, list(data.randoms)[:10], data.gradients)}
    with pytest.raises(TCAVError, match=">= 10 random runs"):
        run_test(short)


def test_fast_cav_is_the_offset_of_the_concept_mean_from_the_global_mean():
    rng = np.random.default_rng(0)
    c, r = rng.normal(size=(5, 3)) + 1, rng.normal(size=(9, 3))
    v = fast_cav(c, r)
    mu = np.vstack([c, r]).mean(0)
    manual = sum(row - mu for row in c) / 5
    np.testing.assert_allclose(v, manual / np.linalg.norm(manual))
    # the closed form is a positive multiple of the mean difference
    diff = c.mean(0) - r.mean(0)
    np.testing.assert_allclose(v, diff / np.linalg.norm(diff), atol=1e-12)


def test_svm_cav_points_to_the_concept_and_fit_cav_scores_held_out_rows():
    rng = np.random.default_rng(0)
    c, r = rng.normal(size=(30, 4)) + 4 * np.eye(4)[2], rng.normal(size=(30, 4))
    v = svm_cav(c, r)
    assert v[2] > 0.8 and np.isclose(np.linalg.norm(v), 1)
    fit = fit_cav(c, r, "svm", seed=0)
    assert fit.accuracy == 1.0 and fit.seconds >= 0
    with pytest.raises(CAVError, match="unknown CAV method"):
        fit_cav(c, r, "lda")
    with pytest.raises(CAVError, match="same mean"):
        fast_cav(r, r)


def test_two_sided_ttest_and_holm_by_hand():
    a, b = [0.9, 0.8, 1.0, 0.7], [0.5, 0.4, 0.6, 0.3]
    sp = np.sqrt(((len(a) - 1) * np.var(a, ddof=1) + (len(b) - 1) * np.var(b, ddof=1)) / 6)
    t = (np.mean(a) - np.mean(b)) / (sp * np.sqrt(0.5))
    from scipy.stats import t as tdist

    assert two_sided_ttest(a, b) == pytest.approx(2 * tdist.sf(abs(t), 6))
    assert two_sided_ttest([1, 1], [1, 1]) == 1.0
    assert two_sided_ttest([1, 1], [0, 0]) == 0.0
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
    np.testing.assert_allclose(holm([0.5, 0.001]), [0.5, 0.002])


def test_lm_target_gradient_is_the_next_token_logit_derivative():
    from tests.lm.tiny import tiny_lm

    lm = tiny_lm()
    target = LMTarget(lm, "blocks.1.hook_resid_post")
    texts = ["the cat is", "a dog was very"]
    tok = lm.encode("animal")[0]
    g = target.gradients(texts, tok)
    acts = target.activations(texts)
    assert g.shape == acts.shape == (2, lm.d_model)
    # finite difference along the gradient of the first text
    from conceptlab.lm.model import hooked

    v = torch.tensor(g[0] / np.linalg.norm(g[0]), dtype=torch.float32)
    eps = 1e-2

    def logit(shift: float) -> float:
        b = lm.batch(texts[:1])

        def add(h: torch.Tensor) -> torch.Tensor:
            h = h.clone()
            h[0, b.last_index()[0]] += shift * v
            return h

        with torch.no_grad(), hooked(lm, edits={"blocks.1.hook_resid_post": add}):
            return float(lm.forward(b)[0, b.last_index()[0], tok])

    slope = (logit(eps) - logit(-eps)) / (2 * eps)
    assert slope == pytest.approx(float(np.linalg.norm(g[0])), rel=2e-2)
