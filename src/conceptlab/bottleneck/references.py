"""The reference training loops: what the public code of each paper does, step by step.

These loops are *not* conceptlab's training (``training.train_cbl``: standardised inputs,
identity initialisation on scores, grounding, epoch-wise model selection). Each reproduces one
repository's procedure on cached arrays, so that a ``ref:...`` row measures the paper's method
and not a redesign of it:

* ``train_sparsecbm``: Andron00e/SparseCBM, ``bottlenecks/trainer_utils.py``,
  ``BottleneckTrainer.train`` with ``CBMConfig._create_models_and_optimizers`` ("base" nets);
* ``train_lfcbm``: Trustworthy-ML-Lab/Label-free-CBM, ``train_cbm.py``,
  ``train_cbm_and_save`` (the projection layer);
* ``random_cbl``: VLG-CBM's random baseline (Trustworthy-ML-Lab/VLG-CBM, ``model/cbm.py``,
  ``ConceptLayer`` left at its initialisation).

The per-step functions (``sparsecbm_backward``, ``lfcbm_loss``) are what the parity tests
(``tests/bottleneck/test_reference_parity.py``) check against independent transcriptions of
the reference arithmetic. Two bugs of the reference code are fixed, and only those (see
docs/methods.md): Sparse-CBM's head missing from its optimiser, and the test images each
reference lets into training or model selection (conceptlab's splits are made once, and
validation is carved from train).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from conceptlab.bottleneck.layers import LAYERS, ConceptBottleneckLayer
from conceptlab.bottleneck.objectives.base import InputKind, Objective, ObjectiveError
from conceptlab.bottleneck.training import CBLFit, TrainConfig, TrainData
from conceptlab.errors import DivergedError
from conceptlab.utils.progress import progress


def default_linear_init(linear: nn.Linear, generator: torch.Generator) -> None:
    """``nn.Linear.reset_parameters`` drawn from ``generator``: the weight by
    ``kaiming_uniform_(a=sqrt(5))`` (= U(-1/sqrt(fan_in), 1/sqrt(fan_in))), then the bias by
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)); the same numbers ``nn.Linear(...)`` draws after
    ``torch.manual_seed`` with the generator's seed."""
    with torch.no_grad():
        nn.init.kaiming_uniform_(linear.weight, a=math.sqrt(5), generator=generator)
        if linear.bias is not None:
            fan_in = linear.weight.shape[1]
            bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
            nn.init.uniform_(linear.bias, -bound, bound, generator=generator)


def raw_layer(kind: InputKind, in_dim: int, n_units: int, *, bias: bool,
              generator: torch.Generator, scale: float = 1.0) -> ConceptBottleneckLayer:
    """A CBL of ``kind`` that reads ``scale * x`` with no standardisation, randomly
    initialised as ``nn.Linear`` is (``default_linear_init``)."""
    layer = LAYERS[kind](in_dim, n_units, bias=bias, empty=True,
                         in_mean=np.zeros(in_dim, np.float32),
                         in_std=np.full(in_dim, 1.0 / scale, np.float32))
    default_linear_init(layer.linear, generator)
    return layer


def _tensors(data: TrainData) -> dict[str, Tensor]:
    return {"xt": torch.as_tensor(np.ascontiguousarray(data.inputs_train, np.float32)),
            "xv": torch.as_tensor(np.ascontiguousarray(data.inputs_val, np.float32)),
            "yt": torch.as_tensor(np.asarray(data.y_train), dtype=torch.long),
            "yv": torch.as_tensor(np.asarray(data.y_val), dtype=torch.long),
            "st": torch.as_tensor(np.asarray(data.scores_train), dtype=torch.float32),
            "sv": torch.as_tensor(np.asarray(data.scores_val), dtype=torch.float32)}


def _moved(initial: dict[str, Tensor], modules: dict[str, nn.Module]) -> dict[str, bool]:
    return {f"{m}.{n}": bool(not torch.equal(initial[f"{m}.{n}"], p.detach()))
            for m, module in modules.items() for n, p in module.named_parameters()}


def _snapshot(modules: dict[str, nn.Module]) -> dict[str, Tensor]:
    return {f"{m}.{n}": p.detach().clone() for m, module in modules.items()
            for n, p in module.named_parameters()}


