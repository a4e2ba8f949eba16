"""Do a linear concept head's explanations hold? Pure functions of activations and weights.

A concept bottleneck's decision is ``logit_c = b_c + sum_k W[c, k] h_k`` (``h``: the unit
activations the head sees, ``W``, ``b``: the head on raw activations). The explanation of a
decision is the list of contributions ``W[c, k] h_k``. It holds when

* the contributions, not the bias, carry the logit (``intercept_share``);
* deleting the concepts it ranks first destroys the decision faster than deleting concepts in
  a random order, and inserting them first rebuilds it faster (``deletion_insertion``; the
  concept-level form of the deletion / insertion metrics of Petsiuk et al. 2018, "RISE", used
  for concepts by Fel et al. 2023, "A Holistic Approach to Unifying Automatic Concept
  Extraction and Concept Importance Estimation", Sec. 4).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from conceptlab.errors import ConceptlabValueError


def _head(H: Any, W: Any, b: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    h = np.asarray(H, dtype=np.float64)
    w = np.asarray(W, dtype=np.float64)
    bias = np.asarray(b, dtype=np.float64)
    if h.ndim != 2 or w.ndim != 2 or h.shape[1] != w.shape[1] or bias.shape != (w.shape[0],):
        raise ConceptlabValueError(f"activations {h.shape}, weights {w.shape} and bias "
                                   f"{bias.shape} do "
                         f"not form a head (N x K, C x K, C)")
    if len(h) == 0:
        raise ConceptlabValueError("no rows")
    return h, w, bias


def intercept_share(H: Any, W: Any, b: Any) -> dict[str, Any]:
    """Per row, ``|b_c| / (|b_c| + sum_k |W[c, k] h_k|)`` for the predicted class ``c``; and the
    median. 0: the concepts carry the whole logit; 1: the bias does (a row with no active
    concept and a non-zero bias)."""
    h, w, bias = _head(H, W, b)
    logits = h @ w.T + bias
    pred = logits.argmax(axis=1)
    contrib = np.abs(w[pred] * h).sum(axis=1)
    bb = np.abs(bias[pred])
    total = bb + contrib
    share = np.divide(bb, total, out=np.zeros_like(bb), where=total > 0)
    return {"per_row": share, "median": float(np.median(share))}


def top_unit_unused_rate(H: Any, W: Any, b: Any) -> float:
    """Share of rows whose most active unit has zero weight for the predicted class: the
    concept the input shows most plays no part in its decision."""
    h, w, bias = _head(H, W, b)
    pred = (h @ w.T + bias).argmax(axis=1)
    top = h.argmax(axis=1)
    return float((w[pred, top] == 0).mean())


def prediction_agreement(pred_a: Any, pred_b: Any) -> float:
    """Share of rows on which two models predict the same class."""
    a, b = np.asarray(pred_a), np.asarray(pred_b)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ConceptlabValueError(f"predictions {a.shape} and {b.shape} must be equal-length "
                                   f"1-D arrays")
    return float((a == b).mean())


def _softmax_pick(logits: np.ndarray, cls: np.ndarray) -> np.ndarray:
    """Probability of ``cls[i]`` under softmax over the last axis; logits N x T x C."""
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    p = e / e.sum(axis=-1, keepdims=True)
    return np.take_along_axis(p, cls[:, None, None], axis=-1)[..., 0]


def _curves(h: np.ndarray, w: np.ndarray, bias: np.ndarray, order: np.ndarray,
            pred: np.ndarray, baseline: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean probability of the predicted class after deleting / inserting t concepts."""
    n, k = h.shape
    c = w.shape[0]
    chunk = max(1, int(2e7 // max(1, k * c)))
    dele = np.zeros(k + 1)
    ins = np.zeros(k + 1)
    for s in range(0, n, chunk):
        hh = h[s:s + chunk] - baseline  # deletion moves h_k to the baseline
        oo = order[s:s + chunk]
        full = h[s:s + chunk] @ w.T + bias  # N x C
        base = np.broadcast_to(baseline @ w.T + bias, full.shape)
        parts = hh[:, :, None] * w.T[None, :, :]  # N x K x C
        parts = np.take_along_axis(parts, oo[:, :, None], axis=1)
        cum = np.concatenate([np.zeros((len(hh), 1, c)), np.cumsum(parts, axis=1)], axis=1)
        p = pred[s:s + chunk]
        dele += _softmax_pick(full[:, None, :] - cum, p).sum(axis=0)
        ins += _softmax_pick(base[:, None, :] + cum, p).sum(axis=0)
    return dele / n, ins / n


def deletion_insertion(H: Any, W: Any, b: Any, *, baseline: Any = None, n_random: int = 5,
                       seed: int = 0) -> dict[str, Any]:
    """Concept deletion and insertion curves of the predicted class's probability.

    Order: per row, concepts by decreasing contribution to the predicted class
    (``W[c, k] (h_k - baseline_k)``). Deletion moves concepts, in that order, to ``baseline``
    (default 0, where a concept contributes nothing, matching the explanations); insertion
    starts from every concept at the baseline and restores them in that order. Curves hold the
    mean probability after ``t = 0..K`` steps; AUC is the trapezoid area over the fraction of
    concepts moved (so it lies in [0, 1]). The same curves for ``n_random`` seeded random
    orders give the control: a faithful explanation has deletion AUC below the random one and
    insertion AUC above it.
    """
    h, w, bias = _head(H, W, b)
    k = h.shape[1]
    base = np.zeros(k) if baseline is None else np.asarray(baseline, dtype=np.float64)
    if base.shape != (k,):
        raise ConceptlabValueError(f"baseline must have {k} entries, got shape {base.shape}")
    if n_random < 1:
        raise ConceptlabValueError(f"n_random must be >= 1, got {n_random}")
    pred = (h @ w.T + bias).argmax(axis=1)
    contrib = w[pred] * (h - base)
    order = np.argsort(-contrib, axis=1, kind="stable")
    x = np.linspace(0.0, 1.0, k + 1)
    d, i = _curves(h, w, bias, order, pred, base)
    rng = np.random.default_rng(seed)
    rd, ri = np.zeros(k + 1), np.zeros(k + 1)
    for _ in range(n_random):
        rand = np.argsort(rng.random(h.shape), axis=1)
        a, c = _curves(h, w, bias, rand, pred, base)
        rd += a / n_random
        ri += c / n_random
    return {"deletion_curve": d, "insertion_curve": i,
            "random_deletion_curve": rd, "random_insertion_curve": ri,
            "deletion_auc": float(np.trapezoid(d, x)), "insertion_auc": float(np.trapezoid(i, x)),
            "random_deletion_auc": float(np.trapezoid(rd, x)),
            "random_insertion_auc": float(np.trapezoid(ri, x))}
