"""CBL objectives and the training loop: each objective does what its docstring claims."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conceptlab import metrics
from conceptlab.bottleneck.layers import FeaturesCBL, Grounding, ScoresCBL
from conceptlab.bottleneck.objectives import (
    OBJECTIVES,
    GumbelObjective,
    LossInputs,
    anneal_temperature,
    clip_contrastive_loss,
    cos3_similarity,
    get_objective,
    gumbel_softmax,
    mass_class_similarity,
)
from conceptlab.bottleneck.training import (
    TrainConfig,
    TrainData,
    activations_from_units,
    train_cbl,
    unit_values,
)
from conceptlab.faithfulness import column_correlations
from tests.planted import PLANTED

C, K = PLANTED.C, PLANTED.K
class_concept_data = PLANTED.data

FAST = TrainConfig(max_epochs=12, patience=4, show_progress=False)


@pytest.fixture(scope="module")
def data():
    _, yt, _, A, St = class_concept_data(1500, 1)
    _, yv, _, _, Sv = class_concept_data(500, 2)
    return St, yt, Sv, yv, A


# ------------------------------------------------------------------------------ registry


def test_registry_and_errors():
    assert {"l1", "contrastive", "gumbel", "cos3", "supervised"} <= set(OBJECTIVES)
    assert get_objective("gumbel", tau_min=0.2).tau_min == 0.2
    with pytest.raises(ValueError, match="unknown objective 'gumbal'"):
        get_objective("gumbal")
    with pytest.raises(ValueError, match="no hyper-parameter"):
        get_objective("l1", tau=0.1)
    with pytest.raises(ValueError, match="tau_min"):
        get_objective("gumbel", tau_start=0.1, tau_min=1.0)
    with pytest.raises(ValueError, match="finite"):
        get_objective("l1", lam=float("nan"))
    obj = get_objective("gumbel", hard=True)
    assert get_objective("gumbel", **obj.params()) == obj


# ------------------------------------------------------------------------------ building blocks


def test_clip_contrastive_loss_prefers_aligned_logits():
    y = torch.tensor([0, 0, 1, 2, 2, 2])
    aligned = torch.nn.functional.one_hot(y, 3).float() * 20
    # floor of the multi-positive column term: log(#positives) per class (2, 1, 3 here)
    floor = 0.5 * np.mean([np.log(2), 0.0, np.log(3)])
    assert float(clip_contrastive_loss(aligned, y)) == pytest.approx(floor, abs=1e-4)
    # rows alone would be fine with a constant column shift, but columns must pick positives
    assert float(clip_contrastive_loss(torch.zeros(6, 3), y)) > 1.0
    wrong = torch.nn.functional.one_hot((y + 1) % 3, 3).float() * 10
    assert float(clip_contrastive_loss(wrong, y)) > 5.0


def test_gumbel_softmax_is_seeded_relaxed_and_straight_through():
    logits = torch.randn(64, 10, generator=torch.Generator().manual_seed(0), requires_grad=True)
    a = gumbel_softmax(logits, 0.5, generator=torch.Generator().manual_seed(3))
    b = gumbel_softmax(logits, 0.5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert torch.allclose(a.sum(1), torch.ones(64))
    hard = gumbel_softmax(logits, 0.5, generator=torch.Generator().manual_seed(3), hard=True)
    assert set(hard.detach().unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(hard.argmax(1), a.argmax(1))
    (hard * torch.arange(10.0)).sum().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0
    # low temperature without noise -> one-hot on the argmax (logits 1 apart)
    spaced = torch.argsort(torch.rand(64, 10, generator=torch.Generator().manual_seed(1)))
    cold = gumbel_softmax(spaced.float(), 0.05, noise=False)
    assert torch.allclose(cold.max(1).values, torch.ones(64), atol=1e-6)
    assert torch.equal(cold.argmax(1), spaced.argmax(1))


def test_anneal_temperature_end_points():
    assert anneal_temperature(0.0, 2.0, 0.1) == pytest.approx(2.0)
    assert anneal_temperature(1.0, 2.0, 0.1) == pytest.approx(0.1)
    assert anneal_temperature(5.0, 2.0, 0.1) == pytest.approx(0.1)
    assert 0.1 < anneal_temperature(0.5, 2.0, 0.1) < 2.0


def test_cos3_similarity_properties():
    g = torch.Generator().manual_seed(0)
    t = torch.randn(200, 5, generator=g)
    assert torch.allclose(cos3_similarity(t, t), torch.ones(5), atol=1e-6)
    assert torch.allclose(cos3_similarity(3 * t + 7, t), torch.ones(5), atol=1e-5)
    assert torch.allclose(cos3_similarity(-t, t), -torch.ones(5), atol=1e-6)
    const = torch.ones(200, 5)
    assert torch.equal(cos3_similarity(const, t), torch.zeros(5))


def test_mass_similarity_does_not_reward_spreading_within_a_class():
    """On the simplex the cosine prefers uniform mass over a class's concepts; the mass
    similarity used by the Gumbel objective is indifferent, leaving sharpness to tau."""
    A = torch.tensor([[1.0, 1.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
    one_hot = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    uniform = torch.tensor([[1 / 3, 1 / 3, 1 / 3, 0.0]])
    assert torch.allclose(mass_class_similarity(one_hot, A), mass_class_similarity(uniform, A))
    cos = torch.nn.functional.cosine_similarity
    assert cos(one_hot, A[:1]) < cos(uniform, A[:1])


def test_reference_gumbel_loss_pushes_towards_uniform_but_ours_does_not():
    """The reference's ``-mean(log gumbel_softmax)`` is smallest for uniform logits; ours
    gives a peaked activation on a class concept a lower loss than a uniform one."""
    A = torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]])
    y = torch.tensor([0, 1])
    peaked = torch.tensor([[6.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 6.0]])
    flat = torch.zeros(2, 4)

    def reference(logits):
        torch.manual_seed(0)
        return float(-torch.log(torch.nn.functional.gumbel_softmax(logits, dim=1)).mean())

    assert reference(flat) < reference(peaked)
    obj = GumbelObjective(tau_min=0.5, anneal=False)
    head = torch.nn.Linear(4, 2)

    def ours(pre):
        acts = obj.activations(pre, training=False)
        batch = LossInputs(pre=pre, acts=acts, y=y, cbl_weight=torch.eye(4),
                           target_scores=pre, logits=head(acts), association=A)
        return float(obj.loss(batch)[1]["contrastive"])

    assert ours(peaked) < ours(flat)


# ------------------------------------------------------------------------------ training loop


def fit_on_scores(obj, St, yt, Sv, yv, A=None, labels=None, config=FAST, seed=0,
                  kind="scores", inputs=None, grounding=0.0):
    """``train_cbl`` on concept scores (or on ``inputs`` = (train, val) for other kinds)."""
    it, iv = inputs if inputs is not None else (St, Sv)
    data = TrainData(it, yt, St, iv, yv, Sv, association=A, concept_labels=labels)
    return train_cbl(obj, data, kind=kind, n_classes=C, grounding=Grounding(grounding, None),
                     config=config, seed=seed)


def test_scores_cbl_starts_as_identity_on_standardised_scores(data):
    St = data[0]
    layer = ScoresCBL(K, K, in_mean=St.mean(0), in_std=St.std(0))
    out = layer(torch.from_numpy(St)).detach().numpy()
    np.testing.assert_allclose(out, (St - St.mean(0)) / St.std(0), atol=1e-5)


def test_scores_cbl_refuses_a_non_square_shape():
    with pytest.raises(ValueError, match="square"):
        ScoresCBL(K, K + 1)


def test_training_is_reproducible_with_a_seed(data):
    St, yt, Sv, yv, A = data
    cfg = TrainConfig(max_epochs=3, patience=3, show_progress=False)
    a = fit_on_scores(get_objective("gumbel"), St, yt, Sv, yv, A, config=cfg, seed=7)
    b = fit_on_scores(get_objective("gumbel"), St, yt, Sv, yv, A, config=cfg, seed=7)
    assert torch.equal(a.cbl.linear.weight, b.cbl.linear.weight)


def test_gumbel_activations_are_sparser_than_l1_and_contrastive(data):
    """Property (a) at the layer level: the activations the head sees (validation data)."""
    St, yt, Sv, yv, A = data
    results = {}
    for name in ("l1", "contrastive", "gumbel"):
        obj = get_objective(name)
        fit = fit_on_scores(obj, St, yt, Sv, yv, A)
        H = activations_from_units(obj, unit_values(fit.cbl, Sv))
        results[name] = (fit.best_score, float(metrics.effective_count(H).mean()))
    (acc_g, eff_g) = results["gumbel"]
    for other in ("l1", "contrastive"):
        acc_o, eff_o = results[other]
        assert eff_g < eff_o, results
        assert acc_g >= acc_o - 0.04, results
    assert eff_g <= 3.0, results  # few concepts per example, not just fewer


def test_cos3_similarity_rises_and_selection_drops_an_unmatchable_concept():
    """LF-CBM's setting: the CBL reads features, targets are similarities from another space.
    The last target column is noise independent of the features: no unit can match it on
    validation data, so the 0.45 cutoff drops it."""
    rng = np.random.default_rng(0)
    n, d, k = 3000, 16, 6
    F = rng.normal(size=(n, d)).astype(np.float32)
    P = (F @ rng.normal(size=(d, k)) + 0.3 * rng.normal(size=(n, k))).astype(np.float32)
    P[:, -1] = rng.normal(size=n)
    tr, va = slice(0, 2400), slice(2400, None)
    obj = get_objective("cos3")
    layer0 = FeaturesCBL(d, k, bias=False, generator=torch.Generator().manual_seed(0),
                         in_mean=F[tr].mean(0), in_std=F[tr].std(0))
    before = cos3_similarity(torch.from_numpy(unit_values(layer0, F[va])),
                             torch.from_numpy(P[va])).mean()
    data = TrainData(F[tr], np.zeros(2400, int), P[tr], F[va], np.zeros(600, int), P[va])
    fit = train_cbl(obj, data, kind="features", n_classes=2, grounding=Grounding(0.0, None),
                    config=TrainConfig(max_epochs=15, patience=5, show_progress=False), seed=0)
    keep, record = obj.select_units(unit_values(fit.cbl, F[va]), P[va])
    sims = np.asarray(record["scores"])
    assert sims.mean() > float(before) + 0.2
    assert fit.history[-1]["val_score"] > fit.history[0]["val_score"]
    assert list(keep) == list(range(k - 1)), sims


def test_grounding_ties_embedding_units_to_their_concepts(data):
    """An embedding CBL trained for the class alone has units unrelated to their concepts; the
    grounding term makes unit k track concept k's score on validation data."""
    X, yt, _, _, St = PLANTED.data(1500, 1)
    Xv, yv, _, _, Sv = PLANTED.data(500, 2)
    inputs = (X / np.linalg.norm(X, axis=1, keepdims=True),
              Xv / np.linalg.norm(Xv, axis=1, keepdims=True))
    corr = {}
    for weight in (0.0, 1.0):
        fit = fit_on_scores(get_objective("l1"), St, yt, Sv, yv, kind="embedding",
                            inputs=inputs, grounding=weight)
        corr[weight] = float(np.median(column_correlations(unit_values(fit.cbl, inputs[1]), Sv)))
    assert corr[0.0] < 0.5 < 0.8 < corr[1.0], corr


def test_missing_inputs_for_objectives_are_clear(data):
    St, yt, Sv, yv, _ = data
    with pytest.raises(ValueError, match="association"):
        fit_on_scores(get_objective("contrastive"), St, yt, Sv, yv)
    with pytest.raises(ValueError, match="concept labels"):
        fit_on_scores(get_objective("supervised"), St, yt, Sv, yv)
    with pytest.raises(ValueError, match="cannot train a CBL that reads 'scores'"):
        fit_on_scores(get_objective("cos3"), St, yt, Sv, yv)
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=0)
