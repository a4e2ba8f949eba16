"""Synthetic embeddings with planted, class-linked concepts (known answers for the tests)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Planted:
    """Synthetic embeddings with class-linked concepts: 4 classes, 24 concepts (6 per class)
    in 32 dimensions."""

    D: int = 32
    K: int = 24
    C: int = 4

    def data(self, n: int, seed: int, noise: float = 1.5
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Class c's embeddings mix its 6 concepts (random positive weights) plus noise.

        Returns (X float32 N x D, y, concept vectors K x D, class-concept association C x K,
        concept scores N x K: cosine of each embedding with each concept vector).
        """
        rng = np.random.default_rng(0)
        vectors = rng.normal(size=(self.K, self.D))
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        assoc = np.zeros((self.C, self.K), dtype=np.float32)
        per = self.K // self.C
        for c in range(self.C):
            assoc[c, c * per:(c + 1) * per] = 1
        r = np.random.default_rng(seed)
        y = r.integers(0, self.C, n)
        X = (r.uniform(0, 1, size=(n, self.K)) * assoc[y]) @ vectors
        X += noise * r.normal(size=(n, self.D)) / np.sqrt(self.D)
        Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
        return X.astype(np.float32), y, vectors, assoc, (Xn @ vectors.T).astype(np.float32)


PLANTED = Planted()
