"""Quality of a fitted dictionary as pure functions of arrays (Fel et al. 2023, holistic
framework, section 3: relative reconstruction error, sparsity, plus R² and dead units), and the
Hungarian matching that scores recovery of a planted dictionary.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from conceptlab.errors import ConceptlabValueError


def relative_reconstruction_error(A: np.ndarray, A_hat: np.ndarray) -> float:
    """``||A - A_hat||_F / ||A||_F`` (0 = exact)."""
    A, A_hat = np.asarray(A, np.float64), np.asarray(A_hat, np.float64)
    if A.shape != A_hat.shape:
        raise ConceptlabValueError(f"shapes differ: {A.shape} vs {A_hat.shape}")
    denom = np.linalg.norm(A)
    if denom == 0:
        raise ConceptlabValueError("relative error of an all-zero matrix is undefined")
    return float(np.linalg.norm(A - A_hat) / denom)


def r2_score(A: np.ndarray, A_hat: np.ndarray) -> float:
    """Explained variance ``1 - ||A - A_hat||^2 / ||A - mean(A)||^2`` over all entries."""
    A, A_hat = np.asarray(A, np.float64), np.asarray(A_hat, np.float64)
    if A.shape != A_hat.shape:
        raise ConceptlabValueError(f"shapes differ: {A.shape} vs {A_hat.shape}")
    tot = ((A - A.mean(0)) ** 2).sum()
    if tot == 0:
        raise ConceptlabValueError("R² of constant activations is undefined")
    return float(1 - ((A - A_hat) ** 2).sum() / tot)


def sparsity(U: np.ndarray, tol: float = 1e-6) -> float:
    """Fraction of code entries with ``|u| <= tol`` (1 = all zero)."""
    U = np.asarray(U)
    return float((np.abs(U) <= tol).mean())


def mean_active(U: np.ndarray, tol: float = 1e-6) -> float:
    """Mean number of codes with ``|u| > tol`` per row (the l0 norm)."""
    return float((np.abs(np.asarray(U)) > tol).sum(1).mean())


def dead_units(U: np.ndarray, tol: float = 1e-6) -> int:
    """Concepts never active (``|u| <= tol`` on every row)."""
    return int((np.abs(np.asarray(U)) <= tol).all(0).sum())


def dictionary_report(A: np.ndarray, U: np.ndarray, A_hat: np.ndarray) -> dict[str, float]:
    """The four numbers every discovery run records."""
    return {"relative_error": relative_reconstruction_error(A, A_hat), "r2": r2_score(A, A_hat),
            "sparsity": sparsity(U), "mean_active": mean_active(U),
            "dead_units": dead_units(U)}


def cosine_matrix(P: np.ndarray, Q: np.ndarray) -> np.ndarray:
    """Cosine of every row of ``P`` with every row of ``Q``."""
    P = np.asarray(P, np.float64)
    Q = np.asarray(Q, np.float64)
    P = P / np.maximum(np.linalg.norm(P, axis=1, keepdims=True), 1e-12)
    Q = Q / np.maximum(np.linalg.norm(Q, axis=1, keepdims=True), 1e-12)
    return P @ Q.T


def match_dictionaries(true: np.ndarray, found: np.ndarray, signed: bool = True
                       ) -> dict[str, Any]:
    """Hungarian matching (scipy) of planted atoms to found atoms by cosine.

    ``signed=False`` matches on ``|cos|`` (PCA and ICA atoms are defined up to sign).
    Returns the pairing and the matched cosines; ``mean_cosine`` averages over planted atoms.
    """
    C = cosine_matrix(true, found)
    score = C if signed else np.abs(C)
    rows, cols = linear_sum_assignment(-score)
    cos = score[rows, cols]
    return {"pairs": list(zip(rows.tolist(), cols.tolist(), strict=True)),
            "cosines": cos.tolist(), "mean_cosine": float(cos.mean()),
            "min_cosine": float(cos.min())}
