"""Direct-path observable: the residual-stream vector of a linear function of the logits.

A simplification of observable propagation under its own name; the paper's procedure (heads'
OV circuits, first-order MLPs, the LayerNorm rule, coupling coefficients) is ``lm.obsprop``.

Dunefsky & Cohan (2024), "Observable Propagation: Uncovering feature vectors in transformers":
an observable is a linear map on the logits, e.g. n(logits) = logit(" he") - logit(" she");
its feature vector at the final residual stream is ``W_U^T n`` taken back through the final
norm, which is linear up to its scalar 1/rms (their eq. 6-7): ``f = g * (W_U^T n)``, minus its
mean for a centring LayerNorm. Along the residual (skip) path every earlier layer sees the same
``f``; the blocks' own contributions (their linearisation) are not followed here. ``compare``
measures how well ``f`` agrees with directions learned from labelled prompts, per layer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from conceptlab.lm.model import CausalLM, LMError


def direct_path_vector(lm: CausalLM, positive: Sequence[str], negative: Sequence[str] = (),
                      ) -> np.ndarray:
    """Unit feature vector of ``mean logit(positive) - mean logit(negative)`` at the last layer."""
    if not positive:
        raise LMError("an observable needs at least one positive token")
    W = lm.unembed_weight().float()
    n = torch.zeros(lm.vocab_size)
    for words, sign in ((positive, 1.0), (negative, -1.0)):
        for t in lm.token_ids(list(words)):
            n[t] += sign / len(words)
    f = (W.T @ n) * lm.final_norm_gain().float()
    norm = lm.final_norm_module()
    if isinstance(norm, torch.nn.LayerNorm):  # LayerNorm centres its input first
        f = f - f.mean()
    if float(f.norm()) == 0:
        raise LMError("the observable's feature vector is zero (same tokens on both sides?)")
    return (f / f.norm()).numpy().astype(np.float32)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


def compare(feature: np.ndarray, directions: Mapping[str, Mapping[str, np.ndarray]],
            acts: Mapping[str, np.ndarray], labels: np.ndarray) -> list[dict[str, float]]:
    """Per point: cosine of ``feature`` with each method's direction, and the AUC of the
    prompts' projection on ``feature`` (does the observable read the concept there?)."""
    from conceptlab.lm.probing import binary_scores

    rows = []
    for i, (point, X) in enumerate(acts.items()):
        proj = np.asarray(X) @ feature
        row: dict[str, float] = {"layer": i, "point": point,  # type: ignore[dict-item]
                                 "auc_observable": binary_scores(labels, proj - np.median(proj),
                                                                 0)["auc"]["value"]}
        for method, by_point in directions.items():
            row[f"cos_{method}"] = cosine(feature, by_point[point])
        rows.append(row)
    return rows
