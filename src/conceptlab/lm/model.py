"""A causal-LM adapter with one hook-point scheme, padding-correct batching and safe hooks.

Hook points are named as in TransformerLens (Nanda & Bloom, 2022), whatever the architecture:

==========================  ===========================================================
``blocks.{i}.hook_resid_pre``   residual stream entering block ``i`` (``d_model``)
``blocks.{i}.hook_attn_out``    what the attention sub-layer adds to the stream (``d_model``)
``blocks.{i}.hook_mlp_out``     what the MLP sub-layer adds to the stream (``d_model``)
``blocks.{i}.hook_resid_post``  residual stream leaving block ``i`` (``d_model``)
``blocks.{i}.mlp.hook_post``    MLP neuron activations, the input of the down-projection
                                (``d_mlp``; for gated MLPs ``act(gate) * up``)
``ln_final.hook_normalized``    the final norm's output, what the unembedding reads
==========================  ===========================================================

Families: Llama (and Qwen, Mistral, Phi-3, OLMo, SmolLM), Gemma and GPT-2 (``MODEL_TYPES``).
For Gemma 2/3, ``hook_attn_out`` / ``hook_mlp_out`` are the sub-layers' outputs *before* the
post-attention / post-feed-forward norms that Gemma applies ahead of the residual sum.

A read point is a *module output* (forward hook) or a *module input* (forward pre-hook);
both can be recorded or replaced. ``hooked(lm, record=..., edits=...)`` attaches them and
removes every one when the block ends, even when it raises.

Batching: texts are tokenised one by one and padded by this module (left or right), and the
position ids are computed from the attention mask, so a prompt's activations do not depend on
how much padding surrounds it (Hugging Face's default positions count left padding; rotary
models are blind to that constant shift, learned absolute positions such as GPT-2's are not).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from conceptlab import hooks
from conceptlab.errors import ConceptlabError
from conceptlab.hooks import HookError, get_module
from conceptlab.utils.hashing import hash_json, hash_module
from conceptlab.utils.progress import progress
from conceptlab.utils.registry import Registry

Side = Literal["left", "right"]
EditFn = Callable[[torch.Tensor], torch.Tensor]
#: ``{point: fn}``, or a sequence of objects with ``.point`` and ``.fn`` (``lm.edits.Edit``)
Edits = Mapping[str, EditFn] | Sequence[Any] | None
HOOK_KINDS = ("hook_resid_pre", "hook_attn_out", "hook_mlp_out", "hook_resid_post",
              "mlp.hook_post")
FINAL = "ln_final.hook_normalized"
_NAME = re.compile(r"^blocks\.(\d+)\.(hook_resid_pre|hook_attn_out|hook_mlp_out|"
                   r"hook_resid_post|mlp\.hook_post)$")


class LMError(ConceptlabError, ValueError):
    """Raised for an unknown hook point, an unsupported architecture or bad LM input."""


@dataclass(frozen=True)
class Architecture:
    """Where a family keeps its parts (``named_modules`` paths, ``{i}`` = block index)."""

    family: str
    blocks: str  # the ModuleList of blocks
    attn: str  # relative to a block
    mlp: str  # relative to a block
    down: str  # relative to a block: the MLP output projection (its input = neurons)
    final_norm: str
    unembed: str
    norm_offset: float = 0.0  # Gemma's RMSNorm scales by (1 + weight)
    down_transposed: bool = False  # GPT-2's Conv1D stores (in, out)


#: family -> where its parts live (a new family is one ``ARCHITECTURES.add``)
ARCHITECTURES: Registry[Architecture] = Registry.of("LM architecture", {
    "llama": Architecture("llama", "model.layers", "self_attn", "mlp", "mlp.down_proj",
                          "model.norm", "lm_head"),
    "gemma": Architecture("gemma", "model.layers", "self_attn", "mlp", "mlp.down_proj",
                          "model.norm", "lm_head", norm_offset=1.0),
    "gpt2": Architecture("gpt2", "transformer.h", "attn", "mlp", "mlp.c_proj",
                         "transformer.ln_f", "lm_head", down_transposed=True),
}, LMError)
#: Hugging Face ``model_type`` -> family; Qwen, Mistral, Phi-3 and OLMo share Llama's layout.
MODEL_TYPES: Registry[str] = Registry.of("LM model type", {
    "llama": "llama", "qwen2": "llama", "qwen3": "llama", "mistral": "llama", "olmo": "llama",
    "olmo2": "llama", "phi3": "llama", "smollm3": "llama", "gemma": "gemma", "gemma2": "gemma",
    "gemma3_text": "gemma", "gpt2": "gpt2"}, LMError)


def architecture_of(model: nn.Module) -> Architecture:
    """The layout of a Hugging Face causal LM, by its ``config.model_type``."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    family = MODEL_TYPES.get(str(model_type))
    if family is None:
        raise LMError(f"unsupported architecture {model_type!r}; supported model types: "
                      f"{', '.join(sorted(MODEL_TYPES))} (add one to lm.model.MODEL_TYPES)")
    return ARCHITECTURES.lookup(family)


