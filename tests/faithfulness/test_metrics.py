"""Faithfulness metrics against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from conceptlab import faithfulness as fm


def test_column_correlations_match_numpy_and_handle_constant_columns() -> None:
    rng = np.random.default_rng(0)
    U, S = rng.normal(size=(50, 3)), rng.normal(size=(50, 3))
    S[:, 1] = 2 * U[:, 1] + 1  # perfectly tracked
    r = fm.column_correlations(U, S)
    for k in range(3):
        assert r[k] == pytest.approx(np.corrcoef(U[:, k], S[:, k])[0, 1])
    assert r[1] == pytest.approx(1.0)
    U[:, 2] = 5.0
    assert fm.column_correlations(U, S)[2] == 0.0


def test_unit_fidelity_median_over_used_units_only() -> None:
    U = np.array([[0, 0, 1], [1, 1, 0], [2, 0, 1], [3, 1, 0]], dtype=float)
    S = np.array([[0, 1, 0], [1, 0, 1], [2, 1, 0], [3, 0, 1]], dtype=float)
    # unit 0 tracks (r=1), unit 1 anti-tracks (r=-1), unit 2 anti-tracks (r=-1)
    out = fm.unit_fidelity(U, S, used=[True, True, False])
    np.testing.assert_allclose(out["per_unit"], [1.0, -1.0, -1.0])
    assert out["median"] == pytest.approx(0.0) and out["n_used"] == 2
    assert np.isnan(fm.unit_fidelity(U, S, used=[False] * 3)["median"])


def test_name_match_rate_counts_units_whose_best_concept_is_their_own() -> None:
    rng = np.random.default_rng(1)
    S = rng.normal(size=(200, 3))
    U = S[:, [0, 2, 1]]  # unit 0 is concept 0; units 1 and 2 are swapped
    assert fm.name_match_rate(U, S) == pytest.approx(1 / 3)
    assert fm.name_match_rate(U, S, used=[True, False, False]) == 1.0


def test_concept_auroc_mann_whitney_with_ties() -> None:
    u = np.array([[0.1], [0.4], [0.35], [0.8]])
    t = np.array([[0], [0], [1], [1]])
    # pairs (pos, neg): (0.35, 0.1) win, (0.35, 0.4) loss, (0.8, 0.1) win, (0.8, 0.4) win
    assert fm.concept_auroc(u, t)[0] == pytest.approx(0.75)
    tie = fm.concept_auroc(np.array([[1.0], [1.0]]), np.array([[0], [1]]))
    assert tie[0] == pytest.approx(0.5)
    assert np.isnan(fm.concept_auroc(u, np.zeros((4, 1), int))[0])
    with pytest.raises(ValueError, match="0 and 1"):
        fm.concept_auroc(u, t * 2)


def test_intercept_share_by_hand() -> None:
    H = np.array([[1.0, 2.0]])
    W = np.array([[1.0, 1.0], [0.0, 0.0]])
    b = np.array([1.0, 0.0])
    # class 0 wins: logit 1 + 1 + 2 = 4; |b| / (|b| + |1| + |2|) = 1/4
    assert fm.intercept_share(H, W, b)["median"] == pytest.approx(0.25)
    assert fm.intercept_share(np.zeros((1, 2)), W, b)["median"] == pytest.approx(1.0)


def test_top_unit_unused_rate_by_hand() -> None:
    H = np.array([[5.0, 1.0], [1.0, 5.0]])
    W = np.array([[0.0, 1.0], [0.0, 0.0]])  # class 0 uses only concept 1
    b = np.array([0.0, -10.0])
    assert fm.top_unit_unused_rate(H, W, b) == pytest.approx(0.5)


def test_deletion_insertion_by_hand_and_against_random() -> None:
    H = np.array([[2.0, 1.0]])
    W = np.array([[1.0, 0.0], [0.0, 0.0]])
    b = np.zeros(2)
    out = fm.deletion_insertion(H, W, b, n_random=4, seed=0)
    sig = 1 / (1 + np.exp(-2.0))
    # deletion: full (p = sig(2)), after 1 step concept 0 gone (p = 0.5), after 2 (0.5)
    np.testing.assert_allclose(out["deletion_curve"], [sig, 0.5, 0.5])
    np.testing.assert_allclose(out["insertion_curve"], [0.5, sig, sig])
    assert out["deletion_auc"] == pytest.approx(0.5 * (sig + 0.5) / 2 + 0.5 * 0.5)
    assert out["deletion_auc"] <= out["random_deletion_auc"]
    assert out["insertion_auc"] >= out["random_insertion_auc"]


def test_prediction_agreement_and_intervention_gain() -> None:
    assert fm.prediction_agreement([0, 1, 2, 2], [0, 1, 1, 2]) == 0.75
    curve = [{"n_corrected": 2, "accuracy": 0.9}, {"n_corrected": 0, "accuracy": 0.6}]
    assert fm.intervention_gain(curve) == pytest.approx(0.3)
    with pytest.raises(ValueError):
        fm.prediction_agreement([0, 1], [0])


def test_name_match_rate_with_named_units_among_a_vocabulary() -> None:
    rng = np.random.default_rng(2)
    S = rng.normal(size=(300, 4))  # 4 vocabulary concepts
    U = S[:, [2, 2, 0]] + 0.01 * rng.normal(size=(300, 3))  # 3 units, two track concept 2
    assert fm.name_match_rate(U, S, own=[2, 2, 0]) == 1.0
    assert fm.name_match_rate(U, S, own=[2, 1, 3]) == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="one concept column"):
        fm.name_match_rate(U, S, own=[2, 4, 0])
