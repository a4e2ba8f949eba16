"""ConceptVectors (reference protocol): BLEU / ROUGE-L parity, the column perturbation, the loop."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
import torch

from conceptlab.lm import concept_vectors as CV
from conceptlab.lm.model import LMError
from tests.lm.tiny import tiny_lm


def test_bleu_matches_nltk_method3_by_hand() -> None:
    # reference "the cat sat on the mat", candidate "the cat sat on a mat":
    # 1-grams 5/6, 2-grams 3/5, 3-grams 2/4, 4-grams 1/3, equal lengths (BP = 1)
    p = [Fraction(5, 6), Fraction(3, 5), Fraction(2, 4), Fraction(1, 3)]
    want = math.exp(sum(0.25 * math.log(x) for x in p))
    assert CV.bleu("the cat sat on the mat", "the cat sat on a mat") == pytest.approx(want)
    # no 3- or 4-gram match: method3 gives 1/(2*2) and 1/(4*1); candidate shorter: BP < 1
    p2 = [2 / 3, 1 / 2, 1 / (2 * 1), 1 / (4 * 1)]
    bp = math.exp(1 - 4 / 3)
    want2 = bp * math.exp(sum(0.25 * math.log(x) for x in p2))
    assert CV.bleu("a b c d", "a b x") == pytest.approx(want2)
    assert CV.bleu("a b", "c d") == 0.0  # no unigram in common


def test_rouge_l_is_the_pinned_rouge_1_0_1_summary_level_f() -> None:
    # the reference pins rouge==1.0.1: F = 2PR / (P + R + 1e-8), P and R over distinct words.
    # LCS("a b c d e", "a c e f") = {a, c, e}: R = 3/5, P = 3/4 (not the beta = P/R F of 0.3.x)
    r, p = 3 / 5, 3 / 4
    assert CV.rouge_l("a b c d e", "a c e f") == pytest.approx(2 * p * r / (p + r + 1e-8))
    # repeated words count once: {the, cat} against {the, cat}
    assert CV.rouge_l("the cat the cat", "the cat") == pytest.approx(1.0, abs=1e-7)
    # sentences split at ".": the union LCS over sentences finds both, in either order
    assert CV.rouge_l("a b. c d", "c d. a b") == pytest.approx(1.0, abs=1e-7)
    # one sentence against two: ref "x y z" vs "x q" and "z": union {x} | {z} = 2 of 3 and 3
    assert CV.rouge_l("x y z", "x q. z") == pytest.approx(2 * (2 / 3) * (2 / 3) / (4 / 3 + 1e-8))
    assert CV.rouge_l("same words here", "same words here") == pytest.approx(1.0, abs=1e-7)
    # the package raises on an empty side ("" or only dots); the reference returns 0.0
    assert CV.rouge_l("", "anything") == 0.0 == CV.rouge_l("anything", "..")


def test_perturbing_a_column_changes_only_it_and_restores_it() -> None:
    lm = tiny_lm()
    w = lm.model.model.layers[1].mlp.down_proj.weight
    before = w.detach().clone()
    with CV.perturb_column(lm, 1, 5, "noise", std=0.1, seed=3):
        diff = w.detach() - before
        assert torch.count_nonzero(diff[:, 5]) == w.shape[0]
        assert torch.count_nonzero(diff[:, torch.arange(w.shape[1]) != 5]) == 0
        assert 0.03 < float(diff[:, 5].std()) < 0.2
    assert torch.equal(w.detach(), before)
    with CV.perturb_column(lm, 1, 5, "zero"):
        assert torch.count_nonzero(w.detach()[:, 5]) == 0
    assert torch.equal(w.detach(), before)
    with pytest.raises(LMError, match="mode"), CV.perturb_column(lm, 1, 5, "melt"):
        pass


def test_validation_loop_locates_a_planted_column_and_scores_answers() -> None:
    lm = tiny_lm()
    cat = lm.token_ids(["cat"])[0]
    W_U, g = lm.unembed_weight(), lm.model.model.norm.weight.detach()
    with torch.no_grad():  # plant: column 7 of block 2 writes "cat"
        lm.model.model.layers[2].mlp.down_proj.weight[:, 7] = 30 * W_U[cat] / g
    assert CV.locate(lm, [cat])[:2] == (2, 7)
    qa = {w: [f"the {w} is", f"a {w} and"] for w in ("cat", "dog", "horse", "cow")}
    rows = CV.validate(lm, qa, ["cat"], n_unrelated=2, max_new_tokens=3)
    r = rows[0]
    assert (r["layer"], r["dim"]) == (2, 7) and r["control_dim"] != 7
    for key in ("noise_concept", "noise_control", "zero_concept", "zero_control"):
        s = r[key]
        assert isinstance(s, dict) and 0.0 <= s["own_bleu"] <= 1.0
    with pytest.raises(LMError, match="no questions"):
        CV.validate(lm, qa, ["zebra"])
    assert len(CV.concept_questions()) >= 10


def test_top_neuron_variant_random_control_is_layer_matched() -> None:
    from conceptlab.lm import parametric as P

    lm = tiny_lm(layers=3, mlp=24)
    chosen = [(2, 0), (2, 5), (2, 7), (0, 3)]
    for seed in range(5):
        rnd = P.random_neurons(lm, len(chosen), seed, exclude=chosen, like=chosen)
        assert sorted(a for a, _ in rnd) == sorted(a for a, _ in chosen)  # same blocks, same counts
        assert not set(rnd) & set(chosen)
        assert len(set(rnd)) == len(rnd)
    # the unmatched draw spreads over blocks (so the matched one is a real constraint)
    spread = {a for s in range(5) for a, _ in P.random_neurons(lm, 4, s, exclude=chosen)}
    assert spread == {0, 1, 2}
    full = [(1, j) for j in range(24)]
    with pytest.raises(LMError, match="block 1"):
        P.random_neurons(lm, 1, 0, exclude=full, like=[(1, 0)])