@dataclass
class Batch:
    """Token ids, attention mask (1 = real token) and mask-derived position ids, ``(N, T)``."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    side: Side

    def last_index(self) -> torch.Tensor:
        """Position of each row's last real token."""
        t = torch.arange(self.attention_mask.shape[1])
        return (self.attention_mask.bool() * (t + 1)).argmax(dim=1)


class CausalLM:
    """A Hugging Face causal LM plus a tokenizer, read and edited through named hook points."""

    def __init__(self, model: nn.Module, tokenizer: Any, name: str = "model",
                 record: Mapping[str, Any] | None = None) -> None:
        self.model: Any = model.eval()  # a transformers model: attributes vary by family
        self.tokenizer = tokenizer
        self.name = name
        self.record = dict(record or {})
        self.arch = architecture_of(model)
        self.blocks: Any = get_module(model, self.arch.blocks)
        if not isinstance(self.blocks, nn.ModuleList):
            raise LMError(f"{self.arch.blocks} is not a ModuleList of blocks")
        cfg: Any = self.model.config
        self.n_layers = len(self.blocks)
        self.d_model = int(cfg.hidden_size)
        down: Any = get_module(self.blocks[0], self.arch.down)
        w = down.weight
        self.d_mlp = int(w.shape[0] if self.arch.down_transposed else w.shape[1])
        self.vocab_size = int(self.unembed_weight().shape[0])
        self._fingerprint: str | None = None
        self._vocab: list[str] | None = None

    # ----------------------------------------------------------------------------- identity
    def fingerprint(self) -> str:
        """Hash of the weights and the tokenizer's vocabulary (computed once)."""
        if self._fingerprint is None:
            vocab = self.tokenizer.get_vocab() if hasattr(self.tokenizer, "get_vocab") else {}
            self._fingerprint = hash_json({"weights": hash_module(self.model),
                                           "vocab": hash_json(sorted(vocab.items()))})
        return self._fingerprint

    def vocab_strings(self) -> list[str]:
        """Each token id decoded on its own (``" cat"`` keeps its space); computed once."""
        if self._vocab is None:
            ids = [[i] for i in range(self.vocab_size)]
            self._vocab = [str(s) for s in self.tokenizer.batch_decode(ids)]
        return self._vocab

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "family": self.arch.family, "n_layers": self.n_layers,
                "d_model": self.d_model, "d_mlp": self.d_mlp, "vocab_size": self.vocab_size,
                "fingerprint": self.fingerprint(), **self.record}

    # ----------------------------------------------------------------------------- hook points
    def hook_points(self) -> list[str]:
        """Every hook point, in forward order."""
        names = [f"blocks.{i}.{k}" for i in range(self.n_layers)
                 for k in ("hook_resid_pre", "hook_attn_out", "mlp.hook_post", "hook_mlp_out",
                           "hook_resid_post")]
        return [*names, FINAL]

    def resolve(self, point: str) -> tuple[nn.Module, Literal["input", "output"]]:
        """The module a hook point lives on and whether it reads its input or its output."""
        if point == FINAL:
            return get_module(self.model, self.arch.final_norm), "output"
        m = _NAME.match(point)
        if m is None:
            raise LMError(f"unknown hook point {point!r}; use blocks.{{i}}.<kind> with kind in "
                          f"{', '.join(HOOK_KINDS)}, or {FINAL!r}")
        i, kind = int(m.group(1)), m.group(2)
        if not 0 <= i < self.n_layers:
            raise LMError(f"hook point {point!r}: block {i} out of range 0..{self.n_layers - 1}")
        block = self.blocks[i]
        try:
            if kind == "hook_resid_pre":
                return block, "input"
            if kind == "hook_resid_post":
                return block, "output"
            if kind == "hook_attn_out":
                return get_module(block, self.arch.attn), "output"
            if kind == "hook_mlp_out":
                return get_module(block, self.arch.mlp), "output"
            return get_module(block, self.arch.down), "input"
        except HookError as err:
            raise LMError(str(err)) from err

    def point_dim(self, point: str) -> int:
        return self.d_mlp if point.endswith("mlp.hook_post") else self.d_model

    # ----------------------------------------------------------------------------- weights
    def unembed_weight(self) -> torch.Tensor:
        """The unembedding ``W_U`` as ``(vocab, d_model)``."""
        unembed: Any = get_module(self.model, self.arch.unembed)
        return unembed.weight.detach()

    def final_norm_module(self) -> nn.Module:
        return get_module(self.model, self.arch.final_norm)

    def final_norm_gain(self) -> torch.Tensor:
        """The final norm's per-dimension gain (``d_model``), Gemma's ``1 + w`` included."""
        norm: Any = get_module(self.model, self.arch.final_norm)
        return norm.weight.detach() + self.arch.norm_offset

    def down_columns(self, layer: int) -> torch.Tensor:
        """Output weight of every MLP neuron of block ``layer`` as ``(d_mlp, d_model)`` rows."""
        down: Any = get_module(self.blocks[layer], self.arch.down)
        w = down.weight.detach()
        return w if self.arch.down_transposed else w.T

    # ----------------------------------------------------------------------------- batching
    def encode(self, text: str) -> list[int]:
        """Token ids of one text (with the tokenizer's special tokens, e.g. a BOS)."""
        if not isinstance(text, str) or not text:
            raise LMError(f"expected a non-empty string, got {text!r}")
        return list(self.tokenizer(text)["input_ids"])

    def pad_id(self) -> int:
        for attr in ("pad_token_id", "eos_token_id", "bos_token_id"):
            value = getattr(self.tokenizer, attr, None)
            if value is not None:
                return int(value)
        return 0

    def batch(self, texts: Sequence[str] | Sequence[Sequence[int]], side: Side = "right"
              ) -> Batch:
        """Pad texts (or token-id lists) on ``side``; positions count real tokens only."""
        if isinstance(texts, str):
            raise LMError("batch takes a list of texts, not one string")
        if not len(texts):
            raise LMError("empty batch")
        if side not in ("left", "right"):
            raise LMError(f"padding side must be 'left' or 'right', got {side!r}")
        seqs = [self.encode(t) if isinstance(t, str) else [int(x) for x in t] for t in texts]
        if any(not s for s in seqs):
            raise LMError("a text tokenised to zero tokens")
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self.pad_id(), dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for r, s in enumerate(seqs):
            sl = slice(0, len(s)) if side == "right" else slice(width - len(s), width)
            ids[r, sl] = torch.tensor(s, dtype=torch.long)
            mask[r, sl] = 1
        pos = (mask.cumsum(dim=1) - 1).clamp_min(0)
        return Batch(ids, mask, pos, side)

    def forward(self, batch: Batch) -> torch.Tensor:
        """Logits ``(N, T, vocab)`` for a batch (no cache; hooks attached by the caller act)."""
        dev = self.device
        out = self.model(input_ids=batch.input_ids.to(dev),
                         attention_mask=batch.attention_mask.to(dev),
                         position_ids=batch.position_ids.to(dev), use_cache=False)
        return out.logits

    @property
    def device(self) -> torch.device:
        param = next(self.model.parameters(), None)
        return param.device if param is not None else torch.device("cpu")

    # ----------------------------------------------------------------------------- running
    def run(self, texts: Sequence[str] | Sequence[Sequence[int]], record: Sequence[str] = (),
            edits: Edits = None, side: Side = "right",
            ) -> tuple[torch.Tensor, dict[str, torch.Tensor], Batch]:
        """One forward pass: ``(logits, recorded activations (N, T, dim), batch)``."""
        b = self.batch(texts, side)
        with torch.inference_mode(), hooked(self, record=record, edits=edits) as acts:
            logits = self.forward(b)
        return logits, dict(acts), b

    def activations(self, texts: Sequence[str], points: Sequence[str],
                    reduce: Literal["last", "mean"] = "last", batch_size: int = 16,
                    edits: Edits = None, desc: str = "activations",
                    ) -> dict[str, np.ndarray]:
        """One row per text at each point: the last real token or the mean over real tokens."""
        if reduce not in ("last", "mean"):
            raise LMError(f"reduce must be 'last' or 'mean', got {reduce!r}")
        for p in points:
            self.resolve(p)
        out: dict[str, list[np.ndarray]] = {p: [] for p in points}
        starts = range(0, len(texts), batch_size)
        for s in progress(starts, total=len(starts), desc=desc, unit="batch"):
            chunk = list(texts[s:s + batch_size])
            _, acts, b = self.run(chunk, record=points, edits=edits)
            m = b.attention_mask.unsqueeze(-1).float()
            for p in points:
                a = acts[p].float().cpu()
                if reduce == "last":
                    row = a[torch.arange(len(chunk)), b.last_index()]
                else:
                    row = (a * m).sum(1) / m.sum(1)
                out[p].append(row.numpy())
        return {p: np.concatenate(v).astype(np.float32) for p, v in out.items()}

    def next_token_logprobs(self, texts: Sequence[str], edits: Edits = None,
                            batch_size: int = 16) -> torch.Tensor:
        """Log-probabilities of the next token after each text, ``(N, vocab)``."""
        rows = []
        for s in range(0, len(texts), batch_size):
            logits, _, b = self.run(list(texts[s:s + batch_size]), edits=edits)
            last = logits[torch.arange(logits.shape[0]), b.last_index()]
            rows.append(torch.log_softmax(last.float(), dim=-1).cpu())
        return torch.cat(rows)

    def token_logprobs(self, texts: Sequence[str], edits: Edits = None,
                       batch_size: int = 8) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-position next-token log-probability tables for every text, concatenated.

        Returns ``(logp (M, vocab), targets (M,), row (M,))`` over every real position that has
        a next real token, for perplexity and KL on running text.
        """
        lps, tgts, rows = [], [], []
        for s in range(0, len(texts), batch_size):
            logits, _, b = self.run(list(texts[s:s + batch_size]), edits=edits)
            valid = (b.attention_mask[:, :-1] * b.attention_mask[:, 1:]).bool()
            lp = torch.log_softmax(logits[:, :-1].float(), dim=-1).cpu()
            lps.append(lp[valid])
            tgts.append(b.input_ids[:, 1:][valid])
            rows.append((torch.arange(len(b.input_ids)).unsqueeze(1) + s).expand_as(valid)[valid])
        return torch.cat(lps), torch.cat(tgts), torch.cat(rows)

    def generate(self, prompt: str, max_new_tokens: int = 20,
                 edits: Edits = None) -> str:
        """Greedy continuation of ``prompt`` (full forward per step, so edits act every step)."""
        ids = self.encode(prompt)
        eos = getattr(self.tokenizer, "eos_token_id", None)
        new: list[int] = []
        for _ in range(max_new_tokens):
            logits, _, b = self.run([ids + new], edits=edits)
            nxt = int(logits[0, b.last_index()[0]].argmax())
            if eos is not None and nxt == eos:
                break
            new.append(nxt)
        return str(self.tokenizer.decode(new))

    def token_ids(self, words: Sequence[str]) -> list[int]:
        """The first token id of each word (pass words with their leading space)."""
        out = []
        for w in words:
            ids = self.tokenizer(w, add_special_tokens=False)["input_ids"]
            if not ids:
                raise LMError(f"{w!r} tokenises to nothing")
            out.append(int(ids[0]))
        return out


def edit_map(edits: Edits) -> dict[str, EditFn]:
    """``{point: fn}`` from a mapping or a sequence of edits (``hooks.edit_map``)."""
    return hooks.edit_map(edits)


@contextmanager
def hooked(lm: CausalLM, record: Sequence[str] = (),
           edits: Edits = None) -> Iterator[Mapping[str, torch.Tensor]]:
    """Record and/or edit hook points while the block runs: ``conceptlab.hooks.hooked`` on the
    adapter's hook-point names, with errors raised as ``LMError``.

    ``edits[point](tensor) -> tensor`` replaces the activation (same shape); recording at a
    point that is also edited sees the edited value. Every hook is removed after the block.
    """
    try:
        with hooks.hooked(lm, record=record, edits=edits) as acts:
            yield acts
    except HookError as err:
        raise LMError(str(err).replace("a tensor of shape", "shape")) from err


def load_lm(spec: str = "smollm2", dtype: torch.dtype | str | None = None,
            device: torch.device | str | None = None) -> CausalLM:
    """Load a causal LM by spec (``smollm2`` default, a Hugging Face name or a folder).

    ``device``/``dtype``: ``None`` follows the device rule (``conceptlab.device``: the GPU when
    torch sees one; float32 on the CPU, bfloat16 on a GPU). Both are recorded in
    ``describe()``; the dtype also changes ``fingerprint()`` (the weights hash), the device
    does not."""
    from conceptlab.device import dtype_name, resolve_device, resolve_dtype
    from conceptlab.encoders.causal_lm import load_causal_lm

    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev, "lm")
    model, tokenizer, record = load_causal_lm(spec, dtype=dt)
    model.to(dev)
    record = {**record, "device": str(dev), "dtype": dtype_name(dt)}
    return CausalLM(model, tokenizer, name=spec, record=record)
