"""Concept depth: a cross-validated linear probe per layer, with intervals and a shuffled control.

Following Jin et al. (2024), "Exploring Concept Depth: How Large Language Models Acquire
Knowledge at Different Layers?" (section 3: one logistic-regression probe per layer on the last
token's hidden state), each layer gets out-of-fold predictions from a k-fold logistic
regression, scored by accuracy, F1 and ROC AUC with percentile-bootstrap 95% intervals (Efron
& Tibshirani, 1993). Features are standardised inside each fold; the bootstrap resamples
groups (one word across frames) where prompts come in groups. The control is Hewitt & Liang's
(EMNLP 2019, "Designing and interpreting probes with control tasks") control task: random
labels assigned per type, not per item, and cross-validated over items so that a type's
items fall on both sides of a fold, as H&L's word types recur between training and test (the
probe of the real labels keeps group folds, so its accuracy is on unseen words and selectivity
is conservative); selectivity = accuracy - control accuracy. Any number
of classes (multinomial probe, macro F1 and one-vs-rest AUC). A concept's *depth* is the
first layer whose 95% interval overlaps the best layer's; chance is the majority class's rate.

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


def _predict(score: np.ndarray) -> np.ndarray:
    return (score > 0).astype(np.int64) if score.ndim == 1 else score.argmax(1)


def _metrics(y: np.ndarray, score: np.ndarray, n_classes: int) -> tuple[float, float, float]:
    """Accuracy, F1 (binary; macro over classes for K > 2) and AUC (binary; macro one-vs-rest
    for K > 2) of one set of out-of-fold scores."""
    pred = _predict(score)
    acc = float((pred == y).mean())
    f1s, aucs = [], []
    classes = [1] if n_classes == 2 else list(range(n_classes))
    for c in classes:
        yc, pc = (y == c), (pred == c)
        denom = pc.sum() + yc.sum()
        f1s.append(2 * (pc & yc).sum() / denom if denom else np.nan)
        sc = score if score.ndim == 1 else score[:, c]
        aucs.append(float(_auc_rows(yc[None].astype(np.int64), sc[None])[0]))
    def mean(v: list[float]) -> float:
        a = np.asarray(v, dtype=np.float64)
        return float(a[np.isfinite(a)].mean()) if np.isfinite(a).any() else float("nan")
    return acc, mean(f1s), mean(aucs)


def binary_scores(y: np.ndarray, score: np.ndarray, n_boot: int = 1000, seed: int = 0,
                  groups: Sequence[str] | None = None, n_classes: int | None = None,
                  ) -> dict[str, dict[str, float]]:
    """Accuracy, F1 and AUC of out-of-fold scores with percentile-bootstrap 95% intervals.

    ``score``: ``(N,)`` decision values (binary, positive = score > 0) or ``(N, K)`` class
    scores. With ``groups`` the bootstrap resamples whole groups (items of a group are not
    independent: the same word in several frames), else items.
    """
    y = np.asarray(y, dtype=np.int64)
    score = np.asarray(score, dtype=np.float64)
    k = n_classes or max(2, int(y.max()) + 1, score.shape[1] if score.ndim == 2 else 2)
    rng = np.random.default_rng(seed)
    if groups is None:
        draws = [rng.integers(0, len(y), len(y)) for _ in range(n_boot)]
    else:
        members: dict[str, list[int]] = {}
        for i, g in enumerate(groups):
            members.setdefault(str(g), []).append(i)
        blocks = [np.asarray(v) for v in members.values()]
        draws = [np.concatenate([blocks[j] for j in rng.integers(0, len(blocks), len(blocks))])
                 for _ in range(n_boot)]
    point = _metrics(y, score, k)
    boot = np.asarray([_metrics(y[d], score[d], k) for d in draws]).reshape(-1, 3)
    out = {}
    for j, name in enumerate(("accuracy", "f1", "auc")):
        vals = boot[:, j][np.isfinite(boot[:, j])]
        lo, hi = (np.percentile(vals, [2.5, 97.5]) if len(vals) else (np.nan, np.nan))
        out[name] = {"value": point[j], "lo": float(lo), "hi": float(hi)}
    return out


@dataclass
class ProbeFit:
    """Out-of-fold decision scores (``(N,)`` binary, ``(N, K)`` multi-class) and, for a binary
    set, a direction fitted on all items (unit, raw space)."""

    scores: np.ndarray
    direction: np.ndarray
    bias: float


def _logistic(C: float, seed: int, n_classes: int) -> LogisticRegression:
    solver = "liblinear" if n_classes == 2 else "lbfgs"
    return LogisticRegression(C=C, solver=solver, max_iter=2000, random_state=seed)


def fit_probe(X: np.ndarray, y: np.ndarray, groups: Sequence[str] | None = None,
              folds: int = 5, seed: int = 0, C: float = 1.0) -> ProbeFit:
    """k-fold L2 logistic regression (liblinear for two classes, multinomial lbfgs for more),
    features standardised *inside each fold* from its training items only (groups never split
    across folds).

    The returned direction (binary sets) is the full-data probe's weight mapped back to the
    raw activation space (``w / std``), normalised: ``X @ direction`` orders items as the probe
    does. Multi-class sets get a zero direction.
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    if X.ndim != 2 or len(X) != len(y):
        raise LMError(f"probe needs X (N x D) and y (N), got {X.shape} and {y.shape}")
    k = max(2, int(y.max()) + 1)
    if np.bincount(y, minlength=k).min() < folds:
        raise LMError(f"each class needs at least {folds} items for {folds}-fold probing")
    if groups is not None and len(set(groups)) >= folds:
        split = StratifiedGroupKFold(folds, shuffle=True, random_state=seed).split(X, y, groups)
    else:
        split = StratifiedKFold(folds, shuffle=True, random_state=seed).split(X, y)
    scores = np.zeros(len(y)) if k == 2 else np.zeros((len(y), k))
    for train, test in split:
        mu, sd = X[train].mean(0), X[train].std(0) + 1e-6
        clf = _logistic(C, seed, k).fit((X[train] - mu) / sd, y[train])
        scores[test] = clf.decision_function((X[test] - mu) / sd)
    mu, sd = X.mean(0), X.std(0) + 1e-6
    clf = _logistic(C, seed, k).fit((X - mu) / sd, y)
    if k != 2:
        return ProbeFit(scores, np.zeros(X.shape[1], dtype=np.float32), 0.0)
    w = clf.coef_[0] / sd
    norm = float(np.linalg.norm(w))
    if norm < 1e-12:  # nothing separates the classes (e.g. after an ablation)
        return ProbeFit(scores, np.zeros_like(w, dtype=np.float32), 0.0)
    bias = float(clf.intercept_[0] - (clf.coef_[0] * mu / sd).sum())
    return ProbeFit(scores, (w / norm).astype(np.float32), bias / norm)


