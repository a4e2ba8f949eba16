"""Explicit concept matching on planted data: the class lives in a few named concepts that
loud distractor concepts drown out for plain cosine; a working matcher must rank same-class
items first, name the planted shared concept for each match, and keep units tied to names."""

from __future__ import annotations

import numpy as np
import pytest

from conceptlab.concepts.bank import ConceptBank
from conceptlab.match import ExplicitMatcher, MatchConfig, MatchError, audit_matcher
from conceptlab.match.ranking import cosine_matrix, ndcg_at, retrieval_metrics

D, K_CLASS, K_DIST = 32, 4, 6


def planted(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, ConceptBank]:
    """Class c holds concept c (weight 1); every item also holds loud distractor concepts."""
    rng = np.random.default_rng(0)
    vectors = np.linalg.qr(rng.normal(size=(D, D)))[0][: K_CLASS + K_DIST]
    names = [f"class concept {k}" for k in range(K_CLASS)] + [
        f"distractor {k}" for k in range(K_DIST)]
    r = np.random.default_rng(seed)
    y = r.integers(0, K_CLASS, n)
    w = np.zeros((n, K_CLASS + K_DIST))
    w[np.arange(n), y] = 1.0
    w[:, K_CLASS:] = r.uniform(0, 4.0, size=(n, K_DIST))
    X = w @ vectors + 0.2 * r.normal(size=(n, D))
    return X.astype(np.float32), y, ConceptBank(vectors, names)


@pytest.fixture(scope="module")
def fitted() -> tuple[ExplicitMatcher, ExplicitMatcher, np.ndarray, np.ndarray]:
    X, y, bank = planted(400, 1)
    Xv, yv, _ = planted(200, 2)
    cfg = MatchConfig(epochs=6, batch_size=64, patience=6)
    tied = ExplicitMatcher(bank, cfg, seed=0).fit(X, y, Xv, yv)
    dense = ExplicitMatcher(bank, cfg, tied=False, seed=0).fit(X, y, Xv, yv)
    Xt, yt, _ = planted(300, 3)
    return tied, dense, Xt, yt


def test_matcher_beats_plain_cosine_where_distractors_dominate(fitted):
    tied, _, Xt, yt = fitted
    plain = retrieval_metrics(cosine_matrix(Xt, Xt), yt)["nDCG@10"]
    learned = retrieval_metrics(tied.similarity(Xt, Xt), yt)["nDCG@10"]
    assert plain < 0.6
    assert learned > plain + 0.25


def test_match_names_the_planted_shared_concept(fitted):
    tied, _, Xt, yt = fitted
    sim = tied.similarity(Xt, Xt)
    np.fill_diagonal(sim, -np.inf)
    hits, total = 0, 0
    for q in range(60):
        g = int(np.argmax(sim[q]))
        if yt[g] != yt[q]:
            continue
        total += 1
        top = tied.shared_concepts(Xt[q], Xt[g], top=1)
        hits += top[0]["concept"] == f"class concept {yt[q]}"
    assert total >= 40
    assert hits / total >= 0.9


def test_contributions_sum_to_the_match_cosine(fitted):
    tied, _, Xt, _ = fitted
    parts = tied.shared_concepts(Xt[0], Xt[1], top=K_CLASS + K_DIST)
    assert sum(p["contribution"] for p in parts) == pytest.approx(
        float(tied.similarity(Xt[:1], Xt[1:2])[0, 0]), abs=1e-5)


def test_audit_passes_tied_units_and_fails_dense_ones(fitted):
    tied, dense, Xt, _ = fitted
    a, b = audit_matcher(tied, Xt), audit_matcher(dense, Xt)
    assert a["unit_fidelity_median"] > 0.8 and a["name_match_rate"] == 1.0 and a["trusted"]
    assert b["name_match_rate"] < 0.5 and not b["trusted"] and b["warnings"]


def test_save_load_round_trip(fitted, tmp_path):
    tied, _, Xt, _ = fitted
    tied.save(tmp_path / "m")
    again = ExplicitMatcher.load(tmp_path / "m")
    np.testing.assert_array_equal(again.embed(Xt), tied.embed(Xt))
    assert again.names == tied.names


def test_ndcg_known_value():
    rel = np.array([[0.0, 1.0, 1.0]])
    disc = 1 / np.log2([2, 3, 4])
    assert ndcg_at(rel, 3) == pytest.approx((disc[1] + disc[2]) / (disc[0] + disc[1]))


def test_bad_input_is_refused():
    X, y, bank = planted(50, 0)
    with pytest.raises(MatchError, match="dimension"):
        ExplicitMatcher(bank).units(X[:, :5])
    with pytest.raises(MatchError, match="two classes"):
        ExplicitMatcher(bank).fit(X, np.zeros(50, int), X, y)
    with pytest.raises(MatchError, match="unknown match setting"):
        MatchConfig.from_dict({"epoch": 3})
