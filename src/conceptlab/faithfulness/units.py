"""Does unit k mean concept k? Pure functions of unit values and concept scores or labels.

``U`` (N x K) are a model's unit values on held-out inputs, ``S`` (N x K) the encoder's score of
each named concept on the same inputs (cosine of the input with the concept's direction), both
in bank order. A unit that means its name correlates with its own concept's score
(``unit_fidelity``) and with no other concept's more (``name_match_rate``); where ground truth
exists, it separates inputs with and without the concept (``concept_auroc``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.stats import rankdata

from conceptlab.errors import ConceptlabValueError
from conceptlab.faithfulness.claims import bootstrap_interval


def _pair(U: Any, S: Any) -> tuple[np.ndarray, np.ndarray]:
    u, s = np.asarray(U, dtype=np.float64), np.asarray(S, dtype=np.float64)
    if u.ndim != 2 or s.ndim != 2 or u.shape[0] != s.shape[0]:
        raise ConceptlabValueError(f"unit values {u.shape} and concept scores {s.shape} must be "
                                   f"N x K "
                         f"and N x K' over the same rows")
    if u.shape[0] < 2:
        raise ConceptlabValueError("correlations need at least 2 rows")
    return u, s


def _centred_unit(x: np.ndarray) -> np.ndarray:
    c = x - x.mean(axis=0, keepdims=True)
    norm = np.linalg.norm(c, axis=0, keepdims=True)
    return np.divide(c, norm, out=np.zeros_like(c), where=norm > 0)


def column_correlations(U: Any, S: Any) -> np.ndarray:
    """Pearson correlation of column k of ``U`` with column k of ``S`` (K,); 0 for a constant
    column (a unit that never varies tracks nothing)."""
    u, s = _pair(U, S)
    if u.shape != s.shape:
        raise ConceptlabValueError(f"unit values {u.shape} and concept scores {s.shape} differ "
                                   f"in shape")
    return (_centred_unit(u) * _centred_unit(s)).sum(axis=0)


def correlation_matrix(U: Any, S: Any) -> np.ndarray:
    """Pearson correlation of every unit with every concept score (K_units x K_concepts)."""
    u, s = _pair(U, S)
    return _centred_unit(u).T @ _centred_unit(s)


def _used(used: Any, k: int) -> np.ndarray:
    if used is None:
        return np.ones(k, dtype=bool)
    mask = np.asarray(used, dtype=bool)
    if mask.shape != (k,):
        raise ConceptlabValueError(f"used must be a boolean mask of {k} units, got shape "
                                   f"{mask.shape}")
    return mask


def unit_fidelity(U: Any, S: Any, used: Any = None) -> dict[str, Any]:
    """Correlation of each unit with its own concept's score, and the median over ``used``
    units (a boolean mask; default all). An empty ``used`` gives a NaN median."""
    r = column_correlations(U, S)
    mask = _used(used, len(r))
    median = float(np.median(r[mask])) if mask.any() else float("nan")
    return {"per_unit": r, "median": median, "n_used": int(mask.sum())}


def name_match_rate(U: Any, S: Any, used: Any = None, own: Any = None) -> float:
    """Share of ``used`` units whose most correlated concept among all K is their own name.

    ``own`` (one concept column per unit) is for units that are not one per concept, as
    discovered units named from a vocabulary are: unit k's name is column ``own[k]`` of ``S``
    (default: unit k is concept k). A unit whose correlation ties its own concept's counts as a
    match (ties are measure-zero for real data, and a tie is not evidence against the name)."""
    M = correlation_matrix(U, S)
    if own is None:
        if M.shape[0] != M.shape[1]:
            raise ConceptlabValueError(f"name matching needs one unit per concept, got {M.shape}")
        own_idx = np.arange(M.shape[0])
    else:
        own_idx = np.asarray(own, dtype=np.int64)
        if own_idx.shape != (M.shape[0],):
            raise ConceptlabValueError(f"own must give one concept column per unit "
                                       f"({M.shape[0]}), got "
                             f"shape {own_idx.shape}")
        bad = own_idx[(own_idx < 0) | (own_idx >= M.shape[1])]
        if len(bad):
            raise ConceptlabValueError(f"own must give one concept column in [0, {M.shape[1]}) "
                                       f"per unit, "
                             f"got {bad[:3].tolist()}")
    mask = _used(used, M.shape[0])
    if not mask.any():
        return float("nan")
    own_corr = M[np.arange(M.shape[0]), own_idx]
    best = M.max(axis=1)
    return float((own_corr[mask] >= best[mask] - 1e-12).mean())


def concept_auroc(U: Any, labels: Any) -> np.ndarray:
    """Per concept, the area under the ROC curve of unit values against 0/1 labels (K,).

    Mann-Whitney form with mid-ranks for ties: the probability that a random positive scores
    above a random negative (ties count one half). NaN for a concept whose labels are all 0
    or all 1 (its AUROC is undefined).
    """
    u = np.asarray(U, dtype=np.float64)
    t = np.asarray(labels)
    if u.shape != t.shape or u.ndim != 2:
        raise ConceptlabValueError(f"unit values {u.shape} and labels {t.shape} must both be N x K")
    if not np.isin(t, (0, 1)).all():
        raise ConceptlabValueError("labels must hold only 0 and 1")
    t = t.astype(bool)
    out = np.full(u.shape[1], np.nan)
    for k in range(u.shape[1]):
        pos = int(t[:, k].sum())
        neg = len(t) - pos
        if pos == 0 or neg == 0:
            continue
        ranks = rankdata(u[:, k])
        out[k] = (ranks[t[:, k]].sum() - pos * (pos + 1) / 2) / (pos * neg)
    return out


def intervention_gain(curve: Sequence[dict[str, Any]]) -> float:
    """Accuracy with every labelled concept corrected minus accuracy with none corrected.

    ``curve`` is ``[{"n_corrected": n, "accuracy": a}, ...]`` (``intervention_curve``). A model
    whose units mean their concepts gains when an expert fixes them; one that leaks class
    information around its names may lose."""
    if not curve:
        raise ConceptlabValueError("empty intervention curve")
    pts = sorted(curve, key=lambda p: p["n_corrected"])
    return float(pts[-1]["accuracy"] - pts[0]["accuracy"])


def unit_figures(U: Any, S: Any, used: Any = None, *, own: Any = None, seed: int = 0,
                 n_boot: int = 200, level: float = 0.95) -> dict[str, Any]:
    """Fidelity (``unit_fidelity``) and name match (``name_match_rate``) with item-bootstrap
    percentile intervals (``n_boot`` seeded resamples of the rows): ``fidelity`` (the
    ``unit_fidelity`` dict), ``name_match``, ``fidelity_ci``, ``name_match_ci``.

    ``S`` holds one column per concept of the vocabulary; with ``own`` (unit k's column), the
    fidelity reads ``S[:, own]``, else unit k reads column k."""
    u = np.asarray(U, dtype=np.float64)
    s = np.asarray(S, dtype=np.float64)
    cols = None if own is None else np.asarray(own, dtype=np.int64)

    def both(idx: np.ndarray | None) -> tuple[dict[str, Any], float]:
        uu, ss = (u, s) if idx is None else (u[idx], s[idx])
        fid = unit_fidelity(uu, ss if cols is None else ss[:, cols], used)
        return fid, name_match_rate(uu, ss, used, own=cols)

    fid, match = both(None)
    rng = np.random.default_rng(seed)
    fids, matches = np.full(n_boot, np.nan), np.full(n_boot, np.nan)
    if fid["n_used"] and len(u) >= 2:
        for i in range(n_boot):
            f, m = both(rng.integers(0, len(u), len(u)))
            fids[i], matches[i] = f["median"], m
    return {"fidelity": fid, "name_match": match,
            "fidelity_ci": bootstrap_interval(fids, level),
            "name_match_ci": bootstrap_interval(matches, level)}


def auroc_figures(U: Any, labels: Any, *, seed: int = 0, n_boot: int = 200, level: float = 0.95
                  ) -> tuple[np.ndarray, float, tuple[float, float]]:
    """Per-concept AUROC (``concept_auroc``), its mean over concepts with both label values,
    and an item-bootstrap percentile interval of that mean (``n_boot`` seeded resamples)."""
    u = np.asarray(U, dtype=np.float64)
    t = np.asarray(labels)
    per = concept_auroc(u, t)
    ok = np.isfinite(per)
    mean = float(per[ok].mean()) if ok.any() else float("nan")
    reps = []
    if ok.any():
        rng = np.random.default_rng(seed)
        for _ in range(n_boot):
            idx = rng.integers(0, len(u), len(u))
            a = concept_auroc(u[idx][:, ok], t[idx][:, ok])
            if np.isfinite(a).any():
                reps.append(float(np.nanmean(a)))
    return per, mean, bootstrap_interval(np.asarray(reps), level)
