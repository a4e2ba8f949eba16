"""Label-free CBM's cubed-cosine objective."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from conceptlab.bottleneck.objectives.base import (
    InputKind,
    LossInputs,
    Objective,
    ObjectiveError,
    ValidationInputs,
    loss_term,
)
from conceptlab.bottleneck.objectives.functional import cos3_similarity
from conceptlab.bottleneck.objectives.registry import register_objective


@register_objective
@dataclass
class Cos3Objective(Objective):
    """Label-free CBM's CBL objective (Oikarinen et al. 2023, Sec. 3.3, Eq. 2).

    ``L = -(1/K) sum_k sim_cos3(q_k, P_k)`` where ``q_k`` is unit ``k``'s output over the batch
    (``Linear(D -> K)`` on the embedding or on a backbone's features, no bias) and ``P_k`` the
    target similarity of concept ``k`` (the encoder's concept scores ``S = normalize(X) .
    bank^T``); see ``cos3_similarity``. No head is trained jointly; model selection uses the
    validation mean cos3 similarity, as Label-free CBM does. After fitting, concepts whose
    *validation* cos3 similarity is below ``cutoff`` (LF-CBM's interpretability cutoff, 0.45)
    are dropped; the final (sparse or dense) head is fitted on the remaining units.
    """

    name: ClassVar[str] = "cos3"
    summary: ClassVar[str] = "cubed-cosine match of units to concept scores (Label-free CBM)"
    input_kinds: ClassVar[tuple[InputKind, ...]] = ("embedding", "features")
    joint_head: ClassVar[bool] = False
    cbl_bias: ClassVar[bool] = False
    grounds_units: ClassVar[bool] = True
    cutoff: float = 0.45

    def __post_init__(self) -> None:
        if not -1.0 <= self.cutoff <= 1.0:
            raise ObjectiveError(f"cutoff must be in [-1, 1], got {self.cutoff}")

    def loss(self, batch: LossInputs) -> tuple[Tensor, dict[str, float]]:
        sim = cos3_similarity(batch.pre, batch.target_scores)
        return -sim.mean(), {"cos3": loss_term(sim.mean())}

    def validation_score(self, val: ValidationInputs) -> tuple[float, float]:
        with torch.no_grad():
            sim = float(cos3_similarity(val.pre, val.target_scores).mean())
        return sim, sim

    def select_units(self, pre_val: np.ndarray, scores_val: np.ndarray
                     ) -> tuple[np.ndarray, dict[str, Any]]:
        sims = cos3_similarity(torch.as_tensor(pre_val), torch.as_tensor(scores_val)).numpy()
        keep = np.flatnonzero(sims >= self.cutoff)
        return keep, {"rule": f"validation cos3 similarity >= {self.cutoff}",
                      "scores": sims.astype(float).tolist()}
