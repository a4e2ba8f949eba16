"""Concept shift vectors between a base and a fine-tuned representation.

What the reference code does (mshukor/xl-vlms, ``src/analysis/cluster_analysis.py``,
``compute_shift_concepts`` with ``compute_reference_clusters(similarity="concept_activation")``,
``mean_method=1``, ``shift_alpha=1``, and the recovery metrics of ``analyse_clusters``):

1. decompose the base model's hidden states ``A`` (N x D) into ``K`` concepts (k-means by
   default; any conceptlab dictionary); each input belongs to the concept with its largest
   activation;
2. the shift vector of concept ``k`` is the mean fine-tuned hidden state of its inputs minus
   their mean base hidden state: ``delta_k = mean_{i in k} b_i - mean_{i in k} a_i``;
3. the shifted concept is ``u_k + alpha * delta_k``;
4. recovery: decompose the fine-tuned states ``B`` the same way, match its concepts to the base
   concepts by the Hungarian algorithm on cosine similarity, and compare the matched
   fine-tuned concept's distance and cosine to the shifted concept against those to the
   original concept (``improved_distance``, ``improved_cosine``);
5. shift statistics per concept: the mean cosine between each input's own shift ``b_i - a_i``
   and the concept's mean shift (how well one direction summarises the concept's shift).

``apply_shift`` adds to each base state the shift of its concept (the reference's steering of
the original model without training); conceptlab's benchmark reads the fine-tuned model's own
decision on the shifted states to measure how much of the fine-tuning's change it recovers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from conceptlab.discover.base import Dictionary, build_dictionary
from conceptlab.errors import ConceptlabValueError

__all__ = ["ConceptShift", "ShiftError", "apply_shift", "concept_shift", "match_concepts"]


class ShiftError(ConceptlabValueError):
    """Bad states (shapes, NaN), a bad number of concepts or unknown concept indices."""


def _cosine(P: np.ndarray, Q: np.ndarray) -> np.ndarray:
    P = P / np.maximum(np.linalg.norm(P, axis=1, keepdims=True), 1e-12)
    Q = Q / np.maximum(np.linalg.norm(Q, axis=1, keepdims=True), 1e-12)
    return P @ Q.T


def match_concepts(base: np.ndarray, tuned: np.ndarray) -> np.ndarray:
    """For each base concept, the index of its fine-tuned partner (Hungarian on cosine)."""
    from scipy.optimize import linear_sum_assignment

    rows, cols = linear_sum_assignment(-_cosine(base, tuned))
    out = np.empty(len(base), np.int64)
    out[rows] = cols
    return out


@dataclass
class ConceptShift:
    """The result of ``concept_shift`` (arrays float32, one row per concept)."""

    dictionary: Dictionary
    concepts: np.ndarray
    shifts: np.ndarray
    shifted: np.ndarray
    counts: np.ndarray
    assignment: np.ndarray
    tuned_concepts: np.ndarray
    matching: np.ndarray
    alpha: float

    def assign(self, A: np.ndarray) -> np.ndarray:
        """Each row's concept in the base decomposition (largest activation)."""
        return self.dictionary.encode(np.asarray(A, np.float32)).argmax(1)

    def recovery(self) -> dict[str, list[float]]:
        """Per concept: the matched fine-tuned concept against the original and the shifted one
        (the reference's ``improved_distance`` and ``improved_cosine``)."""
        target = self.tuned_concepts[self.matching]
        d_orig = np.linalg.norm(target - self.concepts, axis=1)
        d_shift = np.linalg.norm(target - self.shifted, axis=1)
        c_orig = np.diag(_cosine(target, self.concepts))
        c_shift = np.diag(_cosine(target, self.shifted))
        return {"distance_original": d_orig.tolist(), "distance_shifted": d_shift.tolist(),
                "improved_distance": (d_orig - d_shift).tolist(),
                "cosine_original": c_orig.tolist(), "cosine_shifted": c_shift.tolist(),
                "improved_cosine": (c_shift - c_orig).tolist()}

    def consistency(self, base: np.ndarray, tuned: np.ndarray) -> list[float]:
        """Per concept, the mean cosine of each input's own shift with the concept's shift
        (NaN for a concept without inputs)."""
        per = np.asarray(tuned, np.float64) - np.asarray(base, np.float64)
        out = []
        for k in range(len(self.shifts)):
            rows = per[self.assignment == k]
            out.append(float(_cosine(rows, self.shifts[k:k + 1]).mean()) if len(rows)
                       else float("nan"))
        return out

    def summary(self) -> dict[str, Any]:
        rec = self.recovery()
        return {"n_concepts": len(self.concepts), "alpha": self.alpha,
                "counts": self.counts.tolist(),
                "shift_norms": np.linalg.norm(self.shifts, axis=1).tolist(),
                "mean_improved_distance": float(np.mean(rec["improved_distance"])),
                "mean_improved_cosine": float(np.mean(rec["improved_cosine"])),
                "recovery": rec}


