"""Does a fitted concept bottleneck mean its names? The faithfulness audit of one model, as a
profile of claims (``faithfulness.claims``), each with its measurement, control and status.

Measured on held-out data (the test split), on the activations the explanations show (after
the objective's map, e.g. Gumbel-Softmax), for every model the project fits:

* ``units_follow_concepts``: unit fidelity (median correlation of each used unit with its
  concept's encoder score) and name match (share of used units whose best-correlated concept is
  their own), with item-bootstrap intervals. For units trained on concept labels this is judged
  by ``concepts_mean_words`` instead, the model's required claim then;
* ``concepts_mean_words``: the units' AUROC against held-out concept labels, or against a
  user's concept example sets with random counter-examples (``concepts.examples``);
* ``class_links_make_sense``: how the head's class-concept weights agree with the text
  encoder's class-concept association, against the same configuration refitted on control
  banks of random character strings with the same names and class links (needs the encoder);
* ``explanations_carry_decisions``: the bias's share of the predicted logit, concept deletion
  against a random order;
* ``interventions_work``: the gain from correcting every labelled concept (given a curve);
* ``decisions_need_concepts`` (beside the verdict): accuracy minus the accuracy of
  ``N_CONTROLS`` control refits, with a t-interval;
* ``concepts_do_not_leak`` (beside the verdict, models trained on concept labels only): the
  soft-minus-hard concept accuracy gap of ``faithfulness.leakage`` (``leakage_record``).

The control banks are random character strings through the model's own text encoder
(WaffleCLIP's control, Roth et al. 2023, "Waffling around for performance") when an encoder is
given, otherwise seeded Gaussian directions: either way the names and class associations stay
and only the directions change. Each control refits on the cached embeddings only; one set of
refits serves both controls.

The flat fields of the earlier audit stay (``unit_fidelity_median``, ``random_bank_gap`` as the
mean over the control banks, ...), beside ``claims``, ``trusted``, ``warnings`` and ``findings``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from conceptlab import faithfulness as fm
from conceptlab.baselines.zeroshot import build_class_embeddings
from conceptlab.bottleneck.concept_model import AuditInputs
from conceptlab.bottleneck.intervention import (
    concept_accuracy,
    fit_concept_thresholds,
    intervention_curve,
)
from conceptlab.bottleneck.model import ConceptBottleneckModel
from conceptlab.concepts.bank import ConceptBank
from conceptlab.errors import ConceptlabValueError
from conceptlab.faithfulness import claims as cl
from conceptlab.faithfulness.leakage import LEAKAGE_GAP, leakage_columns
from conceptlab.faithfulness.links import class_link_agreement, class_link_support
from conceptlab.metrics import accuracy

#: bootstrap replicates behind each interval of an item-level figure
N_BOOTSTRAP = 200
WAFFLE = "random character-string banks"
GAUSSIAN = "random-direction banks"


@dataclass
class FitArrays:
    """The training and validation arrays a control refit uses (as the model was fitted)."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray | None = None
    y_val: np.ndarray | None = None
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


def random_strings(n: int, seed: int, length: int = 8) -> list[str]:
    """``n`` seeded random lower-case letter strings (WaffleCLIP's random-character control)."""
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    return ["".join(rng.choice(letters, size=length)) for _ in range(n)]


def waffle_bank(bank: ConceptBank, encoder: Any, seed: int) -> ConceptBank:
    """The same names and metadata on the directions of random character strings through
    ``encoder`` (its text side): directions drawn from where the encoder puts text, sharing its
    common component, but meaning nothing."""
    vectors = np.asarray(encoder.encode_texts(random_strings(len(bank), seed)), np.float32)
    prov = {**bank.provenance, "method": "random character-string control",
            "control_seed": seed}
    return ConceptBank(vectors, list(bank.names), provenance=prov,
                       metadata={k: list(v) for k, v in bank.metadata.items()})


def text_encoder_of(encoder: Any) -> Any:
    """``encoder`` when it reads texts (the controls and the class links need its text side),
    else None."""
    modalities = getattr(encoder, "modalities", ())
    return encoder if "text" in modalities and hasattr(encoder, "encode_texts") else None


