"""The fitted linear head ``logits = weight . ((z - mean) / std) + bias`` and its storage."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from conceptlab import metrics
from conceptlab.errors import ConceptlabValueError


@dataclass
class LinearHead:
    """A fitted linear head ``logits = weight . ((z - mean) / std) + bias``.

    ``weight`` is C x K (classes x input features/concepts), ``bias`` C, ``mean``/``std`` K (the
    training-set standardisation; constant features have ``std`` 1). ``info`` is a JSON-able
    record of how the head was fitted (solver, chosen regularisation, validation accuracy,
    iterations, seconds, ...).
    """

    weight: np.ndarray
    bias: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.weight = np.asarray(self.weight, dtype=np.float32)
        self.bias = np.asarray(self.bias, dtype=np.float32)
        self.mean = np.asarray(self.mean, dtype=np.float32)
        self.std = np.asarray(self.std, dtype=np.float32)
        if self.weight.ndim != 2:
            raise ConceptlabValueError(f"head weight must be C x K, got shape "
                                       f"{self.weight.shape}")
        n_classes, k = self.weight.shape
        if self.bias.shape != (n_classes,):
            raise ConceptlabValueError(f"head bias has shape {self.bias.shape}, expected "
                                       f"({n_classes},)")
        if self.mean.shape != (k,) or self.std.shape != (k,):
            raise ConceptlabValueError(f"standardisation stats have shapes {self.mean.shape} and "
                             f"{self.std.shape}, expected ({k},)")
        if (self.std <= 0).any():
            raise ConceptlabValueError("standardisation std must be positive")
        for name in ("weight", "bias", "mean", "std"):
            if not np.isfinite(getattr(self, name)).all():
                raise ConceptlabValueError(f"head {name} contains NaN or infinity")

    @property
    def n_classes(self) -> int:
        return int(self.weight.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.weight.shape[1])

    def _check_inputs(self, Z: np.ndarray) -> np.ndarray:
        Z = np.asarray(Z, dtype=np.float32)
        if Z.ndim != 2 or Z.shape[1] != self.n_features:
            raise ConceptlabValueError(f"inputs of shape {Z.shape} do not match a head over "
                             f"{self.n_features} features")
        if not np.isfinite(Z).all():
            raise ConceptlabValueError("inputs contain NaN or infinity")
        return Z

    def standardize(self, Z: np.ndarray) -> np.ndarray:
        """``(Z - mean) / std`` with the training statistics (N x K float32)."""
        return (self._check_inputs(Z) - self.mean) / self.std

    def folded(self) -> tuple[np.ndarray, np.ndarray]:
        """``(W', b')`` with ``logits = Z W'^T + b'`` on raw inputs: the standardisation folded
        into the weights (``W' = W / std``, ``b' = b - W' mean``), float32."""
        w = (self.weight / self.std).astype(np.float32)
        return w, (self.bias - w @ self.mean).astype(np.float32)

    def logits(self, Z: np.ndarray) -> np.ndarray:
        """Class scores, N x C."""
        return self.standardize(Z) @ self.weight.T + self.bias

    def predict(self, Z: np.ndarray) -> np.ndarray:
        """Predicted class per row (N,), int64; ties go to the lowest class index."""
        return self.logits(Z).argmax(axis=1).astype(np.int64)

    def contributions(self, Z: np.ndarray, classes: np.ndarray | None = None) -> np.ndarray:
        """Per-example, per-feature contribution to one class's logit (N x K).

        ``contributions[i, k] = weight[c_i, k] * standardize(Z)[i, k]`` with ``c_i`` the predicted
        class (default) or ``classes[i]``; a row sums to that class's logit minus its bias.
        """
        Zs = self.standardize(Z)
        if classes is None:
            cls = (Zs @ self.weight.T + self.bias).argmax(axis=1)
        else:
            cls = np.asarray(classes)
            if cls.shape != (len(Zs),):
                raise ConceptlabValueError(f"classes has shape {cls.shape}, expected ({len(Zs)},)")
            if not np.issubdtype(cls.dtype, np.integer):
                raise ConceptlabValueError("classes must be integers")
            if len(cls) and (cls.min() < 0 or cls.max() >= self.n_classes):
                raise ConceptlabValueError(f"classes must lie in [0, {self.n_classes})")
        return self.weight[cls] * Zs

    @property
    def nec(self) -> float:
        """Number of effective concepts: non-zero weights / number of classes (VLG-CBM)."""
        return metrics.nec(self.weight)

    def state(self) -> dict[str, np.ndarray]:
        """Arrays to store with safetensors (``info`` goes to JSON beside them)."""
        return {"weight": self.weight.copy(), "bias": self.bias.copy(),
                "mean": self.mean.copy(), "std": self.std.copy()}

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray], info: dict[str, Any]) -> LinearHead:
        """Rebuild a head from ``state()`` arrays and its ``info``."""
        missing = {"weight", "bias", "mean", "std"} - set(state)
        if missing:
            raise ConceptlabValueError(f"head state lacks {sorted(missing)}")
        return cls(weight=np.asarray(state["weight"]), bias=np.asarray(state["bias"]),
                   mean=np.asarray(state["mean"]), std=np.asarray(state["std"]),
                   info=dict(info))

