"""DN-CBM on a planted joint space: embeddings are sparse mixes of vocabulary embeddings, the
class is set by which ones are present; the SAE's units get the planted words as names and the
sparse head classifies well."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conceptlab.discover.dncbm import DNCBM, DNCBMConfig, fit_dncbm
from conceptlab.discover.dncbm_audit import audit_dncbm
from conceptlab.errors import ConceptlabError

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


def fitted(nec: float = 2) -> tuple:
    Z, y, E = planted(1200, 1)
    Zv, yv, _ = planted(300, 2)
    Zt, yt, _ = planted(300, 3)
    m = fit_dncbm(Z, y, Zv, yv, n_classes=3, vocab=WORDS, vocab_embeddings=E, n_concepts=6,
                  nec=nec, seed=0, sae_options={"min_steps": 800})
    return m, (Z, y, Zv, yv), (Zt, yt), E


def test_dncbm_audit_measures_name_fidelity_against_a_shuffled_name_null() -> None:
    m, _, (Zt, yt), E = fitted()
    rec = audit_dncbm(m, Zt, yt, vocab=WORDS, vocab_embeddings=E)
    assert rec["grounded_by"] == "naming"
    assert rec["unit_fidelity_median"] > 0.8 and rec["name_match_rate"] == 1.0
    assert rec["shuffled_name_fidelity"] < rec["unit_fidelity_median"] - 0.5
    assert rec["trusted"]
    assert "never a decision" in rec["claims"]["decisions_need_concepts"]["reason"]
    assert rec["deletion_auc"] < rec["random_deletion_auc"]


def test_a_random_vocabulary_changes_only_the_names() -> None:
    # what the audit records by construction (agreement 1.0), checked by a real refit
    m, (Z, y, Zv, yv), (Zt, _), E = fitted()
    rnd = np.random.default_rng(5).normal(size=E.shape)
    r = fit_dncbm(Z, y, Zv, yv, n_classes=3, vocab=WORDS, vocab_embeddings=rnd, n_concepts=6,
                  nec=2, seed=0, sae_options={"min_steps": 800})
    np.testing.assert_array_equal(r.logits(Zt), m.logits(Zt))
    assert r.names != m.names


def test_dncbm_audit_catches_units_under_wrong_names() -> None:
    m, _, (Zt, yt), E = fitted()
    wrong = WORDS[3:] + WORDS[:3]  # every unit renamed to another planted word
    m.names = [wrong[WORDS.index(n)] for n in m.names]
    rec = audit_dncbm(m, Zt, yt, vocab=WORDS, vocab_embeddings=E)
    assert rec["unit_fidelity_median"] < 0.5 and rec["name_match_rate"] == 0.0
    assert not rec["trusted"]


def test_dncbm_reloads_to_identical_predictions(tmp_path: Path) -> None:
    m, _, (Zt, _), _ = fitted()
    back = DNCBM.load(m.save(tmp_path / "model"))
    np.testing.assert_array_equal(back.logits(Zt), m.logits(Zt))
    assert back.concept_names == m.concept_names and back.info["seed"] == 0


def test_dncbm_audit_refuses_a_vocabulary_without_the_units_names() -> None:
    m, _, (Zt, yt), E = fitted()
    with pytest.raises(ConceptlabError, match="not in the given vocabulary"):
        audit_dncbm(m, Zt, yt, vocab=[w.upper() for w in WORDS], vocab_embeddings=E)


def test_dncbm_config_rejects_bad_settings_by_name() -> None:
    assert DNCBMConfig.from_options({"units": 12, "l1": 0.2}).dictionary_options == {"l1": 0.2}
    with pytest.raises(ConceptlabError, match="bad option"):
        DNCBMConfig.from_options({"l11": 0.2})
    with pytest.raises(ConceptlabError, match="sparse autoencoder"):
        DNCBMConfig.from_options({"dictionary": "nmf"})
    for bad in (0, 2.7, "abc", True):
        with pytest.raises(ConceptlabError, match="units must be a positive integer"):
            DNCBMConfig.from_options({"units": bad})
    with pytest.raises(ConceptlabError, match="--seed"):
        DNCBMConfig.from_options({"seed": 3})