#: fields of an audit record left out of a run's metrics.json (per-unit tables)
PER_UNIT_FIELDS = ("unit_fidelity", "concept_auroc", "concept_example_auroc")


def record_fields(record: dict[str, Any]) -> dict[str, Any]:
    """The audit record as a run stores it: every field but the per-unit tables."""
    return {k: v for k, v in record.items() if k not in PER_UNIT_FIELDS}


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


def _as_fit_arrays(refit: FitArrays | Sequence[Any] | None) -> FitArrays | None:
    if refit is None or isinstance(refit, FitArrays):
        return refit
    parts = list(refit)
    if len(parts) not in (2, 4):
        raise ConceptlabValueError("train must be (X_train, y_train) or (X_train, y_train, "
                                   "X_val, y_val)")
    return FitArrays(*[np.asarray(p) for p in parts])


def _control_refits(model: ConceptBottleneckModel, data: FitArrays, X: np.ndarray,
                    y: np.ndarray, pred: np.ndarray, F_test: Any, encoder: Any,
                    class_emb: np.ndarray | None, seed: int, n_controls: int
                    ) -> dict[str, Any]:
    """Refit the same configuration on ``n_controls`` control banks (same names and class
    links, other directions): accuracy, prediction agreement and class-link agreement each."""
    accs, agrees, links = [], [], []
    failed: list[str] = []
    for i in range(n_controls):
        s = seed + 7919 * (i + 1)
        bank = (waffle_bank(model.input_bank, encoder, s) if encoder is not None
                else random_bank(model.input_bank, s))
        try:
            ctrl = model.clone(bank=bank).fit(
                data.X_train, data.y_train, data.X_val, data.y_val,
                concept_labels=data.concept_labels, F_train=data.F_train, F_val=data.F_val)
        except ConceptlabValueError as err:  # e.g. unit selection kept no control concept
            failed.append(str(err))
            continue
        p = ctrl.predict(X, F_test)
        accs.append(accuracy(y, p))
        agrees.append(fm.prediction_agreement(pred, p))
        if class_emb is not None:
            Wc, _ = ctrl.effective_head()
            links.append(class_link_support(Wc, class_emb @ ctrl.bank.vectors.T,
                                            (Wc != 0).any(axis=0)))
    return {"accuracies": accs, "agreements": agrees, "links": links, "failed": failed,
            "kind": WAFFLE if encoder is not None else GAUSSIAN}


