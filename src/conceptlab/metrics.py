"""Metrics: pure functions of arrays (no models, no files), shared by methods and reports."""

from __future__ import annotations

import numpy as np

from conceptlab.errors import ConceptlabValueError


def _check_same_length(a: np.ndarray, b: np.ndarray, what: str) -> None:
    if len(a) != len(b):
        raise ConceptlabValueError(f"{what}: {len(a)} vs {len(b)} rows")


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Fraction of exact matches, in [0, 1]."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    _check_same_length(y_true, y_pred, "accuracy")
    if len(y_true) == 0:
        raise ConceptlabValueError("accuracy of an empty set is undefined")
    return float((y_true == y_pred).mean())


def effective_count(values: np.ndarray, mass: float = 0.9) -> np.ndarray:
    """Per row, the fewest entries whose absolute values hold ``mass`` of the row's total.

    This is how "active concepts per example" is counted everywhere in conceptlab: a row
    with one dominant concept counts 1; a row spreading its magnitude evenly over K concepts
    counts about ``mass * K``. Rows that are all zero count 0.
    """
    if not 0 < mass <= 1:
        raise ConceptlabValueError(f"mass must be in (0, 1], got {mass}")
    v = np.abs(np.atleast_2d(np.asarray(values, dtype=np.float64)))
    total = v.sum(axis=1, keepdims=True)
    sorted_desc = -np.sort(-v, axis=1)
    cum = np.cumsum(sorted_desc, axis=1)
    reached = cum >= mass * total - 1e-12 * np.maximum(total, 1)
    counts = reached.argmax(axis=1) + 1
    counts[total[:, 0] == 0] = 0
    return counts


def mean_active_concepts(contributions: np.ndarray, mass: float = 0.9) -> float:
    """Mean over examples of ``effective_count`` of their concept contributions (N x K)."""
    return float(effective_count(contributions, mass).mean())


def nec(weight: np.ndarray, tol: float = 0.0) -> float:
    """Number of effective concepts (VLG-CBM): non-zero head weights / number of classes."""
    w = np.asarray(weight)
    if w.ndim != 2 or w.shape[0] == 0:
        raise ConceptlabValueError(f"head weight must be a non-empty C x K matrix, got shape "
                                   f"{w.shape}")
    return float((np.abs(w) > tol).sum() / w.shape[0])


def concept_accuracy(concept_true: np.ndarray, concept_pred: np.ndarray) -> float:
    """Mean over concepts and examples of binary agreement between true and predicted concepts."""
    t, p = np.asarray(concept_true).astype(bool), np.asarray(concept_pred).astype(bool)
    if t.shape != p.shape:
        raise ConceptlabValueError(f"concept labels {t.shape} and predictions {p.shape} differ "
                                   f"in shape")
    return float((t == p).mean())


def per_class_accuracy(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Accuracy within each true class (NaN for classes absent from ``y_true``)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    _check_same_length(y_true, y_pred, "per_class_accuracy")
    out = np.full(n_classes, np.nan)
    for c in range(n_classes):
        mask = y_true == c
        if mask.any():
            out[c] = (y_pred[mask] == c).mean()
    return out
