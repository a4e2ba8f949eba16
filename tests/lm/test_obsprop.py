"""ObsProp on a tiny random Llama: each propagation step against the forward pass or autograd."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conceptlab.lm import obsprop as OP
from conceptlab.lm.model import LMError
from tests.lm.tiny import tiny_family, tiny_lm

TEXT = "the cat is a good animal and it was very happy"


def test_final_feature_exact_is_the_gradient_of_the_observable() -> None:
    lm = tiny_lm(seed=1)
    n = OP.observable(lm, ["cat"], ["table"])
    tr = OP.trace(lm, [TEXT])
    x = tr.final[0].clone().requires_grad_(True)
    with torch.enable_grad():
        logits = lm.model.lm_head(lm.final_norm_module()(x))
        (grad,) = torch.autograd.grad(logits @ n, x)
    exact = OP.final_feature(lm, n, tr, "exact")
    assert torch.allclose(exact, grad, atol=1e-5, rtol=1e-4)
    # the paper's rule drops the projection off x: same direction up to that small term
    paper = OP.final_feature(lm, n, tr, "paper")
    assert OP.cosine(paper, exact) > 0.5
    assert not torch.allclose(paper, exact, atol=1e-6)


def test_head_feature_reproduces_the_heads_contribution_in_the_forward_pass() -> None:
    lm = tiny_lm(seed=2)
    lm.model.config._attn_implementation = "eager"
    n_tok = len(lm.encode(TEXT))
    y = torch.randn(lm.d_model, generator=torch.Generator().manual_seed(0))
    every = OP.trace(lm, [TEXT] * n_tok, positions=list(range(n_tok)))
    b = lm.batch([TEXT])
    with torch.no_grad():
        out = lm.model(input_ids=b.input_ids, attention_mask=b.attention_mask,
                       position_ids=b.position_ids, output_attentions=True, use_cache=False)
    layer, head, hd = 1, 3, lm.d_model // 4
    a = out.attentions[layer][0, head, -1]  # the last token's attention pattern (fixed)
    W_O = lm.blocks[layer].self_attn.o_proj.weight.detach().float()
    zh = every.z[layer][-1, head * hd:(head + 1) * hd]
    want = float(zh @ (W_O[:, head * hd:(head + 1) * hd].T @ y))
    node = OP.Node("attn", layer, head)
    got = sum(float(a[j]) * float(OP.head_backward(lm, node, y, every.take([j]), "paper")
                                  @ every.resid_pre[layer][j]) for j in range(n_tok))
    assert got == pytest.approx(want, rel=1e-3, abs=1e-5)
    # another head of the same KV group shares V but not O: a different vector
    other = OP.head_backward(lm, OP.Node("attn", layer, 2), y, every, "paper")
    assert OP.cosine(other, OP.head_backward(lm, node, y, every, "paper")) < 0.99


def test_mlp_feature_is_the_first_order_gradient_through_norm_and_mlp() -> None:
    lm = tiny_lm(seed=3)
    tr = OP.trace(lm, [TEXT])
    y = torch.randn(lm.d_model, generator=torch.Generator().manual_seed(1))
    layer = 2
    block = lm.blocks[layer]
    x = tr.resid_mid[layer][0].clone().requires_grad_(True)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(block.mlp(block.post_attention_layernorm(x)) @ y, x)
    got = OP.mlp_backward(lm, OP.Node("mlp", layer), y, tr, tr, "exact")
    assert torch.allclose(got, grad, atol=1e-5, rtol=1e-4)


def test_boundary_point_finds_the_zero_crossing_on_the_segment() -> None:
    w = torch.tensor([1.0, -2.0, 0.5])
    f = lambda u: torch.tanh(u @ w)  # noqa: E731
    u_pos, u_neg = torch.tensor([2.0, 0.0, 1.0]), torch.tensor([-1.0, 1.0, 0.0])
    u0 = OP.boundary_point(f, u_pos, u_neg)
    assert abs(float(f(u0))) < 1e-6
    t = float((u0 - u_neg).norm() / (u_pos - u_neg).norm())
    assert 0 < t < 1


def test_coupling_coefficient_and_paths() -> None:
    assert OP.coupling_coeff(np.array([2.0, 0.0]), np.array([3.0, 5.0])) == pytest.approx(1.5)
    assert OP.coupling_coeff(np.array([3.0, 5.0]), np.array([2.0, 0.0])) == pytest.approx(6 / 34)
    lm = tiny_lm(seed=4)
    n = OP.observable(lm, ["cat"], ["dog"])
    tr = OP.trace(lm, [TEXT])
    y = OP.path_feature(lm, n, [OP.Node("mlp", 2), OP.Node("attn", 2, 0)], tr, tr)
    manual = OP.head_backward(lm, OP.Node("attn", 2, 0),
                              OP.mlp_backward(lm, OP.Node("mlp", 2),
                                              OP.final_feature(lm, n, tr), tr, tr), tr)
    assert torch.allclose(y, manual)
    with pytest.raises(LMError, match="backwards"):
        OP.path_feature(lm, n, [OP.Node("attn", 1, 0), OP.Node("mlp", 1)], tr, tr)
    feats = OP.component_features(lm, n, tr, tr)
    assert set(feats) == {f"L{i}.H{h}" for i in range(3) for h in range(4)} | {
        f"L{i}.MLP" for i in range(3)}
    att = OP.attributions(lm, n, tr, tr)
    assert all(v == 0 for v in att.values())  # same prompts on both sides: no difference
    with pytest.raises(LMError, match="Llama"):
        OP.trace(tiny_family("gpt2"), [TEXT])
