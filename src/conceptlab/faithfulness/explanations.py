"""Fidelity of concept explanations, as pure functions of arrays and an output function.

An explanation ranks concepts (or gives each an attribution); these metrics check it against
the model itself. ``f`` maps concept masks ``(M, K)`` (1 = concept kept, 0 = removed) to the
explained output ``(M,)`` for one input, e.g. the target class's probability with each
concept's codes scaled by its mask (``importance.ConceptModel``). Each has a random baseline.

* Deletion / insertion (Petsiuk et al., BMVC 2018, "RISE", section 4.1; on concepts as in the
  holistic framework, Fel et al. NeurIPS 2023, section 4): remove (insert) concepts one at a
  time in the explanation's order; a faithful order makes the output fall fast (rise fast):
  low deletion AUC, high insertion AUC. AUC is the trapezoid area over the fraction of
  concepts changed, in [0, 1] on the x-axis.
* mu-fidelity (Bhatt et al., IJCAI 2020, "Evaluating and Aggregating Feature-based Model
  Explanations", eq. 2): Pearson correlation, over random subsets ``S`` of concepts, between
  ``sum_{i in S} a_i`` and ``f(all) - f(all but S)``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from conceptlab.errors import ConceptlabValueError

OutputFn = Callable[[np.ndarray], np.ndarray]


def _order(order: np.ndarray, k: int) -> np.ndarray:
    o = np.asarray(order, dtype=np.int64)
    if sorted(o.tolist()) != list(range(k)):
        raise ConceptlabValueError(f"order must be a permutation of 0..{k - 1}, got {o.tolist()}")
    return o


def order_from_importance(importance: np.ndarray) -> np.ndarray:
    """Most important first (ties by index)."""
    return np.argsort(-np.asarray(importance, np.float64), kind="stable")


def deletion_masks(order: np.ndarray) -> np.ndarray:
    """``K + 1`` masks: all kept, then the first 1..K concepts of ``order`` removed."""
    o = np.asarray(order)
    k = len(o)
    masks = np.ones((k + 1, k), np.float32)
    for t in range(1, k + 1):
        masks[t:, o[t - 1]] = 0
    return masks


def deletion_curve(f: OutputFn, order: np.ndarray) -> np.ndarray:
    """Output after removing 0, 1, ..., K concepts in ``order``."""
    k = len(order)
    return np.asarray(f(deletion_masks(_order(order, k))), np.float64)


def insertion_curve(f: OutputFn, order: np.ndarray) -> np.ndarray:
    """Output after inserting 0, 1, ..., K concepts in ``order`` (starting from none)."""
    k = len(order)
    return np.asarray(f(1 - deletion_masks(_order(order, k))), np.float64)


def curve_auc(curve: np.ndarray) -> float:
    """Trapezoid area under a curve sampled at 0, 1/K, ..., 1."""
    c = np.asarray(curve, np.float64)
    if len(c) < 2:
        raise ConceptlabValueError("a curve needs at least two points")
    return float(((c[1:] + c[:-1]) / 2).sum() / (len(c) - 1))


def random_orders(k: int, n: int, seed: int = 0) -> np.ndarray:
    """``n`` seeded random permutations of ``k`` concepts."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.permutation(k) for _ in range(n)])


def deletion_insertion(f: OutputFn, importance: np.ndarray, n_random: int = 8,
                       seed: int = 0) -> dict[str, float]:
    """Deletion and insertion AUC of the importance order, and the mean over random orders."""
    order = order_from_importance(importance)
    rand = random_orders(len(order), n_random, seed)
    return {"deletion_auc": curve_auc(deletion_curve(f, order)),
            "insertion_auc": curve_auc(insertion_curve(f, order)),
            "deletion_auc_random": float(np.mean([curve_auc(deletion_curve(f, o))
                                                  for o in rand])),
            "insertion_auc_random": float(np.mean([curve_auc(insertion_curve(f, o))
                                                   for o in rand]))}


def subset_masks(k: int, subset_size: int, n_subsets: int, seed: int = 0) -> np.ndarray:
    """``n_subsets`` masks with ``subset_size`` random concepts removed (0) each."""
    if not 1 <= subset_size <= k:
        raise ConceptlabValueError(f"subset_size must be in 1..{k}, got {subset_size}")
    rng = np.random.default_rng(seed)
    masks = np.ones((n_subsets, k), np.float32)
    for i in range(n_subsets):
        masks[i, rng.choice(k, subset_size, replace=False)] = 0
    return masks


def mu_fidelity(f: OutputFn, attributions: np.ndarray, subset_size: int | None = None,
                n_subsets: int = 128, seed: int = 0) -> float:
    """Bhatt et al. 2020's mu-fidelity (see the module docstring); NaN if either side is
    constant. ``subset_size`` defaults to a quarter of the concepts (at least 1)."""
    a = np.asarray(attributions, np.float64)
    k = len(a)
    size = subset_size or max(1, k // 4)
    masks = subset_masks(k, size, n_subsets, seed)
    full = float(np.asarray(f(np.ones((1, k), np.float32)), np.float64)[0])
    drop = full - np.asarray(f(masks), np.float64)
    attr = ((1 - masks) * a).sum(1)
    if np.std(drop) < 1e-12 or np.std(attr) < 1e-12:
        return float("nan")
    return float(np.corrcoef(attr, drop)[0, 1])
