"""Leakage: what a model's soft concept values carry beyond the concepts they name.

A concept bottleneck trained on concept labels can pass task information through the
*confidence* of its concept predictions (Mahinpei et al., 2021, "Promises and pitfalls of
black-box concept learning models"; Havasi et al., NeurIPS 2022): interventions and
explanations then mislead, since the head reads more than "concept present / absent". These
are pure functions of arrays (no models, no files):

* ``soft_hard_gap``: the accuracy of a classifier on the soft concept probabilities minus that
  of the same classifier on the thresholded (hard) concepts, both fitted on train and scored on
  test. Near 0: the soft values carry nothing the hard concepts do not; a large gap flags
  leakage.
* ``oracle_impurity``: the oracle impurity score's construction (Espinosa Zarlenga et al.,
  ICLR 2023, "Towards robust metrics for concept representation evaluation", sec. 4):
  ``2/k * ||pi(C_hat, C) - pi(C, C)||_F`` where ``pi(A, C)[i, j]`` is the test AUC of a
  predictor of true concept j from representation i. The paper's predictor is a small MLP;
  here it is a logistic regression (recorded as ``predictor='logistic'``: a simplification).
* ``niche_impurity``: the niche impurity score's construction (same paper, sec. 5): concept
  j's niche at threshold beta is the set of representation units whose |correlation| with
  concept j is at least beta; impurity is the AUC of predicting concept j from the units
  *outside* its niche; the score averages over concepts and over beta in [0, 1] (logistic
  predictor, as above). A pure representation (unit j is concept j and nothing else) scores
  about 0.5 (chance), a leaky one higher.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from conceptlab.errors import ConceptlabValueError

#: a soft-minus-hard accuracy gap above this flags leakage (5 points of accuracy)
LEAKAGE_GAP = 0.05


class LeakageError(ConceptlabValueError):
    """Raised for concept arrays of the wrong shape or range, or constant labels."""


def _probs(P: np.ndarray, what: str) -> np.ndarray:
    a = np.asarray(P, np.float64)
    if a.ndim != 2 or not np.all(np.isfinite(a)):
        raise LeakageError(f"{what} must be a finite (n, k) array, got shape {a.shape}")
    return a


def _fit_score(Xtr: np.ndarray, ytr: np.ndarray, Xte: np.ndarray, yte: np.ndarray,
               seed: int) -> float:
    from sklearn.linear_model import LogisticRegression

    if len(np.unique(ytr)) < 2:
        return float(np.mean(yte == ytr[0]))
    clf = LogisticRegression(max_iter=2000, random_state=seed).fit(Xtr, ytr)
    return float(np.mean(clf.predict(Xte) == yte))


@dataclass(frozen=True)
class SoftHardGap:
    soft_accuracy: float
    hard_accuracy: float
    gap: float
    leaky: bool


def soft_hard_gap(P_train: np.ndarray, y_train: np.ndarray, P_test: np.ndarray,
                  y_test: np.ndarray, threshold: float = 0.5, seed: int = 0) -> SoftHardGap:
    """Task accuracy of a logistic regression on soft concept probabilities vs on the same
    probabilities thresholded at ``threshold`` (each fitted on train, scored on test)."""
    Ptr, Pte = _probs(P_train, "P_train"), _probs(P_test, "P_test")
    if Ptr.shape[1] != Pte.shape[1] or len(Ptr) != len(y_train) or len(Pte) != len(y_test):
        raise LeakageError("train/test concept probabilities and labels do not match")
    soft = _fit_score(Ptr, np.asarray(y_train), Pte, np.asarray(y_test), seed)
    hard = _fit_score((Ptr >= threshold).astype(float), np.asarray(y_train),
                      (Pte >= threshold).astype(float), np.asarray(y_test), seed)
    return SoftHardGap(soft, hard, soft - hard, bool(soft - hard > LEAKAGE_GAP))


def _auc_matrix(R: np.ndarray, C: np.ndarray, split: np.ndarray, seed: int) -> np.ndarray:
    """``[i, j]``: test AUC of a logistic predictor of concept j from column i of R."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    tr, te = ~split, split
    out = np.full((R.shape[1], C.shape[1]), 0.5)
    for j in range(C.shape[1]):
        if len(np.unique(C[tr, j])) < 2 or len(np.unique(C[te, j])) < 2:
            continue
        for i in range(R.shape[1]):
            clf = LogisticRegression(max_iter=1000, random_state=seed)
            clf.fit(R[tr, i:i + 1], C[tr, j])
            out[i, j] = roc_auc_score(C[te, j], clf.predict_proba(R[te, i:i + 1])[:, 1])
    return out


