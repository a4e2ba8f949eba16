"""Concept depth: a cross-validated linear probe per layer, with intervals and a shuffled control.

Following Jin et al. (2024), "Exploring Concept Depth: How Large Language Models Acquire
Knowledge at Different Layers?" (section 3: one logistic-regression probe per layer on the last
token's hidden state), each layer gets out-of-fold predictions from a k-fold logistic
regression, scored by accuracy, F1 and ROC AUC with percentile-bootstrap 95% intervals (Efron
& Tibshirani, 1993). A probe fitted to permuted labels (Hewitt & Liang, EMNLP 2019, "Designing
and interpreting probes with control tasks") shows what the probe reaches without the concept.
A concept's *depth* is the first layer whose accuracy is within ``tol`` of the best layer.

Activations are read once per (model, prompts, hook points, reduction) and kept in the
fingerprinted activation cache, so later probes, directions and sweeps take seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import rankdata
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from conceptlab.cache import ActivationCache, CacheKey
from conceptlab.lm.datasets import PromptSet
from conceptlab.lm.model import CausalLM, LMError
from conceptlab.utils.hashing import hash_json

CACHE_SHARD_ROWS = 256


def layer_points(lm: CausalLM, layers: Sequence[int] | None = None,
                 kind: str = "hook_resid_post") -> list[str]:
    """Hook point names of ``kind`` for ``layers`` (default: every block)."""
    idx = list(range(lm.n_layers)) if layers is None else [int(i) for i in layers]
    return [f"blocks.{i}.{kind}" for i in idx]


def cached_activations(lm: CausalLM, prompts: PromptSet, points: Sequence[str],
                       reduce: str = "last", cache: ActivationCache | None = None,
                       batch_size: int = 16) -> dict[str, np.ndarray]:
    """``{point: (N, dim)}`` for the prompts, read from or written to the activation cache."""
    points = list(points)
    for p in points:
        lm.resolve(p)
    cache = cache or ActivationCache(shard_rows=CACHE_SHARD_ROWS)
    key = CacheKey(encoder=hash_json({"lm": lm.fingerprint(), "points": points,
                                      "reduce": reduce, "kind": "lm-activations"}),
                   data=prompts.fingerprint)

    def compute(start: int, stop: int) -> dict[str, np.ndarray]:
        return lm.activations(prompts.texts[start:stop], points, reduce=reduce,  # type: ignore[arg-type]
                              batch_size=batch_size, desc=f"{prompts.name} activations")

    views = cache.get_or_compute(key, len(prompts), compute,
                                 info={"model": lm.name, "prompts": prompts.name,
                                       "points": points, "reduce": reduce})
    return {p: views[p] for p in points}  # the cache stores views sorted by name: keep order


def _auc_rows(y: np.ndarray, s: np.ndarray) -> np.ndarray:
    """ROC AUC of each row of scores ``s`` (B x N) against labels ``y`` (B x N), via ranks."""
    ranks = rankdata(s, axis=1)  # ties get their average rank
    n_pos = y.sum(1)
    n_neg = y.shape[1] - n_pos
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = ((ranks * y).sum(1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return auc


def binary_scores(y: np.ndarray, score: np.ndarray, n_boot: int = 1000, seed: int = 0,
                  ) -> dict[str, dict[str, float]]:
    """Accuracy, F1 and AUC of scores (positive = score > 0) with bootstrap 95% intervals."""
    y = np.asarray(y, dtype=np.int64)
    score = np.asarray(score, dtype=np.float64)
    rng = np.random.default_rng(seed)
    idx = np.concatenate([np.arange(len(y))[None], rng.integers(0, len(y), (n_boot, len(y)))])
    yb, sb = y[idx], score[idx]
    pred = (sb > 0).astype(np.int64)
    acc = (pred == yb).mean(1)
    tp = (pred * yb).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = 2 * tp / (pred.sum(1) + yb.sum(1))
    auc = _auc_rows(yb, sb)
    out = {}
    for name, vals in (("accuracy", acc), ("f1", f1), ("auc", auc)):
        boot = vals[1:][np.isfinite(vals[1:])]
        lo, hi = (np.percentile(boot, [2.5, 97.5]) if len(boot) else (np.nan, np.nan))
        out[name] = {"value": float(vals[0]), "lo": float(lo), "hi": float(hi)}
    return out


@dataclass
class ProbeFit:
    """Out-of-fold decision scores and a direction fitted on all items (unit, raw space)."""

    scores: np.ndarray
    direction: np.ndarray
    bias: float


def fit_probe(X: np.ndarray, y: np.ndarray, groups: Sequence[str] | None = None,
              folds: int = 5, seed: int = 0, C: float = 1.0) -> ProbeFit:
    """k-fold L2 logistic regression (liblinear) on standardised features (groups never split
    across folds).

    The returned direction is the full-data probe's weight mapped back to the raw activation
    space (``w / std``), normalised: ``X @ direction`` orders items as the probe does.
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    if X.ndim != 2 or len(X) != len(y):
        raise LMError(f"probe needs X (N x D) and y (N), got {X.shape} and {y.shape}")
    if np.bincount(y, minlength=2).min() < folds:
        raise LMError(f"each class needs at least {folds} items for {folds}-fold probing")
    mu, sd = X.mean(0), X.std(0) + 1e-6
    Z = (X - mu) / sd
    if groups is not None and len(set(groups)) >= folds:
        split = StratifiedGroupKFold(folds, shuffle=True, random_state=seed).split(Z, y, groups)
    else:
        split = StratifiedKFold(folds, shuffle=True, random_state=seed).split(Z, y)
    scores = np.zeros(len(y))
    for train, test in split:
        clf = LogisticRegression(C=C, solver="liblinear", max_iter=2000, random_state=seed)
        clf.fit(Z[train], y[train])
        scores[test] = clf.decision_function(Z[test])
    clf = LogisticRegression(C=C, solver="liblinear", max_iter=2000, random_state=seed).fit(Z, y)
    w = clf.coef_[0] / sd
    norm = float(np.linalg.norm(w))
    if norm < 1e-12:  # nothing separates the classes (e.g. after an ablation)
        return ProbeFit(scores, np.zeros_like(w, dtype=np.float32), 0.0)
    bias = float(clf.intercept_[0] - (clf.coef_[0] * mu / sd).sum())
    return ProbeFit(scores, (w / norm).astype(np.float32), bias / norm)


def probe_layers(acts: dict[str, np.ndarray], prompts: PromptSet, folds: int = 5,
                 seed: int = 0, n_boot: int = 1000, control: bool = True,
                 ) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """Per hook point: scores with intervals and the shuffled-label control; and directions."""
    rows, directions = [], {}
    rng = np.random.default_rng(seed + 7)
    shuffled = rng.permutation(prompts.labels)
    for point, X in acts.items():
        fit = fit_probe(X, prompts.labels, prompts.groups, folds, seed)
        row: dict[str, Any] = {"point": point,
                               **binary_scores(prompts.labels, fit.scores, n_boot, seed)}
        if control:
            ctrl = fit_probe(X, shuffled, prompts.groups, folds, seed)
            row["control"] = binary_scores(shuffled, ctrl.scores, 0, seed)
        rows.append(row)
        directions[point] = fit.direction
    return rows, directions


def concept_depth(accuracies: Sequence[float], tol: float = 0.02) -> int:
    """Index of the first layer whose accuracy is within ``tol`` of the best one."""
    acc = np.asarray(accuracies, dtype=np.float64)
    if acc.size == 0:
        raise LMError("no layers to take a depth from")
    return int(np.flatnonzero(acc >= acc.max() - tol)[0])
