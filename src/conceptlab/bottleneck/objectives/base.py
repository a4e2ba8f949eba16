"""The objective protocol: what a CBL objective declares and the behaviour it owns.

An objective owns everything that differs between methods: which CBL inputs it accepts, what
the head sees (``activations``), its loss, its validation score, which units survive training
(``select_units``) and what it logs per epoch. The training loop, the model and the command
line ask the objective; none of them names a particular one. A new objective is one file that
subclasses ``Objective`` and registers itself with ``@register_objective``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from conceptlab.errors import ConceptlabValueError

if TYPE_CHECKING:  # the training module imports this one; only the types come back
    from conceptlab.bottleneck.training import CBLFit, TrainConfig, TrainData

InputKind = Literal["scores", "embedding", "features"]
INPUT_KINDS: tuple[InputKind, ...] = ("scores", "embedding", "features")


@dataclass
class LossInputs:
    """What an objective may use for one minibatch (absent items are ``None``)."""

    pre: Tensor                           # B x K CBL outputs (unit values)
    acts: Tensor                          # B x K activations the head sees
    y: Tensor                             # B class labels (int64)
    cbl_weight: Tensor                    # K x in CBL weight
    target_scores: Tensor                 # B x K encoder scores of the named concepts
    logits: Tensor | None = None          # B x C joint-head logits
    association: Tensor | None = None     # C x K float 0/1
    concept_labels: Tensor | None = None  # B x K float 0/1
    generator: torch.Generator | None = None  # the fit's private RNG (noise inside a loss)


@dataclass
class ValidationInputs:
    """The whole validation split as the objective scores it."""

    pre: Tensor                 # N x K unit values
    y: Tensor                   # N labels
    target_scores: Tensor       # N x K encoder scores of the named concepts
    head: nn.Linear | None      # the joint head (None for objectives without one)


class ObjectiveError(ConceptlabValueError):
    """An unknown objective, a bad hyper-parameter, or inputs an objective cannot use."""


@dataclass
class Objective:
    """Base class. Subclasses are dataclasses whose fields are their hyper-parameters.

    Class attributes declare what the training loop must provide: the CBL inputs accepted
    (``input_kinds``; the first is the default), whether a linear head is trained jointly
    (``joint_head``), whether the CBL has a bias, and which extra arrays are needed.
    """

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    input_kinds: ClassVar[tuple[InputKind, ...]] = ("scores", "embedding", "features")
    joint_head: ClassVar[bool] = True
    cbl_bias: ClassVar[bool] = True
    needs_association: ClassVar[bool] = False
    needs_concept_labels: ClassVar[bool] = False
    #: the loss itself ties unit k to concept k's score (no separate grounding term needed)
    grounds_units: ClassVar[bool] = False
    #: reproduces a published procedure (``ref:...``, ``random-cbl``): it trains with its own
    #: loop (``train_reference``), gets no grounding term or grounding cutoff unless the
    #: ``CBLConfig`` asks, and no sparse fine-tuning
    reference: ClassVar[bool] = False
    #: with a dense head (``nec=None``) the jointly trained head *is* the final layer, as in
    #: the reference code (no head is refitted on the units)
    final_joint_head: ClassVar[bool] = False
    #: an embedding-reading CBL sees unit-norm rows (our default: the encoders' geometry is
    #: cosine); a reference that reads raw backbone outputs (LF-CBM, VLG-CBM's random layer)
    #: sets this False and sees the embedding as the encoder returned it
    normalises_embedding: ClassVar[bool] = True
    #: ``TrainConfig`` / ``HeadConfig`` defaults of this objective, under the user's settings
    #: (a reference's optimiser settings; VLG-CBM's no-refit NEC head)
    train_defaults: ClassVar[dict[str, Any]] = {}
    head_defaults: ClassVar[dict[str, Any]] = {}

    @property
    def default_input(self) -> InputKind:
        return self.input_kinds[0]

    @property
    def warmup_epochs(self) -> int:
        """Epochs before early stopping and model selection may act (annealing length)."""
        return 0

    def check_input(self, kind: str) -> None:
        if kind not in self.input_kinds:
            raise ObjectiveError(f"objective {self.name!r} cannot train a CBL that reads "
                                 f"{kind!r}; it accepts {list(self.input_kinds)}")

    def activations(self, pre: Tensor, *, training: bool, progress: float = 1.0,
                    generator: torch.Generator | None = None) -> Tensor:
        """Map CBL outputs to what the head sees (identity unless overridden)."""
        return pre

    def loss(self, batch: LossInputs) -> tuple[Tensor, dict[str, float]]:
        raise NotImplementedError

    def validation_score(self, val: ValidationInputs) -> tuple[float, float]:
        """(selection score, a loss-like value to log): the joint head's accuracy by default."""
        if val.head is None:
            raise ObjectiveError(f"objective {self.name!r} has no joint head; override "
                                 f"validation_score")
        with torch.no_grad():
            logits = val.head(self.activations(val.pre, training=False))
            acc = float((logits.argmax(1) == val.y).double().mean())
            ce = float(F.cross_entropy(logits, val.y))
        return acc, ce

    def select_units(self, pre_val: np.ndarray, scores_val: np.ndarray
                     ) -> tuple[np.ndarray, dict[str, Any]]:
        """Indices of the units to keep after training and a record of why (all, by default)."""
        return np.arange(pre_val.shape[1]), {}

    def preselect_units(self, scores_train: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        """Units kept *before* training, from the training scores (all, by default; LF-CBM's
        ``clip_cutoff`` filter overrides it)."""
        return np.arange(scores_train.shape[1]), {}

    def train_reference(self, data: TrainData, *, kind: InputKind, n_classes: int,
                        config: TrainConfig, seed: int, desc: str = "") -> CBLFit:
        """A reference's own training loop (only for ``reference`` objectives)."""
        raise ObjectiveError(f"objective {self.name!r} has no reference training loop")

    def log_fields(self, progress: float) -> dict[str, float]:
        """Extra per-epoch fields for the training history (e.g. the temperature)."""
        return {}

    def params(self) -> dict[str, Any]:
        """Hyper-parameters as a JSON-able dict (``get_objective(name, **params)`` rebuilds)."""
        return dataclasses.asdict(self)

    @staticmethod
    def _ce(batch: LossInputs) -> Tensor:
        if batch.logits is None:
            raise ObjectiveError("this objective needs the joint head's logits")
        return F.cross_entropy(batch.logits, batch.y)


def loss_term(t: Tensor) -> float:
    """A loss term as a plain float for logging (detached)."""
    return float(t.detach())
