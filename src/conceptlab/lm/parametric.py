"""Top value-vector zeroing: the MLP value vectors whose head projection matches a concept's
tokens, zeroed in bulk (a simplification inspired by ConceptVectors, under its own name).

ConceptVectors (Hong et al., 2024, "Intrinsic Evaluation of Unlearning Using Parametric
Knowledge Traces") locates *one* down-projection column per concept, perturbs it and scores
question answering; that protocol is ``lm.concept_vectors``. This module is the variant that
zeroes the top 10 / 50 / 200 neurons at once and measures log P of the tokens that chose them,
which is not the paper's procedure. Here each neuron gets the z-score of the mean logit
of the concept tokens T in its head projection (``neurons`` eq. 1):

    z_j = (mean_{t in T} logit_j[t] - mean_v logit_j[v]) / std_v logit_j[v]

computed exactly for all neurons at the cost of one ``(neurons x d) @ (d x |T|)`` product (the
vocabulary mean and variance in closed form). The top neurons are zeroed (their activations
clamped to 0, which removes their value vectors' contribution) and the change in log P(T) is
measured on the concept's own prompt prefixes against unrelated prompts, with as many random
neurons zeroed in the same blocks as a control (layer-matched: as many per block as the
concept's own).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from conceptlab.lm.datasets import PromptSet
from conceptlab.lm.edits import Edit, clamp
from conceptlab.lm.model import CausalLM, LMError
from conceptlab.lm.neurons import neuron_output_vectors


def concept_scores(lm: CausalLM, token_ids: Sequence[int]) -> np.ndarray:
    """``(n_layers, d_mlp)`` z-scores of the concept tokens' mean logit per neuron."""
    ids = sorted({int(t) for t in token_ids})
    if not ids:
        raise LMError("no concept tokens")
    W = lm.unembed_weight().float()
    mu, S = W.mean(0), torch.cov(W.T, correction=0)
    target = W[ids].mean(0)
    out = np.zeros((lm.n_layers, lm.d_mlp), dtype=np.float32)
    with torch.inference_mode():
        for layer in range(lm.n_layers):
            C = neuron_output_vectors(lm, layer)
            std = ((C @ S) * C).sum(1).clamp_min(1e-12).sqrt()
            out[layer] = ((C @ target - C @ mu) / std).numpy()
    return out


def top_neurons(scores: np.ndarray, n: int) -> list[tuple[int, int]]:
    """The ``n`` (layer, neuron) pairs with the highest scores."""
    if n < 1:
        raise LMError("n must be >= 1")
    flat = np.argsort(-scores, axis=None)[:n]
    return [(int(i // scores.shape[1]), int(i % scores.shape[1])) for i in flat]


def random_neurons(lm: CausalLM, n: int, seed: int = 0,
                   exclude: Sequence[tuple[int, int]] = (),
                   like: Sequence[tuple[int, int]] | None = None) -> list[tuple[int, int]]:
    """``n`` random (layer, neuron) pairs, none in ``exclude``.

    With ``like`` (the concept's neurons) the control is *layer-matched*: as many random
    neurons from each block as ``like`` has there, so a control effect cannot come from
    hitting other blocks than the concept's (``n`` is then ``len(like)``). Without it,
    neurons are drawn uniformly from every block.
    """
    rng = np.random.default_rng(seed)
    skip = {a * lm.d_mlp + b for a, b in exclude}
    if like is not None:
        counts: dict[int, int] = {}
        for layer, _ in like:
            counts[int(layer)] = counts.get(int(layer), 0) + 1
        out: list[tuple[int, int]] = []
        for layer, c in sorted(counts.items()):
            pool = np.array([j for j in range(lm.d_mlp) if layer * lm.d_mlp + j not in skip])
            if len(pool) < c:
                raise LMError(f"block {layer} has only {len(pool)} neurons outside the "
                              f"excluded ones; {c} asked for")
            out += [(layer, int(j)) for j in np.sort(rng.choice(pool, c, replace=False))]
        return out
    pool = np.setdiff1d(np.arange(lm.n_layers * lm.d_mlp), np.fromiter(skip, dtype=np.int64))
    pick = rng.choice(pool, n, replace=False)
    return [(int(i // lm.d_mlp), int(i % lm.d_mlp)) for i in np.sort(pick)]


def zero_neurons(neurons: Sequence[tuple[int, int]]) -> list[Edit]:
    """Edits that clamp each listed neuron to 0 (one edit per layer)."""
    by_layer: dict[int, list[int]] = {}
    for layer, j in neurons:
        by_layer.setdefault(int(layer), []).append(int(j))
    return [clamp(f"blocks.{layer}.mlp.hook_post", js, 0.0)
            for layer, js in sorted(by_layer.items())]


def concept_prefixes(prompts: PromptSet) -> list[str]:
    """Each positive prompt cut just before the word that makes it positive (deduplicated):
    ``I saw a cat in the picture.`` -> ``I saw a``, where a concept token should come next."""
    out = []
    for i, j in prompts.pairs():
        a, b = prompts.texts[int(i)].split(), prompts.texts[int(j)].split()
        if len(a) != len(b):
            continue
        diff = [k for k, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
        if len(diff) == 1 and diff[0] > 0:
            out.append(" ".join(a[:diff[0]]))
    return list(dict.fromkeys(out))
