"""One contract over every registered CBL objective (and one defined here, in the test).

Each objective, on planted data: output shapes; the same fit twice gives identical weights;
save/load gives identical predictions; every trainable parameter moves; and unit k tracks
concept k (median unit-to-concept correlation on held-out data), the first rule of the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest
from torch import Tensor

from conceptlab.bottleneck import CBLConfig, HeadConfig, TrainConfig
from conceptlab.bottleneck.audit import audit
from conceptlab.bottleneck.model import ConceptBottleneckModel
from conceptlab.bottleneck.objectives import (
    OBJECTIVES,
    LossInputs,
    Objective,
    get_objective,
    objective_names,
    register_objective,
)
from conceptlab.bottleneck.objectives.base import loss_term
from conceptlab.concepts.bank import ConceptBank
from conceptlab.faithfulness import column_correlations
from tests.planted import PLANTED

CLASSES = ["cat", "dog", "car", "ship"]
FAST = TrainConfig(max_epochs=8, patience=3, show_progress=False, finetune_epochs=3)


@register_objective
@dataclass
class SquaredHingeObjective(Objective):
    """A toy objective defined only in this test: cross-entropy plus a squared hinge that keeps
    units small. Registering it is all it takes to join the contract."""

    name: ClassVar[str] = "toy-hinge"
    summary: ClassVar[str] = "test-only toy objective"
    margin: float = 3.0

    def loss(self, batch: LossInputs) -> tuple[Tensor, dict[str, float]]:
        ce = self._ce(batch)
        hinge = (batch.pre.abs() - self.margin).clamp_min(0).pow(2).mean()
        return ce + hinge, {"ce": loss_term(ce), "hinge": loss_term(hinge)}


@pytest.fixture(scope="module")
def planted_data():
    Xt, yt, V, A, _ = PLANTED.data(1200, 1)
    Xv, yv, _, _, _ = PLANTED.data(400, 2)
    Xs, ys, _, _, _ = PLANTED.data(600, 3)
    names = [f"{CLASSES[k // 6]} concept {k % 6}" for k in range(PLANTED.K)]
    bank = ConceptBank(V, names, metadata={"classes": [CLASSES[k // 6] for k in range(PLANTED.K)]})
    def labels(X, y):  # a concept is present when its class owns it and it shows in X
        return (A[y] * (X @ V.T > 0.3)).astype(np.float32)

    return {"train": (Xt, yt), "val": (Xv, yv), "test": (Xs, ys), "bank": bank,
            "labels": labels(Xt, yt), "test_labels": labels(Xs, ys)}


def build(name: str, bank: ConceptBank, nec: float | None = 2.0) -> ConceptBottleneckModel:
    obj = get_objective(name)
    kind = obj.default_input
    return ConceptBottleneckModel(bank, CLASSES, objective=obj, cbl=CBLConfig(input=kind),
                                  train=FAST, head=HeadConfig(nec=nec), seed=3)


def fit(model: ConceptBottleneckModel, d) -> ConceptBottleneckModel:
    return model.fit(*d["train"], *d["val"], concept_labels=d["labels"])


def test_the_toy_objective_is_registered_everywhere() -> None:
    assert "toy-hinge" in objective_names() and OBJECTIVES["toy-hinge"] is SquaredHingeObjective
    from conceptlab.workflows.cbm import methods

    assert "toy-hinge" in methods()


@pytest.mark.parametrize("name", objective_names())
def test_objective_contract(name: str, planted_data, tmp_path) -> None:
    d = planted_data
    Xs, ys = d["test"]
    a = fit(build(name, d["bank"]), d)
    b = fit(build(name, d["bank"]), d)
    # shapes
    assert a.unit_values(Xs).shape == (len(Xs), a.n_concepts)
    assert a.predict_proba(Xs).shape == (len(Xs), len(CLASSES))
    assert a.head_ is not None and int((a.head_.weight != 0).sum()) == 2 * len(CLASSES)
    # determinism: the same fit twice gives identical weights
    assert np.array_equal(a.cbl_.linear.weight.detach().numpy(),
                          b.cbl_.linear.weight.detach().numpy())
    assert np.array_equal(a.head_.weight, b.head_.weight)
    # save / load identity
    loaded = ConceptBottleneckModel.load(a.save(tmp_path / "m"))
    assert np.array_equal(loaded.predict_proba(Xs), a.predict_proba(Xs))
    # every trainable parameter moved
    moved = a.training_["parameters_moved"]
    assert moved and all(moved.values()), moved
    # unit k tracks concept k: its encoder score, or its ground-truth labels for objectives
    # trained on them (their units are concept logits)
    faith = audit(a, Xs, ys, concept_labels_test=d["test_labels"],
                  concept_label_names=d["bank"].names)
    if a.objective.needs_concept_labels:
        assert faith["concept_auroc_mean"] >= 0.8, (name, faith["concept_auroc_mean"])
    else:
        # the units themselves track their concepts (the objective's contract) ...
        used = (a.head_.weight != 0).any(axis=0)
        pre = column_correlations(a.unit_values(Xs), a.bank.scores(Xs))[used]
        assert np.median(pre) >= 0.8, (name, np.median(pre))
        # ... and the audit reads the activations the explanations show (after any map)
        acts = a.activations_from_units(a.unit_values(Xs))
        shown = column_correlations(acts, a.bank.scores(Xs))[used]
        assert faith["unit_fidelity_median"] == pytest.approx(float(np.median(shown)))
        assert faith["claims"]["units_follow_concepts"]["status"] == "pass", faith["warnings"]


def test_ungrounded_embedding_cbl_fails_the_checks_and_grounded_passes(planted_data) -> None:
    """The audit's two checks on a planted problem: an embedding CBL trained for the class only
    ignores its bank (identical predictions with a random bank, units unrelated to their
    concepts); the same CBL grounded passes both."""
    from conceptlab.bottleneck.audit import FitArrays

    d = planted_data
    Xs, ys = d["test"]
    refit = FitArrays(*d["train"], *d["val"])
    out = {}
    for grounding in (0.0, None):
        model = ConceptBottleneckModel(
            d["bank"], CLASSES, objective="l1",
            cbl=CBLConfig(input="embedding", grounding=grounding,
                          cutoff=-1.0 if grounding == 0.0 else None),
            train=FAST, head=HeadConfig(nec=2.0), seed=0).fit(*d["train"], *d["val"])
        out[grounding] = audit(model, Xs, ys, refit=refit)
    bad, good = out[0.0], out[None]
    assert bad["random_bank_agreement"] == 1.0 and bad["unit_fidelity_median"] < 0.5
    assert not bad["trusted"]
    assert bad["claims"]["units_follow_concepts"]["status"] == "fail"
    assert bad["claims"]["decisions_need_concepts"]["status"] == "undecided"
    assert good["unit_fidelity_median"] >= 0.8 and good["name_match_rate"] >= 0.8
    assert good["random_bank_agreement"] < 0.99 and good["trusted"]
    assert good["random_bank_gap"] > 0.0


def test_explanations_carry_the_warning_of_an_untrusted_model(planted_data) -> None:
    d = planted_data
    model = ConceptBottleneckModel(
        d["bank"], CLASSES, objective="l1",
        cbl=CBLConfig(input="embedding", grounding=0.0, cutoff=-1.0), train=FAST,
        head=HeadConfig(nec=2.0)).fit(*d["train"], *d["val"])
    assert model.trusted is None and "warnings" not in model.explain(d["test"][0][:1])[0]
    audit(model, *d["test"])
    assert model.trusted is False
    assert "not to be trusted" in " ".join(model.explain(d["test"][0][:1])[0]["warnings"])
