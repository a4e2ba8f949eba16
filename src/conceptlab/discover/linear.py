"""Classical dictionaries: NMF, semi-NMF, PCA, ICA and k-means (scikit-learn where it has one).

What each adds (Fel et al. 2023, holistic framework, Table 1 and section 3):

* ``nmf``: non-negative codes and atoms on non-negative (post-ReLU) activations; parts-based,
  CRAFT's choice (Fel et al., CVPR 2023, eq. 1). scikit-learn's coordinate-descent NMF.
* ``seminmf``: non-negative codes, signed atoms, for layers with negative activations
  (Ding, Li & Jordan, TPAMI 2010, "Convex and Semi-Nonnegative Matrix Factorizations", eq. 11-12).
* ``pca``: orthogonal atoms of largest variance; dense signed codes, exact on the top subspace.
* ``ica``: statistically independent signed codes (FastICA, Hyvärinen & Oja 2000).
* ``kmeans``: one atom per row (one-hot codes): prototypes, the sparsest extreme.

Encoding new activations always keeps the dictionary fixed, so codes of new inputs live in the
same concept basis as the training codes.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from conceptlab.discover.base import (
    Dictionary,
    DictionaryError,
    check_activations,
    check_nonnegative,
    register_dictionary,
)


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence scikit-learn's convergence warnings (the iteration caps are recorded params)."""
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


@register_dictionary
class NMFDictionary(Dictionary):
    """``A ≈ U W`` with ``U, W >= 0`` (Lee & Seung 1999; CRAFT eq. 1), scikit-learn solver."""

    name = "nmf"

    def __init__(self, n_concepts: int, seed: int = 0, max_iter: int = 400,
                 tol: float = 1e-4) -> None:
        super().__init__(n_concepts, seed)
        self.max_iter, self.tol = int(max_iter), float(tol)

    def params(self) -> dict[str, Any]:
        return {**super().params(), "max_iter": self.max_iter, "tol": self.tol}

    def fit(self, A: np.ndarray) -> NMFDictionary:
        from sklearn.decomposition import NMF

        A = check_activations(A)
        check_nonnegative(A, self.name)
        with _quiet():
            model = NMF(n_components=self.n_concepts, init="nndsvda", solver="cd",
                        max_iter=self.max_iter, tol=self.tol, random_state=self.seed)
            model.fit(A)
        self._set(model.components_)
        return self

    def encode(self, A: np.ndarray) -> np.ndarray:
        from sklearn.decomposition import non_negative_factorization

        A = check_activations(A, dim=self.dim)
        check_nonnegative(A, self.name)
        with _quiet():
            U, _, _ = non_negative_factorization(
                A, H=self.dictionary, n_components=self.n_concepts, update_H=False,
                solver="cd", max_iter=self.max_iter, tol=self.tol, random_state=self.seed)
        return U.astype(np.float32)


def _pos(x: np.ndarray) -> np.ndarray:
    return (np.abs(x) + x) / 2


def _neg(x: np.ndarray) -> np.ndarray:
    return (np.abs(x) - x) / 2


def seminmf_codes(A: np.ndarray, W: np.ndarray, U: np.ndarray, n_iter: int) -> np.ndarray:
    """Ding et al. 2010 eq. 12 with ``W`` fixed: multiplicative updates keeping ``U >= 0``."""
    AWt = A @ W.T
    WWt = W @ W.T
    num_a, den_a = _pos(AWt), _neg(AWt)
    WWp, WWn = _pos(WWt), _neg(WWt)
    for _ in range(n_iter):
        U = U * np.sqrt((num_a + U @ WWn) / np.maximum(den_a + U @ WWp, 1e-12))
    return U


