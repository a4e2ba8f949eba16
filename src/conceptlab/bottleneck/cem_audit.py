"""Does a fitted concept embedding model mean its names? Its faithfulness profile, with the
claims of every concept model (``faithfulness.claims``), on held-out data.

A CEM is trained on concept labels, so its names are judged by held-out labels
(``concepts_mean_words``, the required claim: AUROC of each concept probability against its
label); its head reads concept embeddings, not directions of the vocabulary, so neither the
unit-to-word fidelity nor the class links through the text encoder apply, and no control
bank can change a decision (``not measured``, said why). Measured besides:

* ``explanations_carry_decisions``: the share of the predicted logit carried by the
  intercept of the head's affine form at each input (``ConceptEmbeddingModel.head_at``; for a
  CEM the intercept holds the negative embeddings' part of the logit, so a large share says
  the decision is not carried by the concept probabilities);
* ``interventions_work``: the gain of setting every concept to its true label;
* ``concepts_do_not_leak``: the soft-minus-hard gap of ``faithfulness.leakage`` (beside the
  verdict).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from conceptlab import faithfulness as fm
from conceptlab.bottleneck.audit import leakage_record, record_fields
from conceptlab.bottleneck.concept_model import AuditInputs
from conceptlab.errors import InputError
from conceptlab.faithfulness import claims as cl

if TYPE_CHECKING:
    from conceptlab.bottleneck.cem import ConceptEmbeddingModel

NO_VOCABULARY = ("a CEM's head reads concept embeddings learnt from labels, not the "
                 "vocabulary's directions")


def intercept_share_at(W: np.ndarray, b: np.ndarray, P: np.ndarray) -> float:
    """Median over rows of ``|b_c| / (|b_c| + sum_i |W[c, i] p_i|)`` for the predicted class,
    with a per-input head ``(W: N x C x k, b: N x C)``."""
    logits = np.einsum("nck,nk->nc", W, P) + b
    pred = logits.argmax(1)
    rows = np.arange(len(P))
    contrib = np.abs(W[rows, pred] * P).sum(1)
    bb = np.abs(b[rows, pred])
    total = bb + contrib
    share = np.divide(bb, total, out=np.zeros_like(bb), where=total > 0)
    return float(np.median(share)) if len(share) else float("nan")


def audit_cem(model: ConceptEmbeddingModel, inputs: AuditInputs) -> dict[str, Any]:
    """The CEM's profile on ``inputs`` (see the module docstring). Returns the row fields a
    run records: ``faithfulness``, ``trusted`` and, with labels, ``concept_accuracy`` and
    ``intervention_curve``."""
    if inputs.examples is not None:
        raise InputError("--concept-examples: a CEM's concepts are judged by held-out concept "
                         "labels; example sets are for CBM runs")
    X, y = np.asarray(inputs.X_test, np.float32), np.asarray(inputs.y_test)
    n = len(X)
    P = model.concept_probs(X)
    W, b = model.head_at(X)
    share = intercept_share_at(np.asarray(W, np.float64), np.asarray(b, np.float64),
                               P.astype(np.float64))
    out: dict[str, Any] = {"split": "test", "n": n, "grounded_by": "labels",
                           "intercept_share": share}
    row: dict[str, Any] = {}
    claims = [cl.not_measured("units_follow_concepts", "the concepts are trained on labels; "
                              "their names are judged against held-out labels")]
    labels = inputs.concept_labels
    names = list(inputs.vocab_names)
    cols = [names.index(c) if c in names else -1 for c in model.concept_names]
    have = labels is not None and all(j >= 0 for j in cols)
    gain = None
    if have:
        assert labels is not None
        C_test = np.asarray(labels["test"])[:, cols]
        per, mean, ci = fm.auroc_figures(P, C_test, seed=inputs.seed)
        out["concept_auroc"] = {nm: float(a) for nm, a in zip(model.concept_names, per,
                                                              strict=True)}
        out["concept_auroc_mean"] = mean
        claims.append(cl.auroc_claim("concepts_mean_words", mean, ci, n,
                                     int(np.isfinite(per).sum()), "held-out concept labels"))
        row["concept_accuracy"] = float(((P >= 0.5) == (C_test >= 0.5)).mean())
        row["intervention_curve"] = model.intervention_curve(X, y, C_test, seed=inputs.seed)
        gain = fm.intervention_gain(row["intervention_curve"])
        out["intervention_gain"] = gain
    else:
        claims.append(cl.not_measured("concepts_mean_words", "no held-out labels for the "
                                                             "model's concepts"))
    claims.append(cl.not_measured("class_links_make_sense", NO_VOCABULARY))
    claims.append(cl.decisions_claim(share, None, None, n))
    claims.append(cl.interventions_claim(gain, n))
    claims.append(cl.not_measured("decisions_need_concepts", NO_VOCABULARY))
    if have and inputs.X_train is not None and inputs.y_train is not None:
        assert labels is not None
        P_train = model.concept_probs(np.asarray(inputs.X_train, np.float32))
        fields, leak = leakage_record(P_train, np.asarray(inputs.y_train), P, y,
                                      np.asarray(labels["test"])[:, cols], inputs.seed)
        out.update(fields)
        claims.append(leak)
    else:
        claims.append(cl.not_measured("concepts_do_not_leak", "needs concept labels and the "
                                                              "training split"))
    out["required_claim"] = "concepts_mean_words"
    out["claims"] = {c.name: c.as_dict() for c in claims}
    out.update(cl.profile_verdict(claims, "concepts_mean_words").as_dict())
    row["faithfulness"] = record_fields(out)
    row["trusted"] = out["trusted"]
    return row