# ------------------------------------------------------------------------------------------
# Sparse-CBM (Andron00e/SparseCBM)
# ------------------------------------------------------------------------------------------

#: Sparse-CBM's demo (``demo_notebooks/demo.ipynb``): Adam at 3e-4 for CBL and head,
#: batches of 128, 10 epochs
SPARSECBM_TRAIN = {"lr": 3e-4, "batch_size": 128, "max_epochs": 10, "finetune_epochs": 0}

CblLoss = Callable[[Tensor, Tensor, torch.Generator | None], Tensor]


def sparsecbm_backward(cbl_loss: CblLoss, cbl: ConceptBottleneckLayer, head: nn.Linear,
                       x: Tensor, y: Tensor, generator: torch.Generator | None
                       ) -> tuple[Tensor, Tensor]:
    """One step's backward passes, as ``BottleneckTrainer.train`` does them: ``cbl_logits,
    logits = net(batch)``; ``cbl_loss.backward(retain_graph=True)``; ``CE(logits,
    targets).backward()`` (the gradients add up). Returns ``(cbl_loss, ce)``."""
    pre = cbl(x)
    logits = head(pre)
    loss_c = cbl_loss(pre, cbl.linear.weight, generator)
    loss_c.backward(retain_graph=True)
    ce = F.cross_entropy(logits, y)
    ce.backward()
    return loss_c, ce


def sparsecbm_optimizers(cbl: nn.Module, head: nn.Module, lr: float
                         ) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
    """``(optimizer_cbl, optimizer_head)``: Adam on the CBL at ``cbl_lr`` and Adam on the head
    at ``lr`` (the demo sets both to 3e-4). **Fixed bug**: the reference passes the head as
    ``{"head": head.parameters(), "params": backbone}``, a key Adam ignores, so its head never
    trains; here the head's parameters are the second optimiser's."""
    return (torch.optim.Adam(cbl.parameters(), lr=lr),
            torch.optim.Adam(head.parameters(), lr=lr))


def train_sparsecbm(objective: Objective, cbl_loss: CblLoss, data: TrainData, *,
                    kind: InputKind, n_classes: int, config: TrainConfig, seed: int,
                    logit_scale: float, desc: str = "") -> CBLFit:
    """Sparse-CBM's training (``BottleneckTrainer.train``, "base" nets) on cached scores.

    The model (``bottlenecks/cbm.py``, ``BaseCBModel``): ``cbl = nn.Linear(K, K, bias=False)``
    reading CLIP's ``logits_per_image`` (``logit_scale * cos(image, concept)``: here
    ``logit_scale * S``, no standardisation), ``head = nn.Linear(K, C, bias=False)`` reading the
    raw CBL output; both at PyTorch's default initialisation (drawn here from the fit's
    generator, CBL first). Each step: the two backward passes of ``sparsecbm_backward``, then
    both Adam steps. Minibatches from one shuffle made before the first epoch and walked
    again in the same order every epoch (``data_utils.py``, ``prepared_dataloaders``: the
    shuffled loader is preprocessed once into a list of batches; the last one partial),
    ``max_epochs`` epochs, and
    the weights after the last step are kept: the reference evaluates validation every
    ``val_step_count`` steps but selects nothing on it (validation accuracy is logged here
    once per epoch).
    """
    start = time.perf_counter()
    t = _tensors(data)
    gen = torch.Generator().manual_seed(int(seed))
    k = t["xt"].shape[1]
    cbl = raw_layer(kind, k, k, bias=False, generator=gen, scale=logit_scale)
    head = nn.Linear(k, n_classes, bias=False)
    default_linear_init(head, gen)
    lr = config.lr if config.lr is not None else SPARSECBM_TRAIN["lr"]
    opt_cbl, opt_head = sparsecbm_optimizers(cbl, head, lr)
    modules: dict[str, nn.Module] = {"cbl": cbl, "head": head}
    initial = _snapshot(modules)
    n = len(t["xt"])
    bs = min(config.batch_size, n)
    history: list[dict[str, float]] = []
    step = 0
    epochs = progress(range(config.max_epochs), desc=desc or f"fit CBL ({objective.name})",
                      disable=None if config.show_progress is None else not config.show_progress,
                      unit="epoch")
    score = float("nan")
    # one shuffle for the whole run: the reference shuffles its DataLoader once, while
    # ``prepared_dataloaders`` preprocesses it into a list of batches, and every epoch walks
    # that list (the same batches, in the same order)
    perm = torch.randperm(n, generator=gen)
    for epoch in epochs:
        totals = {"cbl_loss": 0.0, "ce": 0.0}
        for i in range(0, n, bs):
            idx = perm[i:i + bs]
            loss_c, ce = sparsecbm_backward(cbl_loss, cbl, head, t["xt"][idx], t["yt"][idx],
                                            gen)
            if not (torch.isfinite(loss_c) and torch.isfinite(ce)):
                raise DivergedError(f"{objective.name}: loss became {float(loss_c.detach())} + "
                                    f"{float(ce.detach())} at epoch {epoch}, step {step}")
            opt_cbl.step()
            opt_cbl.zero_grad()
            opt_head.step()
            opt_head.zero_grad()
            step += 1
            totals["cbl_loss"] += float(loss_c.detach()) * len(idx)
            totals["ce"] += float(ce.detach()) * len(idx)
        with torch.no_grad():
            logits_v = head(cbl(t["xv"]))
            score = float((logits_v.argmax(1) == t["yv"]).double().mean())
            val_ce = float(F.cross_entropy(logits_v, t["yv"]))
        history.append({"epoch": epoch + 1, **{f"train_{a}": v / n for a, v in totals.items()},
                        "val_score": score, "val_loss": val_ce})
    cbl.eval()
    return CBLFit(cbl=cbl, joint_head=head, history=history, best_epoch=len(history),
                  best_score=score, seconds=time.perf_counter() - start, steps=step,
                  moved=_moved(initial, modules), lr=lr)


