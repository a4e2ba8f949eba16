"""Final linear layers of a concept bottleneck (and of a linear probe), fitted on cached arrays.

Two ways to fit a multinomial logistic-regression head ``logits = W . standardize(z) + b``:

* ``fit_dense_head``: every weight free, an L2 penalty chosen on a validation split
  (the CLIP linear-probe protocol, Radford et al. 2021, App. A.3: L-BFGS logistic regression
  with the L2 strength swept on validation data).
* ``fit_sparse_head``: exactly ``round(nec * C)`` non-zero weights, following VLG-CBM's
  "number of effective concepts" protocol (Srivastava et al. 2024, "VLG-CBM: Training Concept
  Bottleneck Models with Vision-Language Guidance": NEC = ||W||_0 / C). The sparsity pattern
  comes from the elastic-net regularisation path of Wong et al. 2021 ("Leveraging Sparse Linear
  Layers for Debuggable Deep Networks"; the objective
  ``mean_i CE(W x_i + b, y_i) + lam * (alpha ||W||_1 + (1 - alpha) / 2 ||W||_F^2)``, solved by
  their glm-saga package and reused as the sparse final layer of Label-free CBM, Oikarinen et
  al. 2023), truncated to the largest weights; the kept weights are then refitted.

Inputs are standardised with the *training* mean and standard deviation; the statistics are
stored in the head so that new inputs go through exactly the same map. Everything here works on
arrays (N x K concept activations or embeddings) and never calls an encoder.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from conceptlab import metrics

#: default L2 strengths (on the mean cross-entropy) swept by ``fit_dense_head``, strongest first
DEFAULT_WEIGHT_DECAYS: tuple[float, ...] = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5)
#: features whose training standard deviation falls below this are treated as constant
_MIN_STD = 1e-6
#: a weight counts as non-zero above this magnitude on the elastic-net path (glm-saga's 1e-5)
_PATH_ZERO_TOL = 1e-5
#: the elastic-net path never shrinks the penalty by more than this factor in one step
_MAX_PATH_JUMP = 0.1


# ----------------------------------------------------------------------------------------------
# The head
# ----------------------------------------------------------------------------------------------


@dataclass
class LinearHead:
    """A fitted linear head ``logits = weight . ((z - mean) / std) + bias``.

    ``weight`` is C x K (classes x input features/concepts), ``bias`` C, ``mean``/``std`` K (the
    training-set standardisation; constant features have ``std`` 1). ``info`` is a JSON-able
    record of how the head was fitted (solver, chosen regularisation, validation accuracy,
    iterations, seconds, ...).
    """

    weight: np.ndarray
    bias: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.weight = np.asarray(self.weight, dtype=np.float32)
        self.bias = np.asarray(self.bias, dtype=np.float32)
        self.mean = np.asarray(self.mean, dtype=np.float32)
        self.std = np.asarray(self.std, dtype=np.float32)
        if self.weight.ndim != 2:
            raise ValueError(f"head weight must be C x K, got shape {self.weight.shape}")
        n_classes, k = self.weight.shape
        if self.bias.shape != (n_classes,):
            raise ValueError(f"head bias has shape {self.bias.shape}, expected ({n_classes},)")
        if self.mean.shape != (k,) or self.std.shape != (k,):
            raise ValueError(f"standardisation stats have shapes {self.mean.shape} and "
                             f"{self.std.shape}, expected ({k},)")
        if (self.std <= 0).any():
            raise ValueError("standardisation std must be positive")
        for name in ("weight", "bias", "mean", "std"):
            if not np.isfinite(getattr(self, name)).all():
                raise ValueError(f"head {name} contains NaN or infinity")

    @property
    def n_classes(self) -> int:
        return int(self.weight.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.weight.shape[1])

    def _check_inputs(self, Z: np.ndarray) -> np.ndarray:
        Z = np.asarray(Z, dtype=np.float32)
        if Z.ndim != 2 or Z.shape[1] != self.n_features:
            raise ValueError(f"inputs of shape {Z.shape} do not match a head over "
                             f"{self.n_features} features")
        if not np.isfinite(Z).all():
            raise ValueError("inputs contain NaN or infinity")
        return Z

    def standardize(self, Z: np.ndarray) -> np.ndarray:
        """``(Z - mean) / std`` with the training statistics (N x K float32)."""
        return (self._check_inputs(Z) - self.mean) / self.std

    def logits(self, Z: np.ndarray) -> np.ndarray:
        """Class scores, N x C."""
        return self.standardize(Z) @ self.weight.T + self.bias

    def predict(self, Z: np.ndarray) -> np.ndarray:
        """Predicted class per row (N,), int64; ties go to the lowest class index."""
        return self.logits(Z).argmax(axis=1).astype(np.int64)

    def contributions(self, Z: np.ndarray, classes: np.ndarray | None = None) -> np.ndarray:
        """Per-example, per-feature contribution to one class's logit (N x K).

        ``contributions[i, k] = weight[c_i, k] * standardize(Z)[i, k]`` with ``c_i`` the predicted
        class (default) or ``classes[i]``; a row sums to that class's logit minus its bias.
        """
        Zs = self.standardize(Z)
        if classes is None:
            cls = (Zs @ self.weight.T + self.bias).argmax(axis=1)
        else:
            cls = np.asarray(classes)
            if cls.shape != (len(Zs),):
                raise ValueError(f"classes has shape {cls.shape}, expected ({len(Zs)},)")
            if not np.issubdtype(cls.dtype, np.integer):
                raise ValueError("classes must be integers")
            if len(cls) and (cls.min() < 0 or cls.max() >= self.n_classes):
                raise ValueError(f"classes must lie in [0, {self.n_classes})")
        return self.weight[cls] * Zs

    @property
    def nec(self) -> float:
        """Number of effective concepts: non-zero weights / number of classes (VLG-CBM)."""
        return metrics.nec(self.weight)

    def state(self) -> dict[str, np.ndarray]:
        """Arrays to store with safetensors (``info`` goes to JSON beside them)."""
        return {"weight": self.weight.copy(), "bias": self.bias.copy(),
                "mean": self.mean.copy(), "std": self.std.copy()}

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray], info: dict[str, Any]) -> LinearHead:
        """Rebuild a head from ``state()`` arrays and its ``info``."""
        missing = {"weight", "bias", "mean", "std"} - set(state)
        if missing:
            raise ValueError(f"head state lacks {sorted(missing)}")
        return cls(weight=np.asarray(state["weight"]), bias=np.asarray(state["bias"]),
                   mean=np.asarray(state["mean"]), std=np.asarray(state["std"]),
                   info=dict(info))


# ----------------------------------------------------------------------------------------------
# Input checks and shared pieces
# ----------------------------------------------------------------------------------------------


def _check_xy(Z: np.ndarray, y: np.ndarray, n_classes: int, name: str,
              n_features: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Validate one (inputs, labels) pair; return float32 inputs and int64 labels."""
    Z = np.asarray(Z)
    y = np.asarray(y)
    if Z.ndim != 2:
        raise ValueError(f"{name} inputs must be 2-D (N x K), got shape {Z.shape}")
    if Z.shape[0] == 0:
        raise ValueError(f"{name} inputs are empty")
    if n_features is not None and Z.shape[1] != n_features:
        raise ValueError(f"{name} inputs have {Z.shape[1]} features, train has {n_features}")
    if y.ndim != 1 or len(y) != len(Z):
        raise ValueError(f"{name} labels have shape {y.shape}, expected ({len(Z)},)")
    if Z.dtype == bool:
        Z = Z.astype(np.float32)
    if not (np.issubdtype(Z.dtype, np.floating) or np.issubdtype(Z.dtype, np.integer)):
        raise ValueError(f"{name} inputs must be numeric, got dtype {Z.dtype}")
    if not np.isfinite(Z).all():
        raise ValueError(f"{name} inputs contain NaN or infinity")
    if np.issubdtype(y.dtype, np.floating):
        if not np.isfinite(y).all() or (y != np.round(y)).any():
            raise ValueError(f"{name} labels must be integers")
    elif not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{name} labels must be integers, got dtype {y.dtype}")
    if y.min() < 0 or y.max() >= n_classes:
        raise ValueError(f"{name} labels must lie in [0, {n_classes}), got range "
                         f"[{int(y.min())}, {int(y.max())}]")
    return Z.astype(np.float32, copy=False), y.astype(np.int64)


