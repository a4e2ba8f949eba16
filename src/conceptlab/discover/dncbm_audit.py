"""Does a fitted DN-CBM mean its names? Its faithfulness record, with the columns every CBM of
the project reports (``bottleneck.audit``), on held-out data.

The score of unit k's concept is the encoder's score of its *name* (cosine of the input with
the name's text embedding), so unit fidelity asks whether a unit tracks what it is called and
name match whether its name beats every other entry of the vocabulary. Two things differ from a
CBM's audit, both because DN-CBM discovers its units without the vocabulary and names them
afterwards (``grounded_by = "naming"``):

* the random-vocabulary and shuffled-names controls cannot change a decision (neither the SAE
  nor the head reads the vocabulary; ``tests/discover/test_dncbm.py`` refits to check it), so
  their values are recorded as what they are by construction, without two more SAE fits;
* in their place the audit measures the null the names need: ``shuffled_name_fidelity``, the
  median fidelity when each used unit is scored against a seeded random other name. Concept
  scores of one vocabulary correlate with each other, so a fidelity is only evidence for a name
  when it is well above this, and name match is the check that gates (``verdict``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from conceptlab import faithfulness as fm
from conceptlab.concepts.bank import ConceptBank
from conceptlab.discover.dncbm import DNCBM
from conceptlab.errors import ConceptlabValueError
from conceptlab.faithfulness import claims as cl

BY_CONSTRUCTION = ("neither the SAE nor the head reads the vocabulary: a random or shuffled one "
                   "changes only the names, never a decision")


def _shuffled_names(own: np.ndarray, n_vocab: int, seed: int) -> np.ndarray:
    """For each unit a seeded random vocabulary index other than its own name's."""
    rng = np.random.default_rng(seed)
    other = rng.integers(0, n_vocab - 1, size=len(own))
    return np.where(other >= own, other + 1, other)


def audit_dncbm(model: DNCBM, Z_test: np.ndarray, y_test: np.ndarray, *, vocab: list[str],
                vocab_embeddings: np.ndarray, concept_labels_test: np.ndarray | None = None,
                concept_label_names: list[str] | None = None,
                class_embeddings: np.ndarray | None = None,
                control_seed: int | None = None) -> dict[str, Any]:
    """The faithfulness profile of a fitted DN-CBM on held-out ``(Z_test, y_test)``.

    ``vocab`` / ``vocab_embeddings``: the vocabulary the units were named from, through the
    text side of the same joint space. Ground-truth ``concept_labels_test`` (N x M, 0/1,
    columns ``concept_label_names``) add the AUROC of each used unit against the label of its
    name (``concepts_mean_words``). ``class_embeddings`` (C x D, the class names through the
    same text side) measure the class links against the names permuted among the units (no
    refit can change post-hoc names' links). The decisions never read the vocabulary, so the
    necessity claim is not measured; the required claim is ``units_follow_concepts``.
    """
    seed = int(model.info.get("seed", 0)) if control_seed is None else int(control_seed)
    vocab = list(vocab)
    index = {n: i for i, n in enumerate(vocab)}
    missing = sorted({n for n in model.unit_names if n not in index})
    if missing:
        raise ConceptlabValueError(f"the model's unit names {missing[:3]} are not in the given "
                                   f"vocabulary: audit with the vocabulary it was named from")
    bank = ConceptBank(np.asarray(vocab_embeddings, np.float32), vocab)
    Z = np.asarray(Z_test, np.float32)
    y = np.asarray(y_test)
    H = model.codes(Z)
    S = bank.scores(Z)
    own = np.array([index[n] for n in model.unit_names], dtype=np.int64)
    W, b = model.effective_head()
    used = (model.head.weight != 0).any(axis=0)
    uf = fm.unit_figures(H, S, used, own=own, seed=seed)
    acc = float((model.predict(Z) == y).mean())
    di = fm.deletion_insertion(H, W, b, seed=seed)
    null = (fm.unit_fidelity(H, S[:, _shuffled_names(own, len(vocab), seed + 104729)],
                             used)["median"] if len(vocab) > 1 else float("nan"))
    share = fm.intercept_share(H, W, b)["median"]
    out: dict[str, Any] = {
        "split": "test", "n": len(Z), "grounded_by": "naming",
        "unit_fidelity_median": uf["fidelity"]["median"],
        "n_units_used": uf["fidelity"]["n_used"], "name_match_rate": uf["name_match"],
        "shuffled_name_fidelity": null,
        "name_cosine_mean": (float(model.name_scores[model.alive][used].mean())
                             if used.any() else float("nan")),
        "distinct_names_used": len({model.unit_names[i] for i in np.flatnonzero(used)}),
        "intercept_share": share,
        "top_unit_unused_rate": fm.top_unit_unused_rate(H, W, b),
        **{k: v for k, v in di.items() if k.endswith("_auc")},
        "random_bank_accuracy": acc, "random_bank_gap": 0.0, "random_bank_agreement": 1.0,
        "shuffled_names_accuracy": acc, "controls": BY_CONSTRUCTION,
    }
    claims = [cl.units_claim(uf["fidelity"]["median"], uf["fidelity_ci"], uf["name_match"],
                             uf["name_match_ci"], len(Z), uf["fidelity"]["n_used"],
                             null_fidelity=null)]
    claims.append(_labels_claim(model, H, used, out, concept_labels_test, concept_label_names,
                                seed))
    if class_embeddings is not None and used.any():
        A = np.asarray(class_embeddings, np.float32) @ bank.vectors[own].T
        out["class_link_support"] = fm.class_link_support(W, A, used)
        out["class_link_agreement"] = fm.class_link_agreement(W, A, used)
        claims.append(cl.class_links_claim(
            out["class_link_support"], fm.permuted_supports(W, A, used, seed=seed),
            "permutations of the names among the units", int(used.sum()),
            out["class_link_agreement"]))
    else:
        claims.append(cl.not_measured("class_links_make_sense", "needs the class names "
                                      "through the text encoder"))
    claims.append(cl.decisions_claim(share, di["deletion_auc"], di["random_deletion_auc"],
                                     len(Z)))
    claims.append(cl.interventions_claim(None, len(Z)))
    claims.append(cl.not_measured("decisions_need_concepts", BY_CONSTRUCTION))
    out["required_claim"] = "units_follow_concepts"
    out["claims"] = {c.name: c.as_dict() for c in claims}
    out.update(cl.profile_verdict(claims, "units_follow_concepts").as_dict())
    return out


def _labels_claim(model: DNCBM, H: np.ndarray, used: np.ndarray, out: dict[str, Any],
                  labels: np.ndarray | None, label_names: list[str] | None, seed: int
                  ) -> cl.Claim:
    """AUROC of each used unit named after a labelled concept against that label."""
    if labels is None or not label_names:
        return cl.not_measured("concepts_mean_words", "no held-out concept labels")
    cols = {n: i for i, n in enumerate(label_names)}
    units = [i for i in np.flatnonzero(used) if model.unit_names[i] in cols]
    if not units:
        return cl.not_measured("concepts_mean_words", "no used unit is named after a labelled "
                                                      "concept")
    lab = np.asarray(labels)[:, [cols[model.unit_names[i]] for i in units]]
    per, mean, ci = fm.auroc_figures(H[:, units], lab, seed=seed)
    out["concept_auroc_mean"] = mean
    return cl.auroc_claim("concepts_mean_words", mean, ci, len(H), int(np.isfinite(per).sum()),
                          "held-out concept labels")
