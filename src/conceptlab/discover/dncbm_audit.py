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
                control_seed: int | None = None) -> dict[str, Any]:
    """The faithfulness record of a fitted DN-CBM on held-out ``(Z_test, y_test)``.

    ``vocab`` / ``vocab_embeddings``: the vocabulary the units were named from, through the
    text side of the same joint space. Ground-truth ``concept_labels_test`` (N x M, 0/1,
    columns ``concept_label_names``) add the AUROC of each used unit against the label of its
    name (``concept_auroc_mean``), for units named after a labelled concept.
    """
    seed = int(model.info.get("seed", 0)) if control_seed is None else int(control_seed)
    vocab = list(vocab)
    index = {n: i for i, n in enumerate(vocab)}
    missing = sorted({n for n in model.concept_names if n not in index})
    if missing:
        raise ConceptlabValueError(f"the model's unit names {missing[:3]} are not in the given "
                                   f"vocabulary: audit with the vocabulary it was named from")
    bank = ConceptBank(np.asarray(vocab_embeddings, np.float32), vocab)
    Z = np.asarray(Z_test, np.float32)
    y = np.asarray(y_test)
    H = model.codes(Z)
    S = bank.scores(Z)
    own = np.array([index[n] for n in model.concept_names], dtype=np.int64)
    W, b = model.effective_head()
    used = (model.head.weight != 0).any(axis=0)
    fid = fm.unit_fidelity(H, S[:, own], used)
    acc = float((model.predict(Z) == y).mean())
    di = fm.deletion_insertion(H, W, b, seed=seed)
    out: dict[str, Any] = {
        "split": "test", "n": len(Z), "grounded_by": "naming",
        "unit_fidelity_median": fid["median"], "n_units_used": fid["n_used"],
        "name_match_rate": fm.name_match_rate(H, S, used, own=own),
        "shuffled_name_fidelity": (
            fm.unit_fidelity(H, S[:, _shuffled_names(own, len(vocab), seed + 104729)],
                             used)["median"] if len(vocab) > 1 else float("nan")),
        "name_cosine_mean": (float(model.name_scores[model.alive][used].mean())
                             if used.any() else float("nan")),
        "distinct_names_used": len({model.concept_names[i] for i in np.flatnonzero(used)}),
        "intercept_share": fm.intercept_share(H, W, b)["median"],
        "top_unit_unused_rate": fm.top_unit_unused_rate(H, W, b),
        **{k: v for k, v in di.items() if k.endswith("_auc")},
        "random_bank_accuracy": acc, "random_bank_gap": 0.0, "random_bank_agreement": 1.0,
        "shuffled_names_accuracy": acc, "controls": BY_CONSTRUCTION,
    }
    if concept_labels_test is not None and concept_label_names:
        cols = {n: i for i, n in enumerate(concept_label_names)}
        units = [i for i in np.flatnonzero(used) if model.concept_names[i] in cols]
        if units:
            labels = np.asarray(concept_labels_test)[:, [cols[model.concept_names[i]]
                                                         for i in units]]
            auroc = fm.concept_auroc(H[:, units], labels)
            finite = auroc[np.isfinite(auroc)]
            out["concept_auroc_mean"] = float(finite.mean()) if len(finite) else float("nan")
    out.update(fm.verdict(out).as_dict())
    return out