def _check_problem(Z_train: np.ndarray, y_train: np.ndarray, Z_val: np.ndarray,
                   y_val: np.ndarray, n_classes: int) -> tuple[np.ndarray, ...]:
    if isinstance(n_classes, bool) or not isinstance(n_classes, int | np.integer):
        raise ValueError(f"n_classes must be an int, got {n_classes!r}")
    if n_classes < 2:
        raise ValueError(f"a classifier needs at least 2 classes, got n_classes={n_classes}")
    Zt, yt = _check_xy(Z_train, y_train, n_classes, "train")
    Zv, yv = _check_xy(Z_val, y_val, n_classes, "validation", n_features=Zt.shape[1])
    if len(np.unique(yt)) < 2:
        raise ValueError("train labels hold fewer than 2 distinct classes")
    return Zt, yt, Zv, yv


def _standardization(Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and std of the training inputs (float64 sums; constant -> std 1)."""
    mean = Z.mean(axis=0, dtype=np.float64)
    std = Z.std(axis=0, dtype=np.float64)
    std = np.where(std < _MIN_STD, 1.0, std)
    return mean.astype(np.float32), std.astype(np.float32)


def _to_tensor(Z: np.ndarray, mean: np.ndarray, std: np.ndarray,
               device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray((Z - mean) / std, dtype=np.float32)).to(device)


def _eval(X: torch.Tensor, y: torch.Tensor, W: torch.Tensor,
          b: torch.Tensor) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of a head on standardised tensors."""
    with torch.no_grad():
        logits = torch.addmm(b, X, W.T)
        return (float(F.cross_entropy(logits, y)),
                float((logits.argmax(1) == y).double().mean()))


def _ce_grad(X: torch.Tensor, y: torch.Tensor, W: torch.Tensor, b: torch.Tensor,
             rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean cross-entropy of ``X W^T + b`` and its exact gradients, without autograd.

    ``d CE / d logits = (softmax - onehot) / N``, so ``dW = G^T X`` and ``db = sum(G)``. Written
    by hand because it is the inner loop of every fit: two matmuls and a few N x C element-wise
    ops, about half the time of autograd on small K (and no graph kept alive).
    """
    logits = torch.addmm(b, X, W.T)
    m = logits.amax(1, keepdim=True)
    G = (logits - m).exp_()
    s = G.sum(1, keepdim=True)
    loss = (m.squeeze(1) + s.log().squeeze(1) - logits[rows, y]).mean()
    G /= s
    G[rows, y] -= 1.0
    G /= X.shape[0]
    return loss, G.T @ X, G.sum(0)


def _lbfgs(X: torch.Tensor, y: torch.Tensor, W0: torch.Tensor, b0: torch.Tensor, *,
           weight_decay: float, max_iter: int, mask: torch.Tensor | None = None,
           tol: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Minimise ``CE(X W^T + b, y) + weight_decay / 2 * ||W||^2`` by full-batch L-BFGS.

    With ``mask`` the weight is ``V * mask`` and only the masked-in entries can move (the
    gradient elsewhere is exactly zero), which is the masked refit of the sparse head. Both the
    weight and the bias are parameters of the optimiser (the bias is not penalised).
    Returns the weight, the bias and the number of L-BFGS iterations.
    """
    V = W0.clone() if mask is None else W0 * mask
    b = b0.clone()
    V.requires_grad_(True)
    b.requires_grad_(True)
    rows = torch.arange(X.shape[0], device=X.device)
    opt = torch.optim.LBFGS([V, b], lr=1.0, max_iter=max_iter, history_size=10,
                            tolerance_grad=tol, tolerance_change=1e-7,
                            line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        with torch.no_grad():
            W = V if mask is None else V * mask
            loss, gW, gb = _ce_grad(X, y, W, b, rows)
            loss = loss + 0.5 * weight_decay * (W * W).sum()
            gW = gW + weight_decay * W
            V.grad = gW if mask is None else gW * mask
            b.grad = gb
        return loss

    opt.step(closure)
    n_iter = int(opt.state[V].get("n_iter", 0))
    with torch.no_grad():
        W = (V if mask is None else V * mask).detach().clone()
    return W, b.detach().clone(), n_iter


#: below this many multiply-adds per pass (N * K * C), fits run on one CPU thread
_SMALL_PROBLEM_MACS = 5e7


def _pass_seconds(X: torch.Tensor, W: torch.Tensor, threads: int, repeats: int = 3) -> float:
    """Best time of one forward + gradient pass (the fits' inner loop) on ``threads`` threads."""
    torch.set_num_threads(threads)
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        G = X @ W.T
        G.T @ X
        best = min(best, time.perf_counter() - start)
    return best


def _probe_threads(n: int, k: int, n_classes: int, current: int) -> int:
    """1 or ``current`` threads, whichever runs a pass of this shape faster right now."""
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(min(n, 16384, max(2048, 8_000_000 // k)), k, generator=gen)
    W = torch.randn(n_classes, k, generator=gen)
    try:
        single = _pass_seconds(X, W, 1)
        multi = _pass_seconds(X, W, current)
    finally:
        torch.set_num_threads(current)
    return 1 if single <= multi else current


@contextmanager
def _thread_limit(num_threads: int | None, Z: Any, n_classes: Any, device: str) -> Iterator[int]:
    """Run a fit with ``num_threads`` torch CPU threads, restoring the setting afterwards.

    ``None`` picks automatically on CPU: one thread for problems under ``_SMALL_PROBLEM_MACS``
    multiply-adds per pass; for larger ones, one thread or torch's current setting, whichever
    runs a probe pass of the problem's shape faster at that moment (~0.1-0.3 s). Why: a fit is
    hundreds of short full-batch passes, and when other jobs keep the cores busy every
    multi-threaded op waits for a core. Measured on the 2-core machine with other jobs running:
    a 1500 x 40 proximal step 0.6 ms on one thread vs 18 ms on two; the 54k x 384 dense fit
    18 s vs 106 s; on an idle 2-core machine two threads are ~1.5x faster instead.
    """
    current = torch.get_num_threads()
    if num_threads is None:
        shape = np.shape(Z)
        classes = int(n_classes) if isinstance(n_classes, int | np.integer) else 2
        num_threads = current
        if len(shape) == 2 and torch.device(device).type == "cpu" and current > 1:
            n, k = int(shape[0]), int(shape[1])
            if n * k * classes < _SMALL_PROBLEM_MACS:
                num_threads = 1
            elif k > 0 and classes > 0:
                num_threads = _probe_threads(n, k, classes, current)
    if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1:
        raise ValueError(f"num_threads must be a positive int or None, got {num_threads!r}")
    if num_threads == current:
        yield current
        return
    torch.set_num_threads(num_threads)
    try:
        yield num_threads
    finally:
        torch.set_num_threads(current)


def _log_prior_bias(y: np.ndarray, n_classes: int) -> np.ndarray:
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    return np.log(np.maximum(counts, 0.5) / counts.sum()).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# Dense head
# ----------------------------------------------------------------------------------------------


def fit_dense_head(Z_train: np.ndarray, y_train: np.ndarray, Z_val: np.ndarray,
                   y_val: np.ndarray, *, n_classes: int, seed: int = 0,
                   weight_decays: tuple[float, ...] = DEFAULT_WEIGHT_DECAYS,
                   max_epochs: int = 100, device: str = "cpu",
                   num_threads: int | None = None, early_stop: bool = True) -> LinearHead:
    """Multinomial logistic regression on standardised inputs, L2 strength chosen on validation.

    Minimises ``mean_i CE(W z_i + b, y_i) + (lambda / 2) ||W||_F^2`` (bias unpenalised) by
    full-batch L-BFGS (the CLIP linear-probe protocol, Radford et al. 2021, App. A.3)
    for each ``lambda`` in ``weight_decays``, strongest first, each solve warm-started from the
    previous one. The head with the best validation accuracy is kept (ties: lower validation
    cross-entropy, then the stronger penalty). ``Z_val``/``y_val`` must be carved from the
    training split by the caller; the standardisation uses training statistics only, and the
    kept head is the one fitted on ``Z_train`` (no refit on train + val).

    With ``early_stop`` the sweep ends at the first ``lambda`` that is worse than the best so far
    in both validation accuracy and validation cross-entropy (validation error is unimodal in
    ``lambda`` in practice, and the weak penalties are the slowest to fit).

    ``max_epochs`` caps the L-BFGS iterations per ``lambda`` (each iteration is one or a few
    full passes). ``seed`` is recorded; the fit itself is deterministic (zero initialisation).
    ``num_threads``: torch CPU threads during the fit (see ``_thread_limit``; None = automatic).
    """
    with _thread_limit(num_threads, Z_train, n_classes, device) as threads:
        head = _fit_dense(Z_train, y_train, Z_val, y_val, n_classes=n_classes, seed=seed,
                          weight_decays=weight_decays, max_epochs=max_epochs, device=device,
                          early_stop=early_stop)
    head.info["threads"] = threads
    return head


def _fit_dense(Z_train: np.ndarray, y_train: np.ndarray, Z_val: np.ndarray, y_val: np.ndarray,
               *, n_classes: int, seed: int, weight_decays: tuple[float, ...], max_epochs: int,
               device: str, early_stop: bool = True) -> LinearHead:
    start = time.perf_counter()
    Zt, yt, Zv, yv = _check_problem(Z_train, y_train, Z_val, y_val, n_classes)
    n_classes = int(n_classes)
    if not weight_decays:
        raise ValueError("weight_decays is empty")
    if any((not math.isfinite(w)) or w < 0 for w in weight_decays):
        raise ValueError(f"weight decays must be finite and >= 0, got {weight_decays}")
    if max_epochs < 1:
        raise ValueError(f"max_epochs must be >= 1, got {max_epochs}")
    dev = torch.device(device)
    mean, std = _standardization(Zt)
    Xt, Xv = _to_tensor(Zt, mean, std, dev), _to_tensor(Zv, mean, std, dev)
    tt, tv = torch.from_numpy(yt).to(dev), torch.from_numpy(yv).to(dev)

    W = torch.zeros(n_classes, Zt.shape[1], device=dev)
    b = torch.from_numpy(_log_prior_bias(yt, n_classes)).to(dev)
    grid: list[dict[str, float]] = []
    best: tuple[tuple[float, float, float], torch.Tensor, torch.Tensor, dict[str, float]] | None
    best = None
    total_iter = 0
    for wd in sorted((float(w) for w in weight_decays), reverse=True):
        W, b, n_iter = _lbfgs(Xt, tt, W, b, weight_decay=wd, max_iter=max_epochs)
        total_iter += n_iter
        val_loss, val_acc = _eval(Xv, tv, W, b)
        row = {"weight_decay": wd, "val_accuracy": val_acc, "val_loss": val_loss,
               "iterations": n_iter}
        grid.append(row)
        key = (val_acc, -val_loss, wd)
        if best is None or key > best[0]:
            best = (key, W.clone(), b.clone(), row)
        elif early_stop and val_acc <= best[0][0] and val_loss > -best[0][1]:
            break  # weaker penalties only overfit more from here: skip the (slowest) rest
    assert best is not None
    _, W, b, row = best
    train_loss, train_acc = _eval(Xt, tt, W, b)
    info = {
        "kind": "dense", "solver": "lbfgs", "weight_decay": row["weight_decay"],
        "val_accuracy": row["val_accuracy"], "val_loss": row["val_loss"],
        "train_accuracy": train_acc, "train_loss": train_loss,
        "grid": grid, "early_stop": early_stop, "epochs": total_iter, "max_epochs": max_epochs,
        "n_train": len(Zt), "n_val": len(Zv), "n_features": int(Zt.shape[1]),
        "n_classes": n_classes, "seed": seed, "device": str(dev),
        "seconds": time.perf_counter() - start,
    }
    return LinearHead(W.cpu().numpy(), b.cpu().numpy(), mean, std, info)


# ----------------------------------------------------------------------------------------------
# Sparse head at a target NEC
# ----------------------------------------------------------------------------------------------


def _soft_threshold_shrink(v: torch.Tensor, l1: float, l2: float) -> torch.Tensor:
    """Proximal map of ``l1 * |w| + (l2 / 2) * w^2`` (elastic net), as in glm-saga."""
    return torch.sign(v) * torch.clamp(v.abs() - l1, min=0.0) / (1.0 + l2)


class _ProximalPath:
    """Full-batch accelerated proximal gradient (FISTA with adaptive restart) on Wong et al.'s
    elastic-net objective

        mean_i CE(W x_i + b, y_i) + lam * alpha * ||W||_1 + lam * (1 - alpha) / 2 * ||W||_F^2,

    i.e. the objective glm-saga minimises (Wong et al. 2021; glm-saga's ``elastic_loss``),
    solved with exact full-batch gradients instead of SAGA's per-minibatch ones. The proximal
    map of the penalty is glm-saga's ``soft_threshold_with_shrinkage``. The step is ``1 / L``
    with Böhning's bound on the multinomial Hessian, ``L = 0.5 * max(eig(X_S^T X_S / N), 1)``
    (the 1 covers the bias direction of standardised, zero-mean inputs). A point is solved when
    the parameters move less than ``tol`` relative to their norm in one step. Warm starts carry
    the solution from one ``lam`` to the next.

    Screening (glmnet's sequential strong rule, Tibshirani et al. 2012, Eq. 7 adapted to the
    element-wise penalty): at ``lam`` after ``lam_prev``, only inputs with a non-zero weight or
    with ``max_c |g_prev[c, j]| >= alpha * (2 lam - lam_prev)`` are optimised; then the full
    gradient checks the optimality condition ``|g[c, j]| <= alpha * lam`` on every discarded
    input and re-solves with any violator added. Of the strong-rule candidates at most
    ``working_extra`` (the highest ``max_c |g_prev|``) join the inputs already in use (a working
    set, as in active-set lasso solvers); the optimality check makes this safe too. The answer is
    the unscreened one; the cost per step drops from N x K x C to N x |S| x C, and on the sparse
    end of the path, where this head stops, |S| << K.

    Why not glm-saga itself: its SAGA loop runs ~N / 256 small Python-level steps per epoch and
    needs many epochs per ``lam``; on CPU one epoch over 54k x 64 already costs seconds (see
    ``benchmarks/bench_heads.py``), while one step here is two matmuls. Both reach the same
    support on the problems compared in the tests.
    """

    def __init__(self, X: torch.Tensor, y: torch.Tensor, n_classes: int, alpha: float,
                 max_iter: int, tol: float, working_extra: int) -> None:
        self.X, self.y, self.alpha = X, y, alpha
        self.max_iter, self.tol = max_iter, tol
        self.working_extra = max(int(working_extra), 1)
        self.rows = torch.arange(X.shape[0], device=X.device)
        self.iterations = 0
        self.kkt_rounds = 0
        self._full_step: float | None = None

    def _step(self, XS: torch.Tensor) -> float:
        """``1 / L`` with ``L = 0.5 * max(eig(XS^T XS / N), 1)``."""
        if XS.shape[1] == 0:
            return 2.0
        if XS is self.X and self._full_step is not None:
            return self._full_step
        eig = float(torch.linalg.eigvalsh(((XS.T @ XS) / XS.shape[0]).double())[-1])
        step = 1.0 / (0.5 * max(eig, 1.0))
        if XS is self.X:
            self._full_step = step
        return step

    def gradient(self, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Full-batch cross-entropy gradient in ``W``."""
        return _ce_grad(self.X, self.y, W, b, self.rows)[1]

    def _fista(self, X: torch.Tensor, W: torch.Tensor, b: torch.Tensor, lam: float,
               step: float) -> tuple[torch.Tensor, torch.Tensor, int]:
        l1, l2 = step * lam * self.alpha, step * lam * (1.0 - self.alpha)
        Wy, by, theta = W.clone(), b.clone(), 1.0
        n_iter = 0
        for n_iter in range(1, self.max_iter + 1):  # noqa: B007 (n_iter is returned)
            _, gW, gb = _ce_grad(X, self.y, Wy, by, self.rows)
            W_new = _soft_threshold_shrink(Wy - step * gW, l1, l2)
            b_new = by - step * gb
            dW, db = W_new - W, b_new - b
            change = math.sqrt(float((dW * dW).sum() + (db * db).sum()))
            scale = max(math.sqrt(float((W_new * W_new).sum() + (b_new * b_new).sum())), 1e-12)
            # adaptive restart (O'Donoghue & Candès 2015): drop momentum when it points uphill
            if float(((Wy - W_new) * dW).sum() + ((by - b_new) * db).sum()) > 0:
                theta = 1.0
            theta_new = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * theta * theta))
            mom = (theta - 1.0) / theta_new
            Wy, by = W_new + mom * dW, b_new + mom * db
            W, b, theta = W_new, b_new, theta_new
            if change <= self.tol * scale:
                break
        return W, b, n_iter

    def solve(self, W: torch.Tensor, b: torch.Tensor, lam: float, lam_prev: float,
              g_prev: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
        """Solve at ``lam`` warm-started from the solution ``(W, b)`` at ``lam_prev`` (whose
        gradient is ``g_prev``); return weight, bias, full gradient and iterations."""
        k = W.shape[1]
        score = g_prev.abs().amax(0)
        active = (W != 0).any(0)
        keep = (score >= self.alpha * (2.0 * lam - lam_prev)) | active
        extra = int(keep.sum()) - int(active.sum()) - self.working_extra
        if extra > 0:  # working set: the active inputs plus the strongest candidates
            candidates = torch.where(keep & ~active, score, torch.full_like(score, -1.0))
            keep = active.clone()
            keep[torch.topk(candidates, self.working_extra).indices] = True
        total = 0
        while True:
            S = torch.nonzero(keep).flatten()
            if len(S) > 0.5 * k:  # screening would not pay: use every column
                S = torch.arange(k, device=W.device)
                XS = self.X
            else:
                XS = self.X[:, S].contiguous()
            W_s, b_s, n_iter = self._fista(XS, W[:, S], b, lam, self._step(XS))
            total += n_iter
            W_full = torch.zeros_like(W)
            W_full[:, S] = W_s
            b = b_s
            g = self.gradient(W_full, b)
            self.kkt_rounds += 1
            violators = ~keep & (g.abs().amax(0) > self.alpha * lam * (1.0 + 1e-3))
            if len(S) == k or not bool(violators.any()):
                self.iterations += total
                return W_full, b, g, total
            keep |= violators
            W = W_full


class _SagaPath:
    """The same path solved with glm-saga's minibatch proximal SAGA (``train_saga``), as used by
    Label-free CBM and VLG-CBM (step 0.1, batch 256); kept for comparison and fidelity. Its
    loader yields ``(X, y, idx)`` as glm-saga requires."""

    def __init__(self, X: torch.Tensor, y: torch.Tensor, n_classes: int, alpha: float,
                 max_iter: int, tol: float, batch_size: int = 256, lr: float = 0.1,
                 seed: int = 0) -> None:
        from glm_saga.elasticnet import IndexedTensorDataset, train_saga

        self._train_saga = train_saga
        self.alpha, self.max_iter, self.tol, self.lr = alpha, max_iter, tol, lr
        self.n_classes = n_classes
        gen = torch.Generator().manual_seed(seed)
        self.loader = torch.utils.data.DataLoader(
            IndexedTensorDataset(X.cpu(), y.cpu()), batch_size=batch_size, shuffle=True,
            generator=gen)
        self.linear = torch.nn.Linear(X.shape[1], n_classes)
        self.state: dict[str, torch.Tensor] | None = None
        self.n = X.shape[0]
        self.iterations = 0
        self.X, self.y = X, y
        self.rows = torch.arange(X.shape[0], device=X.device)

    def gradient(self, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Full-batch cross-entropy gradient in ``W`` (for choosing the next penalty)."""
        return _ce_grad(self.X, self.y, W, b, self.rows)[1]

    def solve(self, W: torch.Tensor, b: torch.Tensor, lam: float, lam_prev: float,
              g_prev: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
        """Solve at ``lam`` from ``(W, b)`` (no screening: SAGA touches every input anyway)."""
        del lam_prev, g_prev
        with torch.no_grad():
            self.linear.weight.copy_(W.cpu())
            self.linear.bias.copy_(b.cpu())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # glm-saga calls softmax without dim
            self.state = self._train_saga(
                self.linear, self.loader, self.lr, self.max_iter, lam, self.alpha, group=False,
                state=self.state, n_ex=self.n, n_classes=self.n_classes, tol=self.tol,
                logger=lambda *_: None)
        self.iterations += self.max_iter  # upper bound: train_saga does not report epochs
        W_new = self.linear.weight.detach().clone().to(W.device)
        b_new = self.linear.bias.detach().clone().to(b.device)
        return W_new, b_new, self.gradient(W_new, b_new), self.max_iter


def _nnz(W: torch.Tensor) -> int:
    return int((W.abs() > _PATH_ZERO_TOL).sum())


def _next_lambda(W: torch.Tensor, gW: torch.Tensor, lam: float, target: int, alpha: float,
                 path_ratio: float) -> float:
    """Next penalty on the path: predicted to bring the non-zeros up to ``target``.

    A zero weight stays zero while its cross-entropy gradient satisfies ``|g| <= lam * alpha``
    (the elastic-net optimality condition), so with the current gradient the ``m``-th largest
    ``|g| / alpha`` among zero weights, ``m = target - nnz``, predicts where ``m`` more weights
    enter (the sequential strong rule of Tibshirani et al. 2012, "Strong rules for discarding
    predictors in lasso-type problems"). The prediction is clipped to
    ``[lam * _MAX_PATH_JUMP, lam * path_ratio]``: at least a ``path_ratio`` step, at most one
    decade, so warm starts stay close; overshooting is repaired by the bisection that follows.
    """
    zero = W.abs() <= _PATH_ZERO_TOL
    need = target - int((~zero).sum())
    g = gW.abs()[zero]
    if need <= 0 or g.numel() == 0:
        return lam * path_ratio
    m = min(need, g.numel())
    predicted = float(torch.topk(g, m).values[-1]) / alpha * 0.999
    return min(lam * path_ratio, max(predicted, lam * _MAX_PATH_JUMP))


def _top_mask(W: np.ndarray, n_keep: int, allowed: np.ndarray) -> np.ndarray:
    """Boolean C x K mask of the ``n_keep`` largest |W| among ``allowed`` columns.

    Ties are broken deterministically by flat (row-major) index, lowest first.
    """
    mag = np.abs(W.astype(np.float64))
    mag[:, ~allowed] = -1.0  # never pick a constant (standardised to zero) feature
    flat = mag.ravel()
    order = np.lexsort((np.arange(flat.size), -flat))  # primary: -|w|, secondary: index
    mask = np.zeros(flat.size, dtype=bool)
    mask[order[:n_keep]] = True
    return mask.reshape(W.shape)


def fit_sparse_head(Z_train: np.ndarray, y_train: np.ndarray, Z_val: np.ndarray,
                    y_val: np.ndarray, *, n_classes: int, nec: float, seed: int = 0,
                    alpha: float = 0.99, solver: Literal["proximal", "saga"] = "proximal",
                    path_ratio: float = 0.8, refine_steps: int = 6, min_lambda_ratio: float = 1e-4,
                    max_iter_per_lambda: int = 300, tol: float = 1e-4,
                    refit_weight_decay: float = 1e-4, refit_max_epochs: int = 100,
                    weight_decays: tuple[float, ...] = DEFAULT_WEIGHT_DECAYS,
                    device: str = "cpu", num_threads: int | None = None,
                    path_rows: int | None = 16384) -> LinearHead:
    """A head with exactly ``round(nec * n_classes)`` non-zero weights (VLG-CBM's NEC protocol).

    Steps (Srivastava et al. 2024 for NEC and truncation; Wong et al. 2021 for the path):

    1. Standardise with training statistics; start at ``W = 0``, ``b = log class priors`` and
       ``lambda_max = max |X^T (Y - mean(Y))| / (N * alpha)``, the smallest penalty whose optimum
       is all-zero (glm-saga's ``maximum_reg``).
    2. Walk down the elastic-net path (``alpha`` = 0.99, as in Label-free CBM and VLG-CBM),
       warm-starting each solve from the previous point, to the first point with at least
       ``round(nec * C)`` weights above 1e-5 (glm-saga's non-zero threshold). Each step shrinks
       ``lambda`` by at least ``path_ratio`` and at most 10x, to where the optimality
       conditions at the current point predict the target count (``_next_lambda``). Then
       ``log lambda`` is bisected ``refine_steps`` times between that point and the previous
       one, keeping the sparsest point that still has enough non-zeros. (VLG-CBM walks a fixed
       path of ratio 2^-0.1 instead; the bisection reaches a comparably close point in fewer
       solves.) ``min_lambda_ratio`` ends the path at ``lambda_max * min_lambda_ratio``.
    3. Keep the ``round(nec * C)`` largest-magnitude weights (ties by flat index, halves
       rounded up), zero the rest. Constant inputs are never kept.
    4. Refit the kept weights and the (free, unpenalised) bias by masked full-batch L-BFGS on the
       cross-entropy with a small ridge ``refit_weight_decay`` (which keeps the refit finite on
       separable data). VLG-CBM stops at step 3; the refit recovers the accuracy truncation
       loses without changing the sparsity pattern. (Should the refit leave a kept weight at
       exactly 0, it is set to the smallest normal float32 so that the count stays exact.)

    ``nec >= K`` (the number of inputs) asks for a dense head: ``fit_dense_head`` is used with
    ``weight_decays``. The NEC is an average: some classes may get more weights than others,
    and a class may get none (its logit is then its bias).

    ``solver="proximal"`` (default) solves each path point with full-batch accelerated proximal
    gradient in torch; ``solver="saga"`` uses glm-saga's minibatch SAGA (the reference
    implementation; much slower on CPU, see ``benchmarks/bench_heads.py``).
    ``num_threads``: torch CPU threads during the fit (see ``_thread_limit``; None = automatic).
    ``path_rows``: the path (steps 1-2), which only has to choose which weights to keep, runs
    on a seeded random subsample of at most this many training rows; the refit (step 4) uses
    every row. On 54k x 66 this cut the sparse fit from 24 s to a few seconds. ``None``: all.
    """
    if path_rows is not None and path_rows < 2:
        raise ValueError(f"path_rows must be None or >= 2, got {path_rows}")
    with _thread_limit(num_threads, Z_train, n_classes, device) as threads:
        head = _fit_sparse(
            Z_train, y_train, Z_val, y_val, n_classes=n_classes, nec=nec, seed=seed,
            alpha=alpha, solver=solver, path_ratio=path_ratio, refine_steps=refine_steps,
            min_lambda_ratio=min_lambda_ratio, max_iter_per_lambda=max_iter_per_lambda, tol=tol,
            refit_weight_decay=refit_weight_decay, refit_max_epochs=refit_max_epochs,
            weight_decays=weight_decays, device=device, path_rows=path_rows)
    head.info["threads"] = threads
    return head


def _fit_sparse(Z_train: np.ndarray, y_train: np.ndarray, Z_val: np.ndarray, y_val: np.ndarray,
                *, n_classes: int, nec: float, seed: int, alpha: float, solver: str,
                path_ratio: float, refine_steps: int, min_lambda_ratio: float,
                max_iter_per_lambda: int, tol: float, refit_weight_decay: float,
                refit_max_epochs: int, weight_decays: tuple[float, ...],
                device: str, path_rows: int | None = None) -> LinearHead:
    start = time.perf_counter()
    Zt, yt, Zv, yv = _check_problem(Z_train, y_train, Z_val, y_val, n_classes)
    n_classes = int(n_classes)
    k = Zt.shape[1]
    if isinstance(nec, bool) or not isinstance(nec, int | float | np.integer | np.floating):
        raise ValueError(f"nec must be a number, got {nec!r}")
    if not math.isfinite(nec) or nec <= 0:
        raise ValueError(f"nec must be a positive finite number, got {nec}")
    if not 0 < alpha <= 1:
        raise ValueError(f"alpha must be in (0, 1], got {alpha}")
    if not 0 < path_ratio < 1:
        raise ValueError(f"path_ratio must be in (0, 1), got {path_ratio}")
    if solver not in ("proximal", "saga"):
        raise ValueError(f"unknown solver {solver!r} (use 'proximal' or 'saga')")
    if nec >= k:
        head = _fit_dense(Zt, yt, Zv, yv, n_classes=n_classes, seed=seed,
                          weight_decays=weight_decays, max_epochs=refit_max_epochs,
                          device=device)
        head.info.update({"kind": "sparse", "requested_nec": float(nec), "dense": True,
                          "note": f"nec {nec} >= number of inputs {k}: dense head"})
        return head
    target = math.floor(nec * n_classes + 0.5)
    if target < 1:
        raise ValueError(f"nec={nec} with {n_classes} classes keeps no weight "
                         f"(round(nec * C) = 0)")
    mean, std = _standardization(Zt)
    allowed = Zt.std(axis=0, dtype=np.float64) >= _MIN_STD
    if target > int(allowed.sum()) * n_classes:
        raise ValueError(f"nec={nec} needs {target} non-zero weights but only "
                         f"{int(allowed.sum())} inputs vary (x {n_classes} classes)")

    dev = torch.device(device)
    Xt, Xv = _to_tensor(Zt, mean, std, dev), _to_tensor(Zv, mean, std, dev)
    tt, tv = torch.from_numpy(yt).to(dev), torch.from_numpy(yv).to(dev)

    # the path only chooses the support: a seeded subsample of rows is enough
    Xp, tp = Xt, tt
    if path_rows is not None and len(Xt) > path_rows:
        sub = np.sort(np.random.default_rng(seed).choice(len(Xt), path_rows, replace=False))
        sub_t = torch.from_numpy(sub).to(dev)
        Xp, tp = Xt[sub_t].contiguous(), tt[sub_t]

    # 1. lambda_max (glm-saga's maximum_reg, non-grouped)
    Y = F.one_hot(tp, n_classes).to(Xp.dtype)
    lam_max = float((Xp.T @ (Y - Y.mean(0))).abs().max()) / len(Xp) / max(alpha, 1e-3)
    W = torch.zeros(n_classes, k, device=dev)
    b = torch.from_numpy(_log_prior_bias(yt, n_classes)).to(dev)

    if solver == "proximal":
        path: _ProximalPath | _SagaPath = _ProximalPath(
            Xp, tp, n_classes, alpha, max_iter=max_iter_per_lambda, tol=tol,
            working_extra=2 * target)
    else:
        path = _SagaPath(Xp, tp, n_classes, alpha, max_iter=max_iter_per_lambda, tol=tol,
                         seed=seed)

    # 2. walk the path to the first point with >= target non-zeros, then bisect
    trace: list[dict[str, float]] = []
    g = path.gradient(W, b)
    hi = (lam_max, W, b, g)  # last point with too few non-zeros
    lo = None  # first point with enough non-zeros
    lam = lam_max
    lam_min = lam_max * min_lambda_ratio
    while lam > lam_min:
        lam_prev, W_prev, b_prev, g_prev = hi
        lam = max(_next_lambda(W_prev, g_prev, lam_prev, target, alpha, path_ratio), lam_min)
        W, b, g, n_iter = path.solve(W_prev, b_prev, lam, lam_prev, g_prev)
        nz = _nnz(W)
        trace.append({"lambda": lam, "nnz": nz, "iterations": n_iter})
        if nz >= target:
            lo = (lam, W, b, g)
            break
        hi = (lam, W, b, g)
    if lo is None:  # path ended before enough weights became non-zero: use its last point
        lo = hi
    else:
        for _ in range(refine_steps):
            if _nnz(lo[1]) == target:
                break
            lam_prev, W_prev, b_prev, g_prev = hi
            mid = math.sqrt(lam_prev * lo[0])
            W, b, g, n_iter = path.solve(W_prev, b_prev, mid, lam_prev, g_prev)
            nz = _nnz(W)
            trace.append({"lambda": mid, "nnz": nz, "iterations": n_iter})
            if nz >= target:
                lo = (mid, W, b, g)
            else:
                hi = (mid, W, b, g)
    lam_sel, W_path, b_path, _ = lo
    path_nnz = _nnz(W_path)
    path_val_loss, path_val_acc = _eval(Xv, tv, W_path, b_path)

    # 3. keep exactly `target` largest-magnitude weights
    mask_np = _top_mask(W_path.cpu().numpy(), target, allowed)
    mask = torch.from_numpy(mask_np.astype(np.float32)).to(dev)
    W_trunc = W_path * mask
    trunc_val_loss, trunc_val_acc = _eval(Xv, tv, W_trunc, b_path)

    # 4. masked refit of the kept weights and the bias (only the used inputs enter the passes)
    used = torch.from_numpy(np.flatnonzero(mask_np.any(axis=0))).to(dev)
    W_used, b_fit, refit_iter = _lbfgs(Xt[:, used].contiguous(), tt, W_trunc[:, used], b_path,
                                       weight_decay=refit_weight_decay,
                                       max_iter=refit_max_epochs, mask=mask[:, used])
    W_fit = torch.zeros_like(W_trunc)
    W_fit[:, used] = W_used
    W_np = W_fit.cpu().numpy()
    W_np[~mask_np] = 0.0
    # a kept weight that the refit sent to exactly zero would break the NEC: keep it tiny
    dead = mask_np & (W_np == 0.0)
    if dead.any():
        W_np[dead] = np.float32(np.finfo(np.float32).tiny)
    val_loss, val_acc = _eval(Xv, tv, torch.from_numpy(W_np).to(dev), b_fit)
    train_loss, train_acc = _eval(Xt, tt, torch.from_numpy(W_np).to(dev), b_fit)
    info = {
        "kind": "sparse", "solver": f"elastic-net path ({solver}) + masked lbfgs refit",
        "requested_nec": float(nec), "target_nnz": int(target), "nnz": int(mask_np.sum()),
        "nec": float(mask_np.sum() / n_classes), "dense": False,
        "alpha": alpha, "lambda": lam_sel, "lambda_max": lam_max,
        "lambda_ratio": lam_sel / lam_max if lam_max > 0 else 0.0,
        "path_nnz": path_nnz, "path_points": len(trace), "path": trace,
        "path_iterations": path.iterations,
        "path_val_accuracy": path_val_acc, "path_val_loss": path_val_loss,
        "truncated_val_accuracy": trunc_val_acc, "truncated_val_loss": trunc_val_loss,
        "val_accuracy": val_acc, "val_loss": val_loss,
        "train_accuracy": train_acc, "train_loss": train_loss,
        "refit_weight_decay": refit_weight_decay, "refit_iterations": refit_iter,
        "epochs": path.iterations + refit_iter,
        "concepts_used": int(mask_np.any(axis=0).sum()),
        "weights_per_class": [int(v) for v in mask_np.sum(axis=1)],
        "n_train": len(Zt), "path_rows": len(Xp), "n_val": len(Zv), "n_features": k,
        "n_classes": n_classes,
        "seed": seed, "device": str(dev), "seconds": time.perf_counter() - start,
    }
    return LinearHead(W_np, b_fit.cpu().numpy(), mean, std, info)
