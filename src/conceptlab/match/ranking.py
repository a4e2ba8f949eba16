"""Ranking quality of a retrieval: pure functions of similarity matrices and labels.

Same-class retrieval: every held-out item is a query, the other held-out items are the
gallery (the query itself is never retrieved), and an item is relevant when it shares the
query's class. Binary gains throughout.

* ``precision@k``: share of the top ``k`` that are relevant;
* ``recall@k``: share of all the query's relevant items that are in its top ``k``;
* ``nDCG@k``: discounted cumulative gain of the top ``k`` (gain 1 / log2(rank + 1)) over the
  best possible one (all relevant items first), Jarvelin & Kekalainen 2002;
* ``mAP``: mean over queries of average precision over the whole ranking.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from conceptlab.errors import ConceptlabValueError


def cosine_matrix(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Cosine of every row of ``A`` with every row of ``B`` (zero rows give 0)."""
    a = np.asarray(A, dtype=np.float64)
    b = np.asarray(B, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ConceptlabValueError(f"cannot compare rows of shapes {a.shape} and {b.shape}")
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return a @ b.T


def leave_one_out_ranking(sim: np.ndarray) -> np.ndarray:
    """Gallery order per query (N x N-1) of a square similarity, each query's own row left out.

    Ties break by gallery position (a stable sort), so equal scores never favour relevance."""
    s = np.asarray(sim, dtype=np.float64)
    if s.ndim != 2 or s.shape[0] != s.shape[1] or s.shape[0] < 2:
        raise ConceptlabValueError(f"leave-one-out needs a square N x N similarity (N >= 2), "
                                   f"got {s.shape}")
    s = s.copy()
    np.fill_diagonal(s, -np.inf)
    order = np.argsort(-s, axis=1, kind="stable")
    return order[:, :-1]  # the query itself (-inf) is last


def relevance(order: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """0/1 relevance of each ranked gallery item (same label as the query)."""
    y = np.asarray(labels)
    if len(y) != order.shape[0]:
        raise ConceptlabValueError(f"{len(y)} labels for {order.shape[0]} queries")
    return (y[order] == y[:, None]).astype(np.float64)


def precision_at(rel: np.ndarray, k: int) -> float:
    return float(rel[:, :k].mean())


def recall_at(rel: np.ndarray, k: int) -> float:
    total = rel.sum(axis=1)
    ok = total > 0
    return float((rel[ok, :k].sum(axis=1) / total[ok]).mean())


def ndcg_at(rel: np.ndarray, k: int) -> float:
    k = min(k, rel.shape[1])
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (rel[:, :k] * disc).sum(axis=1)
    n_rel = np.minimum(rel.sum(axis=1), k).astype(int)
    ideal = np.array([disc[:n].sum() for n in n_rel])
    ok = ideal > 0
    return float((dcg[ok] / ideal[ok]).mean())


def mean_average_precision(rel: np.ndarray) -> float:
    hits = np.cumsum(rel, axis=1)
    ranks = np.arange(1, rel.shape[1] + 1)
    total = rel.sum(axis=1)
    ok = total > 0
    ap = (rel * hits / ranks).sum(axis=1)[ok] / total[ok]
    return float(ap.mean())


def retrieval_metrics(sim: np.ndarray, labels: np.ndarray,
                      ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """Leave-one-out same-class retrieval metrics of a square similarity matrix."""
    rel = relevance(leave_one_out_ranking(sim), labels)
    out: dict[str, float] = {}
    for k in ks:
        out[f"P@{k}"] = precision_at(rel, k)
        out[f"R@{k}"] = recall_at(rel, k)
        out[f"nDCG@{k}"] = ndcg_at(rel, k)
    out["mAP"] = mean_average_precision(rel)
    return out
