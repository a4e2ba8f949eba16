"""The Concept Bottleneck Layer (CBL) and its training loop on cached tensors.

``train_cbl`` fits a CBL (and, for objectives that need one, a linear head jointly) by
minibatch Adam on arrays already in memory: no encoder runs here. What it guarantees, each
checked by a test:

* every trainable parameter (CBL weight and bias, joint head weight and bias) is in the
  optimiser (the Sparse-CBM reference left its final layer out);
* validation data are whatever the caller passes (carved from the training split by the
  caller); model selection and early stopping use validation accuracy of the joint head
  (``cos3``, which has no head, uses validation mean cos3 similarity, as Label-free CBM does);
* one seed fixes the initialisation, the shuffling and the Gumbel noise (a private
  ``torch.Generator``; global RNG state is not touched);
* a progress bar over epochs (``utils.progress``).

After the CBL is trained, ``fit_final_head`` (re)fits the head on the CBL activations with
``heads.fit_dense_head`` or ``heads.fit_sparse_head`` (exact NEC).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from conceptlab.bottleneck import heads
from conceptlab.bottleneck.objectives import LossInputs, Objective, cos3_similarity
from conceptlab.utils.progress import progress

_MIN_STD = 1e-6
_EVAL_CHUNK = 16384


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
    picks 1 when one step's matrix product is small (batch x in x K < 2**27 multiply-adds,
    e.g. 256 x 400 x 400) and leaves torch's setting otherwise: on 2 cores shared with other
    jobs, two threads made such steps 10-30x *slower* (spin-waiting threads).
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

    def __post_init__(self) -> None:
        for name in ("lr", "head_lr"):
            value = getattr(self, name)
            if value is None and name == "lr":
                continue
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a positive number, got {value}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.max_epochs < 1:
            raise ValueError(f"max_epochs must be >= 1, got {self.max_epochs}")
        if self.finetune_epochs < 0:
            raise ValueError(f"finetune_epochs must be >= 0, got {self.finetune_epochs}")
        if self.patience < 1:
            raise ValueError(f"patience must be >= 1, got {self.patience}")
        if not self.min_delta >= 0:
            raise ValueError(f"min_delta must be >= 0, got {self.min_delta}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.num_threads is not None and self.num_threads < 1:
            raise ValueError(f"num_threads must be None or >= 1, got {self.num_threads}")

    def params(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k not in ("show_progress",)}


_SMALL_STEP_MACS = 2**27


@contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    """Temporarily set torch's intra-op thread count (``None``: leave it alone)."""
    before = torch.get_num_threads()
    if n is None or n == before:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class ConceptBottleneckLayer(nn.Module):
    """``a = W ((x - mu) / sigma) + b``: one output unit per named concept.

    ``mu``/``sigma`` (buffers) standardise the input with training statistics. With
    ``init="identity"`` (square layers on concept scores) unit ``k`` starts as concept ``k``'s
    standardised score; ``init="random"`` uses PyTorch's default ``U(-1/sqrt(in), 1/sqrt(in))``
    drawn from ``generator``.
    """

    def __init__(self, in_dim: int, n_concepts: int, *, bias: bool = True,
                 init: str = "identity", generator: torch.Generator | None = None,
                 in_mean: np.ndarray | None = None, in_std: np.ndarray | None = None) -> None:
        super().__init__()
        self.linear = nn.Linear(in_dim, n_concepts, bias=bias)
        mean = torch.zeros(in_dim) if in_mean is None else torch.as_tensor(in_mean).float()
        std = torch.ones(in_dim) if in_std is None else torch.as_tensor(in_std).float()
        self.register_buffer("in_mean", mean.clone())
        self.register_buffer("in_std", std.clone())
        with torch.no_grad():
            if init == "identity":
                if in_dim != n_concepts:
                    raise ValueError(f"identity init needs a square layer, got {in_dim} -> "
                                     f"{n_concepts}")
                self.linear.weight.copy_(torch.eye(n_concepts))
            elif init == "random":
                bound = 1.0 / math.sqrt(in_dim)
                nn.init.uniform_(self.linear.weight, -bound, bound, generator=generator)
            elif init == "zeros":  # placeholder before loading weights (draws no random numbers)
                self.linear.weight.zero_()
            else:
                raise ValueError(f"unknown init {init!r} (use 'identity', 'random' or 'zeros')")
            if self.linear.bias is not None:
                self.linear.bias.zero_()

    @property
    def n_concepts(self) -> int:
        return int(self.linear.out_features)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear((x - self.in_mean) / self.in_std)

    def select(self, keep: np.ndarray | list[int]) -> ConceptBottleneckLayer:
        """A copy holding only the output units at ``keep`` (after a concept filter)."""
        idx = torch.as_tensor(np.asarray(keep, dtype=np.int64))
        out = ConceptBottleneckLayer(self.linear.in_features, len(idx),
                                     bias=self.linear.bias is not None, init="zeros",
                                     in_mean=self.in_mean.numpy(), in_std=self.in_std.numpy())
        with torch.no_grad():
            out.linear.weight.copy_(self.linear.weight[idx])
            if self.linear.bias is not None:
                out.linear.bias.copy_(self.linear.bias[idx])
        return out

    def state_arrays(self) -> dict[str, np.ndarray]:
        out = {"weight": self.linear.weight.detach().numpy().copy(),
               "in_mean": self.in_mean.numpy().copy(), "in_std": self.in_std.numpy().copy()}
        if self.linear.bias is not None:
            out["bias"] = self.linear.bias.detach().numpy().copy()
        return out

    @classmethod
    def from_arrays(cls, state: dict[str, np.ndarray]) -> ConceptBottleneckLayer:
        weight = np.asarray(state["weight"], dtype=np.float32)
        layer = cls(weight.shape[1], weight.shape[0], bias="bias" in state, init="zeros",
                    in_mean=state["in_mean"], in_std=state["in_std"])
        with torch.no_grad():
            layer.linear.weight.copy_(torch.from_numpy(weight))
            if "bias" in state:
                layer.linear.bias.copy_(torch.from_numpy(np.asarray(state["bias"], np.float32)))
        return layer