@register_dictionary
class SemiNMFDictionary(Dictionary):
    """``A ≈ U W`` with ``U >= 0`` and ``W`` signed (Ding, Li & Jordan 2010, eq. 11-12).

    Alternates the closed-form ``W = (U^T U)^+ U^T A`` with the multiplicative code update;
    initialised from k-means indicators + 0.2, as the paper recommends.
    """

    name = "seminmf"

    def __init__(self, n_concepts: int, seed: int = 0, max_iter: int = 200,
                 encode_iter: int = 200) -> None:
        super().__init__(n_concepts, seed)
        self.max_iter, self.encode_iter = int(max_iter), int(encode_iter)

    def params(self) -> dict[str, Any]:
        return {**super().params(), "max_iter": self.max_iter, "encode_iter": self.encode_iter}

    def fit(self, A: np.ndarray) -> SemiNMFDictionary:
        from sklearn.cluster import KMeans

        A64 = check_activations(A).astype(np.float64)
        if len(A64) < self.n_concepts:
            raise DictionaryError(f"seminmf: {len(A64)} rows for {self.n_concepts} concepts")
        labels = KMeans(self.n_concepts, n_init=1, random_state=self.seed).fit_predict(A64)
        U = np.full((len(A64), self.n_concepts), 0.2)
        U[np.arange(len(A64)), labels] += 1.0
        W = np.linalg.pinv(U.T @ U) @ U.T @ A64
        for _ in range(self.max_iter // 10):
            U = seminmf_codes(A64, W, U, 10)
            W = np.linalg.pinv(U.T @ U) @ U.T @ A64
        self._set(W)
        return self

    def encode(self, A: np.ndarray) -> np.ndarray:
        A64 = check_activations(A, dim=self.dim).astype(np.float64)
        W = self.dictionary.astype(np.float64)
        U0 = np.maximum(A64 @ np.linalg.pinv(W), 0) + 1e-2  # least squares, made positive
        return seminmf_codes(A64, W, U0, self.encode_iter).astype(np.float32)


@register_dictionary
class PCADictionary(Dictionary):
    """Principal components: ``A ≈ (A - mean) V^T V + mean`` (signed, orthogonal atoms)."""

    name = "pca"
    nonnegative_codes = False

    def fit(self, A: np.ndarray) -> PCADictionary:
        from sklearn.decomposition import PCA

        A = check_activations(A)
        if self.n_concepts > min(A.shape):
            raise DictionaryError(f"pca: {self.n_concepts} components from data of shape {A.shape}")
        model = PCA(n_components=self.n_concepts, random_state=self.seed).fit(A)
        self._set(model.components_, model.mean_)
        return self

    def encode(self, A: np.ndarray) -> np.ndarray:
        A = check_activations(A, dim=self.dim)
        return ((A - self.bias) @ self.dictionary.T).astype(np.float32)


@register_dictionary
class ICADictionary(Dictionary):
    """FastICA: independent codes ``U = (A - mean) S^T``; atoms = the mixing matrix's columns."""

    name = "ica"
    nonnegative_codes = False

    def __init__(self, n_concepts: int, seed: int = 0, max_iter: int = 500) -> None:
        super().__init__(n_concepts, seed)
        self.max_iter = int(max_iter)
        self._unmix: np.ndarray | None = None

    def params(self) -> dict[str, Any]:
        return {**super().params(), "max_iter": self.max_iter}

    def fit(self, A: np.ndarray) -> ICADictionary:
        from sklearn.decomposition import FastICA

        A = check_activations(A)
        with _quiet():
            model = FastICA(n_components=self.n_concepts, whiten="unit-variance",
                            max_iter=self.max_iter, random_state=self.seed).fit(A)
        self._set(model.mixing_.T, model.mean_)
        self._unmix = np.ascontiguousarray(model.components_, dtype=np.float32)
        return self

    def encode(self, A: np.ndarray) -> np.ndarray:
        A = check_activations(A, dim=self.dim)
        if self._unmix is None:
            raise DictionaryError("ica: fit the dictionary first")
        return ((A - self.bias) @ self._unmix.T).astype(np.float32)

    def arrays(self) -> dict[str, np.ndarray]:
        if self._unmix is None:
            raise DictionaryError("ica: fit the dictionary first")
        return {**super().arrays(), "unmixing": self._unmix}

    def load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        super().load_arrays(arrays)
        self._unmix = np.asarray(arrays["unmixing"], np.float32)


@register_dictionary
class KMeansDictionary(Dictionary):
    """k-means prototypes; a row's code is the one-hot of its nearest centre (Lloyd 1982)."""

    name = "kmeans"

    def __init__(self, n_concepts: int, seed: int = 0, n_init: int = 3) -> None:
        super().__init__(n_concepts, seed)
        self.n_init = int(n_init)

    def params(self) -> dict[str, Any]:
        return {**super().params(), "n_init": self.n_init}

    def fit(self, A: np.ndarray) -> KMeansDictionary:
        from sklearn.cluster import KMeans

        A = check_activations(A)
        if len(A) < self.n_concepts:
            raise DictionaryError(f"kmeans: {len(A)} rows for {self.n_concepts} clusters")
        model = KMeans(self.n_concepts, n_init=self.n_init, random_state=self.seed).fit(A)
        self._set(model.cluster_centers_)
        return self

    def encode(self, A: np.ndarray) -> np.ndarray:
        A = check_activations(A, dim=self.dim)
        W = self.dictionary
        d2 = (A * A).sum(1, keepdims=True) - 2 * A @ W.T + (W * W).sum(1)[None]
        U = np.zeros((len(A), self.n_concepts), np.float32)
        U[np.arange(len(A)), d2.argmin(1)] = 1.0
        return U
