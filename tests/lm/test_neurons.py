"""Neuron decoding: matches the definition (eq. 1), exact top-k, saved map, search, clamping."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from conceptlab.lm.model import LMError
from conceptlab.lm.neurons import (
    NeuronMap,
    confirm_by_clamping,
    decode_neurons,
    search,
    token_index,
    topk_rows,
)
from tests.lm.tiny import tiny_lm


def test_blockwise_topk_is_exact() -> None:
    g = torch.Generator().manual_seed(0)
    L = torch.randn(37, 1024, generator=g)
    L[3, 500:510] = 9.0  # many large values in one block
    for block in (8, 32, 128):
        v, i = topk_rows(L, 10, block)
        rv, _ = torch.topk(L, 10, dim=1)
        assert torch.equal(v, rv)
        assert torch.equal(torch.gather(L, 1, i), rv)


def test_decoding_matches_the_definition_and_saves(tmp_path: Path) -> None:
    lm = tiny_lm()
    nmap = decode_neurons(lm, k=5, chunk=7, block=2)
    assert len(nmap) == lm.n_layers * lm.d_mlp
    W_U = lm.unembed_weight()
    g = lm.model.model.norm.weight.detach()
    for layer, neuron in [(0, 0), (1, 7), (2, 23)]:
        w = lm.model.model.layers[layer].mlp.down_proj.weight.detach()[:, neuron]
        logits = W_U @ (g * w)  # eq. 1 written out
        r = nmap.row(layer, neuron)
        assert nmap.layer[r] == layer and nmap.neuron[r] == neuron
        assert nmap.top_ids[r].tolist() == torch.topk(logits, 5).indices.tolist()
        z = (logits.max() - logits.mean()) / logits.std(unbiased=False)
        assert nmap.score[r] == pytest.approx(float(z), rel=1e-4)
    nmap.save(tmp_path / "map")
    back = NeuronMap.load(tmp_path / "map")
    assert np.array_equal(back.top_ids, nmap.top_ids) and back.tokens == nmap.tokens


def test_search_finds_a_neuron_made_to_promote_a_word() -> None:
    lm = tiny_lm()
    cat = lm.token_ids(["cat"])[0]
    W_U, g = lm.unembed_weight(), lm.model.model.norm.weight.detach()
    with torch.no_grad():  # plant: neuron 4 of block 1 writes the "cat" unembedding direction
        lm.model.model.layers[1].mlp.down_proj.weight[:, 4] = 5 * W_U[cat] / g
    nmap = decode_neurons(lm, k=3)
    hits = search(nmap, "Cat")
    assert hits and (hits[0]["layer"], hits[0]["neuron"]) == (1, 4)
    assert hits[0]["top_tokens"][0] == "cat" and hits[0]["rank_of_word"] == 0
    assert search(nmap, "cat", token_index=token_index(nmap)) == hits
    with pytest.raises(LMError, match="no token"):
        search(nmap, "zebra")
    # clamping it raises P(cat) on neutral prompts, more than random tokens move
    res = confirm_by_clamping(lm, nmap, 1, 4, ["the day was", "it is a", "a stone and"],
                              value=20.0)
    assert res["tokens"][0] == "cat"
    assert res["delta_logp_tokens"] > 0.1 > abs(res["delta_logp_random_tokens"])
    assert res["prompts_raised"] == 3
