"""Judging an image-text space on data with ground-truth concepts: pure functions of arrays.

* :func:`concept_auroc`: per concept, the AUROC of its score (cosine of each image with the
  concept's text) against the 0/1 ground truth: 0.5 is chance, 1.0 a perfect ranking.
* :func:`nonsense_texts`: the control vocabulary (random letter strings, seeded), the same
  count as the real one. A space in which concept texts carry meaning must give a concept
  bottleneck with the real texts a clear lead over one with these.
* :func:`mean_interval`: the mean and 95% half-width (Student t) over seeds.
"""

from __future__ import annotations

import numpy as np
from scipy import stats
from sklearn.metrics import roc_auc_score

from conceptlab.errors import ConceptlabValueError


def concept_scores(image_emb: np.ndarray, concept_emb: np.ndarray) -> np.ndarray:
    """Cosine of every image with every concept text (N x K)."""
    a = np.asarray(image_emb, dtype=np.float64)
    b = np.asarray(concept_emb, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ConceptlabValueError(
            f"image embeddings {a.shape} and concept embeddings {b.shape} are not "
            "in one space")
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return a @ b.T


def concept_auroc(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """AUROC per concept column (NaN where a column holds one class only)."""
    s, y = np.asarray(scores, dtype=np.float64), np.asarray(labels)
    if s.shape != y.shape or s.ndim != 2:
        raise ConceptlabValueError(
            f"scores {s.shape} and labels {y.shape} must be the same N x K shape")
    out = np.full(s.shape[1], np.nan)
    for k in range(s.shape[1]):
        if 0 < y[:, k].sum() < len(y):
            out[k] = roc_auc_score(y[:, k], s[:, k])
    return out


def nonsense_texts(n: int, seed: int, min_len: int = 5, max_len: int = 10) -> list[str]:
    """``n`` distinct random lowercase letter strings (seeded)."""
    rng = np.random.default_rng([int(seed), 0x6E6F6E])
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    out: list[str] = []
    while len(out) < n:
        word = "".join(rng.choice(letters, size=int(rng.integers(min_len, max_len + 1))))
        if word not in out:
            out.append(word)
    return out


def mean_interval(values: list[float] | np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """(mean, half-width of the ``level`` Student-t interval); half-width 0 for one value."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) == 0:
        raise ConceptlabValueError("no values")
    if len(v) == 1:
        return float(v[0]), 0.0
    half = stats.t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))
    return float(v.mean()), float(half)
