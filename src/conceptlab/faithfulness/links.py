"""Do a head's class-concept links agree with what the words say? Pure functions of arrays.

``W`` (C x K) are a head's weights on concept activations, ``A`` (C x K) the text encoder's
class-concept association (cosine of each class name's text embedding with each concept's
direction). Both are centred over classes per concept (a concept's overall level says nothing
about which class it points to).

* ``class_link_agreement``: the mean over used concepts of the cosine between the two centred
  columns: 1 when every used concept votes for the classes its words are closest to, 0 for no
  relation, -1 when the head leans on concepts whose words point to other classes. It is blind
  to how strongly the words point anywhere: in a joint space where items lie near their class
  names, *any* direction's head links agree with its own (faint) text association.
* ``class_link_support``: the mean over used concepts of the centred association projected on
  the unit-norm centred head column, in cosine units: how much more similar each concept's
  words are to the classes the head links it with than to the others. Words that mean
  something about the classes (large contrast) score high; random strings, whose association
  is nearly flat, score near zero even when their faint links agree. The audit's class-link
  claim uses this one.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from conceptlab.errors import ConceptlabValueError


def class_link_agreement(W: Any, A: Any, used: Any = None) -> float:
    """Mean over ``used`` concepts (default: non-zero columns of ``W``) of the cosine between
    column k of ``W`` and of ``A``, each centred over classes; NaN when no concept is used."""
    w, a, mask = _checked(W, A, used)
    wc = w - w.mean(axis=0, keepdims=True)
    ac = a - a.mean(axis=0, keepdims=True)
    den = np.linalg.norm(wc, axis=0) * np.linalg.norm(ac, axis=0)
    cos = np.divide((wc * ac).sum(axis=0), den, out=np.zeros(w.shape[1]), where=den > 0)
    return float(cos[mask].mean()) if mask.any() else float("nan")


def _checked(W: Any, A: Any, used: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    w = np.asarray(W, dtype=np.float64)
    a = np.asarray(A, dtype=np.float64)
    if w.ndim != 2 or w.shape != a.shape:
        raise ConceptlabValueError(f"head weights {w.shape} and class-concept association "
                                   f"{a.shape} "
                         f"must both be C x K")
    if w.shape[0] < 2:
        raise ConceptlabValueError("class links need at least 2 classes")
    mask = (w != 0).any(axis=0) if used is None else np.asarray(used, dtype=bool)
    if mask.shape != (w.shape[1],):
        raise ConceptlabValueError(f"used must be a boolean mask of {w.shape[1]} concepts")
    return w, a, mask


def class_link_support(W: Any, A: Any, used: Any = None) -> float:
    """Mean over ``used`` concepts (default: non-zero columns of ``W``) of
    ``<(w_k - mean) / |w_k - mean|, a_k - mean>`` (cosine units); NaN when none is used. A head
    column that puts all its weight on class c gives ``A[c, k]`` minus the mean of the other
    classes' similarities, scaled by ``sqrt((C - 1) / C)``."""
    w, a, mask = _checked(W, A, used)
    wc = w - w.mean(axis=0, keepdims=True)
    ac = a - a.mean(axis=0, keepdims=True)
    norm = np.linalg.norm(wc, axis=0)
    proj = np.divide((wc * ac).sum(axis=0), norm, out=np.zeros(w.shape[1]), where=norm > 0)
    return float(proj[mask].mean()) if mask.any() else float("nan")


def permuted_supports(W: Any, A: Any, used: Any = None, n: int = 20, seed: int = 0
                      ) -> list[float]:
    """The support with the association's columns permuted among the concepts, ``n`` seeded
    times: the control for names attached after the fact (no refit can change their links)."""
    a = np.asarray(A, dtype=np.float64)
    rng = np.random.default_rng(seed)
    return [class_link_support(W, a[:, rng.permutation(a.shape[1])], used) for _ in range(n)]
