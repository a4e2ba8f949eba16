"""DN-CBM on a planted joint space: embeddings are sparse mixes of vocabulary embeddings, the
class is set by which ones are present; the SAE's units get the planted words as names and the
sparse head classifies well."""

from __future__ import annotations

import numpy as np

from conceptlab.discover.dncbm import fit_dncbm

WORDS = ["stripes", "dots", "fur", "metal", "glass", "wood"]


def planted(n: int, seed: int):
    r = np.random.default_rng(0)
    E = np.abs(r.normal(size=(len(WORDS), 24))) * (r.random((len(WORDS), 24)) < 0.35)
    E /= np.linalg.norm(E, axis=1, keepdims=True)
    rr = np.random.default_rng(seed)
    y = rr.integers(0, 3, n)
    U = np.zeros((n, len(WORDS)))
    for i, c in enumerate(y):  # class c shows word 2c or 2c+1 (or both)
        pick = rr.choice([2 * c, 2 * c + 1], rr.integers(1, 3), replace=False)
        U[i, pick] = rr.uniform(0.5, 1.5, len(pick))
    Z = U @ E + 0.01 * rr.normal(size=(n, 24))
    return Z.astype(np.float32), y, E


def test_dncbm_names_units_and_classifies() -> None:
    Z, y, E = planted(1200, 1)
    Zv, yv, _ = planted(300, 2)
    Zt, yt, _ = planted(300, 3)
    m = fit_dncbm(Z, y, Zv, yv, n_classes=3, vocab=WORDS, vocab_embeddings=E, n_concepts=6,
                  nec=2, seed=0, sae_options={"min_steps": 800})
    assert set(m.names) == set(WORDS)  # each unit names itself after one planted word
    assert (m.name_scores > 0.9).all()
    acc = float((m.predict(Zt) == yt).mean())
    assert acc > 0.9, acc
    assert m.codes(Zt).shape == (300, len(m.alive)) and m.head.nec <= 2 + 1e-9
    assert m.info["alive_units"] == len(m.concept_names)