def control_labels(prompts: PromptSet, seed: int = 0) -> np.ndarray:
    """Hewitt & Liang's control task: every *type* (``PromptSet.types``: one word across its
    frames) gets a random label drawn from the empirical class distribution, and all its items
    share it, so a probe can only pass by memorising types."""
    types = prompts.types()
    uniq = sorted(set(types))
    freq = np.bincount(prompts.labels, minlength=prompts.n_classes) / len(prompts)
    rng = np.random.default_rng(seed)
    for _ in range(100):  # every class needs enough items for the folds
        draw = dict(zip(uniq, rng.choice(prompts.n_classes, len(uniq), p=freq).tolist(),
                        strict=True))
        lab = np.asarray([draw[t] for t in types], dtype=np.int64)
        if np.bincount(lab, minlength=prompts.n_classes).min() >= 5:
            return lab
    raise LMError(f"{prompts.name}: too few types for a control task")


def probe_layers(acts: dict[str, np.ndarray], prompts: PromptSet, folds: int = 5,
                 seed: int = 0, n_boot: int = 1000, control: bool = True,
                 ) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """Per hook point: scores with intervals (bootstrap over groups when there are groups),
    Hewitt & Liang's control task and selectivity; and directions."""
    rows, directions = [], {}
    ctrl_y = control_labels(prompts, seed + 7) if control else None
    for point, X in acts.items():
        fit = fit_probe(X, prompts.labels, prompts.groups, folds, seed)
        row: dict[str, Any] = {"point": point,
                               **binary_scores(prompts.labels, fit.scores, n_boot, seed,
                                               prompts.groups, prompts.n_classes)}
        if ctrl_y is not None:
            # item-level folds: a type's items fall on both sides, as H&L's word types recur
            # between train and test; grouped folds would hold every type out unseen and pin
            # the control at chance whatever the probe can memorise
            ctrl = fit_probe(X, ctrl_y, None, folds, seed)
            row["control"] = binary_scores(ctrl_y, ctrl.scores, 0, seed,
                                           n_classes=prompts.n_classes)
            row["selectivity"] = row["accuracy"]["value"] - row["control"]["accuracy"]["value"]
        rows.append(row)
        directions[point] = fit.direction
    return rows, directions


def majority_rate(labels: np.ndarray) -> float:
    """Accuracy of always answering the most frequent class: chance for a probe."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64))
    return float(counts.max() / counts.sum())


def concept_depth(accuracies: Sequence[float], lo: Sequence[float] | None = None,
                  hi: Sequence[float] | None = None, tol: float = 0.02) -> int:
    """Index of the first layer whose 95% interval overlaps the best layer's (its upper bound
    reaches the best layer's lower bound): layers the data cannot tell from the best. Without
    finite intervals: the first layer whose accuracy is within ``tol`` of the best."""
    acc = np.asarray(accuracies, dtype=np.float64)
    if acc.size == 0:
        raise LMError("no layers to take a depth from")
    best = int(np.argmax(acc))
    if lo is not None and hi is not None:
        lo_a, hi_a = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
        if np.isfinite(lo_a[best]) and np.isfinite(hi_a).all():
            return int(np.flatnonzero(hi_a >= lo_a[best])[0])
    return int(np.flatnonzero(acc >= acc.max() - tol)[0])
