"""Numerical pieces every head fit shares: tensors, exact cross-entropy gradients, L-BFGS."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from conceptlab.device import resolve_device
from conceptlab.utils.arrays import check_problem
from conceptlab.utils.threads import threads_for, torch_threads

if TYPE_CHECKING:
    from conceptlab.bottleneck.heads.config import HeadConfig
    from conceptlab.bottleneck.heads.linear import LinearHead


def to_tensor(Z: np.ndarray, mean: np.ndarray, std: np.ndarray,
               device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray((Z - mean) / std, dtype=np.float32)).to(device)


def eval_head(X: torch.Tensor, y: torch.Tensor, W: torch.Tensor,
          b: torch.Tensor) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of a head on standardised tensors."""
    with torch.no_grad():
        logits = torch.addmm(b, X, W.T)
        return (float(F.cross_entropy(logits, y)),
                float((logits.argmax(1) == y).double().mean()))


def ce_grad(X: torch.Tensor, y: torch.Tensor, W: torch.Tensor, b: torch.Tensor,
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


def lbfgs(X: torch.Tensor, y: torch.Tensor, W0: torch.Tensor, b0: torch.Tensor, *,
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
            loss, gW, gb = ce_grad(X, y, W, b, rows)
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



def log_prior_bias(y: np.ndarray, n_classes: int) -> np.ndarray:
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    return np.log(np.maximum(counts, 0.5) / counts.sum()).astype(np.float32)



def run_fit(fit: Callable[..., LinearHead], Z_train: Any, y_train: Any, Z_val: Any, y_val: Any,
            *, n_classes: Any, seed: int, cfg: HeadConfig) -> LinearHead:
    """Check the problem, apply the thread rule, run ``fit`` on the checked arrays and record
    the threads it used: the one entry every head fit goes through."""
    Zt, yt, Zv, yv = check_problem(Z_train, y_train, Z_val, y_val, n_classes)
    threads = cfg.num_threads or threads_for(Zt.shape[0] * Zt.shape[1] * int(n_classes),
                                             str(resolve_device(cfg.device)))
    with torch_threads(threads):
        head = fit(Zt, yt, Zv, yv, n_classes=int(n_classes), seed=seed, cfg=cfg)
    head.info["threads"] = threads
    return head