def audit(model: ConceptBottleneckModel, X_test: Any, y_test: Any, *,
          refit: FitArrays | Sequence[Any] | None = None, encoder: Any = None,
          class_embeddings: Any = None, concept_labels_test: Any = None,
          concept_label_names: Sequence[str] | None = None,
          concept_examples: Any = None, intervention_curve: Sequence[dict[str, Any]] | None = None,
          F_test: Any = None, control_seed: int | None = None,
          n_controls: int = cl.N_CONTROLS,
          concept_labels_train: Any = None) -> dict[str, Any]:
    """The faithfulness profile of a fitted model on held-out ``(X_test, y_test)``.

    ``refit`` (``FitArrays`` or ``(X_train, y_train[, X_val, y_val])``) enables the control
    refits (``n_controls`` of them); ``encoder`` (the model's text encoder) makes the controls
    random character strings and, with the class names, measures the class links
    (``class_embeddings``, C x D, may be given instead of the encoder for that).
    ``concept_labels_test`` (N x M, 0/1) with ``concept_label_names`` (M bank concept names),
    or ``concept_examples`` (``concepts.examples.ExampleEmbeddings``), measure whether the
    concepts mean their words; ``intervention_curve`` (``bottleneck.intervention``) whether
    interventions work. With ``concept_labels_train`` too (and ``refit``'s training
    arrays), a model trained on concept labels is checked for leakage. The record is also
    stored on the model (``model.faithfulness_``), so
    its explanations carry the verdict.
    """
    model.check_fitted()
    seed = model.seed if control_seed is None else int(control_seed)
    X = model.check_inputs(X_test, "X_test")
    y = np.asarray(y_test)
    if len(y) != len(X):
        raise ConceptlabValueError(f"X_test has {len(X)} rows but y_test {len(y)}")
    n = len(X)
    H = model.activations_from_units(model.unit_values(X, F_test))  # what explain shows
    S = model.bank.scores(X)
    W, b = model.effective_head()
    used = (W != 0).any(axis=0)
    pred = model.predict_from_activations(H)
    di = fm.deletion_insertion(H, W, b, seed=seed)
    share = fm.intercept_share(H, W, b)["median"]
    uf = fm.unit_figures(H, S, used, seed=seed, n_boot=N_BOOTSTRAP)
    ground = grounded_by(model)
    out: dict[str, Any] = {
        "split": "test", "n": n, "grounded_by": ground,
        "unit_fidelity_median": uf["fidelity"]["median"], "n_units_used": uf["fidelity"]["n_used"],
        "name_match_rate": uf["name_match"], "intercept_share": share,
        "top_unit_unused_rate": fm.top_unit_unused_rate(H, W, b),
        **{k: v for k, v in di.items() if k.endswith("_auc")},
        "unit_fidelity": {nm: float(r) for nm, r in zip(model.concept_names,
                                                        uf["fidelity"]["per_unit"], strict=True)},
    }
    claims: list[cl.Claim] = []
    if ground == "labels":
        required = "concepts_mean_words"
        claims.append(cl.not_measured("units_follow_concepts", "the units are trained on "
                                      "concept labels; their names are judged against held-out "
                                      "labels (do the concept scores mean the words?)"))
    else:
        required = "units_follow_concepts"
        claims.append(cl.units_claim(uf["fidelity"]["median"], uf["fidelity_ci"], uf["name_match"],
                                     uf["name_match_ci"], n, uf["fidelity"]["n_used"]))
    claims.append(_meaning(model, H, out, concept_labels_test, concept_label_names,
                           concept_examples, seed))
    acc = accuracy(y, pred)
    data = _as_fit_arrays(refit)
    class_emb = (np.asarray(class_embeddings, np.float32) if class_embeddings is not None
                 else build_class_embeddings(encoder, model.class_names)
                 if encoder is not None else None)
    ctrl = (_control_refits(model, data, X, y, pred, F_test, encoder, class_emb, seed,
                            n_controls) if data is not None and n_controls > 0 else None)
    if class_emb is not None:
        A = class_emb @ model.bank.vectors.T
        out["class_link_support"] = class_link_support(W, A, used)
        out["class_link_agreement"] = class_link_agreement(W, A, used)
        claims.append(cl.class_links_claim(out["class_link_support"],
                                           ctrl["links"] if ctrl else [],
                                           f"refits on {ctrl['kind'] if ctrl else WAFFLE}",
                                           int(used.sum()), out["class_link_agreement"])
                      if ctrl else cl.not_measured("class_links_make_sense",
                                                   "needs the training data for control refits"))
    else:
        claims.append(cl.not_measured("class_links_make_sense", "needs the model's text "
                                      "encoder (or class embeddings) to read the words' links"))
    claims.append(cl.decisions_claim(share, di["deletion_auc"], di["random_deletion_auc"], n))
    gain = fm.intervention_gain(intervention_curve) if intervention_curve else None
    if gain is not None:
        out["intervention_gain"] = gain
    claims.append(cl.interventions_claim(gain, n))
    if ctrl is not None:
        gaps = [acc - a for a in ctrl["accuracies"]]
        if ctrl["failed"]:
            out["failed_controls"] = ctrl["failed"]
        out.update({"random_bank_kind": ctrl["kind"], "n_control_banks": len(gaps),
                    "random_bank_accuracy": _mean(ctrl["accuracies"]),
                    "random_bank_gap": _mean(gaps),
                    "random_bank_agreement": _mean(ctrl["agreements"])})
        claims.append(cl.necessity_claim(gaps, ctrl["kind"], n, ctrl["failed"]))
    else:
        claims.append(cl.not_measured("decisions_need_concepts",
                                      "needs the training data for control refits"))
    if ground == "labels":
        claims.append(_leakage(model, X, y, data, F_test, concept_labels_test,
                               concept_labels_train, concept_label_names, out, seed))
    out["required_claim"] = required
    out["claims"] = {c.name: c.as_dict() for c in claims}
    out.update(cl.profile_verdict(claims, required).as_dict())
    model.faithfulness_ = out
    return out


