"""The concept embedding model on planted data: it learns concepts and task, interventions
with true concepts fix its mistakes, RandInt is what makes them work, and it saves exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conceptlab.bottleneck.cem import CEMConfig, CEMError, CEMNet, ConceptEmbeddingModel
from conceptlab.errors import ConceptlabError


def planted(n: int, seed: int, noise: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """4 concepts seen through noisy directions of a 12-d embedding; class = c0 + 2 c1 (4
    classes), so concepts 2 and 3 are irrelevant to the task."""
    rng = np.random.default_rng(seed)
    C = rng.integers(0, 2, (n, 4)).astype(np.float32)
    M = np.random.default_rng(99).normal(size=(4, 12))
    X = (2 * C - 1) @ M + noise * rng.normal(size=(n, 12))
    return X.astype(np.float32), (C[:, 0] + 2 * C[:, 1]).astype(np.int64), C


@pytest.fixture(scope="module")
def fitted() -> ConceptEmbeddingModel:
    X, y, C = planted(600, 0)
    Xv, yv, _ = planted(200, 1)
    cfg = CEMConfig()
    return ConceptEmbeddingModel(["a", "b", "c", "d"], ["0", "1", "2", "3"], cfg,
                                 seed=0).fit(X, y, C, Xv, yv)


def test_cem_learns_concepts_and_interventions_reach_the_planted_rule(fitted):
    X, y, C = planted(400, 2)
    p = fitted.concept_probs(X)
    assert ((p >= 0.5) == C).mean() > 0.95
    curve = fitted.intervention_curve(X, y, C, seed=0)
    assert curve[0]["accuracy"] > 0.9
    assert curve[-1]["accuracy"] > curve[0]["accuracy"] + 0.01  # true concepts fix mistakes
    # switching concept a on moves class 0 (c0 = 0, c1 = 0) toward class 1 (c0 = 1)
    rows = X[y == 0]
    before, after = fitted.logits(rows), fitted.intervened_logits(rows, {"a": 1})
    assert ((after[:, 1] - after[:, 0]) > (before[:, 1] - before[:, 0])).mean() > 0.9
    with pytest.raises(CEMError, match="unknown concept"):
        fitted.intervened_logits(X[:1], {"zz": 1})
    with pytest.raises(ConceptlabError, match="unknown concept 'zz'"):
        fitted.intervene(X[:1], {"zz": 1})
    # the protocol's intervene: the decisions after setting the probability
    np.testing.assert_array_equal(fitted.intervene(rows, {"a": "present"}), after.argmax(1))
    with pytest.raises(ConceptlabError, match=r"\[0, 1\]"):
        fitted.intervene(rows, {"a": 2.0})


def test_mixture_is_the_probability_weighted_embedding():
    torch.manual_seed(0)
    net = CEMNet(5, 3, 2, 4)
    x = torch.randn(6, 5)
    p, pos, neg = net.concepts(x)
    manual = torch.cat([p[:, i:i + 1] * pos[:, i] + (1 - p[:, i:i + 1]) * neg[:, i]
                        for i in range(3)], dim=1)
    torch.testing.assert_close(net.task(p, pos, neg), net.head(manual))
    ones = torch.ones(6, 3)
    logits, _ = net(x, ones, torch.ones(6, 3))  # full intervention: only positives are read
    torch.testing.assert_close(logits, net.head(pos.reshape(6, -1)))


def test_randint_makes_interventions_work_better_than_without_it():
    X, y, C = planted(600, 0, noise=2.0)
    Xv, yv, _ = planted(200, 1, noise=2.0)
    Xt, yt, Ct = planted(400, 2, noise=2.0)
    gains = {}
    for p_int in (0.0, 0.25):
        m = ConceptEmbeddingModel(list("abcd"), list("0123"), CEMConfig(p_int=p_int),
                                  seed=0).fit(X, y, C, Xv, yv)
        curve = m.intervention_curve(Xt, yt, Ct)
        gains[p_int] = curve[-1]["accuracy"] - curve[0]["accuracy"]
    # planted at noise 2: all four concepts corrected gain ~0.06 without RandInt, ~0.12 with
    assert gains[0.25] > gains[0.0] + 0.03


def test_save_load_is_exact_and_bad_input_is_refused(fitted, tmp_path):
    X, _, _ = planted(20, 3)
    fitted.save(tmp_path / "m")
    again = ConceptEmbeddingModel.load(tmp_path / "m")
    np.testing.assert_array_equal(again.logits(X), fitted.logits(X))
    assert again.explain(X[:2], top=2)[0]["concepts"][0]["concept"] in "abcd"
    with pytest.raises(CEMError, match="unknown settings"):
        CEMConfig.from_options({"embsize": 3})
    with pytest.raises(CEMError, match="0/1"):
        ConceptEmbeddingModel(["a"], ["x", "y"]).fit(X, np.zeros(20), np.full((20, 1), 0.5),
                                                    X, np.zeros(20))


def test_fit_method_cem_is_listed_and_refuses_bad_settings_before_encoding(tmp_path):
    from conceptlab.errors import OptionError
    from conceptlab.workflows.cbm import methods, run_fit
    from conceptlab.workflows.prepare import RunConfig

    assert "cem" in methods()
    cfg = RunConfig(data=f"csv:{tmp_path / 'missing.csv'}", encoder="minilm")
    with pytest.raises(OptionError, match="no sparse head"):
        run_fit(cfg, tmp_path / "out", method="cem", nec=5)
    with pytest.raises(CEMError, match="unknown settings"):
        run_fit(cfg, tmp_path / "out", method="cem", hparams={"emb": 3})
    assert not (tmp_path / "out").exists()
