"""Concept Lancet's decomposition: a representation as a sparse non-negative combination of
concept vectors, plus a residual.

CoLan (Luo et al., "Concept Lancet: Image Editing with Compositional Representation
Transplant", CVPR 2025, sec. 3) writes a source representation as a sparse linear
combination of the dictionary's concept vectors and reads each concept's presence from its
coefficient. Here, for every input ``x`` (unit-normalised) and dictionary ``D`` (K x d),

    w* = argmin_{w >= 0}  1/2 || (x - mu) - w D~ ||^2 + lam * ||w||_1,

with ``mu`` the mean training representation and ``D~`` the concept vectors centred on the
dictionary's mean and re-normalised (the centring SpLiCE, Bhalla et al. 2024, uses so that
the part every input and every text share is not explained by concepts). Solved for all
inputs at once by FISTA with a non-negative soft threshold (Beck & Teboulle 2009), step
``1 / ||D~||_2^2``. ``x - mu = w* D~ + r`` exactly, ``r`` the residual an edit leaves alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from conceptlab.errors import ConceptlabValueError
from conceptlab.lancet.dictionary import ConceptDictionary


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def nonneg_lasso(Y: np.ndarray, A: np.ndarray, lam: float, iters: int = 500,
                 tol: float = 1e-7) -> np.ndarray:
    """``argmin_{W >= 0} 1/2 ||Y - W A||_F^2 + lam * sum(W)`` row by row (FISTA), W: N x K."""
    Y = np.asarray(Y, dtype=np.float64)
    A = np.asarray(A, dtype=np.float64)
    if Y.ndim != 2 or A.ndim != 2 or Y.shape[1] != A.shape[1]:
        raise ConceptlabValueError(f"cannot decompose {Y.shape} over a {A.shape} dictionary")
    if lam < 0:
        raise ConceptlabValueError(f"lam must be >= 0, got {lam}")
    G = A @ A.T
    B = Y @ A.T
    step = 1.0 / max(float(np.linalg.eigvalsh(G)[-1]), 1e-12)
    W = np.zeros((Y.shape[0], A.shape[0]))
    Z, t = W.copy(), 1.0
    for _ in range(iters):
        W_new = np.maximum(Z - step * (Z @ G - B + lam), 0.0)
        t_new = (1 + np.sqrt(1 + 4 * t * t)) / 2
        Z = W_new + ((t - 1) / t_new) * (W_new - W)
        delta = float(np.abs(W_new - W).max())
        W, t = W_new, t_new
        if delta < tol:
            break
    return W


@dataclass
class Lancet:
    """A dictionary's centred atoms and the representations' centre; decomposes inputs."""

    dictionary: ConceptDictionary
    center: np.ndarray  # mean unit-normalised training representation (d,)
    lam: float = 0.02

    def __post_init__(self) -> None:
        V = np.asarray(self.dictionary.vectors, dtype=np.float64)
        if V.ndim != 2 or V.shape[0] != len(self.dictionary.names) or V.shape[1] == 0:
            raise ConceptlabValueError("the dictionary is not encoded (call .encode first)")
        self.center = np.asarray(self.center, dtype=np.float64).reshape(-1)
        if self.center.shape != (V.shape[1],):
            raise ConceptlabValueError(f"centre of shape {self.center.shape} does not fit "
                                       f"{V.shape[1]}-d concept vectors")
        self.atoms = _unit(V - V.mean(0, keepdims=True))

    @classmethod
    def fit(cls, dictionary: ConceptDictionary, X_train: np.ndarray, lam: float = 0.02
            ) -> Lancet:
        return cls(dictionary, _unit(np.asarray(X_train, dtype=np.float64)).mean(0), lam)

    def centred(self, X: np.ndarray) -> np.ndarray:
        x = np.asarray(X, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.atoms.shape[1]:
            raise ConceptlabValueError(f"inputs of shape {x.shape} do not fit the "
                                       f"{self.atoms.shape[1]}-d dictionary")
        return _unit(x) - self.center

    def coefficients(self, X: np.ndarray) -> np.ndarray:
        """Presence of every concept in every input (N x K, >= 0, sparse)."""
        return nonneg_lasso(self.centred(X), self.atoms, self.lam)

    def uncentre(self, Xc: np.ndarray) -> np.ndarray:
        """Back from centred coordinates to the space (unit-normalised)."""
        return _unit(np.asarray(Xc) + self.center)
