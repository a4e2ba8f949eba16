"""A tiny randomly initialised Llama and a word-level tokenizer, built offline for LM tests."""

from __future__ import annotations

import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from conceptlab.lm.model import CausalLM

WORDS = ["the", "a", "cat", "dog", "horse", "cow", "bird", "fish", "lion", "tiger", "table",
         "chair", "car", "house", "stone", "lamp", "is", "an", "animal", "object", "good", "bad",
         "happy", "sad", "day", "film", "was", "very", "and", "it", "of", ".", ",", "!", "?"]


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    vocab = {"<pad>": 0, "<bos>": 1, "<unk>": 2}
    for w in WORDS:
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<bos>",
                                   unk_token="<unk>")


def tiny_lm(seed: int = 0, layers: int = 3, hidden: int = 16, mlp: int = 24) -> CausalLM:
    tok = tiny_tokenizer()
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tok.get_vocab()), hidden_size=hidden,
                      intermediate_size=mlp, num_hidden_layers=layers, num_attention_heads=4,
                      num_key_value_heads=2, max_position_embeddings=64,
                      tie_word_embeddings=False, pad_token_id=0, bos_token_id=1,
                      eos_token_id=None)
    model = LlamaForCausalLM(cfg)
    with torch.no_grad():  # random final-norm gains, so tests see the norm's weight at work
        model.model.norm.weight.uniform_(0.5, 1.5)
    return CausalLM(model, tok, name="tiny-llama")


def tiny_family(family: str, seed: int = 0) -> CausalLM:
    """Tiny random models of other families behind the same adapter (GPT-2, Qwen2, Gemma 3)."""
    from transformers import (
        Gemma3ForCausalLM,
        Gemma3TextConfig,
        GPT2Config,
        GPT2LMHeadModel,
        Qwen2Config,
        Qwen2ForCausalLM,
    )

    tok = tiny_tokenizer()
    v = len(tok.get_vocab())
    torch.manual_seed(seed)
    if family == "llama":
        return tiny_lm(seed)
    if family == "gpt2":
        model = GPT2LMHeadModel(GPT2Config(vocab_size=v, n_embd=16, n_layer=2, n_head=2,
                                           n_positions=64, bos_token_id=1, eos_token_id=None))
    elif family == "qwen2":
        model = Qwen2ForCausalLM(Qwen2Config(vocab_size=v, hidden_size=16, intermediate_size=24,
                                             num_hidden_layers=2, num_attention_heads=4,
                                             num_key_value_heads=2))
    elif family == "gemma3":
        model = Gemma3ForCausalLM(Gemma3TextConfig(
            vocab_size=v, hidden_size=16, intermediate_size=24, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, head_dim=4, sliding_window=8))
    else:
        raise ValueError(family)
    return CausalLM(model, tok, name=f"tiny-{family}")