def _check_pair(C_hat: np.ndarray, C: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    R, T = _probs(C_hat, "concept representations"), _probs(C, "true concepts")
    if R.shape != T.shape:
        raise LeakageError(f"representations {R.shape} and true concepts {T.shape} differ")
    if not np.all((T == 0) | (T == 1)):
        raise LeakageError("true concepts must be 0/1")
    if len(R) < 10:
        raise LeakageError(f"impurity scores need >= 10 rows, got {len(R)}")
    return R, T.astype(int)


def _holdout(n: int, seed: int) -> np.ndarray:
    mask = np.zeros(n, bool)
    mask[np.random.default_rng(seed).permutation(n)[: max(1, n // 3)]] = True
    return mask


def oracle_impurity(C_hat: np.ndarray, C: np.ndarray, seed: int = 0) -> float:
    """``2/k ||pi(C_hat, C) - pi(C, C)||_F`` with logistic single-unit predictors (see doc)."""
    R, T = _check_pair(C_hat, C)
    split = _holdout(len(R), seed)
    diff = _auc_matrix(R, T, split, seed) - _auc_matrix(T.astype(float), T, split, seed)
    return float(2.0 * np.linalg.norm(diff) / R.shape[1])


def niche_impurity(C_hat: np.ndarray, C: np.ndarray, n_betas: int = 11, seed: int = 0
                   ) -> float:
    """Mean over concepts and thresholds beta of the AUC of predicting concept j from the
    units outside its niche (units with |corr| < beta); 0.5 where nothing is outside."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    R, T = _check_pair(C_hat, C)
    split = _holdout(len(R), seed)
    tr, te = ~split, split
    Rs = (R - R.mean(0)) / np.where(R.std(0) > 0, R.std(0), 1)
    Ts = (T - T.mean(0)) / np.where(T.std(0) > 0, T.std(0), 1)
    corr = np.abs(Rs.T @ Ts / len(R))  # (units, concepts)
    scores = []
    for beta in np.linspace(0, 1, n_betas):
        per = []
        for j in range(T.shape[1]):
            outside = np.flatnonzero(corr[:, j] < beta)
            if (len(outside) == 0 or len(np.unique(T[tr, j])) < 2
                    or len(np.unique(T[te, j])) < 2):
                per.append(0.5)
                continue
            clf = LogisticRegression(max_iter=1000, random_state=seed)
            clf.fit(R[tr][:, outside], T[tr, j])
            per.append(float(roc_auc_score(T[te, j], clf.predict_proba(R[te][:, outside])[:, 1])))
        scores.append(np.mean(per))
    return float(np.mean(scores))


def leakage_columns(P_train: np.ndarray, y_train: np.ndarray, P_test: np.ndarray,
                    y_test: np.ndarray, C_test: np.ndarray, seed: int = 0) -> dict[str, Any]:
    """The leakage columns reported for a model with concept probabilities and labels:
    ``soft_concept_accuracy``, ``hard_concept_accuracy``, ``soft_hard_gap``, ``leaky`` and
    ``oracle_impurity_logistic`` (test probabilities against test labels)."""
    gap = soft_hard_gap(P_train, y_train, P_test, y_test, seed=seed)
    return {"soft_concept_accuracy": gap.soft_accuracy,
            "hard_concept_accuracy": gap.hard_accuracy, "soft_hard_gap": gap.gap,
            "leaky": gap.leaky,
            "oracle_impurity_logistic": oracle_impurity(P_test, C_test, seed=seed)}
