"""The model seen from its concepts: codes -> latent (the dictionary's affine decoder) -> logits.

The holistic framework (Fel et al., NeurIPS 2023, section 2) writes the network as
``h = g o f`` split at a layer, and the activations as ``A ≈ U W``; concept importance is then
any attribution method applied to ``U -> g(U W)``. ``ConceptModel`` is that function, in torch,
differentiable in the codes, batched over inputs: codes ``(N, P, K)`` (``P`` positions of a
spatial map, 1 for pooled rows) give logits ``(N, C)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from conceptlab.discover.base import Dictionary
from conceptlab.errors import ConceptlabValueError


class ImportanceError(ConceptlabValueError):
    """Raised for codes, targets or masks that do not fit the concept model."""


@dataclass
class ConceptModel:
    """``logits = head(U @ W + bias [+ residual])``; ``grid`` (h, w) for spatial codes."""

    W: torch.Tensor  # K x D
    bias: torch.Tensor  # D
    head: Callable[[torch.Tensor], torch.Tensor]
    grid: tuple[int, int] | None = None

    @classmethod
    def from_dictionary(cls, d: Dictionary, head: Callable[[torch.Tensor], torch.Tensor],
                        grid: tuple[int, int] | None = None) -> ConceptModel:
        return cls(torch.from_numpy(d.dictionary.copy()), torch.from_numpy(d.bias.copy()),
                   head, grid)

    @property
    def n_concepts(self) -> int:
        return int(self.W.shape[0])

    def check(self, U: torch.Tensor) -> torch.Tensor:
        if U.dim() == 2:
            U = U[:, None]
        if U.dim() != 3 or U.shape[2] != self.n_concepts:
            raise ImportanceError(f"codes must be (N, P, {self.n_concepts}), got "
                                  f"{tuple(U.shape)}")
        P = 1 if self.grid is None else self.grid[0] * self.grid[1]
        if U.shape[1] != P:
            raise ImportanceError(f"codes have {U.shape[1]} positions, the grid has {P}")
        return U

    def __call__(self, U: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        U = self.check(U)
        A = U @ self.W + self.bias
        if residual is not None:
            A = A + residual
        if self.grid is None:
            return self.head(A[:, 0])
        h, w = self.grid
        return self.head(A.reshape(A.shape[0], h, w, -1).permute(0, 3, 1, 2))

    def target_logit(self, U: torch.Tensor, target: torch.Tensor,
                     residual: torch.Tensor | None = None) -> torch.Tensor:
        """Logit of each row's target class, ``(N,)``."""
        out = self(U, residual)
        return out.gather(1, target.long().view(-1, 1))[:, 0]


def as_codes(U: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Codes as a float32 tensor ``(N, P, K)`` (a 2-D array means one position per input)."""
    t = torch.as_tensor(np.asarray(U, np.float32)) if not isinstance(U, torch.Tensor) else U
    t = t.float()
    return t[:, None] if t.dim() == 2 else t
