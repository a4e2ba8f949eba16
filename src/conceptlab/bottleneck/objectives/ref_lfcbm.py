"""Label-free CBM as its public code trains it: ``ref:lfcbm``.

Trustworthy-ML-Lab/Label-free-CBM, ``train_cbm.py``, ``train_cbm_and_save``: the
``clip_cutoff`` filter, the projection layer (``references.train_lfcbm``), the
interpretability cutoff; the similarity is ``similarity.py``, ``cos_similarity_cubed_single``.

How this differs from conceptlab's ``cos3`` (docs/methods.md has the table): full-batch steps
(``proj_batch_size`` 50000) instead of minibatches of 256, Adam at 1e-3 instead of 1e-2,
validation every 50 steps with a stop at the first non-improvement instead of epoch patience,
raw inputs instead of standardised ones, the top-5 ``clip_cutoff`` filter before training,
and strict cutoffs (``>``). cos^3 is a statistic of the batch driven by rare high activations,
so the batch size changes what is learned.

The reference's final layer (glm-saga at a fixed lambda = 0.0007) is not reproduced: the head
is conceptlab's (dense with ``nec=None``; at a NEC, VLG-CBM's path-and-truncation protocol,
which is how VLG-CBM evaluates LF-CBM). One bug is fixed: the reference's validation split is
the official test split (``{dataset}_val``); here it is carved from train.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

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
from conceptlab.bottleneck.objectives.registry import register_objective

if TYPE_CHECKING:  # the training module imports this package: types only
    from conceptlab.bottleneck.training import CBLFit, TrainConfig, TrainData


def _cos3(a: Tensor, b: Tensor) -> Tensor:
    from conceptlab.bottleneck.references import lfcbm_cos3

    return lfcbm_cos3(a, b)


@register_objective
@dataclass
class LFCBMReference(Objective):
    """LF-CBM's CBL: ``Linear(D -> K, bias=False)`` fitted by ``-mean_k cos3(S_k, unit_k)``.

    ``clip_cutoff`` (0.25): before training, concept k is kept only if the mean of its 5
    highest training scores exceeds it (``highest = mean(topk(clip_features, k=5, dim=0))``).
    ``interpretability_cutoff`` (0.45): after training, unit k is kept only if its validation
    cos3 similarity exceeds it. ``val_every`` (50): validation period in steps. Optimiser
    settings are ``TrainConfig`` fields: ``lr`` 1e-3, ``batch_size`` = ``proj_batch_size``
    50000, ``max_epochs`` = ``proj_steps`` 1000 (one step each). The CBL reads the embedding by
    default (every encoder has one; LF-CBM with a CLIP backbone reads the image embedding) or
    a backbone's features (``cbl.input=features``, LF-CBM's usual backbone).
    """

    name: ClassVar[str] = "ref:lfcbm"
    summary: ClassVar[str] = ("Label-free CBM as its code trains it (Label-free-CBM "
                              "train_cbm.py)")
    input_kinds: ClassVar[tuple[InputKind, ...]] = ("embedding", "features")
    joint_head: ClassVar[bool] = False
    cbl_bias: ClassVar[bool] = False
    grounds_units: ClassVar[bool] = True
    reference: ClassVar[bool] = True
    normalises_embedding: ClassVar[bool] = False
    train_defaults: ClassVar[dict[str, Any]] = {"lr": 1e-3, "batch_size": 50000,
                                                "max_epochs": 1000, "finetune_epochs": 0}
    head_defaults: ClassVar[dict[str, Any]] = {"refit": False}
    clip_cutoff: float = 0.25
    interpretability_cutoff: float = 0.45
    val_every: int = 50

    def __post_init__(self) -> None:
        for name in ("clip_cutoff", "interpretability_cutoff"):
            if not -1.0 <= getattr(self, name) <= 1.0:
                raise ObjectiveError(f"{name} must be in [-1, 1], got {getattr(self, name)}")
        if self.val_every < 1:
            raise ObjectiveError(f"val_every must be >= 1, got {self.val_every}")

    def loss(self, batch: LossInputs) -> tuple[Tensor, dict[str, float]]:
        sim = _cos3(batch.target_scores, batch.pre)
        return torch.mean(-sim), {"cos3": loss_term(sim.mean())}

    def validation_score(self, val: ValidationInputs) -> tuple[float, float]:
        with torch.no_grad():
            sim = float(_cos3(val.target_scores, val.pre).mean())
        return sim, -sim

    def preselect_units(self, scores_train: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        s = torch.as_tensor(np.asarray(scores_train, dtype=np.float32))
        top = min(5, len(s))
        highest = torch.mean(torch.topk(s, dim=0, k=top)[0], dim=0).numpy()
        keep = np.flatnonzero(highest > self.clip_cutoff)
        return keep, {"rule": f"mean of the top-{top} training scores > {self.clip_cutoff}",
                      "setting": "clip_cutoff", "scores": highest.astype(float).tolist()}

    def select_units(self, pre_val: np.ndarray, scores_val: np.ndarray
                     ) -> tuple[np.ndarray, dict[str, Any]]:
        with torch.no_grad():
            sims = _cos3(torch.as_tensor(scores_val), torch.as_tensor(pre_val)).numpy()
        keep = np.flatnonzero(sims > self.interpretability_cutoff)
        return keep, {"rule": f"validation cos3 similarity > {self.interpretability_cutoff}",
                      "scores": sims.astype(float).tolist()}

    def train_reference(self, data: TrainData, *, kind: InputKind, n_classes: int,
                        config: TrainConfig, seed: int, desc: str = "") -> CBLFit:
        from conceptlab.bottleneck.references import train_lfcbm

        return train_lfcbm(self, data, kind=kind, config=config, seed=seed,
                           val_every=self.val_every, desc=desc)
