"""Training a CBL (and, for objectives that have one, a joint linear head) on cached arrays.

``train_cbl`` fits by minibatch Adam on arrays already in memory: no encoder runs here. What it
guarantees, each checked by a test:

* every trainable parameter (CBL weight and bias, joint head weight and bias) is in the
  optimiser (the Sparse-CBM reference left its final layer out);
* validation data are whatever the caller passes (carved from the training split); model
  selection and early stopping use the objective's ``validation_score``;
* one seed fixes the initialisation, the shuffling and the Gumbel noise (a private
  ``torch.Generator``; global RNG state is not touched);
* grounding (``layers.Grounding``): the term ``weight * (1 - mean_k corr(unit_k, S_k))`` over
  each batch is added to the objective's loss, so unit k tracks concept k's encoder score; an
  epoch whose median validation correlation is below ``Grounding.target`` is neither selected
  nor counted for early stopping (if none reaches it, the last epoch is kept);
* a progress bar over epochs (``utils.progress``).
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from conceptlab.bottleneck.layers import LAYERS, ConceptBottleneckLayer, Grounding
from conceptlab.bottleneck.objectives.base import (
    InputKind,
    LossInputs,
    Objective,
    ValidationInputs,
    loss_term,
)
from conceptlab.bottleneck.objectives.functional import batch_correlations
from conceptlab.device import resolve_device
from conceptlab.errors import ConceptlabValueError, DivergedError
from conceptlab.utils.arrays import standardization
from conceptlab.utils.configs import replace_fields
from conceptlab.utils.progress import progress
from conceptlab.utils.threads import torch_threads

#: evaluation runs in chunks of this many rows
EVAL_CHUNK = 16384
#: below this many multiply-adds per step (batch x in x K) the loop runs on one thread
SMALL_STEP_MACS = 2**27


class TrainConfigError(ConceptlabValueError):
    """An unknown or out-of-range training setting."""


@dataclass
class TrainConfig:
    """Optimisation hyper-parameters shared by every objective.

    Defaults (chosen on synthetic data and 60k-example timings):
    Adam, batches of 256. ``lr=None`` picks the CBL's rate from its initialisation: 1e-3 when it
    starts at a meaningful point (the identity on concept scores: unit k *is* concept k, and
    should move gently), 1e-2 when it starts at random (``Linear(D -> K)`` for ``cos3`` /
    ``supervised``: at 1e-3 it barely moved in 10 epochs on 2k examples). The joint head starts
    at random and learns at ``head_lr=1e-2`` (with near one-hot Gumbel activations each class
    sees one active weight per example, and at 1e-3 the joint head lagged far behind the CBL).
    ``max_epochs=20`` with ``patience=3`` (epochs without a validation improvement of more
    than ``min_delta`` = 0.1 accuracy points; at 60k examples validation accuracy otherwise
    creeps up by a few examples per epoch for 10+ epochs) bounds the cost. ``weight_decay``
    applies to the joint head only (the CBL's own regulariser is the objective's business).

    ``finetune_epochs``: with a sparse head (``nec``), the CBL and the head's non-zero weights
    are then trained together for up to this many epochs with the zero pattern fixed, so the
    concept units adapt to the few weights each class may use (0 turns it off; the result is
    kept only if validation accuracy does not drop).

    ``num_threads``: torch intra-op threads during the loop (restored afterwards). ``None``
    picks 1 when one step's matrix product is small (batch x in x K below ``SMALL_STEP_MACS``)
    and leaves torch's setting otherwise (``utils.threads``; timings in docs/benchmarks.md).
    """

    lr: float | None = None
    head_lr: float = 1e-2
    batch_size: int = 256
    max_epochs: int = 20
    patience: int = 3
    min_delta: float = 1e-3
    weight_decay: float = 0.0
    num_threads: int | None = None
    show_progress: bool | None = None
    finetune_epochs: int = 10
    device: str | None = None

    def __post_init__(self) -> None:
        for name in ("lr", "head_lr"):
            value = getattr(self, name)
            if value is None and name == "lr":
                continue
            if not (value > 0 and math.isfinite(value)):
                raise TrainConfigError(f"{name} must be a positive number, got {value}")
        if self.batch_size < 1:
            raise TrainConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.max_epochs < 1:
            raise TrainConfigError(f"max_epochs must be >= 1, got {self.max_epochs}")
        if self.finetune_epochs < 0:
            raise TrainConfigError(f"finetune_epochs must be >= 0, got {self.finetune_epochs}")
        if self.patience < 1:
            raise TrainConfigError(f"patience must be >= 1, got {self.patience}")
        if not self.min_delta >= 0:
            raise TrainConfigError(f"min_delta must be >= 0, got {self.min_delta}")
        if self.weight_decay < 0:
            raise TrainConfigError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.num_threads is not None and self.num_threads < 1:
            raise TrainConfigError(f"num_threads must be None or >= 1, got {self.num_threads}")

    def params(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k not in ("show_progress", "device")}


def train_config(config: TrainConfig | None = None, **overrides: Any) -> TrainConfig:
    """``config`` (default ``TrainConfig()``) with ``overrides``; unknown names are refused."""
    return replace_fields(config or TrainConfig(), overrides, TrainConfigError, "training")



@dataclass
class CBLFit:
    """Result of ``train_cbl``: the fitted layer, the joint head (if any) and a history."""

    cbl: ConceptBottleneckLayer
    joint_head: nn.Linear | None
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_score: float = float("nan")
    seconds: float = 0.0
    steps: int = 0
    moved: dict[str, bool] = field(default_factory=dict)
    lr: float = float("nan")

    def summary(self) -> dict[str, Any]:
        return {"best_epoch": self.best_epoch, "best_val_score": self.best_score, "lr": self.lr,
                "epochs_run": len(self.history), "steps": self.steps,
                "seconds": self.seconds, "history": self.history}


def unit_values(cbl: ConceptBottleneckLayer, inputs: np.ndarray | Tensor,
                chunk: int = EVAL_CHUNK) -> np.ndarray:
    """The CBL's unit values ``a`` (N x K, before the objective's activation map)."""
    x = torch.as_tensor(np.asarray(inputs, dtype=np.float32))
    cbl.eval()
    if len(x) == 0:
        return np.zeros((0, cbl.n_concepts), dtype=np.float32)
    return _forward(cbl, x, chunk).numpy()


def activations_from_units(objective: Objective, units: np.ndarray | Tensor) -> np.ndarray:
    """Evaluation-mode activation map: what the head sees given unit values (identity except
    for ``gumbel``, where it is ``softmax(a / tau_min)``)."""
    a = torch.as_tensor(np.asarray(units, dtype=np.float32))
    with torch.no_grad():
        return objective.activations(a, training=False).numpy()


def _forward(cbl: ConceptBottleneckLayer, x: Tensor, chunk: int = EVAL_CHUNK) -> Tensor:
    with torch.no_grad():
        return torch.cat([cbl(x[i:i + chunk]) for i in range(0, len(x), chunk)])


@dataclass
class TrainData:
    """The arrays one CBL fit reads (train and validation), in bank order."""

    inputs_train: np.ndarray     # what the CBL reads: scores, embedding or features
    y_train: np.ndarray
    scores_train: np.ndarray     # the encoder's concept scores (grounding targets)
    inputs_val: np.ndarray
    y_val: np.ndarray
    scores_val: np.ndarray
    association: np.ndarray | None = None
    concept_labels: np.ndarray | None = None


def train_cbl(objective: Objective, data: TrainData, *, kind: InputKind, n_classes: int,
              grounding: Grounding, config: TrainConfig | None = None, seed: int = 0,
              desc: str = "", init_cbl: ConceptBottleneckLayer | None = None,
              init_head: tuple[np.ndarray, np.ndarray] | None = None,
              head_mask: np.ndarray | None = None) -> CBLFit:
    """Fit a CBL of ``kind`` with ``objective`` (+ grounding) by minibatch Adam; return the best
    epoch's weights.

    ``data.inputs_*`` are standardised with training statistics stored in the layer.
    Selection: the highest ``objective.validation_score`` (ties keep the earlier epoch); early
    stopping after ``patience`` epochs without an improvement above ``min_delta``, never before
    ``objective.warmup_epochs`` (the annealing).

    Sparse fine-tuning (``init_cbl`` + ``init_head`` + ``head_mask``): start from a fitted CBL
    and a head given in raw activation units, keep the head's zero pattern fixed (so its NEC
    stays exact) and train both with the same objective, at the final temperature.
    """
    cfg = config or TrainConfig()
    objective.check_input(kind)
    k = int(np.shape(data.scores_train)[1])
    threads = cfg.num_threads
    if threads is None and cfg.batch_size * np.shape(data.inputs_train)[1] * k < SMALL_STEP_MACS:
        threads = 1
    with torch_threads(threads):
        return _train_cbl(objective, data, kind=kind, n_classes=n_classes, k=k,
                          grounding=grounding, cfg=cfg, seed=seed, desc=desc,
                          init_cbl=init_cbl, init_head=init_head, head_mask=head_mask)


def _train_cbl(objective: Objective, data: TrainData, *, kind: InputKind, n_classes: int,
               k: int, grounding: Grounding, cfg: TrainConfig, seed: int, desc: str,
               init_cbl: ConceptBottleneckLayer | None,
               init_head: tuple[np.ndarray, np.ndarray] | None,
               head_mask: np.ndarray | None) -> CBLFit:
    start = time.perf_counter()
    dev = resolve_device(cfg.device)
    xt = np.ascontiguousarray(data.inputs_train, dtype=np.float32)
    xv = np.ascontiguousarray(data.inputs_val, dtype=np.float32)
    gen = torch.Generator().manual_seed(int(seed))
    mean, std = standardization(xt)
    finetune = init_cbl is not None
    cbl: ConceptBottleneckLayer
    if init_cbl is not None:
        if init_head is None or head_mask is None or not objective.joint_head:
            raise ConceptlabValueError("sparse fine-tuning needs init_head, head_mask and a "
                                       "joint head")
        cbl = copy.deepcopy(init_cbl)
    else:
        cbl = LAYERS[kind](xt.shape[1], k, bias=objective.cbl_bias, generator=gen,
                           in_mean=mean, in_std=std)
    head: nn.Linear | None = None
    mask_t: Tensor | None = None
    if objective.joint_head:
        head = nn.Linear(k, n_classes)
        bound = 1.0 / math.sqrt(k)
        with torch.no_grad():
            nn.init.uniform_(head.weight, -bound, bound, generator=gen)
            head.bias.zero_()
            if init_head is not None:
                head.weight.copy_(torch.as_tensor(init_head[0], dtype=torch.float32))
                head.bias.copy_(torch.as_tensor(init_head[1], dtype=torch.float32))
        if head_mask is not None:
            mask_t = torch.as_tensor(head_mask, dtype=torch.float32)
            if mask_t.shape != head.weight.shape:
                raise ConceptlabValueError(f"head_mask has shape {tuple(mask_t.shape)}, "
                                           f"expected {tuple(head.weight.shape)}")
            with torch.no_grad():
                head.weight.mul_(mask_t)

    cbl = cbl.to(dev)
    if head is not None:
        head = head.to(dev)
    if mask_t is not None:
        mask_t = mask_t.to(dev)
    cbl_lr = cfg.lr if cfg.lr is not None else (1e-3 if kind == "scores" else 1e-2)
    groups: list[dict[str, Any]] = [{"params": list(cbl.parameters()), "weight_decay": 0.0,
                                     "lr": cbl_lr}]
    if head is not None:
        groups.append({"params": list(head.parameters()), "weight_decay": cfg.weight_decay,
                       "lr": cfg.head_lr})
    optimizer = torch.optim.Adam(groups, lr=cbl_lr)
    _check_all_parameters_optimised([cbl, head], optimizer)
    initial = {name: p.detach().clone() for name, p in _named_trainables(cbl, head)}

    x_t, x_v = torch.from_numpy(xt).to(dev), torch.from_numpy(xv).to(dev)
    y_t = torch.as_tensor(np.asarray(data.y_train), dtype=torch.long, device=dev)
    y_v = torch.as_tensor(np.asarray(data.y_val), dtype=torch.long, device=dev)
    s_t = torch.as_tensor(np.asarray(data.scores_train), dtype=torch.float32, device=dev)
    s_v = torch.as_tensor(np.asarray(data.scores_val), dtype=torch.float32, device=dev)
    a_t = None if data.association is None else torch.as_tensor(data.association,
                                                                dtype=torch.float32,
                                                                device=dev)
    c_t = None if data.concept_labels is None else torch.as_tensor(data.concept_labels,
                                                                   dtype=torch.float32,
                                                                   device=dev)
    if objective.needs_association and a_t is None:
        raise ConceptlabValueError(f"objective {objective.name!r} needs a class-concept "
                                   f"association")
    if objective.needs_concept_labels and c_t is None:
        raise ConceptlabValueError(f"objective {objective.name!r} needs concept labels for "
                                   f"training")
    ground = grounding.weight if not objective.grounds_units else 0.0

    n = len(x_t)
    bs = min(cfg.batch_size, n)
    steps_per_epoch = math.ceil(n / bs)
    warmup = 0 if finetune else objective.warmup_epochs
    anneal_steps = max(1, warmup * steps_per_epoch)
    history: list[dict[str, float]] = []
    best_score, best_epoch, bad = -math.inf, 0, 0
    best_state: tuple[dict[str, Tensor], dict[str, Tensor] | None] | None = None
    step = 0
    epochs = progress(range(cfg.max_epochs), desc=desc or f"fit CBL ({objective.name})",
                      disable=None if cfg.show_progress is None else not cfg.show_progress,
                      unit="epoch")
    for epoch in epochs:
        cbl.train()
        perm = torch.randperm(n, generator=gen).to(dev)  # drawn on the CPU: same order anywhere
        totals: dict[str, float] = {}
        for i in range(0, n, bs):
            idx = perm[i:i + bs]
            if len(idx) < 2 and n >= 2:  # a lone example breaks batch statistics; skip it
                continue
            pre = cbl(x_t[idx])
            done = 1.0 if finetune else step / anneal_steps
            acts = objective.activations(pre, training=True, progress=done, generator=gen)
            batch = LossInputs(
                pre=pre, acts=acts, y=y_t[idx], cbl_weight=cbl.linear.weight,
                target_scores=s_t[idx], logits=head(acts) if head is not None else None,
                association=a_t, concept_labels=c_t[idx] if c_t is not None else None)
            loss, parts = objective.loss(batch)
            if ground > 0:
                term = 1.0 - batch_correlations(pre, s_t[idx]).mean()
                loss = loss + ground * term
                parts = {**parts, "grounding": loss_term(term)}
            if not torch.isfinite(loss):
                raise DivergedError(f"{objective.name} loss became {float(loss.detach())} at "
                                    f"epoch {epoch}, step {step}; lower lr (now {cbl_lr}) "
                                    "or the setting that made it diverge")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if mask_t is not None:
                with torch.no_grad():
                    head.weight.mul_(mask_t)  # type: ignore[union-attr]
            step += 1
            for key, value in {"loss": float(loss.detach()), **parts}.items():
                totals[key] = totals.get(key, 0.0) + value * len(idx)
        cbl.eval()
        pre_v = _forward(cbl, x_v)
        score, val_loss = objective.validation_score(
            ValidationInputs(pre=pre_v, y=y_v, target_scores=s_v, head=head))
        row = {"epoch": epoch + 1, **{f"train_{k_}": v / n for k_, v in totals.items()},
               "val_score": score, "val_loss": val_loss,
               **objective.log_fields(1.0 if finetune else min(1.0, step / anneal_steps))}
        grounded = True
        if ground > 0:
            fidelity = float(batch_correlations(pre_v, s_v).median())
            row["val_fidelity"] = fidelity
            grounded = fidelity >= grounding.target
        history.append(row)
        if hasattr(epochs, "set_postfix"):
            epochs.set_postfix(val=f"{score:.4f}")
        if epoch + 1 < warmup or not grounded:
            continue  # still annealing, or units not yet tied to concepts: no select, no stop
        if score > best_score + 1e-9:  # model selection: any improvement
            improved = score > best_score + cfg.min_delta
            best_score, best_epoch = score, epoch + 1
            best_state = (copy.deepcopy(cbl.state_dict()),
                          copy.deepcopy(head.state_dict()) if head is not None else None)
        else:
            improved = False
        bad = 0 if improved else bad + 1  # early stopping: improvements beyond min_delta
        if bad >= cfg.patience:
            break
    if best_state is not None:
        cbl.load_state_dict(best_state[0])
        if head is not None and best_state[1] is not None:
            head.load_state_dict(best_state[1])
    cbl.eval()
    moved = {name: bool(not torch.equal(initial[name], p.detach()))
             for name, p in _named_trainables(cbl, head)}
    cbl = cbl.cpu()  # fitted layers leave on the CPU: saving, heads and numpy read them there
    if head is not None:
        head = head.cpu()
    return CBLFit(cbl=cbl, joint_head=head, history=history, best_epoch=best_epoch,
                  best_score=float(best_score), seconds=time.perf_counter() - start,
                  steps=step, moved=moved, lr=cbl_lr)


def _named_trainables(cbl: nn.Module, head: nn.Module | None) -> list[tuple[str, Tensor]]:
    out: list[tuple[str, Tensor]] = [(f"cbl.{n}", p) for n, p in cbl.named_parameters()
                                     if p.requires_grad]
    if head is not None:
        out += [(f"head.{n}", p) for n, p in head.named_parameters() if p.requires_grad]
    return out


def _check_all_parameters_optimised(modules: list[nn.Module | None],
                                    optimizer: torch.optim.Optimizer) -> None:
    """Fail loudly if any trainable parameter is missing from the optimiser."""
    in_opt = {id(p) for g in optimizer.param_groups for p in g["params"]}
    for module in modules:
        if module is None:
            continue
        for name, p in module.named_parameters():
            if p.requires_grad and id(p) not in in_opt:
                raise RuntimeError(f"trainable parameter {name} is not in the optimiser")