def concept_probabilities(model: ConceptBottleneckModel, X: Any, F: Any = None) -> np.ndarray:
    """A label-trained CBM's concept probabilities: the sigmoid of its units (the units are
    concept logits, trained with binary cross-entropy on the labels)."""
    U = np.asarray(model.unit_values(X, F), np.float64)
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(U, -60, 60))))


def leakage_record(P_train: np.ndarray, y_train: np.ndarray, P_test: np.ndarray,
                   y_test: np.ndarray, C_test: np.ndarray, seed: int = 0
                   ) -> tuple[dict[str, Any], cl.Claim]:
    """The leakage figures (``faithfulness.leakage.leakage_columns``) of concept probabilities
    and the ``concepts_do_not_leak`` claim they decide (gap bar ``LEAKAGE_GAP``)."""
    cols = leakage_columns(P_train, y_train, P_test, y_test, C_test, seed)
    claim = cl.leakage_claim(cols["soft_concept_accuracy"], cols["hard_concept_accuracy"],
                             LEAKAGE_GAP, len(P_test), cols["oracle_impurity_logistic"])
    return {"leakage": cols}, claim


def _leakage(model: ConceptBottleneckModel, X: np.ndarray, y: np.ndarray,
             data: FitArrays | None, F_test: Any, labels_test: Any, labels_train: Any,
             label_names: Sequence[str] | None, out: dict[str, Any], seed: int) -> cl.Claim:
    name = "concepts_do_not_leak"
    if labels_test is None or labels_train is None or not label_names or data is None:
        return cl.not_measured(name, "needs concept labels of the training and test splits "
                                     "and the training data")
    kept = [nm for nm in label_names if nm in model.concept_names]
    if not kept:
        return cl.not_measured(name, "no unit is named after a labelled concept")
    cols = [list(label_names).index(nm) for nm in kept]
    units = [model.concept_index(nm) for nm in kept]
    P_tr = concept_probabilities(model, data.X_train, data.F_train)[:, units]
    P_te = concept_probabilities(model, X, F_test)[:, units]
    fields, claim = leakage_record(P_tr, np.asarray(data.y_train), P_te, y,
                                   np.asarray(labels_test)[:, cols], seed)
    out.update(fields)
    return claim


def audit_inputs(model: ConceptBottleneckModel, inputs: AuditInputs) -> dict[str, Any]:
    """The profile of a CBM from ``AuditInputs`` (what ``fit`` and ``audit`` record): control
    refits on the training and validation arrays (when ``inputs.controls``), the encoder's
    text side for the controls and class links, ground-truth concept labels (concept
    accuracy, intervention curve, leakage) and concept example sets. Returns the row fields:
    ``faithfulness`` (``record_fields``), ``trusted`` and, with labels, ``concept_accuracy``
    and ``intervention_curve``."""
    labels = inputs.concept_labels
    F = inputs.features
    Ft, Fv, Fs = (None, None, None) if F is None else (F["train"], F["val"], F["test"])
    has_train = inputs.X_train is not None and inputs.y_train is not None
    # the training arrays serve the control refits (when asked for) and the leakage check
    refit = (FitArrays(np.asarray(inputs.X_train), np.asarray(inputs.y_train), inputs.X_val,
                       inputs.y_val, concept_labels=None if labels is None else labels["train"],
                       F_train=Ft, F_val=Fv) if has_train else None)
    names = list(inputs.vocab_names)
    row: dict[str, Any] = {}
    if labels is not None and Fs is None and has_train:
        kept = [n for n in names if n in model.concept_names]
        cols = [names.index(n) for n in kept]
        th = fit_concept_thresholds(model, inputs.X_train, labels["train"][:, cols], kept)
        row["concept_accuracy"] = concept_accuracy(
            model, inputs.X_test, labels["test"][:, cols], kept, th)["mean"]
        row["intervention_curve"] = intervention_curve(
            model, inputs.X_test, inputs.y_test, labels["test"][:, cols], kept,
            seed=inputs.seed)
    faith = audit(model, inputs.X_test, inputs.y_test, refit=refit, F_test=Fs,
                  encoder=text_encoder_of(inputs.encoder),
                  class_embeddings=inputs.class_embeddings if inputs.encoder is None else None,
                  concept_labels_test=None if labels is None else labels["test"],
                  concept_label_names=names if labels is not None else None,
                  concept_examples=inputs.examples,
                  intervention_curve=row.get("intervention_curve"),
                  control_seed=inputs.seed,
                  n_controls=cl.N_CONTROLS if inputs.controls else 0,
                  concept_labels_train=None if labels is None else labels["train"])
    row["faithfulness"] = record_fields(faith)
    row["trusted"] = faith["trusted"]
    return row


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if len(values) else float("nan")


