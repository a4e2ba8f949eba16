"""Synthetic embeddings with class-linked concepts, shared by the bottleneck tests."""

from __future__ import annotations

import numpy as np

D, K, C = 32, 24, 4  # embedding dim, concepts, classes (6 concepts per class)


def class_concept_data(n: int, seed: int, noise: float = 1.5):
    """Class c's embeddings mix its 6 concepts (random positive weights) plus noise.

    Returns (X float32 N x D, y, concept vectors K x D, class-concept association C x K,
    concept scores N x K: cosine of each embedding with each concept vector).
    """
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(K, D))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    assoc = np.zeros((C, K), dtype=np.float32)
    for c in range(C):
        assoc[c, c * K // C:(c + 1) * K // C] = 1
    r = np.random.default_rng(seed)
    y = r.integers(0, C, n)
    X = (r.uniform(0, 1, size=(n, K)) * assoc[y]) @ vectors
    X += noise * r.normal(size=(n, D)) / np.sqrt(D)
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    return X.astype(np.float32), y, vectors, assoc, (Xn @ vectors.T).astype(np.float32)