def standardization(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column training mean and std (float64 sums; constant columns get std 1)."""
    mean = x.mean(axis=0, dtype=np.float64)
    std = x.std(axis=0, dtype=np.float64)
    std = np.where(std < _MIN_STD, 1.0, std)
    return mean.astype(np.float32), std.astype(np.float32)


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


def cbl_units(cbl: ConceptBottleneckLayer, inputs: np.ndarray | Tensor,
              chunk: int = _EVAL_CHUNK) -> np.ndarray:
    """The CBL's unit values ``a`` (N x K, before the objective's activation map)."""
    x = torch.as_tensor(np.asarray(inputs, dtype=np.float32))
    cbl.eval()
    if len(x) == 0:
        return np.zeros((0, cbl.n_concepts), dtype=np.float32)
    return _pre_activations(cbl, x, chunk).numpy()


def units_to_activations(objective: Objective, units: np.ndarray | Tensor) -> np.ndarray:
    """Evaluation-mode activation map: what the head sees given unit values (identity except
    for ``gumbel``, where it is ``softmax(a / tau_min)``)."""
    a = torch.as_tensor(np.asarray(units, dtype=np.float32))
    with torch.no_grad():
        return objective.activations(a, training=False).numpy()


def apply_cbl(cbl: ConceptBottleneckLayer, objective: Objective, inputs: np.ndarray | Tensor,
              chunk: int = _EVAL_CHUNK) -> np.ndarray:
    """Evaluation-mode activations the head sees (N x K), computed in chunks."""
    return units_to_activations(objective, cbl_units(cbl, inputs, chunk))


def _pre_activations(cbl: ConceptBottleneckLayer, x: Tensor, chunk: int = _EVAL_CHUNK) -> Tensor:
    with torch.no_grad():
        return torch.cat([cbl(x[i:i + chunk]) for i in range(0, len(x), chunk)])


def _val_score(objective: Objective, cbl: ConceptBottleneckLayer, head: nn.Linear | None,
               x_val: Tensor, y_val: Tensor, target_val: Tensor | None) -> tuple[float, float]:
    """(selection score, reported loss-like value) on the whole validation set."""
    cbl.eval()
    pre = _pre_activations(cbl, x_val)
    if not objective.joint_head:
        assert target_val is not None
        sim = cos3_similarity(pre, target_val)
        return float(sim.mean()), float(sim.mean())
    assert head is not None
    with torch.no_grad():
        acts = objective.activations(pre, training=False)
        logits = head(acts)
        acc = float((logits.argmax(1) == y_val).double().mean())
        ce = float(nn.functional.cross_entropy(logits, y_val))
    return acc, ce


def train_cbl(objective: Objective, inputs_train: np.ndarray, y_train: np.ndarray,
              inputs_val: np.ndarray, y_val: np.ndarray, *, n_classes: int,
              association: np.ndarray | None = None,
              concept_labels: np.ndarray | None = None,
              targets_train: np.ndarray | None = None, targets_val: np.ndarray | None = None,
              n_concepts: int | None = None, config: TrainConfig | None = None,
              seed: int = 0, desc: str = "", init_cbl: ConceptBottleneckLayer | None = None,
              init_head: tuple[np.ndarray, np.ndarray] | None = None,
              head_mask: np.ndarray | None = None, input_kind: str | None = None) -> CBLFit:
    """Fit a CBL with ``objective`` by minibatch Adam; return the best epoch's weights.

    ``inputs_*`` are what the CBL reads: concept scores (N x K) for ``input_kind == "scores"``,
    L2-normalised embeddings (N x D) for ``"embedding"``; they are standardised with training
    statistics stored in the layer. ``association`` (C x K), ``concept_labels`` (N_train x K)
    and ``targets_*`` (N x K target similarities) are passed when the objective needs them.
    Selection: highest validation accuracy of the joint head (ties keep the earlier epoch);
    for ``cos3`` highest validation mean cos3 similarity. Early stopping after ``patience``
    epochs without an improvement above ``min_delta``, never before
    ``objective.warmup_epochs`` (the annealing).

    Sparse fine-tuning (``init_cbl`` + ``init_head`` + ``head_mask``): start from a fitted CBL
    and a head given in raw activation units, keep the head's zero pattern fixed (so its NEC
    stays exact) and train both with the same objective, at the final temperature.
    """
    cfg = config or TrainConfig()
    k = int(n_concepts if n_concepts is not None else np.shape(inputs_train)[1])
    threads = cfg.num_threads
    if threads is None and cfg.batch_size * np.shape(inputs_train)[1] * k < _SMALL_STEP_MACS:
        threads = 1
    with _torch_threads(threads):
        return _train_cbl(objective, inputs_train, y_train, inputs_val, y_val,
                          n_classes=n_classes, association=association,
                          concept_labels=concept_labels, targets_train=targets_train,
                          targets_val=targets_val, k=k, cfg=cfg, seed=seed, desc=desc,
                          init_cbl=init_cbl, init_head=init_head, head_mask=head_mask,
                          input_kind=input_kind or objective.input_kind)


def _train_cbl(objective: Objective, inputs_train: np.ndarray, y_train: np.ndarray,
               inputs_val: np.ndarray, y_val: np.ndarray, *, n_classes: int,
               association: np.ndarray | None, concept_labels: np.ndarray | None,
               targets_train: np.ndarray | None, targets_val: np.ndarray | None, k: int,
               cfg: TrainConfig, seed: int, desc: str,
               init_cbl: ConceptBottleneckLayer | None = None,
               init_head: tuple[np.ndarray, np.ndarray] | None = None,
               head_mask: np.ndarray | None = None, input_kind: str = "scores") -> CBLFit:
    start = time.perf_counter()
    xt = np.ascontiguousarray(inputs_train, dtype=np.float32)
    xv = np.ascontiguousarray(inputs_val, dtype=np.float32)
    gen = torch.Generator().manual_seed(int(seed))
    mean, std = standardization(xt)
    init = "identity" if input_kind == "scores" else "random"
    finetune = init_cbl is not None
    if finetune:
        if init_head is None or head_mask is None or not objective.joint_head:
            raise ValueError("sparse fine-tuning needs init_head, head_mask and a joint head")
        cbl = copy.deepcopy(init_cbl)
    else:
        cbl = ConceptBottleneckLayer(xt.shape[1], k, bias=objective.cbl_bias, init=init,
                                     generator=gen, in_mean=mean, in_std=std)
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
                raise ValueError(f"head_mask has shape {tuple(mask_t.shape)}, expected "
                                 f"{tuple(head.weight.shape)}")
            with torch.no_grad():
                head.weight.mul_(mask_t)

    cbl_lr = cfg.lr if cfg.lr is not None else (1e-3 if init == "identity" else 1e-2)
    groups: list[dict[str, Any]] = [{"params": list(cbl.parameters()), "weight_decay": 0.0,
                                     "lr": cbl_lr}]
    if head is not None:
        groups.append({"params": list(head.parameters()), "weight_decay": cfg.weight_decay,
                       "lr": cfg.head_lr})
    optimizer = torch.optim.Adam(groups, lr=cbl_lr)
    _check_all_parameters_optimised([cbl, head], optimizer)
    initial = {name: p.detach().clone() for name, p in _named_trainables(cbl, head)}

    x_t, x_v = torch.from_numpy(xt), torch.from_numpy(xv)
    y_t = torch.as_tensor(np.asarray(y_train), dtype=torch.long)
    y_v = torch.as_tensor(np.asarray(y_val), dtype=torch.long)
    a_t = None if association is None else torch.as_tensor(association, dtype=torch.float32)
    c_t = None if concept_labels is None else torch.as_tensor(concept_labels, dtype=torch.float32)
    tt = None if targets_train is None else torch.as_tensor(targets_train, dtype=torch.float32)
    tv = None if targets_val is None else torch.as_tensor(targets_val, dtype=torch.float32)
    if objective.needs_association and a_t is None:
        raise ValueError(f"objective {objective.name!r} needs a class-concept association")
    if objective.needs_concept_labels and c_t is None:
        raise ValueError(f"objective {objective.name!r} needs concept labels for training")
    if objective.needs_target_scores and (tt is None or tv is None):
        raise ValueError(f"objective {objective.name!r} needs target scores (train and val)")

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
        perm = torch.randperm(n, generator=gen)
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
                logits=head(acts) if head is not None else None, association=a_t,
                concept_labels=c_t[idx] if c_t is not None else None,
                target_scores=tt[idx] if tt is not None else None)
            loss, parts = objective.loss(batch)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"{objective.name} loss became {float(loss)} at "
                                         f"epoch {epoch}, step {step}; lower lr "
                                         f"(now {cfg.lr})")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if mask_t is not None:
                with torch.no_grad():
                    head.weight.mul_(mask_t)  # type: ignore[union-attr]
            step += 1
            for key, value in {"loss": float(loss.detach()), **parts}.items():
                totals[key] = totals.get(key, 0.0) + value * len(idx)
        score, val_loss = _val_score(objective, cbl, head, x_v, y_v, tv)
        row = {"epoch": epoch + 1, **{f"train_{k_}": v / n for k_, v in totals.items()},
               "val_score": score, "val_loss": val_loss}
        if hasattr(objective, "temperature"):
            done = 1.0 if finetune else min(1.0, step / anneal_steps)
            row["tau"] = objective.temperature(done)  # type: ignore[attr-defined]
        history.append(row)
        if hasattr(epochs, "set_postfix"):
            epochs.set_postfix(val=f"{score:.4f}")  # type: ignore[attr-defined]
        if epoch + 1 < warmup:
            continue  # still annealing: neither select nor stop
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
    return CBLFit(cbl=cbl, joint_head=head, history=history, best_epoch=best_epoch,
                  best_score=float(best_score), seconds=time.perf_counter() - start,
                  steps=step, moved=moved, lr=cbl_lr)


def _named_trainables(cbl: nn.Module, head: nn.Module | None) -> list[tuple[str, Tensor]]:
    out = [(f"cbl.{n}", p) for n, p in cbl.named_parameters() if p.requires_grad]
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


def cos3_validation_similarity(cbl: ConceptBottleneckLayer, inputs_val: np.ndarray,
                               targets_val: np.ndarray) -> np.ndarray:
    """Per-concept cos3 similarity of the CBL units and the targets on validation data (K,)."""
    pre = _pre_activations(cbl, torch.from_numpy(np.asarray(inputs_val, dtype=np.float32)))
    return cos3_similarity(pre, torch.as_tensor(targets_val, dtype=torch.float32)).numpy()


def fit_final_head(acts_train: np.ndarray, y_train: np.ndarray, acts_val: np.ndarray,
                   y_val: np.ndarray, *, n_classes: int, nec: float | None = None,
                   seed: int = 0, **head_kwargs: Any) -> heads.LinearHead:
    """The final head on CBL activations: dense (``nec=None``) or exactly ``round(nec*C)``
    non-zero weights (``heads.fit_sparse_head``, VLG-CBM's NEC protocol)."""
    if nec is None:
        return heads.fit_dense_head(acts_train, y_train, acts_val, y_val, n_classes=n_classes,
                                    seed=seed, **head_kwargs)
    return heads.fit_sparse_head(acts_train, y_train, acts_val, y_val, n_classes=n_classes,
                                 nec=nec, seed=seed, **head_kwargs)