def _meaning(model: ConceptBottleneckModel, H: np.ndarray, out: dict[str, Any],
             labels: Any, label_names: Sequence[str] | None, examples: Any, seed: int
             ) -> cl.Claim:
    """``concepts_mean_words`` from held-out labels, else from example sets, else not
    measured."""
    name = "concepts_mean_words"
    if labels is not None and label_names:
        kept = [nm for nm in label_names if nm in model.concept_names]
        if kept:
            lab = np.asarray(labels)
            cols = [list(label_names).index(nm) for nm in kept]
            units = [model.concept_index(nm) for nm in kept]
            per, mean, ci = fm.auroc_figures(H[:, units], lab[:, cols], seed=seed)
            out["concept_auroc"] = {nm: float(a) for nm, a in zip(kept, per, strict=True)}
            out["concept_auroc_mean"] = mean
            return cl.auroc_claim(name, mean, ci, len(H), int(np.isfinite(per).sum()),
                                  "held-out concept labels")
    if examples is not None:
        return examples_claim(model, examples, out, seed)
    return cl.not_measured(name, "no ground truth for the concepts (held-out concept labels, "
                                 "or example sets given with --concept-examples)")


def examples_claim(model: ConceptBottleneckModel, examples: Any, out: dict[str, Any],
                   seed: int) -> cl.Claim:
    """AUROC of each unit on its concept's example set against the random counter-examples
    (TCAV-style concept sets: ``concepts.examples.ExampleEmbeddings``)."""
    rows, lab_cols, units = [], [], []
    names = [nm for nm in examples.concepts if nm in model.concept_names]
    if not names:
        return cl.not_measured("concepts_mean_words", "no example set is named after a concept "
                                                      "of this model")
    Xr = np.asarray(examples.random, np.float32)
    for j, nm in enumerate(names):
        Xc = np.asarray(examples.concepts[nm], np.float32)
        rows.append(Xc)
        lab_cols.append(j)
        units.append(model.concept_index(nm))
    Xall = np.concatenate([*rows, Xr])
    Hall = model.activations_from_units(model.unit_values(Xall))
    per = np.full(len(names), np.nan)
    reps = np.full((N_BOOTSTRAP, len(names)), np.nan)
    rng = np.random.default_rng(seed)
    start = 0
    n_r = len(Xr)
    hr_all = Hall[-n_r:]
    for j, (Xc, k) in enumerate(zip(rows, units, strict=True)):
        hc = Hall[start:start + len(Xc), k]
        start += len(Xc)
        hr = hr_all[:, k]
        per[j] = _auc(hc, hr)
        for b in range(N_BOOTSTRAP):
            reps[b, j] = _auc(hc[rng.integers(0, len(hc), len(hc))],
                              hr[rng.integers(0, n_r, n_r)])
    mean = float(per.mean())
    ci = cl.bootstrap_interval(reps.mean(axis=1))
    out["concept_example_auroc"] = {nm: float(a) for nm, a in zip(names, per, strict=True)}
    out["concept_auroc_mean"] = mean
    n_items = sum(len(r) for r in rows) + n_r
    return cl.auroc_claim("concepts_mean_words", mean, ci, n_items, len(names),
                          "concept example sets")


def _auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(a positive scores above a negative), ties one half."""
    v = np.concatenate([pos, neg])[:, None]
    lab = np.concatenate([np.ones(len(pos)), np.zeros(len(neg))])[:, None].astype(int)
    return float(fm.concept_auroc(v, lab)[0])