def _check(base: np.ndarray, tuned: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    A = np.asarray(base, np.float32)
    B = np.asarray(tuned, np.float32)
    if A.ndim != 2 or B.ndim != 2:
        raise ShiftError(f"base and fine-tuned states must be 2-D (inputs x dims), got shapes "
                         f"{A.shape} and {B.shape}")
    if A.shape != B.shape:
        raise ShiftError(f"base {A.shape} and fine-tuned {B.shape} states must describe the "
                         "same inputs in the same space (equal shapes)")
    if not (np.isfinite(A).all() and np.isfinite(B).all()):
        raise ShiftError("base or fine-tuned states contain NaN or infinity")
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k <= len(A):
        raise ShiftError(f"the number of concepts must be an int between 1 and the number of "
                         f"inputs ({len(A)}), got {k!r}")
    return A, B


def concept_shift(base: np.ndarray, tuned: np.ndarray, k: int = 10, *, method: str = "kmeans",
                  seed: int = 0, alpha: float = 1.0,
                  options: dict[str, Any] | None = None) -> ConceptShift:
    """Concepts of the base states, each concept's shift vector and its shifted concept, and
    the fine-tuned states' own concepts matched to them (see the module docstring).

    ``base``, ``tuned``: (N, D) hidden states of the same N inputs before and after
    fine-tuning. ``method``: a conceptlab dictionary (``kmeans`` as the reference's default)."""
    A, B = _check(base, tuned, k)
    d = build_dictionary(method, int(k), seed=seed, **(options or {}))
    assignment = d.fit_encode(A).argmax(1)
    concepts = d.dictionary.astype(np.float32)
    shifts = np.zeros_like(concepts)
    counts = np.bincount(assignment, minlength=int(k))
    for j in range(int(k)):
        rows = assignment == j
        if rows.any():
            shifts[j] = B[rows].mean(0) - A[rows].mean(0)
    tuned_d = build_dictionary(method, int(k), seed=seed, **(options or {}))
    tuned_d.fit(B)
    tuned_concepts = tuned_d.dictionary.astype(np.float32)
    return ConceptShift(d, concepts, shifts, concepts + alpha * shifts, counts, assignment,
                        tuned_concepts, match_concepts(concepts, tuned_concepts), float(alpha))


def apply_shift(shift: ConceptShift, A: np.ndarray, alpha: float = 1.0,
                concepts: list[int] | None = None) -> np.ndarray:
    """Base states moved by their concept's shift vector (``alpha`` times), optionally only
    for inputs of the listed ``concepts``: the fine-tuned behaviour without training."""
    A = np.asarray(A, np.float32)
    if A.ndim != 2 or A.shape[1] != shift.shifts.shape[1]:
        raise ShiftError(f"states must be (N, {shift.shifts.shape[1]}), got {A.shape}")
    k = shift.assign(A)
    delta = shift.shifts[k] * float(alpha)
    if concepts is not None:
        bad = [c for c in concepts if not 0 <= c < len(shift.shifts)]
        if bad:
            raise ShiftError(f"unknown concept indices {bad}; there are {len(shift.shifts)}")
        delta = delta * np.isin(k, concepts)[:, None]
    return A + delta
