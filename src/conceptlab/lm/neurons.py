"""Every MLP neuron read through the final norm and the unembedding: its top tokens and a score.

"Decoding specialised feature neurons in LLMs with the final projection layer" (Lhotak et al.,
2024): neuron ``j`` of block ``l`` writes ``a_j * W_down[:, j]`` into the residual stream, so
its direct effect on the logits is proportional to

    logits_j = W_U (g * W_down[:, j])                                          (eq. 1)

with ``g`` the final norm's gain (RMSNorm's per-dimension weight; the norm's scalar 1/rms
does not change the ranking of tokens). The tokens with the largest logits name what the
neuron promotes. Its score is the z-score of the top logit over the vocabulary,
``(max - mean) / std``; mean and variance come in closed form from the unembedding's row mean
``mu`` and covariance ``S``: mean_j = c_j . mu, var_j = c_j^T S c_j, so the only pass over the
``d_mlp x vocab`` logits is the top-k (``topk_rows``, exact, through block maxima), done chunk
by chunk while the chunk's logits are still in cache.

The map of all neurons is saved as safetensors (``neurons.safetensors`` + ``neurons.json``);
``search`` finds neurons whose top tokens hold a word, and ``confirm_by_clamping`` checks a
neuron causally: clamped high on neutral prompts, the probability of its tokens must rise.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.numpy import load_file, save_file

from conceptlab.lm.edits import clamp
from conceptlab.lm.effects import token_mass
from conceptlab.lm.model import CausalLM, LMError
from conceptlab.utils.io import atomic_dir, read_json, write_json_atomic
from conceptlab.utils.progress import progress

MAP_FORMAT = 1


@dataclass
class NeuronMap:
    """Top-k tokens of every neuron, ``(N, k)``, rows ordered by (layer, neuron)."""

    layer: np.ndarray  # (N,) int32
    neuron: np.ndarray  # (N,) int32
    top_ids: np.ndarray  # (N, k) int32
    top_logits: np.ndarray  # (N, k) float32
    score: np.ndarray  # (N,) float32: z-score of the top logit
    tokens: list[str]  # decoded vocabulary, for display and search
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.layer)

    def row(self, layer: int, neuron: int) -> int:
        d_mlp = int(self.info["d_mlp"])
        return int(layer) * d_mlp + int(neuron)

    def describe(self, r: int, k: int = 10) -> dict[str, Any]:
        return {"layer": int(self.layer[r]), "neuron": int(self.neuron[r]),
                "score": round(float(self.score[r]), 3),
                "top_tokens": [self.tokens[int(t)] for t in self.top_ids[r, :k]],
                "top_logits": [round(float(v), 3) for v in self.top_logits[r, :k]]}

    def save(self, folder: str | Path) -> Path:
        with atomic_dir(folder) as tmp:
            save_file({"layer": self.layer, "neuron": self.neuron, "top_ids": self.top_ids,
                       "top_logits": self.top_logits, "score": self.score},
                      str(tmp / "neurons.safetensors"))
            write_json_atomic(tmp / "neurons.json", {"format": MAP_FORMAT, "info": self.info,
                                                     "tokens": self.tokens})
        return Path(folder)

    @classmethod
    def load(cls, folder: str | Path) -> NeuronMap:
        folder = Path(folder)
        meta = read_json(folder / "neurons.json")
        if meta.get("format") != MAP_FORMAT:
            raise LMError(f"{folder}: unsupported neuron map format {meta.get('format')!r}")
        arr = load_file(str(folder / "neurons.safetensors"))
        return cls(arr["layer"], arr["neuron"], arr["top_ids"], arr["top_logits"],
                   arr["score"], meta["tokens"], meta["info"])


def neuron_output_vectors(lm: CausalLM, layer: int) -> torch.Tensor:
    """``g * W_down[:, j]`` for every neuron of ``layer``: ``(d_mlp, d_model)`` float32."""
    return (lm.down_columns(layer).float() * lm.final_norm_gain().float()).contiguous()


def topk_rows(L: torch.Tensor, k: int, block: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact row-wise top-k, found through block maxima (what ``torch.topk`` returns, faster).

    Any of a row's k largest values lies in one of the k blocks with the largest maxima, so
    one vectorised max per block, a top-k over the blocks and a top-k over the k * block
    gathered candidates replace the sort-like pass over the whole row.
    """
    r, V = L.shape
    nb = V // block
    if V % block or nb <= k:
        return torch.topk(L, k, dim=1)
    best = torch.topk(L.view(r, nb, block).amax(2), k, dim=1, sorted=False).indices
    cand = (best[:, :, None] * block + torch.arange(block, device=L.device)).reshape(r, -1)
    v, i = torch.topk(L.gather(1, cand), k, dim=1)
    return v, cand.gather(1, i)


