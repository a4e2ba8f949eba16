"""Leakage measures on planted concept probabilities: a leaky model is flagged, a clean one
passes."""

from __future__ import annotations

import numpy as np
import pytest

from conceptlab.faithfulness.leakage import (
    LeakageError,
    niche_impurity,
    oracle_impurity,
    soft_hard_gap,
)


def planted(n: int, leaky: bool, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Concepts c (n, 3), a hidden bit h not among them, task y = 2 h + c_0 (4 classes).

    Leaky: each probability is confident on its concept but its margin encodes h
    (0.95 vs 0.75 when present, 0.05 vs 0.25 when absent), so hard concepts lose h while
    soft ones keep it. Clean: the margin is noise independent of y.
    """
    rng = np.random.default_rng(seed)
    c = rng.integers(0, 2, (n, 3))
    h = rng.integers(0, 2, n)
    y = 2 * h + c[:, 0]
    wiggle = (0.2 * h[:, None] if leaky else 0.2 * rng.integers(0, 2, (n, 1))) + \
        rng.normal(0, 0.01, (n, 3))
    p = np.where(c == 1, 0.75 + wiggle, 0.25 - wiggle)
    return np.clip(p, 0, 1), c, y


def test_soft_hard_gap_flags_the_leaky_model_and_passes_the_clean_one():
    Ptr, _, ytr = planted(400, True, 0)
    Pte, _, yte = planted(400, True, 1)
    leak = soft_hard_gap(Ptr, ytr, Pte, yte)
    assert leak.leaky and leak.gap > 0.3 and leak.soft_accuracy > 0.9
    assert leak.hard_accuracy == pytest.approx(0.5, abs=0.06)
    Ptr, _, ytr = planted(400, False, 0)
    Pte, _, yte = planted(400, False, 1)
    clean = soft_hard_gap(Ptr, ytr, Pte, yte)
    assert not clean.leaky and abs(clean.gap) < 0.05


def test_impurity_scores_separate_an_impure_representation_from_a_pure_one():
    rng = np.random.default_rng(0)
    c = rng.integers(0, 2, (300, 3))
    pure = c + rng.normal(0, 0.3, c.shape)
    impure = pure.copy()
    impure[:, 0] = c[:, 0] + 0.8 * c[:, 1] + rng.normal(0, 0.3, 300)  # unit 0 also holds c_1
    impure[:, 2] = c[:, 2] + 0.8 * c[:, 0] + rng.normal(0, 0.3, 300)  # unit 2 also holds c_0
    assert oracle_impurity(pure, c) < 0.1 < oracle_impurity(impure, c)
    assert niche_impurity(pure, c, n_betas=6) < niche_impurity(impure, c, n_betas=6) - 0.03
    with pytest.raises(LeakageError, match="0/1"):
        oracle_impurity(pure, c + 0.5)


def test_leakage_columns_report_the_gap_and_flag():
    from conceptlab.faithfulness.leakage import leakage_columns

    Ptr, _, ytr = planted(300, True, 0)
    Pte, Cte, yte = planted(300, True, 1)
    cols = leakage_columns(Ptr, ytr, Pte, yte, Cte)
    assert cols["leaky"] and cols["soft_hard_gap"] == pytest.approx(
        cols["soft_concept_accuracy"] - cols["hard_concept_accuracy"])
    assert 0 <= cols["oracle_impurity_logistic"] <= 1
