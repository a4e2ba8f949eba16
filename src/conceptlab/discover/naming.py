"""Naming discovered concepts, each name with its score so that weak names are visible.

* ``name_by_text``: nearest vocabulary entries in a joint space (DN-CBM, Rao et al. ECCV 2024,
  section 3.2: a unit's name is the vocabulary word whose text embedding has the highest cosine
  with the unit's decoder direction). Score: that cosine.
* ``name_by_head``: the direction decoded through the model's own output head (for
  EfficientNet, ImageNet classes). Score: the softmax probability of the top class when the
  latent is the concept at a strong activation.
* ``name_by_exemplars``: top-activating inputs or crops (CRAFT's way of showing a concept,
  Fel et al. 2023, fig. 1); when the inputs carry labels, the majority label among them is a
  name too. Score: its share of the exemplars.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from conceptlab.discover.metrics import cosine_matrix
from conceptlab.errors import ConceptlabValueError


class NamingError(ConceptlabValueError):
    """Raised for mismatched vocabularies, directions or codes."""


def name_by_text(directions: np.ndarray, vocab_embeddings: np.ndarray, vocab: Sequence[str],
                 top: int = 3) -> list[dict[str, Any]]:
    """Per direction (K x D), the ``top`` vocabulary entries by cosine in the joint space."""
    E = np.asarray(vocab_embeddings)
    if E.ndim != 2 or len(E) != len(vocab) or len(vocab) == 0:
        raise NamingError(f"{len(vocab)} vocabulary entries but embeddings of shape {E.shape}")
    if np.asarray(directions).shape[1] != E.shape[1]:
        raise NamingError(f"directions have {np.asarray(directions).shape[1]} dims, the text "
                          f"space has {E.shape[1]}: text naming needs a joint space")
    C = cosine_matrix(directions, E)
    out = []
    for row in C:
        idx = np.argsort(-row, kind="stable")[:top]
        out.append({"name": vocab[idx[0]], "score": float(row[idx[0]]),
                    "alternatives": [[vocab[i], float(row[i])] for i in idx]})
    return out


def strong_activation(U: np.ndarray, q: float = 0.99) -> np.ndarray:
    """Per concept, the ``q`` quantile of its positive codes (1.0 when it never fires)."""
    U = np.asarray(U, np.float64)
    out = np.ones(U.shape[1])
    for k in range(U.shape[1]):
        pos = U[:, k][U[:, k] > 0]
        if len(pos):
            out[k] = float(np.quantile(pos, q))
    return out


def name_by_head(directions: np.ndarray, head: Callable[[torch.Tensor], torch.Tensor],
                 class_names: Sequence[str], scale: np.ndarray | None = None,
                 base: np.ndarray | None = None, top: int = 3) -> list[dict[str, Any]]:
    """Decode each concept through the output head: logits of ``base + scale_k * w_k``.

    ``base`` (default 0) is the latent the concept is added to (e.g. the decoder bias);
    ``scale`` (default 1) its strength, e.g. ``strong_activation(U)``.
    """
    W = np.asarray(directions, np.float32)
    s = np.ones(len(W)) if scale is None else np.asarray(scale, np.float64)
    b = np.zeros(W.shape[1], np.float32) if base is None else np.asarray(base, np.float32)
    latent = torch.from_numpy((b[None] + s[:, None] * W).astype(np.float32))
    with torch.no_grad():
        logits = head(latent)
    if logits.shape[1] != len(class_names):
        raise NamingError(f"head gives {logits.shape[1]} outputs for {len(class_names)} names")
    probs = logits.softmax(-1).numpy()
    out = []
    for p in probs:
        idx = np.argsort(-p, kind="stable")[:top]
        out.append({"name": class_names[idx[0]], "score": float(p[idx[0]]),
                    "alternatives": [[class_names[i], float(p[i])] for i in idx]})
    return out


def name_by_exemplars(U: np.ndarray, top: int = 8, labels: Sequence[str] | None = None,
                      item: np.ndarray | None = None) -> list[dict[str, Any]]:
    """Per concept, the rows with the largest codes; with ``labels`` (per input, ``item`` maps
    rows to inputs) the majority label among them and its share."""
    U = np.asarray(U)
    if labels is not None and item is None:
        item = np.arange(len(U))
    out = []
    for k in range(U.shape[1]):
        rows = np.argsort(-U[:, k], kind="stable")[:top]
        entry: dict[str, Any] = {"rows": rows.tolist(), "values": U[rows, k].tolist()}
        if labels is not None and item is not None:
            counts = Counter(labels[int(item[r])] for r in rows)
            name, n = counts.most_common(1)[0]
            entry.update(name=name, score=n / len(rows))
        out.append(entry)
    return out


def unique_names(names: Sequence[str]) -> list[str]:
    """``"c00 sandal"``-style labels: index + name, unique even when names repeat."""
    return [f"c{k:02d} {n}" for k, n in enumerate(names)]
