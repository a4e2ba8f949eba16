"""Sparse-CBM as its public code trains it: ``ref:sparsecbm-l1``, ``-contrastive``, ``-gumbel``.

Andron00e/SparseCBM: the model is ``bottlenecks/cbm.py``, ``BaseCBModel``; the losses are
``criterion_l1``, ``criterion_contrastive`` (``contrastive_loss``) and ``criterion_gumbel``
(``gumbel_contrastive_loss``) in the same file; the loop is ``bottlenecks/trainer_utils.py``,
``BottleneckTrainer.train`` (defaults ``gumbel_tau=1.0``, ``gumbel_hard=False``,
``l1_lambda=1e-3``); the optimiser settings are the demo's (``demo_notebooks/demo.ipynb``:
Adam, 3e-4, batches of 128, 10 epochs). ``references.train_sparsecbm`` runs the loop.

How these differ from conceptlab's ``l1`` / ``contrastive`` / ``gumbel`` (docs/methods.md has
the table): random instead of identity initialisation, no CBL bias, raw ``logit_scale * S``
instead of standardised scores, a head without bias on the raw units, the reference's loss
forms (below), a fixed tau = 1 in the loss only, lambda = 1e-3, the last epoch kept.

Two bugs of the reference are fixed, nothing else: its head was missing from its optimiser
(``references.sparsecbm_optimizers``), and its loaders re-split the data on every call, so
test images entered training (conceptlab's splits are made once and checked disjoint).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
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

if TYPE_CHECKING:  # the training module imports this package: types only
    from conceptlab.bottleneck.training import CBLFit, TrainConfig, TrainData


@dataclass
class SparseCBMReference(Objective):
    """Shared by the three Sparse-CBM references: the model, the loop, the head protocol.

    ``logit_scale``: CLIP's ``logits_per_image`` is ``exp(logit_scale) * cos`` = 100 * cos for
    the released CLIP models; the CBL reads ``logit_scale * S``. With ``nec=None`` the joint
    head is the final layer (as the reference evaluates it); with a NEC the head is refitted on
    the raw units by VLG-CBM's protocol (path, truncation, no refit: ``head_defaults``).
    """

    input_kinds: ClassVar[tuple[InputKind, ...]] = ("scores",)
    cbl_bias: ClassVar[bool] = False
    reference: ClassVar[bool] = True
    final_joint_head: ClassVar[bool] = True
    train_defaults: ClassVar[dict[str, Any]] = {"lr": 3e-4, "batch_size": 128,
                                                "max_epochs": 10, "finetune_epochs": 0}
    head_defaults: ClassVar[dict[str, Any]] = {"refit": False}
    logit_scale: float = 100.0

    def __post_init__(self) -> None:
        if not self.logit_scale > 0:
            raise ObjectiveError(f"logit_scale must be > 0, got {self.logit_scale}")

    def cbl_loss(self, pre: Tensor, weight: Tensor, generator: torch.Generator | None
                 ) -> Tensor:
        raise NotImplementedError

    def loss(self, batch: LossInputs) -> tuple[Tensor, dict[str, float]]:
        """The reference's two terms as one value (its loop backpropagates them one after the
        other: the same gradient)."""
        ce = self._ce(batch)
        cbl = self.cbl_loss(batch.pre, batch.cbl_weight, batch.generator)
        return cbl + ce, {"ce": loss_term(ce), "cbl_loss": loss_term(cbl)}

    def train_reference(self, data: TrainData, *, kind: InputKind, n_classes: int,
                        config: TrainConfig, seed: int, desc: str = "") -> CBLFit:
        from conceptlab.bottleneck.references import train_sparsecbm

        return train_sparsecbm(self, self.cbl_loss, data, kind=kind, n_classes=n_classes,
                               config=config, seed=seed, logit_scale=self.logit_scale,
                               desc=desc)


@register_objective
@dataclass
class SparseCBML1Reference(SparseCBMReference):
    """``criterion_l1(net, l1_lambda) / cbl_logits.shape[1]``: ``lam * sum_p ||p||_1 / K`` over
    the CBL's parameters (its weight; it has no bias), plus the head's cross-entropy.
    Andron00e/SparseCBM, ``bottlenecks/cbm.py``, ``criterion_l1``; lambda = 1e-3 (the
    trainer's default)."""

    name: ClassVar[str] = "ref:sparsecbm-l1"
    summary: ClassVar[str] = ("Sparse-CBM's l1 CBM as its code trains it (Andron00e/SparseCBM "
                              "criterion_l1)")
    lam: float = 1e-3

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.lam >= 0:
            raise ObjectiveError(f"lam must be >= 0, got {self.lam}")

    def cbl_loss(self, pre: Tensor, weight: Tensor, generator: torch.Generator | None
                 ) -> Tensor:
        return self.lam * torch.norm(weight, p=1) / pre.shape[1]


@register_objective
@dataclass
class SparseCBMContrastiveReference(SparseCBMReference):
    """``criterion_contrastive(cbl_logits)``: ``(contrastive_loss(z, dim=0) +
    contrastive_loss(z, dim=1)) / 2`` with ``contrastive_loss(z, dim) = -mean(diag(
    log_softmax(z, dim)))`` on the B x K CBL output ``z``: example i's positive is concept i
    (the diagonal; only ``min(B, K)`` pairs), over the batch (dim 0) and over the concepts
    (dim 1). Andron00e/SparseCBM, ``bottlenecks/cbm.py``, ``criterion_contrastive``."""

    name: ClassVar[str] = "ref:sparsecbm-contrastive"
    summary: ClassVar[str] = ("Sparse-CBM's contrastive CBM as its code trains it "
                              "(criterion_contrastive)")

    def cbl_loss(self, pre: Tensor, weight: Tensor, generator: torch.Generator | None
                 ) -> Tensor:
        caption = -torch.diag(F.log_softmax(pre, dim=0)).mean()
        image = -torch.diag(F.log_softmax(pre, dim=1)).mean()
        return (caption + image) / 2.0


@register_objective
@dataclass
class SparseCBMGumbelReference(SparseCBMReference):
    """``criterion_gumbel(cbl_logits, tau, hard=False)``: ``(g(z, dim=0) + g(z, dim=1)) / 2``
    with ``g(z, dim) = -mean(log(gumbel_softmax(z, tau, dim)))`` (``F.gumbel_softmax``: noise
    ``-log(Exp(1))``, drawn for dim 0 first). The Gumbel-Softmax is in the loss only; the head
    reads the raw units. Andron00e/SparseCBM, ``bottlenecks/cbm.py``, ``criterion_gumbel`` and
    ``gumbel_contrastive_loss``; tau = 1 (the trainer's default). The loss is the cross-entropy
    of the noisy softmax to the *uniform* distribution: it pushes units towards equal values."""

    name: ClassVar[str] = "ref:sparsecbm-gumbel"
    summary: ClassVar[str] = ("Sparse-CBM's Gumbel CBM as its code trains it "
                              "(criterion_gumbel)")
    tau: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.tau > 0:
            raise ObjectiveError(f"tau must be > 0, got {self.tau}")

    def _sample(self, z: Tensor, dim: int, generator: torch.Generator | None) -> Tensor:
        noise = -torch.empty_like(z, memory_format=torch.legacy_contiguous_format
                                  ).exponential_(generator=generator).log()
        return ((z + noise) / self.tau).softmax(dim)

    def cbl_loss(self, pre: Tensor, weight: Tensor, generator: torch.Generator | None
                 ) -> Tensor:
        first = (-torch.log(self._sample(pre, 0, generator))).mean()
        second = (-torch.log(self._sample(pre, 1, generator))).mean()
        return (first + second) / 2.0
