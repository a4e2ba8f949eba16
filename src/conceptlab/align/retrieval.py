"""Image-to-caption retrieval: pure functions of arrays.

The gallery is the set of *distinct* caption texts of the evaluated images (captions written
from factors repeat: two images with the same factors may share a caption word for word, and
one text must not be counted as two gallery entries). Image ``i`` is a hit at ``k`` when one
of its own caption texts is among the ``k`` texts most similar to it (cosine).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from conceptlab.errors import ConceptlabValueError


def caption_gallery(captions: Sequence[Sequence[str]]) -> tuple[list[str], list[np.ndarray]]:
    """(distinct texts in order of first use, the text ids of each item's captions)."""
    index: dict[str, int] = {}
    owners: list[np.ndarray] = []
    for caps in captions:
        ids = []
        for c in caps:
            if c not in index:
                index[c] = len(index)
            ids.append(index[c])
        owners.append(np.array(sorted(set(ids)), dtype=np.int64))
    return list(index), owners


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def caption_ranks(image_emb: np.ndarray, text_emb: np.ndarray,
                  positives: Sequence[np.ndarray]) -> np.ndarray:
    """0-based rank of each image's best own caption among all gallery texts (cosine)."""
    if len(image_emb) != len(positives):
        raise ConceptlabValueError(f"{len(image_emb)} images but {len(positives)} caption lists")
    if image_emb.ndim != 2 or text_emb.ndim != 2 or image_emb.shape[1] != text_emb.shape[1]:
        raise ConceptlabValueError(f"image embeddings {image_emb.shape} and text embeddings "
                         f"{text_emb.shape} are not in one space")
    sims = _unit(image_emb) @ _unit(text_emb).T
    ranks = np.empty(len(positives), dtype=np.int64)
    for i, pos in enumerate(positives):
        if len(pos) == 0:
            raise ConceptlabValueError(f"image {i} has no caption")
        best = sims[i, pos].max()
        others = np.ones(sims.shape[1], dtype=bool)
        others[pos] = False
        ranks[i] = int((sims[i, others] > best).sum())
    return ranks


def recall_at_k(image_emb: np.ndarray, text_emb: np.ndarray, positives: Sequence[np.ndarray],
                ks: Sequence[int] = (1, 5)) -> dict[str, float]:
    """``{"R@k": share of images whose own caption is in the top k}`` for each ``k``."""
    ranks = caption_ranks(image_emb, text_emb, positives)
    return {f"R@{k}": float((ranks < k).mean()) for k in ks}


def mean_own_cosine(image_emb: np.ndarray, pair_text_emb: np.ndarray) -> float:
    """Mean cosine between each image and its own caption, over (image, caption) pairs."""
    return float((_unit(image_emb) * _unit(pair_text_emb)).sum(1).mean())
