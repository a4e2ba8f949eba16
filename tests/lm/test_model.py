"""The causal-LM adapter: exact agreement with a plain forward, padding, hook hygiene, clamping."""

from __future__ import annotations

import pytest
import torch

from conceptlab.lm import edits
from conceptlab.lm.model import FINAL, LMError, hooked
from tests.lm.tiny import tiny_family, tiny_lm

TEXTS = ["the cat is an animal", "a stone", "the very good film was happy and it was a day"]


def _hook_count(model: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_hooks_without_edit_leave_logits_bit_identical() -> None:
    lm = tiny_lm()
    b = lm.batch(TEXTS)
    with torch.inference_mode():
        plain = lm.model(input_ids=b.input_ids, attention_mask=b.attention_mask,
                         position_ids=b.position_ids).logits
        with hooked(lm, record=lm.hook_points()) as acts:
            logits = lm.forward(b)
        n = int(b.attention_mask[0].sum())
        unpadded = lm.model(input_ids=b.input_ids[:1, :n]).logits  # HF defaults, no padding
    assert torch.equal(plain, logits)
    assert len(acts) == len(lm.hook_points())
    assert torch.allclose(unpadded[0], logits[0, :n], atol=1e-6)
    # the recorded final-norm output times W_U is the logits
    assert torch.allclose(acts[FINAL] @ lm.unembed_weight().T, logits, atol=1e-5)
    # resid_post of block i is resid_pre of block i+1, and resid_pre + attn + mlp = resid_post
    for i in range(lm.n_layers - 1):
        assert torch.equal(acts[f"blocks.{i}.hook_resid_post"],
                           acts[f"blocks.{i + 1}.hook_resid_pre"])
    i = 1
    total = (acts[f"blocks.{i}.hook_resid_pre"] + acts[f"blocks.{i}.hook_attn_out"]
             + acts[f"blocks.{i}.hook_mlp_out"])
    assert torch.allclose(total, acts[f"blocks.{i}.hook_resid_post"], atol=1e-6)


def test_left_and_right_padding_give_the_same_activations() -> None:
    lm = tiny_lm()
    points = ["blocks.0.hook_resid_pre", "blocks.1.mlp.hook_post", "blocks.2.hook_resid_post"]
    right_logits, right, rb = lm.run(TEXTS, record=points, side="right")
    left_logits, left, lb = lm.run(TEXTS, record=points, side="left")
    for r, text in enumerate(TEXTS):
        _, alone, _ = lm.run([text], record=points)
        rm, lmask = rb.attention_mask[r].bool(), lb.attention_mask[r].bool()
        for p in points:
            assert torch.allclose(right[p][r][rm], left[p][r][lmask], atol=1e-5), p
            assert torch.allclose(right[p][r][rm], alone[p][0], atol=1e-5), p
        assert torch.allclose(right_logits[r][rm], left_logits[r][lmask], atol=1e-5)
    # reductions agree too
    a = lm.activations(TEXTS, points, reduce="mean", batch_size=2)
    b = lm.activations(TEXTS[::-1], points, reduce="mean", batch_size=3)
    assert torch.allclose(torch.as_tensor(a[points[2]]), torch.as_tensor(b[points[2]][::-1].copy()),
                          atol=1e-5)


def test_hooks_are_removed_after_an_exception() -> None:
    lm = tiny_lm()
    before = _hook_count(lm.model)
    with pytest.raises(RuntimeError, match="boom"), hooked(lm, record=lm.hook_points()):
        assert _hook_count(lm.model) > before
        raise RuntimeError("boom")
    assert _hook_count(lm.model) == before

    def bad(h: torch.Tensor) -> torch.Tensor:
        return h[..., :1]  # wrong shape: raised inside the forward pass

    with pytest.raises(LMError, match="must return shape"):
        lm.run(TEXTS, edits={"blocks.1.hook_resid_post": bad})
    assert _hook_count(lm.model) == before
    with pytest.raises(LMError, match="unknown hook point"):
        lm.run(TEXTS, record=["blocks.1.resid"])
    with pytest.raises(LMError, match="out of range"):
        lm.run(TEXTS, record=["blocks.9.hook_resid_pre"])
    assert _hook_count(lm.model) == before


def test_clamping_a_neuron_changes_logits_exactly_as_by_hand() -> None:
    lm = tiny_lm()
    last = lm.n_layers - 1
    point, neuron, value = f"blocks.{last}.mlp.hook_post", 5, 3.0
    logits, acts, _ = lm.run(TEXTS, record=[point, f"blocks.{last}.hook_resid_post"])
    edited, eacts, _ = lm.run(TEXTS, edits=[edits.clamp(point, [neuron], value)], record=[point])
    assert torch.all(eacts[point][..., neuron] == value)
    # by hand: the residual moves by (value - a) * W_down[:, neuron], then final norm + unembed
    delta = (value - acts[point][..., neuron]).unsqueeze(-1) * lm.down_columns(last)[neuron]
    resid = acts[f"blocks.{last}.hook_resid_post"] + delta
    norm = lm.model.model.norm
    expected = norm(resid) @ lm.unembed_weight().T
    assert torch.allclose(edited, expected, atol=1e-5)
    assert not torch.allclose(edited, logits, atol=1e-3)


def test_steer_and_project_out_act_as_their_formulas() -> None:
    lm = tiny_lm()
    point = "blocks.1.hook_resid_post"
    v = torch.randn(lm.d_model)
    _, acts, _ = lm.run(TEXTS, record=[point])
    _, steered, _ = lm.run(TEXTS, record=[point], edits=[edits.add(point, v, 2.0)])
    assert torch.allclose(steered[point], acts[point] + 2.0 * v, atol=1e-6)
    _, ablated, _ = lm.run(TEXTS, record=[point], edits=[edits.project_out(point, v)])
    assert torch.allclose(ablated[point] @ (v / v.norm()), torch.zeros(()), atol=1e-5)
    with pytest.raises(LMError, match="linearly dependent"):
        edits.project_out(point, torch.stack([v, 2 * v]))


def test_generation_and_next_token_tables() -> None:
    lm = tiny_lm()
    lp = lm.next_token_logprobs(TEXTS)
    assert lp.shape == (len(TEXTS), lm.vocab_size)
    assert torch.allclose(lp.exp().sum(1), torch.ones(len(TEXTS)), atol=1e-5)
    logp, targets, rows = lm.token_logprobs(TEXTS, batch_size=2)
    n_pred = sum(len(lm.encode(t)) - 1 for t in TEXTS)
    assert logp.shape == (n_pred, lm.vocab_size) and len(targets) == len(rows) == n_pred
    text = lm.generate("the cat", max_new_tokens=4)
    assert len(text.split()) == 4
    with pytest.raises(LMError, match="empty batch"):
        lm.batch([])


@pytest.mark.parametrize("family", ["gpt2", "qwen2", "gemma3"])
def test_other_families_share_the_hook_scheme(family: str) -> None:
    lm = tiny_family(family)
    b = lm.batch(TEXTS, side="left")
    with torch.inference_mode():
        plain = lm.forward(b)
        with hooked(lm, record=lm.hook_points()) as acts:
            logits = lm.forward(b)
    assert torch.equal(plain, logits) and len(acts) == len(lm.hook_points())
    assert acts["blocks.1.mlp.hook_post"].shape[-1] == lm.d_mlp
    points = ["blocks.1.hook_resid_post", "blocks.0.mlp.hook_post"]
    _, right, rb = lm.run(TEXTS, record=points, side="right")
    _, left, lb = lm.run(TEXTS, record=points, side="left")
    for p in points:
        for r in range(len(TEXTS)):
            assert torch.allclose(right[p][r][rb.attention_mask[r].bool()],
                                  left[p][r][lb.attention_mask[r].bool()], atol=1e-5)
    if family == "gemma3":  # Gemma's RMSNorm scales by (1 + weight)
        w = lm.final_norm_module().weight.detach()
        assert torch.equal(lm.final_norm_gain(), w + 1)
    else:  # the sub-layers' outputs add up to the block's output
        total = sum(acts[f"blocks.1.{k}"] for k in ("hook_resid_pre", "hook_attn_out",
                                                    "hook_mlp_out"))
        assert torch.allclose(total, acts["blocks.1.hook_resid_post"], atol=1e-5)


def test_unsupported_architecture_is_named() -> None:
    from conceptlab.lm.model import CausalLM

    lm = tiny_lm()
    lm.model.config.model_type = "mamba"
    with pytest.raises(LMError, match="unsupported architecture 'mamba'"):
        CausalLM(lm.model, lm.tokenizer)