# ------------------------------------------------------------------------------------------
# Label-free CBM (Trustworthy-ML-Lab/Label-free-CBM)
# ------------------------------------------------------------------------------------------

#: ``train_cbm.py``'s defaults: Adam lr 1e-3, ``proj_steps`` 1000 (here ``max_epochs``: one
#: step per "epoch"), ``proj_batch_size`` 50000 (here ``batch_size``)
LFCBM_TRAIN = {"lr": 1e-3, "batch_size": 50000, "max_epochs": 1000, "finetune_epochs": 0}


def lfcbm_cos3(clip_feats: Tensor, target_feats: Tensor) -> Tensor:
    """``similarity.cos_similarity_cubed_single``: centre each column over the batch, cube,
    divide each column by its norm, sum the products (one similarity per unit, no eps)."""
    c = clip_feats.float()
    c = c - torch.mean(c, dim=0, keepdim=True)
    t = target_feats - torch.mean(target_feats, dim=0, keepdim=True)
    c, t = c ** 3, t ** 3
    c = c / torch.norm(c, p=2, dim=0, keepdim=True)
    t = t / torch.norm(t, p=2, dim=0, keepdim=True)
    return torch.sum(t * c, dim=0)


def lfcbm_loss(proj: nn.Module, x: Tensor, scores: Tensor) -> Tensor:
    """``loss = torch.mean(-similarity_fn(clip_features[batch], proj_layer(...)))``."""
    return torch.mean(-lfcbm_cos3(scores, proj(x)))


def lfcbm_batch(n: int, batch_size: int, generator: torch.Generator) -> Tensor | None:
    """The rows of one projection step: ``random.sample(indices, k=min(proj_batch_size, N))``.
    When that is every row, ``None`` (all rows in order): the loss is a sum over rows, so
    the order changes nothing but float rounding."""
    if batch_size >= n:
        return None
    return torch.randperm(n, generator=generator)[:batch_size]


