"""Test-time intervention with ground-truth concepts, and concept accuracy of CBL units.

Koh et al. 2020 ("Concept Bottleneck Models", ICML, Sec. 6): at test time an expert corrects
some predicted concepts and the head predicts again from the corrected bottleneck.

Correction rule (Koh et al. 2020, Sec. 6): a corrected unit is set to the value the unit takes
when its concept is clearly present or clearly absent, namely the **95th percentile** of the
unit's values on the *training* set if the true label is 1 and the **5th percentile** if it is
0 (``model.unit_high_`` / ``model.unit_low_``, computed once in ``fit`` and saved with the
model, so no training data are needed at test time). Units are the CBL outputs *before* the
activation map (``model.unit_values``); the map and the head are applied after correcting.
For ``gumbel`` this matters: each softmax output is near 0 for all but ~1/K of the examples,
so percentiles of the softmax outputs would make "present" and "absent" the same value.

Orders (which concepts an expert corrects first):

* ``"random"``: an independent random permutation of the labelled concepts per example,
  from ``numpy.random.default_rng(seed)`` (Koh et al.'s random-subset protocol);
* ``"uncertain"``: per example, the units closest to their decision threshold first, distance
  measured in units of the unit's present/absent spread ``|h - t| / (high - low)`` (``t``: the
  thresholds from ``fit_concept_thresholds`` when given, else the midpoint of low and high).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from conceptlab import metrics
from conceptlab.bottleneck.model import ConceptBottleneckModel
from conceptlab.errors import ConceptlabValueError

Order = Literal["random", "uncertain"]


def _check_labels(model: ConceptBottleneckModel, n: int, concept_labels: Any,
                  concept_names: Sequence[str]) -> tuple[np.ndarray, list[int]]:
    labels = np.asarray(concept_labels)
    names = [str(c) for c in concept_names]
    if not names:
        raise ConceptlabValueError("concept_names is empty: nothing to intervene on")
    if labels.ndim != 2 or labels.shape != (n, len(names)):
        raise ConceptlabValueError(f"concept_labels must have shape ({n}, {len(names)}) (rows x "
                                   f"named "
                         f"concepts), got {labels.shape}")
    if not np.isin(labels, (0, 1)).all():
        raise ConceptlabValueError("concept_labels must hold only 0 and 1")
    units = model._unit_indices(names)
    if len(set(units)) != len(units):
        raise ConceptlabValueError("concept_names has duplicates")
    return labels.astype(bool), units


def corrected_values(model: ConceptBottleneckModel, labels: np.ndarray,
                     units: Sequence[int]) -> np.ndarray:
    """N x len(units): the 95th (present) / 5th (absent) training percentile of each unit."""
    if model.unit_low_ is None or model.unit_high_ is None:
        raise ConceptlabValueError("model has no unit percentiles; fit or load it first")
    lo, hi = model.unit_low_[list(units)], model.unit_high_[list(units)]
    return np.where(labels, hi[None, :], lo[None, :]).astype(np.float32)


def intervention_order(H: np.ndarray, units: Sequence[int], *, order: Order = "random",
                       seed: int = 0, low: np.ndarray | None = None,
                       high: np.ndarray | None = None,
                       thresholds: np.ndarray | None = None) -> np.ndarray:
    """N x M: per example, positions (into ``units``) in the order they get corrected."""
    n, m = len(H), len(units)
    if order == "random":
        rng = np.random.default_rng(seed)
        return np.argsort(rng.random((n, m)), axis=1)
    if order == "uncertain":
        if low is None or high is None:
            raise ConceptlabValueError("order='uncertain' needs the units' low/high values")
        lo, hi = low[list(units)], high[list(units)]
        t = (lo + hi) / 2 if thresholds is None else np.asarray(thresholds, dtype=np.float32)
        spread = np.maximum(np.abs(hi - lo), 1e-12)
        distance = np.abs(H[:, list(units)] - t[None, :]) / spread[None, :]
        return np.argsort(distance, axis=1, kind="stable")
    raise ConceptlabValueError(f"unknown order {order!r} (use 'random' or 'uncertain')")


def intervention_curve(model: ConceptBottleneckModel, X: Any, y: Any, concept_labels: Any,
                       concept_names: Sequence[str], steps: Sequence[int] | None = None, *,
                       order: Order = "random", seed: int = 0,
                       thresholds: np.ndarray | None = None) -> list[dict[str, Any]]:
    """Accuracy after correcting the first ``n`` concepts of each example, for ``n`` in steps.

    ``concept_labels`` (N x M, 0/1) are ground truth for the model units ``concept_names``.
    ``steps`` defaults to ``0, 1, ..., M``. Returns ``[{"n_corrected", "accuracy"}, ...]``.
    """
    H = model.unit_values(X)
    yy = np.asarray(y)
    if yy.shape != (len(H),):
        raise ConceptlabValueError(f"y must have shape ({len(H)},), got {yy.shape}")
    labels, units = _check_labels(model, len(H), concept_labels, concept_names)
    m = len(units)
    steps_list = list(range(m + 1)) if steps is None else [int(s) for s in steps]
    if any(s < 0 or s > m for s in steps_list):
        raise ConceptlabValueError(f"steps must lie in [0, {m}], got {steps_list}")
    targets = corrected_values(model, labels, units)
    ordering = intervention_order(H, units, order=order, seed=seed, low=model.unit_low_,
                                  high=model.unit_high_, thresholds=thresholds)
    rank = np.argsort(ordering, axis=1)  # rank[i, j]: when unit j gets corrected for row i
    unit_idx = np.asarray(units)
    curve = []
    for s in steps_list:
        Hc = H.copy()
        sub = Hc[:, unit_idx]
        mask = rank < s
        sub[mask] = targets[mask]
        Hc[:, unit_idx] = sub
        pred = model.predict_from_units(Hc)
        curve.append({"n_corrected": s, "accuracy": metrics.accuracy(yy, pred)})
    return curve


def fit_concept_thresholds(model: ConceptBottleneckModel, X: Any, concept_labels: Any,
                           concept_names: Sequence[str]) -> np.ndarray:
    """Per named unit, the threshold ``t`` maximising accuracy of ``a > t`` vs the labels.

    ``a`` are unit values (``model.unit_values``). Fit on training or validation data (never
    test). Exact: every split point between sorted values is tried; the midpoint of the best
    split is returned (ties: the lowest).
    """
    H = model.unit_values(X)
    labels, units = _check_labels(model, len(H), concept_labels, concept_names)
    out = np.empty(len(units), dtype=np.float32)
    for j, k in enumerate(units):
        h = H[:, k].astype(np.float64)
        order = np.argsort(h, kind="stable")
        hs, ls = h[order], labels[order, j]
        # predict 0 for the first i sorted rows, 1 for the rest, i = 0..N
        zeros_before = np.concatenate([[0], np.cumsum(~ls)])
        ones_after = ls.sum() - np.concatenate([[0], np.cumsum(ls)])
        correct = zeros_before + ones_after
        # only split between distinct values
        valid = np.ones(len(hs) + 1, dtype=bool)
        valid[1:-1] = hs[1:] > hs[:-1]
        best = int(np.flatnonzero(valid)[np.argmax(correct[valid])])
        if best == 0:
            out[j] = hs[0] - 1.0
        elif best == len(hs):
            out[j] = hs[-1] + 1.0
        else:
            out[j] = 0.5 * (hs[best - 1] + hs[best])
    return out


def concept_accuracy(model: ConceptBottleneckModel, X: Any, concept_labels: Any,
                     concept_names: Sequence[str], thresholds: np.ndarray) -> dict[str, Any]:
    """Agreement of thresholded CBL units (``a > t``) with ground-truth concept labels.

    Returns ``{"mean": float, "per_concept": {name: float}}`` (``metrics.concept_accuracy``).
    """
    H = model.unit_values(X)
    labels, units = _check_labels(model, len(H), concept_labels, concept_names)
    t = np.asarray(thresholds, dtype=np.float32)
    if t.shape != (len(units),):
        raise ConceptlabValueError(f"thresholds must have shape ({len(units)},), got {t.shape}")
    pred = H[:, units] > t[None, :]
    per = {str(n): metrics.concept_accuracy(labels[:, j], pred[:, j])
           for j, n in enumerate(concept_names)}
    return {"mean": metrics.concept_accuracy(labels, pred), "per_concept": per}