def decode_neurons(lm: CausalLM, layers: Sequence[int] | None = None, k: int = 10,
                   chunk: int = 256, block: int = 128,
                   on_layer: Callable[[int], None] | None = None) -> NeuronMap:
    """The top-``k`` tokens and score of every MLP neuron in ``layers`` (default all)."""
    if k < 1:
        raise LMError("k must be >= 1")
    layers = list(range(lm.n_layers)) if layers is None else [int(i) for i in layers]
    W = lm.unembed_weight().float().contiguous()  # (V, D)
    mu = W.mean(0)
    S = torch.cov(W.T, correction=0)  # (D, D)
    Wt = W.T.contiguous()  # (D, V): row-major right operand for the GEMM
    ids, vals, scores, lay, neu = [], [], [], [], []
    t0 = time.perf_counter()
    with torch.inference_mode():
        for layer in progress(layers, total=len(layers), desc="decoding neurons", unit="layer"):
            C = neuron_output_vectors(lm, layer)
            mean = C @ mu
            std = ((C @ S) * C).sum(1).clamp_min(1e-12).sqrt()
            top1 = []
            for s in range(0, C.shape[0], chunk):
                logits = C[s:s + chunk] @ Wt
                v, i = topk_rows(logits, k, block)
                ids.append(i.to(torch.int32))
                vals.append(v)
                top1.append(v[:, 0])
            scores.append((torch.cat(top1) - mean) / std)
            lay.append(torch.full((C.shape[0],), layer, dtype=torch.int32))
            neu.append(torch.arange(C.shape[0], dtype=torch.int32))
            if on_layer is not None:
                on_layer(layer)
    seconds = time.perf_counter() - t0
    tokens = decoded_vocab(lm)
    info = {"model": lm.name, "model_fingerprint": lm.fingerprint(), "layers": layers, "k": k,
            "d_mlp": lm.d_mlp, "n_neurons": int(sum(len(x) for x in lay)),
            "seconds": round(seconds, 3), "method": "W_U (g * W_down[:, j]) (Lhotak et al. 2024)"}
    return NeuronMap(torch.cat(lay).numpy(), torch.cat(neu).numpy(), torch.cat(ids).numpy(),
                     torch.cat(vals).numpy().astype(np.float32),
                     torch.cat(scores).numpy().astype(np.float32), tokens, info)


def decoded_vocab(lm: CausalLM) -> list[str]:
    """Each token id decoded on its own (``" cat"`` keeps its space)."""
    return list(lm.vocab_strings())


def word_token_ids(nmap: NeuronMap, word: str) -> list[int]:
    """Token ids whose text is the word, with or without a leading space, any case."""
    w = word.strip().lower()
    if not w:
        raise LMError("empty search word")
    return [i for i, t in enumerate(nmap.tokens) if t.strip().lower() == w]


def search(nmap: NeuronMap, word: str, top: int = 10,
           token_index: dict[str, list[int]] | None = None) -> list[dict[str, Any]]:
    """Neurons whose top-k tokens hold ``word``, best first (by the word's rank, then score)."""
    ids = (token_index or {}).get(word.strip().lower()) if token_index else None
    if ids is None:
        ids = word_token_ids(nmap, word)
    if not ids:
        raise LMError(f"no token in the vocabulary reads {word!r}")
    hit = np.isin(nmap.top_ids, np.asarray(ids, dtype=np.int32))
    rows = np.flatnonzero(hit.any(1))
    if rows.size == 0:
        return []
    rank = hit[rows].argmax(1)
    order = np.lexsort((-nmap.score[rows], rank))[:top]
    return [{**nmap.describe(int(rows[o])), "rank_of_word": int(rank[o])} for o in order]


def token_index(nmap: NeuronMap) -> dict[str, list[int]]:
    """Lower-cased stripped token text -> ids, built once so repeated searches skip the scan."""
    out: dict[str, list[int]] = {}
    for i, t in enumerate(nmap.tokens):
        out.setdefault(t.strip().lower(), []).append(i)
    return out


def neuron_scale(lm: CausalLM, layer: int, neuron: int, texts: Sequence[str]) -> float:
    """Largest |activation| of a neuron over all tokens of ``texts`` (its natural range)."""
    point = f"blocks.{layer}.mlp.hook_post"
    _, acts, b = lm.run(list(texts), record=[point])
    a = acts[point][..., neuron][b.attention_mask.bool()]
    return float(a.abs().max())


def confirm_by_clamping(lm: CausalLM, nmap: NeuronMap, layer: int, neuron: int,
                        prompts: Sequence[str], factor: float = 4.0, n_tokens: int = 5,
                        seed: int = 0, value: float | None = None) -> dict[str, Any]:
    """Clamp a neuron at every position to ``value`` (default ``factor`` x its largest
    activation on ``prompts``); report the change in log P(its top tokens) at the next
    position, against as many random tokens."""
    r = nmap.row(layer, neuron)
    if not 0 <= r < len(nmap) or nmap.layer[r] != layer or nmap.neuron[r] != neuron:
        raise LMError(f"neuron {layer}.{neuron} is not in the map")
    tokens = [int(t) for t in nmap.top_ids[r, :n_tokens]]
    rng = np.random.default_rng(seed)
    random_ids = [int(t) for t in rng.choice(lm.vocab_size, n_tokens, replace=False)]
    if value is None:
        value = factor * neuron_scale(lm, layer, neuron, prompts)
    edit = clamp(f"blocks.{layer}.mlp.hook_post", [neuron], value)
    before, after = token_mass(lm, prompts, tokens), token_mass(lm, prompts, tokens, [edit])
    rb, ra = token_mass(lm, prompts, random_ids), token_mass(lm, prompts, random_ids, [edit])
    return {"layer": layer, "neuron": neuron, "clamp_value": round(value, 4),
            "tokens": [nmap.tokens[t] for t in tokens],
            "logp_tokens_before": float(before.mean()), "logp_tokens_after": float(after.mean()),
            "delta_logp_tokens": float((after - before).mean()),
            "delta_logp_random_tokens": float((ra - rb).mean()),
            "prompts_raised": int((after > before).sum()), "n_prompts": len(prompts)}
