"""Does a fitted concept bottleneck mean its names? The faithfulness audit of one model.

Computed on held-out data (the test split) for every model the project fits, and written
beside its accuracy (``metrics.json["faithfulness"]``, ``model.json``):

* ``unit_fidelity_median``: median over the units the head uses of the Pearson correlation of
  unit k with concept k's encoder score ``S_k``; ``name_match_rate``: share of used units whose
  most correlated concept among all K is their own;
* controls, each a refit of the same configuration on the same data: ``random_bank_*`` (the
  bank replaced by seeded random unit vectors with the same names and class associations: its
  accuracy, ours minus it, and the share of test predictions that stay identical; a model that
  ignores its bank agrees 100%) and ``shuffled_names_accuracy`` (the bank's directions permuted
  among its names, so each name, and its class association, points at another concept);
* ``intercept_share`` (median share of the predicted class's |logit| carried by its bias),
  ``top_unit_unused_rate``, concept ``deletion_auc`` / ``insertion_auc`` against a random order;
* with ground-truth concept labels: per-concept AUROC of the units (``concept_auroc_mean``).

``verdict`` turns these into ``trusted`` and ``warnings`` (``faithfulness.verdict``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from conceptlab import faithfulness as fm
from conceptlab.bottleneck.model import ConceptBottleneckModel
from conceptlab.concepts.bank import ConceptBank
from conceptlab.metrics import accuracy


@dataclass
class FitArrays:
    """The training and validation arrays a control refit uses (as the model was fitted)."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    concept_labels: np.ndarray | None = None
    F_train: np.ndarray | None = None
    F_val: np.ndarray | None = None


def random_bank(bank: ConceptBank, seed: int) -> ConceptBank:
    """The same names and metadata on seeded random unit directions (Gaussian, normalised)."""
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((len(bank), bank.dim)).astype(np.float32)
    prov = {**bank.provenance, "method": "random control", "control_seed": seed}
    return ConceptBank(vectors, list(bank.names), provenance=prov,
                       metadata={k: list(v) for k, v in bank.metadata.items()})


def shuffled_bank(bank: ConceptBank, seed: int) -> ConceptBank:
    """The bank's directions permuted among its names (a derangement where K > 1)."""
    rng = np.random.default_rng(seed)
    k = len(bank)
    perm = np.arange(k)
    while k > 1 and (perm == np.arange(k)).any():
        perm = rng.permutation(k)
    prov = {**bank.provenance, "method": "shuffled-names control", "control_seed": seed}
    return ConceptBank(bank.vectors[perm], list(bank.names), provenance=prov,
                       metadata={key: list(v) for key, v in bank.metadata.items()},
                       normalize=False)


def _refit(model: ConceptBottleneckModel, bank: ConceptBank, data: FitArrays
           ) -> ConceptBottleneckModel:
    clone = model.clone(bank=bank)
    return clone.fit(data.X_train, data.y_train, data.X_val, data.y_val,
                     concept_labels=data.concept_labels, F_train=data.F_train,
                     F_val=data.F_val)


def grounded_by(model: ConceptBottleneckModel) -> str:
    """What ties unit k to concept k: ``labels`` (trained on concept labels), ``loss`` (the
    objective's own loss, e.g. cos^3), ``grounding term``, ``initialisation`` (a scores CBL
    started as the identity, no grounding term) or ``nothing``."""
    if model.objective.needs_concept_labels:
        return "labels"
    if model.objective.grounds_units:
        return "loss"
    if model.grounding.weight > 0:
        return "grounding term"
    return "initialisation" if model.cbl_input == "scores" else "nothing"


def audit(model: ConceptBottleneckModel, X_test: Any, y_test: Any, *,
          refit: FitArrays | None = None, concept_labels_test: Any = None,
          concept_label_names: list[str] | None = None, F_test: Any = None,
          control_seed: int | None = None) -> dict[str, Any]:
    """The faithfulness record of a fitted model on held-out ``(X_test, y_test)``.

    ``refit`` enables the random-bank and shuffled-names controls (two more fits).
    ``concept_labels_test`` (N x M, 0/1) with ``concept_label_names`` (M names of bank
    concepts) adds per-concept AUROC. The record is also stored on the model
    (``model.faithfulness_``) so that its explanations carry the verdict.
    """
    _, head = model._require_fitted()
    seed = model.seed if control_seed is None else int(control_seed)
    X = model._check_X(X_test, "X_test")
    y = np.asarray(y_test)
    U = model.unit_values(X, F_test)
    S = model.bank.scores(X)
    used = (head.weight != 0).any(axis=0)
    fid = fm.unit_fidelity(U, S, used)
    H = model.activations_from_units(U)  # one pass through the CBL serves every measure
    pred = model.predict_from_activations(H)
    W, b = model.effective_head()
    di = fm.deletion_insertion(H, W, b, seed=seed)
    out: dict[str, Any] = {
        "split": "test", "n": len(X), "grounded_by": grounded_by(model),
        "unit_fidelity_median": fid["median"], "n_units_used": fid["n_used"],
        "name_match_rate": fm.name_match_rate(U, S, used),
        "intercept_share": fm.intercept_share(H, W, b)["median"],
        "top_unit_unused_rate": fm.top_unit_unused_rate(H, W, b),
        **{k: v for k, v in di.items() if k.endswith("_auc")},
        "unit_fidelity": {n: float(r) for n, r in zip(model.concept_names, fid["per_unit"],
                                                       strict=True)},
    }
    acc = accuracy(y, pred)
    if refit is not None:
        rnd = _refit(model, random_bank(model._input_bank, seed + 7919), refit)
        rnd_pred = rnd.predict(X, F_test)
        out["random_bank_accuracy"] = accuracy(y, rnd_pred)
        out["random_bank_gap"] = acc - out["random_bank_accuracy"]
        out["random_bank_agreement"] = fm.prediction_agreement(pred, rnd_pred)
        shuf = _refit(model, shuffled_bank(model._input_bank, seed + 104729), refit)
        out["shuffled_names_accuracy"] = accuracy(y, shuf.predict(X, F_test))
    if concept_labels_test is not None and concept_label_names:
        kept = [n for n in concept_label_names if n in model.concept_names]
        if kept:
            labels = np.asarray(concept_labels_test)
            cols = [list(concept_label_names).index(n) for n in kept]
            units = [model.concept_index(n) for n in kept]
            auroc = fm.concept_auroc(U[:, units], labels[:, cols])
            out["concept_auroc"] = {n: float(a) for n, a in zip(kept, auroc, strict=True)}
            finite = auroc[np.isfinite(auroc)]
            out["concept_auroc_mean"] = float(finite.mean()) if len(finite) else float("nan")
    out.update(fm.verdict(out).as_dict())
    model.faithfulness_ = out
    return out
