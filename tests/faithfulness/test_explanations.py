"""Explanation-fidelity metrics against hand-computed values on a linear output."""

from __future__ import annotations

import numpy as np
import pytest

from conceptlab.faithfulness.explanations import (
    curve_auc,
    deletion_curve,
    deletion_insertion,
    insertion_curve,
    mu_fidelity,
    order_from_importance,
)

A = np.array([3.0, 2.0, 1.0])


def linear(masks: np.ndarray) -> np.ndarray:
    return np.asarray(masks) @ A


def test_deletion_and_insertion_by_hand() -> None:
    order = order_from_importance(A)
    assert order.tolist() == [0, 1, 2]
    np.testing.assert_allclose(deletion_curve(linear, order), [6, 3, 1, 0])
    np.testing.assert_allclose(insertion_curve(linear, order), [0, 3, 5, 6])
    # trapezoids with dx = 1/3: (6/2 + 3 + 1 + 0/2) / 3 and (0 + 3 + 5 + 6/2) / 3
    assert curve_auc(deletion_curve(linear, order)) == pytest.approx(7 / 3)
    assert curve_auc(insertion_curve(linear, order)) == pytest.approx(11 / 3)
    worst = np.array([2, 1, 0])
    assert curve_auc(deletion_curve(linear, worst)) == pytest.approx((3 + 5 + 3) / 3)


def test_the_true_order_beats_random_orders() -> None:
    r = deletion_insertion(linear, A, n_random=20, seed=0)
    assert r["deletion_auc"] < r["deletion_auc_random"]
    assert r["insertion_auc"] > r["insertion_auc_random"]


def test_mu_fidelity_by_hand() -> None:
    assert mu_fidelity(linear, A, subset_size=1, n_subsets=30) == pytest.approx(1.0)
    assert mu_fidelity(linear, -A, subset_size=1, n_subsets=30) == pytest.approx(-1.0)
    # subsets of size 1 on three concepts: the drop is a_i, so any affine image of A scores 1
    assert mu_fidelity(linear, 2 * A + 1, subset_size=1, n_subsets=30) == pytest.approx(1.0)
    assert np.isnan(mu_fidelity(linear, np.ones(3), subset_size=1))


def test_bad_orders_are_named() -> None:
    with pytest.raises(ValueError, match="permutation"):
        deletion_curve(linear, np.array([0, 0, 1]))
    with pytest.raises(ValueError, match="subset_size"):
        mu_fidelity(linear, A, subset_size=4)
