"""Sparse-CBM's contrastive objective."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor

from conceptlab.bottleneck.objectives.base import LossInputs, Objective, ObjectiveError, loss_term
from conceptlab.bottleneck.objectives.functional import (
    clip_contrastive_loss,
    cosine_class_similarity,
)
from conceptlab.bottleneck.objectives.registry import register_objective


@register_objective
@dataclass
class ContrastiveObjective(Objective):
    """``CE(head(a), y) + weight * L_clip(cos(a_i, A_j) / tau)`` (Sparse-CBM's contrastive CBM,
    Semenov et al. 2024, Sec. 3, with the symmetric CLIP loss of Radford et al. 2021).

    ``A_j`` is class ``j``'s row of the class-concept association matrix, so the loss pulls each
    example's CBL activation vector towards the concepts of its own class and away from the
    others' (rows), and makes each class's concept row pick out its own examples among the
    batch (columns); see ``clip_contrastive_loss``. ``tau`` is fixed (CLIP learns it from 0.07).

    conceptlab's design: the reference code's loss (``ref:sparsecbm-contrastive``) uses the
    diagonal of the B x K unit matrix as positives instead of the class rows.
    """

    name: ClassVar[str] = "contrastive"
    summary: ClassVar[str] = ("cross-entropy + CLIP loss to the class-concept rows (conceptlab's; "
                              "ref:sparsecbm-contrastive is the code's)")
    needs_association: ClassVar[bool] = True
    weight: float = 1.0
    tau: float = 0.1

    def __post_init__(self) -> None:
        if not self.weight >= 0:
            raise ObjectiveError(f"weight must be >= 0, got {self.weight}")
        if not self.tau > 0:
            raise ObjectiveError(f"tau must be > 0, got {self.tau}")

    def similarity(self, acts: Tensor, association: Tensor) -> Tensor:
        return cosine_class_similarity(acts, association)

    def loss(self, batch: LossInputs) -> tuple[Tensor, dict[str, float]]:
        if batch.association is None:
            raise ObjectiveError(f"the {self.name!r} objective needs a class-concept "
                                 f"association")
        ce = self._ce(batch)
        con = clip_contrastive_loss(self.similarity(batch.acts, batch.association) / self.tau,
                                    batch.y)
        return ce + self.weight * con, {"ce": loss_term(ce), "contrastive": loss_term(con)}