def train_lfcbm(objective: Objective, data: TrainData, *, kind: InputKind, config: TrainConfig,
                seed: int, val_every: int, desc: str = "") -> CBLFit:
    """LF-CBM's projection layer (``train_cbm.py``, ``train_cbm_and_save``) on cached arrays.

    ``proj_layer = nn.Linear(D, K, bias=False)`` (default initialisation, from the fit's
    generator) on the raw inputs (no standardisation); Adam (lr 1e-3); each step one batch of
    ``min(proj_batch_size, N)`` rows (``batch_size``, default 50000: full batch below that),
    ``loss = mean(-cos3(S[batch], proj(x[batch])))``, backward, Adam step. Every ``val_every``
    steps and at the last one, the validation loss on the whole validation split: the first
    check sets the best, an improvement replaces it, and the first check that does not
    improve **stops training**; the best weights are kept. **Fixed bug**: the reference's
    ``{dataset}_val`` is the official test split (CIFAR, CUB), so its early stopping and its
    interpretability cutoff look at test images; here validation is carved from train.
    """
    start = time.perf_counter()
    if val_every < 1:
        raise ObjectiveError(f"val_every must be >= 1, got {val_every}")
    t = _tensors(data)
    gen = torch.Generator().manual_seed(int(seed))
    k = t["st"].shape[1]
    proj = raw_layer(kind, t["xt"].shape[1], k, bias=False, generator=gen)
    lr = config.lr if config.lr is not None else LFCBM_TRAIN["lr"]
    opt = torch.optim.Adam(proj.parameters(), lr=lr)
    modules: dict[str, nn.Module] = {"cbl": proj}
    initial = _snapshot(modules)
    n = len(t["xt"])
    steps = config.max_epochs
    best_val, best_step = math.inf, 0
    best_state: dict[str, Any] | None = None
    history: list[dict[str, float]] = []
    step = 0
    bar = progress(range(steps), desc=desc or f"fit CBL ({objective.name})",
                   disable=None if config.show_progress is None else not config.show_progress,
                   unit="step")
    for i in bar:
        rows = lfcbm_batch(n, config.batch_size, gen)
        xb = t["xt"] if rows is None else t["xt"][rows]
        sb = t["st"] if rows is None else t["st"][rows]
        loss = lfcbm_loss(proj, xb, sb)
        if not torch.isfinite(loss):
            raise DivergedError(f"{objective.name}: loss became {float(loss.detach())} at step {i} "
                                "(a unit or concept constant over the batch?)")
        loss.backward()
        opt.step()
        step += 1
        if i % val_every == 0 or i == steps - 1:
            with torch.no_grad():
                val = float(lfcbm_loss(proj, t["xv"], t["sv"]))
            history.append({"epoch": i + 1, "train_cos3": -float(loss.detach()),
                            "val_score": -val, "val_loss": val})
            if i == 0 or val < best_val:
                best_val, best_step = val, i + 1
                best_state = copy.deepcopy(proj.state_dict())
            else:  # stop if val loss starts increasing
                break
        opt.zero_grad()
    if best_state is not None:
        proj.load_state_dict(best_state)
    proj.eval()
    return CBLFit(cbl=proj, joint_head=None, history=history, best_epoch=best_step,
                  best_score=-best_val, seconds=time.perf_counter() - start, steps=step,
                  moved=_moved(initial, modules), lr=lr)


# ------------------------------------------------------------------------------------------
# VLG-CBM's random baseline
# ------------------------------------------------------------------------------------------


def random_cbl(data: TrainData, *, kind: InputKind, seed: int) -> CBLFit:
    """A CBL left at its random initialisation: VLG-CBM's ``ConceptLayer(in, K, bias=True)``
    (one ``nn.Linear``, ``num_hidden=0``) at PyTorch's default initialisation, on the raw
    inputs, never trained; the sparse head standardises its outputs (VLG-CBM's
    ``NormalizationLayer``) and is fitted by the NEC protocol."""
    start = time.perf_counter()
    gen = torch.Generator().manual_seed(int(seed))
    x = np.asarray(data.inputs_train)
    k = int(np.shape(data.scores_train)[1])
    layer = raw_layer(kind, x.shape[1], k, bias=True, generator=gen)
    layer.eval()
    moved = {f"cbl.{n}": False for n, _ in layer.named_parameters()}
    return CBLFit(cbl=layer, joint_head=None, history=[], best_epoch=0,
                  best_score=float("nan"), seconds=time.perf_counter() - start, steps=0,
                  moved=moved, lr=0.0)
