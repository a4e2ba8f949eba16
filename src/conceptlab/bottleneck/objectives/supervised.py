"""The joint concept bottleneck model of Koh et al. (ground-truth concept labels)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch.nn.functional as F
from torch import Tensor

from conceptlab.bottleneck.objectives.base import (
    InputKind,
    LossInputs,
    Objective,
    ObjectiveError,
    loss_term,
)
from conceptlab.bottleneck.objectives.registry import register_objective


@register_objective
@dataclass
class SupervisedObjective(Objective):
    """Joint concept bottleneck model (Koh et al. 2020, "Concept Bottleneck Models", Sec. 3):
    ``CE(head(c^), y) + lambda * sum_k BCE(c^_k, c_k)`` (mean over the batch, *sum* over the K
    concepts as in Koh et al.'s ``L_Y + lambda sum_j L_Cj``) with ground-truth concept labels
    ``c``; units are concept logits. For datasets with concept annotations (e.g. the
    concept-benchmark robot texts); it makes units directly interventable.

    ``concept_weight`` is ``lambda`` (default 1). Measured on synthetic data with 8 concepts:
    averaging instead of summing over concepts (lambda / K) let the class loss repurpose the
    units, and correcting them at test time *lowered* accuracy (0.66 -> 0.40); with the sum,
    correcting all concepts raised it to 1.0.
    """

    name: ClassVar[str] = "supervised"
    summary: ClassVar[str] = "cross-entropy + BCE to ground-truth concept labels (Koh et al.)"
    input_kinds: ClassVar[tuple[InputKind, ...]] = ("embedding", "scores", "features")
    needs_concept_labels: ClassVar[bool] = True
    grounds_units: ClassVar[bool] = True
    concept_weight: float = 1.0

    def __post_init__(self) -> None:
        if not self.concept_weight >= 0:
            raise ObjectiveError(f"concept_weight must be >= 0, got {self.concept_weight}")

    def loss(self, batch: LossInputs) -> tuple[Tensor, dict[str, float]]:
        if batch.concept_labels is None:
            raise ObjectiveError("the 'supervised' objective needs ground-truth concept labels")
        ce = self._ce(batch)
        bce = F.binary_cross_entropy_with_logits(batch.pre, batch.concept_labels,
                                                 reduction="none").sum(1).mean()
        return ce + self.concept_weight * bce, {"ce": loss_term(ce),
                                                 "concept_bce": loss_term(bce)}
