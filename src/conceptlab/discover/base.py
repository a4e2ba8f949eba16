"""One protocol for every concept dictionary, and the registry that builds them by name.

Concept extraction is dictionary learning on activations (Fel et al., NeurIPS 2023, "A Holistic
Approach to Unifying Automatic Concept Extraction and Concept Importance Estimation", eq. 1):
find codes ``U`` (N x K) and a dictionary ``W`` (K x D) with ``A ≈ U W``. Every method here
(NMF, semi-NMF, PCA, ICA, k-means, sparse autoencoders) fits that one contract:

* ``fit(A)`` learns the dictionary; ``encode(A)`` gives codes of new activations with the
  dictionary fixed; ``decode(U) = U @ dictionary + bias`` (affine for every method, so the
  decoder is differentiable and importance estimators can run on codes);
* ``state()`` / ``from_state`` save and load as plain arrays + JSON (safetensors, no pickle).

A new method is one file: subclass ``Dictionary``, decorate it with ``@register_dictionary``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from conceptlab.errors import ConceptlabValueError
from conceptlab.utils.registry import Registry


class DictionaryError(ConceptlabValueError):
    """Raised for an unknown method, bad activations (shape, NaN, sign) or an unfitted model."""


def check_activations(A: np.ndarray, what: str = "activations", dim: int | None = None
                      ) -> np.ndarray:
    """``A`` as a finite float32 (N, D) array with N >= 1; a clear error otherwise."""
    arr = np.asarray(A, dtype=np.float32)
    if arr.ndim != 2:
        raise DictionaryError(f"{what} must be 2-D (rows x dims), got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise DictionaryError(f"{what} have no rows")
    if dim is not None and arr.shape[1] != dim:
        raise DictionaryError(f"{what} have {arr.shape[1]} dims, the dictionary has {dim}")
    if not np.isfinite(arr).all():
        raise DictionaryError(f"{what} contain NaN or infinity")
    return arr


def check_nonnegative(A: np.ndarray, method: str) -> None:
    """Methods with non-negative dictionaries need non-negative activations (post-ReLU)."""
    low = float(A.min())
    if low < 0:
        raise DictionaryError(
            f"{method} needs non-negative activations, the smallest is {low:.3g}: use a post-ReLU "
            "hook point (e.g. 'features' on EfficientNet) or a signed method (seminmf, pca, ica, "
            "sae)")


class Dictionary(ABC):
    """Codes ``U`` (N x K) and dictionary ``W`` (K x D) with ``A ≈ U W + bias``."""

    name: ClassVar[str] = ""
    #: codes are >= 0 (NMF, semi-NMF, k-means, SAEs): importance masks in [0, 1] make sense
    nonnegative_codes: ClassVar[bool] = True

    def __init__(self, n_concepts: int, seed: int = 0) -> None:
        if isinstance(n_concepts, bool) or not isinstance(n_concepts, (int, np.integer)) \
                or n_concepts < 1:
            raise DictionaryError(f"n_concepts must be an int >= 1, got {n_concepts!r}")
        self.n_concepts = int(n_concepts)
        self.seed = int(seed)
        self._W: np.ndarray | None = None
        self._bias: np.ndarray | None = None

    # --- the protocol -------------------------------------------------------------------
    @abstractmethod
    def fit(self, A: np.ndarray) -> Dictionary:
        """Learn the dictionary on activations ``A`` (N x D); returns self."""

    @abstractmethod
    def encode(self, A: np.ndarray) -> np.ndarray:
        """Codes (N x K, float32) of activations ``A`` with the dictionary fixed."""

    def decode(self, U: np.ndarray) -> np.ndarray:
        """Reconstruction ``U @ dictionary + bias`` (N x D)."""
        U = np.asarray(U, dtype=np.float32)
        if U.ndim != 2 or U.shape[1] != self.n_concepts:
            raise DictionaryError(f"codes must be (N, {self.n_concepts}), got shape {U.shape}")
        return U @ self.dictionary + self.bias

    @property
    def dictionary(self) -> np.ndarray:
        """The K x D concept directions (rows), float32."""
        if self._W is None:
            raise DictionaryError(f"{self.name}: fit the dictionary first")
        return self._W

    @property
    def bias(self) -> np.ndarray:
        """Offset added by ``decode`` (the data mean for PCA/ICA, the decoder bias for SAEs)."""
        if self._bias is None:
            return np.zeros(self.dictionary.shape[1], np.float32)
        return self._bias

    @property
    def dim(self) -> int:
        return int(self.dictionary.shape[1])

    def fit_encode(self, A: np.ndarray) -> np.ndarray:
        """``fit(A)`` then ``encode(A)``."""
        return self.fit(A).encode(A)

    # --- streaming (optional) -----------------------------------------------------------
    #: whether ``partial_fit`` works (activations too many to hold: a language model's tokens)
    streaming: ClassVar[bool] = False

    def partial_fit(self, A: np.ndarray, total_rows: int | None = None) -> Dictionary:
        """Learn from one chunk of a stream of activations (rows seen once, never stored).

        The first call initialises the dictionary from its chunk; ``total_rows`` (the planned
        size of the whole stream) lets methods schedule by progress. After every call the
        dictionary encodes and decodes with what it has learnt so far. Methods that need all
        rows at once (NMF, PCA, ...) refuse, by name.
        """
        raise DictionaryError(f"{self.name} learns from all rows at once and has no streaming "
                              "fit; use a sparse autoencoder (sae, topk-sae, batchtopk-sae)")

    # --- saving -------------------------------------------------------------------------
    def params(self) -> dict[str, Any]:
        """JSON-able constructor arguments (recorded and used by ``from_state``)."""
        return {"n_concepts": self.n_concepts, "seed": self.seed}

    def arrays(self) -> dict[str, np.ndarray]:
        """Every array ``encode``/``decode`` need (saved as safetensors)."""
        return {"dictionary": self.dictionary, "bias": self.bias}

    def load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Inverse of ``arrays`` (subclasses with more state extend it)."""
        W = np.asarray(arrays["dictionary"], np.float32)
        if W.ndim != 2 or W.shape[0] != self.n_concepts:
            raise DictionaryError(f"saved dictionary has shape {W.shape}, expected "
                                  f"({self.n_concepts}, D)")
        self._W = W
        self._bias = np.asarray(arrays["bias"], np.float32)

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(JSON metadata, arrays) that ``from_state`` turns back into a working dictionary."""
        return {"method": self.name, "params": self.params()}, self.arrays()

    @staticmethod
    def from_state(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> Dictionary:
        d = build_dictionary(meta["method"], **meta["params"])
        d.load_arrays(arrays)
        return d

    def _set(self, W: np.ndarray, bias: np.ndarray | None = None) -> None:
        self._W = np.ascontiguousarray(W, dtype=np.float32)
        self._bias = None if bias is None else np.ascontiguousarray(bias, dtype=np.float32)


DictionaryFactory = Callable[..., Dictionary]
_REGISTRY: Registry[type[Dictionary]] = Registry("dictionary method", DictionaryError)


def register_dictionary(cls: type[Dictionary]) -> type[Dictionary]:
    """Class decorator: register ``cls`` under ``cls.name``."""
    if not cls.name:
        raise DictionaryError(f"{cls.__name__} has no name")
    _REGISTRY.add(cls.name, cls)
    return cls


def _load_builtin() -> None:
    from conceptlab.discover import craft, linear, sae  # noqa: F401  (importing registers)


def known_dictionaries() -> list[str]:
    """Registered method names (``nmf``, ``pca``, ..., ``batchtopk-sae``)."""
    _load_builtin()
    return sorted(_REGISTRY)


def build_dictionary(method: str, n_concepts: int, seed: int = 0, **options: Any) -> Dictionary:
    """A fresh dictionary of ``method`` with ``n_concepts`` atoms; unknown names suggest close ones.
    """
    _load_builtin()
    factory = _REGISTRY.lookup(method)
    try:
        return factory(n_concepts=n_concepts, seed=seed, **options)
    except TypeError as err:
        raise DictionaryError(f"{method}: bad option ({err})") from err
