"""Neuron decoding: eq. 1 on each side by hand, exact top-k, saved map, search, clamping."""

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
    neuron_extremes,
    search,
    token_index,
    topk_rows,
)
from tests.lm.tiny import tiny_family, tiny_lm


def test_blockwise_topk_is_exact() -> None:
    g = torch.Generator().manual_seed(0)
    L = torch.randn(37, 1024, generator=g)
    L[3, 500:510] = 9.0  # many large values in one block
    for block in (8, 32, 128):
        v, i = topk_rows(L, 10, block)
        rv, _ = torch.topk(L, 10, dim=1)
        assert torch.equal(v, rv)
        assert torch.equal(torch.gather(L, 1, i), rv)


def _hand(lm, side: str, layer: int, neuron: int) -> torch.Tensor:  # type: ignore[no-untyped-def]
    """eq. 1 written out from the Llama modules themselves."""
    mlp = lm.model.model.layers[layer].mlp
    v = {"up": mlp.up_proj.weight[neuron], "gate": mlp.gate_proj.weight[neuron],
         "down": mlp.down_proj.weight[:, neuron]}[side].detach()
    return lm.unembed_weight() @ (lm.model.model.norm.weight.detach() * v)


@pytest.mark.parametrize("side", ["up", "gate", "down"])
def test_decoding_matches_a_hand_computation(side: str) -> None:
    lm = tiny_lm()
    nmap = decode_neurons(lm, k=5, chunk=7, block=2, side=side)
    assert len(nmap) == lm.n_layers * lm.d_mlp and nmap.info["side"] == side
    for layer, neuron in [(0, 0), (1, 7), (2, 23)]:
        logits = _hand(lm, side, layer, neuron)
        r = nmap.row(layer, neuron)
        assert nmap.layer[r] == layer and nmap.neuron[r] == neuron
        assert nmap.top_ids[r].tolist() == torch.topk(logits, 5).indices.tolist()
        z = (logits.max() - logits.mean()) / logits.std(unbiased=False)
        assert nmap.score[r] == pytest.approx(float(z), rel=1e-4)


def test_default_side_is_up_and_sides_differ(tmp_path: Path) -> None:
    lm = tiny_lm()
    up, down = decode_neurons(lm, k=3), decode_neurons(lm, k=3, side="down")
    assert up.info["side"] == "up" and "Davies" in up.info["method"]
    assert "Geva" in down.info["method"]
    assert not np.array_equal(up.top_ids, down.top_ids)
    up.save(tmp_path / "map")
    back = NeuronMap.load(tmp_path / "map")
    assert np.array_equal(back.top_ids, up.top_ids) and back.info["side"] == "up"
    with pytest.raises(LMError, match="side"):
        decode_neurons(lm, side="sideways")
    with pytest.raises(LMError, match="no gate"):
        decode_neurons(tiny_family("gpt2"), side="gate")


def test_gpt2_layernorm_centres_the_read_vector() -> None:
    lm = tiny_family("gpt2")
    nmap = decode_neurons(lm, k=4, side="up")
    w = lm.model.transformer.h[1].mlp.c_fc.weight.detach()[:, 5]  # Conv1D: (in, out)
    logits = lm.unembed_weight() @ (lm.model.transformer.ln_f.weight.detach() * (w - w.mean()))
    assert nmap.top_ids[nmap.row(1, 5)].tolist() == torch.topk(logits, 4).indices.tolist()


def test_search_finds_planted_neurons_on_each_side() -> None:
    lm = tiny_lm()
    cat, dog = lm.token_ids(["cat", "dog"])
    W_U, g = lm.unembed_weight(), lm.model.model.norm.weight.detach()
    # plant: neuron 4 of block 1 writes "cat"; neuron 9 of block 2 reads "dog"
    with torch.no_grad():
        lm.model.model.layers[1].mlp.down_proj.weight[:, 4] = 5 * W_U[cat] / g
        lm.model.model.layers[2].mlp.up_proj.weight[9] = 5 * W_U[dog] / g
    down = decode_neurons(lm, k=3, side="down")
    hits = search(down, "Cat")
    assert hits and (hits[0]["layer"], hits[0]["neuron"]) == (1, 4)
    assert hits[0]["top_tokens"][0] == "cat" and hits[0]["rank_of_word"] == 0
    assert search(down, "cat", token_index=token_index(down)) == hits
    up_hits = search(decode_neurons(lm, k=3), "dog")
    assert (up_hits[0]["layer"], up_hits[0]["neuron"]) == (2, 9)
    with pytest.raises(LMError, match="no token"):
        search(down, "zebra")
    prompts = ["the day was", "it is a", "a stone and"]
    res = confirm_by_clamping(lm, down, 1, 4, prompts, value=20.0, n_control=4)
    assert res["tokens"][0] == "cat" and len(res["control_neurons"]) == 4
    assert 4 not in res["control_neurons"]
    assert res["delta_logp_tokens"] > 0.1 > abs(res["delta_logp_random_tokens"])
    assert res["prompts_raised"] == 3 and res["beats_every_control"]


def test_clamp_value_keeps_the_neurons_sign() -> None:
    lm = tiny_lm()
    prompts = ["the day was", "it is a", "a stone and"]
    ext = neuron_extremes(lm, 0, list(range(lm.d_mlp)), prompts)
    # the extreme is the activation of largest magnitude, sign kept
    _, acts, b = lm.run(prompts, record=["blocks.0.mlp.hook_post"])
    a = acts["blocks.0.mlp.hook_post"][b.attention_mask.bool()]
    j = int(np.flatnonzero(ext < 0)[0])  # a neuron whose usual extreme is negative
    assert ext[j] == pytest.approx(float(a[a[:, j].abs().argmax(), j]))
    nmap = decode_neurons(lm, k=3, side="down")
    res = confirm_by_clamping(lm, nmap, 0, j, prompts, factor=4.0, n_control=2)
    assert res["clamp_value"] == pytest.approx(4 * ext[j], rel=1e-3) and res["clamp_value"] < 0
