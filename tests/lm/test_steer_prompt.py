"""Steering against prompting: batched generation, per-row steering, scoring and selection."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conceptlab.lm import steer_prompt as SP
from conceptlab.lm.model import LMError
from tests.lm.tiny import WORDS, tiny_lm


def bag_embed(texts: list[str] | tuple[str, ...]) -> np.ndarray:
    """A judge that counts the tiny vocabulary's words (independent of any method)."""
    out = np.zeros((len(texts), len(WORDS) + 1))
    for r, t in enumerate(texts):
        for w in t.split():
            out[r, WORDS.index(w) if w in WORDS else len(WORDS)] += 1
        out[r, -1] += 0.1
    return out


def test_row_add_and_batched_generation_match_one_by_one() -> None:
    lm = tiny_lm(seed=5)
    h = torch.zeros(3, 2, lm.d_model)
    v = np.ones(lm.d_model, dtype=np.float32)
    got = SP.row_add("blocks.0.hook_resid_post", v, [0.0, 1.0, -2.0]).fn(h)
    assert torch.equal(got[:, 0, 0], torch.tensor([0.0, 1.0, -2.0]))
    with pytest.raises(LMError, match="coefficients"):
        SP.row_add("blocks.0.hook_resid_post", v, [1.0]).fn(h)
    prompts = ["the cat is", "a very good day and it was"]
    batched = SP.generate(lm, prompts, max_new_tokens=5)
    one = [lm.generate(p, max_new_tokens=5) for p in prompts]  # keeps special tokens
    special = ("<unk>", "<bos>", "<pad>")
    assert [b.split() for b in batched] == [[w for w in o.split() if w not in special]
                                            for o in one]


def test_scores_and_choice_follow_the_judges() -> None:
    assert SP.harmonic(np.array([1.0]), np.array([0.5]))[0] == pytest.approx(2 / 3)
    s = SP.score(bag_embed, ["cat cat", "table"], "cat", ["table", "table"],
                 nll=np.array([2.0, 1.0]), nll_base=np.array([1.0, 1.0]))
    assert s["concept"][0] > 0.9 and s["concept"][1] < 0.1
    assert s["fluency"][0] == pytest.approx(np.exp(-1.0)) and s["fluency"][1] == 1.0
    sel = np.array([True, False])
    by = {0.5: {"aggregate": np.array([0.2, 0.9])}, 1.0: {"aggregate": np.array([0.4, 0.0])}}
    assert SP.choose(by, sel) == 1.0  # chosen on the selection rows, blind to the held-out one


def test_evaluate_runs_every_method_and_prompting_on_a_tiny_model() -> None:
    lm = tiny_lm(seed=6)
    concepts = (SP.Concept("animals", "cat dog horse", ("cat", "dog")),
                SP.Concept("objects", "table chair lamp", ("table", "chair")),
                SP.Concept("moods", "happy sad", ("happy", "sad")))
    res = SP.evaluate(lm, bag_embed, concepts=concepts,
                      instructions=("the cat is", "a day was", "the film was"), layer=1,
                      strengths=(0.5, 4.0), n_select=2, max_new_tokens=3)
    assert set(res["summary"]) == {"unsteered", "prompting", "mean_diff", "pca_diff", "probe",
                                   "direct_path"}
    for row in res["per_concept"]:
        for m in ("mean_diff", "probe"):
            assert row["methods"][m]["strength"] in (0.5, 4.0)
    assert res["aggregate_minus_prompting"]["probe"]["n"] == 3
    with pytest.raises(LMError, match="held-out"):
        SP.evaluate(lm, bag_embed, concepts=concepts, instructions=("a", "b"), n_select=2)
