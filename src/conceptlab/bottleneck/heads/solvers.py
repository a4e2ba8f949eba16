"""Solvers of one elastic-net path point, in a table: a new solver is one class and one entry.

Each solver minimises Wong et al. 2021's objective at a penalty ``lam``, warm-started from the
previous path point, behind one protocol (``PathSolver``): ``gradient(W, b)`` and
``solve(W, b, lam, lam_prev, g_prev) -> (W, b, full gradient, iterations)``.
"""

from __future__ import annotations

import math
import warnings
from typing import Protocol

import torch

from conceptlab.bottleneck.heads.common import ce_grad
from conceptlab.utils.registry import Registry


class PathSolver(Protocol):
    iterations: int

    def gradient(self, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor: ...

    def solve(self, W: torch.Tensor, b: torch.Tensor, lam: float, lam_prev: float,
              g_prev: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]: ...


def _soft_threshold_shrink(v: torch.Tensor, l1: float, l2: float) -> torch.Tensor:
    """Proximal map of ``l1 * |w| + (l2 / 2) * w^2`` (elastic net), as in glm-saga."""
    return torch.sign(v) * torch.clamp(v.abs() - l1, min=0.0) / (1.0 + l2)


class ProximalPath:
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
    ``2 * target`` (the highest ``max_c |g_prev|``) join the inputs already in use (a working
    set, as in active-set lasso solvers); the optimality check makes this safe too. The answer is
    the unscreened one; the cost per step drops from N x K x C to N x |S| x C, and on the sparse
    end of the path, where this head stops, |S| << K.

    Why not glm-saga itself: its SAGA loop runs ~N / 256 small Python-level steps per epoch and
    needs many epochs per ``lam``, while one step here is two matmuls (timings:
    ``benchmarks/bench_heads.py``, docs/benchmarks.md). Both reach the same support on the
    problems compared in the tests.
    """

    def __init__(self, X: torch.Tensor, y: torch.Tensor, n_classes: int, alpha: float, *,
                 max_iter: int, tol: float, target: int, seed: int = 0) -> None:
        del n_classes, seed  # deterministic full-batch steps
        self.X, self.y, self.alpha = X, y, alpha
        self.max_iter, self.tol = max_iter, tol
        self.working_extra = max(2 * int(target), 1)
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
        return ce_grad(self.X, self.y, W, b, self.rows)[1]

    def _fista(self, X: torch.Tensor, W: torch.Tensor, b: torch.Tensor, lam: float,
               step: float) -> tuple[torch.Tensor, torch.Tensor, int]:
        l1, l2 = step * lam * self.alpha, step * lam * (1.0 - self.alpha)
        Wy, by, theta = W.clone(), b.clone(), 1.0
        n_iter = 0
        for n_iter in range(1, self.max_iter + 1):  # noqa: B007 (n_iter is returned)
            _, gW, gb = ce_grad(X, self.y, Wy, by, self.rows)
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


class SagaPath:
    """The same path solved with glm-saga's minibatch proximal SAGA (``train_saga``), as used by
    Label-free CBM and VLG-CBM (step 0.1, batch 256); kept for comparison and fidelity. Its
    loader yields ``(X, y, idx)`` as glm-saga requires."""

    def __init__(self, X: torch.Tensor, y: torch.Tensor, n_classes: int, alpha: float, *,
                 max_iter: int, tol: float, target: int = 0, seed: int = 0,
                 batch_size: int = 256, lr: float = 0.1) -> None:
        del target
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
        return ce_grad(self.X, self.y, W, b, self.rows)[1]

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



#: path solvers by name (``HeadConfig.solver``)
SOLVERS: Registry[type] = Registry.of("path solver", {"proximal": ProximalPath,
                                                     "saga": SagaPath})
