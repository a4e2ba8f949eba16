"""Concept Lancet on planted compositions: inputs built from two known concepts (plus a shared
offset and noise) must decompose into exactly those two, with their weights in order, and a
transplant must swap one for another and leave the other alone."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import Lasso

from conceptlab.lancet.decompose import Lancet, nonneg_lasso
from conceptlab.lancet.dictionary import (
    ConceptDictionary,
    DictionaryError,
    parse_dictionary,
    sprite_dictionary_texts,
)
from conceptlab.lancet.edit import fixed_edit, group_predictions, transplant

D, K = 64, 12


def planted_dictionary() -> ConceptDictionary:
    rng = np.random.default_rng(0)
    names = [f"c{k}" for k in range(K)]
    d = ConceptDictionary(names, ["colour"] * 6 + ["shape"] * 6, [[n] for n in names])
    d.vectors = rng.normal(size=(K, D)).astype(np.float32)
    d.vectors /= np.linalg.norm(d.vectors, axis=1, keepdims=True)
    return d


def compose(lancet: Lancet | None, dictionary: ConceptDictionary, pairs: np.ndarray,
            weights: np.ndarray, seed: int) -> np.ndarray:
    """Inputs = common offset + w1 * atom_a + w2 * atom_b + noise (atoms: centred concepts)."""
    V = dictionary.vectors.astype(np.float64)
    atoms = V - V.mean(0)
    atoms /= np.linalg.norm(atoms, axis=1, keepdims=True)
    r = np.random.default_rng(seed)
    common = np.random.default_rng(99).normal(size=D)
    common = 3 * common / np.linalg.norm(common)
    X = common + weights[:, :1] * atoms[pairs[:, 0]] + weights[:, 1:] * atoms[pairs[:, 1]]
    return X + 0.02 * r.normal(size=X.shape)


def random_pairs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    r = np.random.default_rng(seed)
    pairs = np.stack([r.integers(0, 6, n), r.integers(6, 12, n)], axis=1)
    weights = np.stack([r.uniform(0.8, 1.2, n), r.uniform(0.3, 0.5, n)], axis=1)
    return pairs, weights


@pytest.fixture(scope="module")
def fitted() -> tuple[Lancet, ConceptDictionary]:
    d = planted_dictionary()
    pairs, w = random_pairs(400, 1)
    return Lancet.fit(d, compose(None, d, pairs, w, 1), lam=0.002), d


def test_nonneg_lasso_matches_sklearn():
    r = np.random.default_rng(3)
    A, Y = r.normal(size=(8, 20)), r.normal(size=(3, 20))
    W = nonneg_lasso(Y, A, lam=0.5, iters=5000, tol=1e-12)
    for i in range(3):
        ref = Lasso(alpha=0.5 / 20, positive=True, fit_intercept=False, tol=1e-12,
                    max_iter=100000).fit(A.T, Y[i]).coef_
        np.testing.assert_allclose(W[i], ref, atol=1e-5)


def test_decomposition_recovers_the_planted_composition(fitted):
    lancet, d = fitted
    pairs, w = random_pairs(100, 2)
    W = lancet.coefficients(compose(lancet, d, pairs, w, 2))
    top2 = np.sort(np.argsort(-W, axis=1)[:, :2], axis=1)
    assert (top2 == np.sort(pairs, axis=1)).all(axis=1).mean() >= 0.95
    rows = np.arange(len(W))
    assert (W[rows, pairs[:, 0]] > W[rows, pairs[:, 1]]).mean() >= 0.95  # weights in order
    others = W.copy()
    others[rows, pairs[:, 0]] = others[rows, pairs[:, 1]] = 0
    assert others.max(axis=1).mean() < 0.3 * W[rows, pairs[:, 1]].mean()  # sparse


def test_transplant_swaps_one_concept_and_keeps_the_other(fitted):
    lancet, d = fitted
    pairs, w = random_pairs(60, 4)
    pairs[:, 0] = 0  # every input holds c0 (and one shape)
    X = compose(lancet, d, pairs, w, 4)
    Xe = transplant(lancet, X, "replace", "c0", "c3")
    W = lancet.coefficients(Xe)
    rows = np.arange(len(W))
    assert (np.argmax(W[:, :6], axis=1) == 3).all()
    assert (np.argmax(W[:, 6:], axis=1) + 6 == pairs[:, 1]).all()
    assert W[rows, 3] == pytest.approx(lancet.coefficients(X)[rows, 0], rel=0.15)
    colours = list(range(6))
    assert (group_predictions(lancet, Xe, colours) == 3).mean() >= 0.9
    removed = lancet.coefficients(transplant(lancet, X, "remove", "c0"))
    assert removed[:, 0].max() < 0.1
    # a fixed strength far too small fails the same edit
    weak = lancet.coefficients(fixed_edit(lancet, X, "replace", 0.05, "c0", "c3"))
    assert (np.argmax(weak[:, :6], axis=1) == 0).all()


def test_dictionary_format_and_errors():
    d = parse_dictionary(sprite_dictionary_texts())
    assert "red" in d.names and d.groups[d.index("circle")] == "shape"
    assert all(len(s) == 5 for s in d.stimuli)
    with pytest.raises(DictionaryError, match="group/concept"):
        parse_dictionary("[red]\na red thing\n")
    with pytest.raises(DictionaryError, match="before the first"):
        parse_dictionary("a red thing\n[colour/red]\n")
    with pytest.raises(DictionaryError, match="without stimulus"):
        parse_dictionary("[colour/red]\n[colour/blue]\nblue\n")
