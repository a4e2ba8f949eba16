"""Sparse-CBM's l1 objective."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor

from conceptlab.bottleneck.objectives.base import LossInputs, Objective, ObjectiveError, loss_term
from conceptlab.bottleneck.objectives.functional import l1_penalty
from conceptlab.bottleneck.objectives.registry import register_objective


@register_objective
@dataclass
class L1Objective(Objective):
    """``CE(head(a), y) + lambda * ||W_cbl||_1 / K`` (Sparse-CBM's l1 CBM, Semenov et al. 2024,
    Sec. 3; the L1 weight penalty of Tibshirani 1996 on the CBL weight).

    The penalty makes each CBL unit depend on few inputs (on concept scores it keeps the
    identity initialisation, i.e. the concept names, unless the data argue otherwise); it does
    *not* make per-example activations sparse.

    conceptlab's design after the paper, not its code: ``ref:sparsecbm-l1``
    (``objectives/ref_sparsecbm.py``) is the reference; docs/methods.md lists the differences
    (identity initialisation, bias, standardised scores, lambda 1e-2).
    """

    name: ClassVar[str] = "l1"
    summary: ClassVar[str] = ("cross-entropy + l1 penalty on the CBL weight (conceptlab's; "
                              "ref:sparsecbm-l1 is Sparse-CBM's code)")
    lam: float = 1e-2

    def __post_init__(self) -> None:
        if not self.lam >= 0:
            raise ObjectiveError(f"lam must be >= 0, got {self.lam}")

    def loss(self, batch: LossInputs) -> tuple[Tensor, dict[str, float]]:
        ce = self._ce(batch)
        pen = l1_penalty(batch.cbl_weight)
        return ce + self.lam * pen, {"ce": loss_term(ce), "l1": loss_term(pen)}
