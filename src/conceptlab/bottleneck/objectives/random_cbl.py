"""VLG-CBM's random baseline: ``random-cbl``, a randomly initialised CBL and the same sparse head.

Srivastava et al. 2024 (VLG-CBM, NeurIPS), Table 2's "Random" row: the concept layer is left at
its random initialisation and only the sparse final layer is trained, at the same NEC as every
other row; the field's standard control (at NEC = 5 it beats LF-CBM on CUB: 68.91 vs 53.51).
The layer is Trustworthy-ML-Lab/VLG-CBM, ``model/cbm.py``, ``ConceptLayer`` (one
``nn.Linear(in, K, bias=True)``, ``num_hidden=0``) at PyTorch's default initialisation; the
head standardises its inputs (VLG-CBM's ``NormalizationLayer``) and is fitted by the NEC
protocol without refit (``evaluations/sparse_utils.py``, ``measure_acc``: path, truncation).
The repository ships no script for the "Random" row itself: this rebuilds it from the paper's
description (an untrained concept layer) with the repository's own ``ConceptLayer`` and head.
On the embedding it reads the rows as the encoder returned them (VLG-CBM's layer reads raw
backbone outputs), not the unit-norm rows our own CBLs read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from torch import Tensor

from conceptlab.bottleneck.objectives.base import (
    InputKind,
    LossInputs,
    Objective,
    ObjectiveError,
    ValidationInputs,
)
from conceptlab.bottleneck.objectives.registry import register_objective

if TYPE_CHECKING:  # the training module imports this package: types only
    from conceptlab.bottleneck.training import CBLFit, TrainConfig, TrainData


@register_objective
@dataclass
class RandomCBL(Objective):
    """No loss and no training: the units are K random projections of what the CBL reads
    (the embedding by default, or ``cbl.input=features`` / ``scores``). Its names mean
    nothing by construction; the audit should say so."""

    name: ClassVar[str] = "random-cbl"
    summary: ClassVar[str] = "randomly initialised CBL + the same sparse head (VLG-CBM's baseline)"
    input_kinds: ClassVar[tuple[InputKind, ...]] = ("embedding", "features", "scores")
    joint_head: ClassVar[bool] = False
    reference: ClassVar[bool] = True
    normalises_embedding: ClassVar[bool] = False
    train_defaults: ClassVar[dict[str, Any]] = {"finetune_epochs": 0}
    head_defaults: ClassVar[dict[str, Any]] = {"refit": False}

    def loss(self, batch: LossInputs) -> tuple[Tensor, dict[str, float]]:
        raise ObjectiveError("random-cbl trains nothing; it has no loss")

    def validation_score(self, val: ValidationInputs) -> tuple[float, float]:
        return float("nan"), float("nan")

    def train_reference(self, data: TrainData, *, kind: InputKind, n_classes: int,
                        config: TrainConfig, seed: int, desc: str = "") -> CBLFit:
        from conceptlab.bottleneck.references import random_cbl

        return random_cbl(data, kind=kind, seed=seed)
