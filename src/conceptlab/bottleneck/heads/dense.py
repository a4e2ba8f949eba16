"""The dense head: multinomial logistic regression, L2 strength chosen on validation."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from conceptlab.bottleneck.heads.common import eval_head, lbfgs, log_prior_bias, run_fit, to_tensor
from conceptlab.bottleneck.heads.config import HeadConfig, head_config
from conceptlab.bottleneck.heads.linear import LinearHead
from conceptlab.device import resolve_device
from conceptlab.utils.arrays import standardization


def fit_dense_head(Z_train: np.ndarray, y_train: np.ndarray, Z_val: np.ndarray,
                   y_val: np.ndarray, *, n_classes: int, seed: int = 0,
                   config: HeadConfig | None = None, **overrides: Any) -> LinearHead:
    """Multinomial logistic regression on standardised inputs, L2 strength chosen on validation.

    Minimises ``mean_i CE(W z_i + b, y_i) + (lambda / 2) ||W||_F^2`` (bias unpenalised) by
    full-batch L-BFGS (the CLIP linear-probe protocol, Radford et al. 2021, App. A.3)
    for each ``lambda`` in ``config.weight_decays``, strongest first, each solve warm-started
    from the previous one. The head with the best validation accuracy is kept (ties: lower
    validation cross-entropy, then the stronger penalty). ``Z_val``/``y_val`` must be carved
    from the training split by the caller; the standardisation uses training statistics only,
    and the kept head is the one fitted on ``Z_train`` (no refit on train + val).

    With ``early_stop`` the sweep ends at the first ``lambda`` that is worse than the best so far
    in both validation accuracy and validation cross-entropy (validation error is unimodal in
    ``lambda`` in practice, and the weak penalties are the slowest to fit).
    ``max_iter`` caps the L-BFGS iterations per ``lambda``. ``seed`` is recorded; the fit
    itself is deterministic (zero initialisation). ``overrides`` are ``HeadConfig`` fields.
    """
    return run_fit(dense_fit, Z_train, y_train, Z_val, y_val, n_classes=n_classes, seed=seed,
                   cfg=head_config(config, **overrides))


def dense_fit(Zt: np.ndarray, yt: np.ndarray, Zv: np.ndarray, yv: np.ndarray, *,
              n_classes: int, seed: int, cfg: HeadConfig) -> LinearHead:
    """The dense fit on checked arrays, in the current thread setting."""
    start = time.perf_counter()
    weight_decays, max_iter, early_stop = cfg.weight_decays, cfg.max_iter, cfg.early_stop
    dev = resolve_device(cfg.device)
    mean, std = standardization(Zt)
    Xt, Xv = to_tensor(Zt, mean, std, dev), to_tensor(Zv, mean, std, dev)
    tt, tv = torch.from_numpy(yt).to(dev), torch.from_numpy(yv).to(dev)

    W = torch.zeros(n_classes, Zt.shape[1], device=dev)
    b = torch.from_numpy(log_prior_bias(yt, n_classes)).to(dev)
    grid: list[dict[str, float]] = []
    best: tuple[tuple[float, float, float], torch.Tensor, torch.Tensor, dict[str, float]] | None
    best = None
    total_iter = 0
    for wd in sorted((float(w) for w in weight_decays), reverse=True):
        W, b, n_iter = lbfgs(Xt, tt, W, b, weight_decay=wd, max_iter=max_iter)
        total_iter += n_iter
        val_loss, val_acc = eval_head(Xv, tv, W, b)
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
    train_loss, train_acc = eval_head(Xt, tt, W, b)
    info = {
        "kind": "dense", "solver": "lbfgs", "weight_decay": row["weight_decay"],
        "val_accuracy": row["val_accuracy"], "val_loss": row["val_loss"],
        "train_accuracy": train_acc, "train_loss": train_loss,
        "grid": grid, "early_stop": early_stop, "epochs": total_iter, "max_iter": max_iter,
        "n_train": len(Zt), "n_val": len(Zv), "n_features": int(Zt.shape[1]),
        "n_classes": n_classes, "seed": seed, "device": str(dev),
        "seconds": time.perf_counter() - start,
    }
    return LinearHead(W.cpu().numpy(), b.cpu().numpy(), mean, std, info)

