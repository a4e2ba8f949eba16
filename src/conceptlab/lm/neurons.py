"""Every MLP neuron read through the final norm and the LM head: its top tokens and a score.

Davies (2025), "Decoding specialised feature neurons in LLMs with the final projection layer"
(arXiv 2501.02688; v2 retitled "Flash Interpretability: Decoding Specialised Feature Neurons in
Large Language Models with the LM-Head"): the weights of each *up-projection* neuron (the row
``W_up[j, :]`` that reads the residual stream) are passed through the final projection (the
final norm and the LM head) as if they were a residual-stream vector, and the tokens they
decode to name the feature the neuron responds to; clamping the neuron confirms it. The paper
maps Llama 3.1 8B's up-projection neurons (75% keep their top token from the base to the
instruct model). Here, for side ``s``:

    logits_j = W_U (g * v_j)                                                   (eq. 1)

* ``up`` (default, the paper's side): ``v_j = W_up[j, :]``;
* ``gate`` (gated MLPs only, the paper's method applied to the other read side):
  ``v_j = W_gate[j, :]``;
* ``down``: ``v_j = W_down[:, j]``, the neuron's *value vector*, what it writes into the
  stream (Geva et al., EMNLP 2022, "Transformer feed-forward layers build predictions by
  promoting concepts in the vocabulary space").

``g`` is the final norm's gain (RMSNorm's weight, Gemma's ``1 + w``); for a LayerNorm (GPT-2)
the vector is centred first, as the norm centres what it reads. The norm's scalar ``1/rms``
and the softmax do not change the order of a neuron's tokens, so the top-k of eq. 1 are the
tokens of highest probability in the paper's decoding. Only the abstract and secondary
summaries of the paper's method section could be read while writing this; which norm gains
the paper applies is this module's reading (the final norm's, as for any vector the head
reads), recorded in the map's ``info``.

Score: the z-score of the top logit over the vocabulary, ``(max - mean) / std``; mean and
variance come in closed form from the unembedding's row mean ``mu`` and covariance ``S``:
mean_j = c_j . mu, var_j = c_j^T S c_j, so the only pass over the ``d_mlp x vocab`` logits is
the top-k (``topk_rows``, exact, through block maxima), done chunk by chunk into one reused
buffer while the chunk's logits are still in cache.

The map of all neurons is saved as safetensors (``neurons.safetensors`` + ``neurons.json``);
``search`` finds neurons whose top tokens hold a word, and ``confirm_by_clamping`` checks a
neuron causally: clamped at its own sign and a multiple of its usual extreme on neutral
prompts, the probability of its tokens must rise more than when random neurons *of the same
layer* are clamped the same way, and more than random unrelated tokens move.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from conceptlab.hooks import HookError, get_module
from conceptlab.lm.edits import clamp
from conceptlab.lm.effects import token_mass
from conceptlab.lm.model import CausalLM, LMError
from conceptlab.utils.io import atomic_dir
from conceptlab.utils.progress import progress
from conceptlab.utils.saved import SavedKind, read_saved, write_saved

MAP_FORMAT = 2
#: ``neurons.json`` (info, tokens) + ``neurons.safetensors``
SAVED_NEURONS = SavedKind("neuron_map", (MAP_FORMAT,), "neurons", legacy=True, error=LMError)
SIDES = ("up", "gate", "down")
#: the MLP input projections per family: (up, gate or None), relative to a block
READ_PROJECTIONS = {"llama": ("mlp.up_proj", "mlp.gate_proj"),
                    "gemma": ("mlp.up_proj", "mlp.gate_proj"),
                    "gpt2": ("mlp.c_fc", None)}
METHODS = {"up": "W_U (g * W_up[j, :]) (Davies 2025, up-projection neurons)",
           "gate": "W_U (g * W_gate[j, :]) (Davies 2025's decoding, gate side)",
           "down": "W_U (g * W_down[:, j]) (value vectors, Geva et al. 2022)"}


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
            write_saved(tmp, SAVED_NEURONS, {"info": self.info, "tokens": self.tokens},
                        {"layer": self.layer, "neuron": self.neuron, "top_ids": self.top_ids,
                         "top_logits": self.top_logits, "score": self.score})
        return Path(folder)

    @classmethod
    def load(cls, folder: str | Path) -> NeuronMap:
        meta, arr = read_saved(folder, SAVED_NEURONS, required=(
            "layer", "neuron", "top_ids", "top_logits", "score"))
        return cls(arr["layer"], arr["neuron"], arr["top_ids"], arr["top_logits"],
                   arr["score"], meta["tokens"], meta["info"])


def read_rows(lm: CausalLM, layer: int, side: str) -> torch.Tensor:
    """The raw weight vector of every neuron of ``layer`` on ``side``, ``(d_mlp, d_model)``."""
    if side not in SIDES:
        raise LMError(f"side must be one of {', '.join(SIDES)}, got {side!r}")
    if side == "down":
        return lm.down_columns(layer)
    up, gate = READ_PROJECTIONS[lm.arch.family]
    path = up if side == "up" else gate
    if path is None:
        raise LMError(f"{lm.arch.family} MLPs have no gate projection (use --side up or down)")
    try:
        proj: Any = get_module(lm.blocks[layer], path)
        w = proj.weight.detach()
    except HookError as err:
        raise LMError(f"block {layer} has no {path}: {err}") from err
    w = w.T if lm.arch.down_transposed else w  # GPT-2's Conv1D stores (in, out)
    if w.shape != (lm.d_mlp, lm.d_model):
        raise LMError(f"{path} has shape {tuple(w.shape)}, expected ({lm.d_mlp}, {lm.d_model})")
    return w


def neuron_vectors(lm: CausalLM, layer: int, side: str = "up") -> torch.Tensor:
    """``g * v_j`` for every neuron of ``layer`` (eq. 1's ``c_j``): ``(d_mlp, d_model)``
    float32; centred first when the final norm is a LayerNorm."""
    v = read_rows(lm, layer, side).float()
    if isinstance(lm.final_norm_module(), torch.nn.LayerNorm):
        v = v - v.mean(1, keepdim=True)
    return (v * lm.final_norm_gain().float()).contiguous()


def neuron_output_vectors(lm: CausalLM, layer: int) -> torch.Tensor:
    """``g * W_down[:, j]`` for every neuron of ``layer`` (value vectors): ``(d_mlp, d_model)``."""
    return neuron_vectors(lm, layer, "down")


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
                   chunk: int = 256, block: int = 128, side: str = "up",
                   on_layer: Callable[[int], None] | None = None) -> NeuronMap:
    """The top-``k`` tokens and score of every MLP neuron in ``layers`` (default all), read on
    ``side`` (``up``: the paper's up-projection rows; ``gate``; ``down``: value vectors)."""
    if k < 1:
        raise LMError("k must be >= 1")
    if side not in SIDES:
        raise LMError(f"side must be one of {', '.join(SIDES)}, got {side!r}")
    layers = list(range(lm.n_layers)) if layers is None else [int(i) for i in layers]
    W = lm.unembed_weight().float().contiguous()  # (V, D)
    mu = W.mean(0)
    S = torch.cov(W.T, correction=0)  # (D, D)
    Wt = W.T.contiguous()  # (D, V): row-major right operand for the GEMM
    ids, vals, scores, lay, neu = [], [], [], [], []
    # on W's device: a GPU model's products land in a GPU buffer (a CPU one would raise)
    buf = torch.empty((min(chunk, lm.d_mlp), W.shape[0]), dtype=torch.float32, device=W.device)
    t0 = time.perf_counter()
    with torch.inference_mode():
        for layer in progress(layers, total=len(layers), desc="decoding neurons", unit="layer"):
            C = neuron_vectors(lm, layer, side)
            mean = C @ mu
            std = ((C @ S) * C).sum(1).clamp_min(1e-12).sqrt()
            top1 = []
            for s in range(0, C.shape[0], chunk):
                part = C[s:s + chunk]
                logits = buf[:part.shape[0]]
                torch.matmul(part, Wt, out=logits)  # one reused buffer: no page faults
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
            "d_mlp": lm.d_mlp, "n_neurons": int(sum(len(x) for x in lay)), "side": side,
            "seconds": round(seconds, 3), "method": METHODS[side]}
    return NeuronMap(torch.cat(lay).numpy(), torch.cat(neu).numpy(),
                     torch.cat(ids).cpu().numpy(),
                     torch.cat(vals).cpu().numpy().astype(np.float32),
                     torch.cat(scores).cpu().numpy().astype(np.float32), tokens, info)


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


def neuron_extremes(lm: CausalLM, layer: int, neurons: Sequence[int], texts: Sequence[str],
                    ) -> np.ndarray:
    """Each neuron's usual extreme over every token of ``texts``: the activation of largest
    magnitude, *with its sign* (a neuron that fires negative keeps its negative side)."""
    point = f"blocks.{layer}.mlp.hook_post"
    _, acts, b = lm.run(list(texts), record=[point])
    a = acts[point][..., list(neurons)][b.attention_mask.bool()].float()  # (tokens, n)
    idx = a.abs().argmax(0)
    return a[idx, torch.arange(a.shape[1])].numpy().astype(np.float64)


def neuron_scale(lm: CausalLM, layer: int, neuron: int, texts: Sequence[str]) -> float:
    """Largest |activation| of a neuron over all tokens of ``texts`` (its natural range)."""
    return float(abs(neuron_extremes(lm, layer, [neuron], texts)[0]))


def _clamp_effect(lm: CausalLM, layer: int, neuron: int, value: float, prompts: Sequence[str],
                  token_sets: Sequence[Sequence[int]], before: Sequence[np.ndarray],
                  ) -> list[np.ndarray]:
    edit = clamp(f"blocks.{layer}.mlp.hook_post", [neuron], value)
    return [token_mass(lm, prompts, ids, [edit]) - b
            for ids, b in zip(token_sets, before, strict=True)]


def confirm_by_clamping(lm: CausalLM, nmap: NeuronMap, layer: int, neuron: int,
                        prompts: Sequence[str], factor: float = 4.0, n_tokens: int = 5,
                        seed: int = 0, value: float | None = None,
                        n_control: int = 5) -> dict[str, Any]:
    """Clamp a neuron at every position to ``value`` (default ``factor`` x its usual extreme on
    ``prompts``, sign kept) and report the change in log P(its top tokens) at the next position,
    against (a) ``n_tokens`` random unrelated tokens under the same clamp and (b) ``n_control``
    random neurons *of the same layer*, each clamped to ``factor`` x its own extreme."""
    r = nmap.row(layer, neuron)
    if not 0 <= r < len(nmap) or nmap.layer[r] != layer or nmap.neuron[r] != neuron:
        raise LMError(f"neuron {layer}.{neuron} is not in the map")
    tokens = [int(t) for t in nmap.top_ids[r, :n_tokens]]
    rng = np.random.default_rng(seed)
    top = set(int(t) for t in nmap.top_ids[r])
    pool = np.setdiff1d(np.arange(lm.vocab_size), np.asarray(sorted(top)))
    random_ids = [int(t) for t in rng.choice(pool, n_tokens, replace=False)]
    others = np.setdiff1d(np.arange(lm.d_mlp), [neuron])
    controls = [int(j) for j in rng.choice(others, min(n_control, len(others)), replace=False)]
    ext = neuron_extremes(lm, layer, [neuron, *controls], prompts)
    if value is None:
        value = float(factor * ext[0])
    before = [token_mass(lm, prompts, tokens), token_mass(lm, prompts, random_ids)]
    d_tok, d_rand = _clamp_effect(lm, layer, neuron, value, prompts, [tokens, random_ids],
                                  before)
    ctrl = [float(_clamp_effect(lm, layer, j, float(factor * e), prompts, [tokens],
                                before[:1])[0].mean())
            for j, e in zip(controls, ext[1:], strict=True)]
    return {"layer": layer, "neuron": neuron, "clamp_value": round(value, 4),
            "usual_extreme": round(float(ext[0]), 4), "side": nmap.info.get("side", "down"),
            "tokens": [nmap.tokens[t] for t in tokens],
            "logp_tokens_before": float(before[0].mean()),
            "logp_tokens_after": float((before[0] + d_tok).mean()),
            "delta_logp_tokens": float(d_tok.mean()),
            "delta_logp_random_tokens": float(d_rand.mean()),
            "control_neurons": controls,
            "delta_logp_tokens_control_neurons": ctrl,
            "delta_logp_tokens_control_mean": float(np.mean(ctrl)) if ctrl else float("nan"),
            "beats_every_control": bool(ctrl) and float(d_tok.mean()) > max(ctrl),
            "prompts_raised": int((d_tok > 0).sum()), "n_prompts": len(prompts)}
