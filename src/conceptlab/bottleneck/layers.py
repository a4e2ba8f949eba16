"""The Concept Bottleneck Layer (CBL) in its two explicit kinds, and how it is grounded.

A CBL has one output unit per named concept. What it reads is in its type:

* ``ScoresCBL`` reads the K concept scores ``S = normalize(X) . bank^T`` (Sparse-CBM's CBL,
  Semenov et al. 2024): a square ``Linear(K -> K)`` initialised to the identity, so unit k
  starts out *as* concept k's standardised score and its name means something from step 0.
* ``EmbeddingCBL`` reads a vector space (the L2-normalised joint embedding, ``"embedding"``,
  or a backbone's features, ``"features"``, as Label-free CBM's CBL does): ``Linear(D -> K)``,
  randomly initialised. Nothing in its architecture ties unit k to concept k, so it is
  *grounded*: trained with a term that makes unit k correlate with concept k's score
  (``Grounding``), and units that still fail to track their concept on validation are dropped
  (Label-free CBM's interpretability cutoff, Oikarinen et al. 2023, Sec. 3.3).

Both standardise their input with training statistics (buffers ``in_mean`` / ``in_std``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from conceptlab.bottleneck.objectives.base import INPUT_KINDS, InputKind
from conceptlab.errors import ConceptlabValueError
from conceptlab.utils.registry import Registry

#: grounding weight and validation cutoff used unless a ``CBLConfig`` says otherwise
#: (chosen on validation data; docs/methods.md records how)
DEFAULT_GROUNDING = 3.0
DEFAULT_CUTOFF = 0.5
#: with grounding on, an epoch is eligible for model selection only once the median
#: validation correlation of the units with their concepts reaches this (early stopping waits)
GROUNDED_FIDELITY = 0.8


class CBLConfigError(ConceptlabValueError):
    """An unknown or out-of-range CBL setting."""


@dataclass(frozen=True)
class CBLConfig:
    """What the CBL reads and how it is tied to its concepts.

    ``input``: ``"scores"``, ``"embedding"`` or ``"features"`` (``None``: the objective's
    default). ``grounding``: weight of the grounding term ``1 - mean_k corr(unit_k, S_k)`` over
    each batch (``None``: ``DEFAULT_GROUNDING``; objectives whose loss already ties units to
    concepts, ``cos3`` and ``supervised``, get none). ``cutoff``: after training, units whose
    validation correlation with their concept's score is below it are dropped (``None``:
    ``DEFAULT_CUTOFF`` for a CBL that reads a vector space, no cutoff for one that reads the
    scores, whose units start as their concepts).
    """

    input: InputKind | None = None
    grounding: float | None = None
    cutoff: float | None = None

    def __post_init__(self) -> None:
        if self.input is not None and self.input not in INPUT_KINDS:
            raise CBLConfigError(f"cbl input must be one of {list(INPUT_KINDS)}, got "
                                 f"{self.input!r}")
        if self.grounding is not None and not (math.isfinite(self.grounding)
                                               and self.grounding >= 0):
            raise CBLConfigError(f"grounding must be a finite number >= 0, got "
                                 f"{self.grounding!r}")
        if self.cutoff is not None and not -1.0 <= self.cutoff <= 1.0:
            raise CBLConfigError(f"cutoff must be in [-1, 1], got {self.cutoff!r}")

    def params(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Grounding:
    """The resolved grounding of one fit: term weight, validation cutoff (None: none), and the
    median validation fidelity an epoch needs to be selected (``GROUNDED_FIDELITY``)."""

    weight: float
    cutoff: float | None
    target: float = GROUNDED_FIDELITY


class ConceptBottleneckLayer(nn.Module):
    """``a = W ((x - mu) / sigma) + b``; subclasses fix what ``x`` is and how ``W`` starts."""

    kind: ClassVar[InputKind] = "scores"
    in_mean: Tensor
    in_std: Tensor

    def __init__(self, in_dim: int, n_concepts: int, *, bias: bool = True,
                 generator: torch.Generator | None = None, in_mean: np.ndarray | None = None,
                 in_std: np.ndarray | None = None, empty: bool = False) -> None:
        super().__init__()
        self.linear = nn.Linear(in_dim, n_concepts, bias=bias)
        mean = torch.zeros(in_dim) if in_mean is None else torch.as_tensor(in_mean).float()
        std = torch.ones(in_dim) if in_std is None else torch.as_tensor(in_std).float()
        self.register_buffer("in_mean", mean.clone())
        self.register_buffer("in_std", std.clone())
        with torch.no_grad():
            if empty:  # placeholder before loading weights (draws no random numbers)
                self.linear.weight.zero_()
            else:
                self._init_weight(generator)
            if self.linear.bias is not None:
                self.linear.bias.zero_()

    def _init_weight(self, generator: torch.Generator | None) -> None:
        raise NotImplementedError

    @property
    def n_concepts(self) -> int:
        return int(self.linear.out_features)

    @property
    def in_dim(self) -> int:
        return int(self.linear.in_features)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear((x - self.in_mean) / self.in_std)

    def select(self, keep: np.ndarray | list[int]) -> ConceptBottleneckLayer:
        """A copy holding only the output units at ``keep`` (after a unit selection)."""
        idx = torch.as_tensor(np.asarray(keep, dtype=np.int64))
        out = type(self)(self.in_dim, len(idx), bias=self.linear.bias is not None, empty=True,
                         in_mean=self.in_mean.numpy(), in_std=self.in_std.numpy())
        with torch.no_grad():
            out.linear.weight.copy_(self.linear.weight[idx])
            if self.linear.bias is not None:
                out.linear.bias.copy_(self.linear.bias[idx])
        return out

    def state_arrays(self) -> dict[str, np.ndarray]:
        out = {"weight": self.linear.weight.detach().numpy().copy(),
               "in_mean": self.in_mean.numpy().copy(), "in_std": self.in_std.numpy().copy()}
        if self.linear.bias is not None:
            out["bias"] = self.linear.bias.detach().numpy().copy()
        return out


class ScoresCBL(ConceptBottleneckLayer):
    """A CBL on the K concept scores, initialised to the identity (unit k = concept k)."""

    kind: ClassVar[InputKind] = "scores"

    def _init_weight(self, generator: torch.Generator | None) -> None:
        if self.in_dim != self.n_concepts:
            raise CBLConfigError(f"a scores CBL is square, got {self.in_dim} -> "
                                 f"{self.n_concepts}")
        self.linear.weight.copy_(torch.eye(self.n_concepts))


class EmbeddingCBL(ConceptBottleneckLayer):
    """A CBL on a vector space (embedding or features): PyTorch's default
    ``U(-1/sqrt(D), 1/sqrt(D))`` initialisation drawn from ``generator``; grounded in training."""

    kind: ClassVar[InputKind] = "embedding"

    def _init_weight(self, generator: torch.Generator | None) -> None:
        bound = 1.0 / math.sqrt(self.in_dim)
        nn.init.uniform_(self.linear.weight, -bound, bound, generator=generator)


class FeaturesCBL(EmbeddingCBL):
    """An ``EmbeddingCBL`` that reads a backbone's features instead of the joint embedding."""

    kind: ClassVar[InputKind] = "features"


LAYERS: Registry[type[ConceptBottleneckLayer]] = Registry.of("concept bottleneck layer", {
    "scores": ScoresCBL, "embedding": EmbeddingCBL, "features": FeaturesCBL})


def layer_from_arrays(kind: str, state: dict[str, np.ndarray]) -> ConceptBottleneckLayer:
    """Rebuild a saved CBL of ``kind`` from ``state_arrays()``."""
    if kind not in LAYERS:
        raise CBLConfigError(f"unknown CBL kind {kind!r}")
    weight = np.asarray(state["weight"], dtype=np.float32)
    if weight.ndim != 2:
        raise CBLConfigError(f"CBL weight must be 2-D, got shape {weight.shape}")
    layer = LAYERS[kind](weight.shape[1], weight.shape[0], bias="bias" in state, empty=True,
                         in_mean=state["in_mean"], in_std=state["in_std"])
    with torch.no_grad():
        layer.linear.weight.copy_(torch.from_numpy(weight))
        if "bias" in state:
            layer.linear.bias.copy_(torch.from_numpy(np.asarray(state["bias"], np.float32)))
    return layer
