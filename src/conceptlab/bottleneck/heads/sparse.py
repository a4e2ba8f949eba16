"""The sparse head at an exact number of effective concepts (VLG-CBM's NEC protocol)."""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from conceptlab.bottleneck.heads.common import eval_head, lbfgs, log_prior_bias, run_fit, to_tensor
from conceptlab.bottleneck.heads.config import HeadConfig, head_config
from conceptlab.bottleneck.heads.dense import dense_fit
from conceptlab.bottleneck.heads.linear import LinearHead
from conceptlab.bottleneck.heads.solvers import SOLVERS, PathSolver
from conceptlab.device import resolve_device
from conceptlab.errors import ConceptlabValueError
from conceptlab.utils.arrays import MIN_STD, standardization

#: a weight counts as non-zero above this magnitude on the elastic-net path (glm-saga's 1e-5)
PATH_ZERO_TOL = 1e-5
#: the elastic-net path never shrinks the penalty by more than this factor in one step
MAX_PATH_JUMP = 0.1


def _nnz(W: torch.Tensor) -> int:
    return int((W.abs() > PATH_ZERO_TOL).sum())


def _next_lambda(W: torch.Tensor, gW: torch.Tensor, lam: float, target: int, alpha: float,
                 path_ratio: float) -> float:
    """Next penalty on the path: predicted to bring the non-zeros up to ``target``.

    A zero weight stays zero while its cross-entropy gradient satisfies ``|g| <= lam * alpha``
    (the elastic-net optimality condition), so with the current gradient the ``m``-th largest
    ``|g| / alpha`` among zero weights, ``m = target - nnz``, predicts where ``m`` more weights
    enter (the sequential strong rule of Tibshirani et al. 2012, "Strong rules for discarding
    predictors in lasso-type problems"). The prediction is clipped to
    ``[lam * MAX_PATH_JUMP, lam * path_ratio]``: at least a ``path_ratio`` step, at most one
    decade, so warm starts stay close; overshooting is repaired by the bisection that follows.
    """
    zero = W.abs() <= PATH_ZERO_TOL
    need = target - int((~zero).sum())
    g = gW.abs()[zero]
    if need <= 0 or g.numel() == 0:
        return lam * path_ratio
    m = min(need, g.numel())
    predicted = float(torch.topk(g, m).values[-1]) / alpha * 0.999
    return min(lam * path_ratio, max(predicted, lam * MAX_PATH_JUMP))


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
                    y_val: np.ndarray, *, n_classes: int, nec: float | None = None,
                    seed: int = 0, config: HeadConfig | None = None,
                    **overrides: Any) -> LinearHead:
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

    ``solver`` names a path solver in ``solvers.SOLVERS``: ``"proximal"`` (default) solves each
    path point with full-batch accelerated proximal gradient in torch; ``"saga"`` uses
    glm-saga's minibatch SAGA (the reference implementation, kept for comparison; much slower
    on CPU, see ``benchmarks/bench_heads.py``). ``path_rows``: the path (steps 1-2), which only
    has to choose which weights to keep, runs on a seeded random subsample of at most this many
    training rows; the refit (step 4) uses every row (``None``: all rows on the path).
    ``refit=False`` skips step 4: VLG-CBM's protocol exactly (path, truncation, nothing else).
    Settings come from ``config`` (a ``HeadConfig``) and ``overrides`` (its field names).
    """
    cfg = head_config(config, **overrides)
    if nec is not None:
        cfg = head_config(cfg, nec=nec)
    if cfg.nec is None:
        raise ConceptlabValueError("a sparse head needs nec (a positive number)")
    return run_fit(sparse_fit, Z_train, y_train, Z_val, y_val, n_classes=n_classes, seed=seed,
                   cfg=cfg)


def sparse_fit(Zt: np.ndarray, yt: np.ndarray, Zv: np.ndarray, yv: np.ndarray, *,
               n_classes: int, seed: int, cfg: HeadConfig) -> LinearHead:
    """The sparse fit on checked arrays, in the current thread setting."""
    start = time.perf_counter()
    nec = float(cfg.nec)  # type: ignore[arg-type]
    alpha, solver, path_ratio = cfg.alpha, cfg.solver, cfg.path_ratio
    k = Zt.shape[1]
    if nec >= k:
        head = dense_fit(Zt, yt, Zv, yv, n_classes=n_classes, seed=seed,
                         cfg=head_config(cfg, max_iter=cfg.refit_max_iter))
        head.info.update({"kind": "sparse", "requested_nec": nec, "dense": True,
                          "note": f"nec {nec} >= number of inputs {k}: dense head"})
        return head
    target = math.floor(nec * n_classes + 0.5)
    if target < 1:
        raise ConceptlabValueError(f"nec={nec} with {n_classes} classes keeps no weight "
                                   f"(round(nec * C) = 0)")
    mean, std = standardization(Zt)
    allowed = Zt.std(axis=0, dtype=np.float64) >= MIN_STD
    if target > int(allowed.sum()) * n_classes:
        raise ConceptlabValueError(f"nec={nec} needs {target} non-zero weights but only "
                                   f"{int(allowed.sum())} inputs vary (x {n_classes} classes)")
    dev = resolve_device(cfg.device)
    Xt, Xv = to_tensor(Zt, mean, std, dev), to_tensor(Zv, mean, std, dev)
    tt, tv = torch.from_numpy(yt).to(dev), torch.from_numpy(yv).to(dev)

    # the path only chooses the support: a seeded subsample of rows is enough
    Xp, tp = Xt, tt
    path_rows = cfg.path_rows
    if path_rows is not None and len(Xt) > path_rows:
        sub = np.sort(np.random.default_rng(seed).choice(len(Xt), path_rows, replace=False))
        sub_t = torch.from_numpy(sub).to(dev)
        Xp, tp = Xt[sub_t].contiguous(), tt[sub_t]

    # 1. lambda_max (glm-saga's maximum_reg, non-grouped)
    Y = F.one_hot(tp, n_classes).to(Xp.dtype)
    lam_max = float((Xp.T @ (Y - Y.mean(0))).abs().max()) / len(Xp) / max(alpha, 1e-3)
    W = torch.zeros(n_classes, k, device=dev)
    b = torch.from_numpy(log_prior_bias(yt, n_classes)).to(dev)

    path: PathSolver = SOLVERS[solver](Xp, tp, n_classes, alpha,
                                       max_iter=cfg.max_iter_per_lambda, tol=cfg.tol,
                                       target=target, seed=seed)

    # 2. walk the path to the first point with >= target non-zeros, then bisect
    trace: list[dict[str, float]] = []
    g = path.gradient(W, b)
    hi = (lam_max, W, b, g)  # last point with too few non-zeros
    lo = None  # first point with enough non-zeros
    lam = lam_max
    lam_min = lam_max * cfg.min_lambda_ratio
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
        for _ in range(cfg.refine_steps):
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
    path_val_loss, path_val_acc = eval_head(Xv, tv, W_path, b_path)

    # 3. keep exactly `target` largest-magnitude weights
    mask_np = _top_mask(W_path.cpu().numpy(), target, allowed)
    mask = torch.from_numpy(mask_np.astype(np.float32)).to(dev)
    W_trunc = W_path * mask
    trunc_val_loss, trunc_val_acc = eval_head(Xv, tv, W_trunc, b_path)

    # 4. masked refit of the kept weights and the bias (only the used inputs enter the passes)
    refit_iter = 0
    if cfg.refit:
        used = torch.from_numpy(np.flatnonzero(mask_np.any(axis=0))).to(dev)
        W_used, b_fit, refit_iter = lbfgs(Xt[:, used].contiguous(), tt, W_trunc[:, used],
                                          b_path, weight_decay=cfg.refit_weight_decay,
                                          max_iter=cfg.refit_max_iter, mask=mask[:, used])
        W_fit = torch.zeros_like(W_trunc)
        W_fit[:, used] = W_used
    else:  # VLG-CBM's protocol: the truncated path point as it is
        W_fit, b_fit = W_trunc, b_path
    W_np = W_fit.cpu().numpy()
    W_np[~mask_np] = 0.0
    # a kept weight that the refit sent to exactly zero would break the NEC: keep it tiny
    dead = mask_np & (W_np == 0.0)
    if dead.any():
        W_np[dead] = np.float32(np.finfo(np.float32).tiny)
    val_loss, val_acc = eval_head(Xv, tv, torch.from_numpy(W_np).to(dev), b_fit)
    train_loss, train_acc = eval_head(Xt, tt, torch.from_numpy(W_np).to(dev), b_fit)
    info = {
        "kind": "sparse", "solver": f"elastic-net path ({solver})"
                                    + (" + masked lbfgs refit" if cfg.refit else ", no refit"),
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
        "refit": cfg.refit, "refit_weight_decay": cfg.refit_weight_decay,
        "refit_iterations": refit_iter,
        "epochs": path.iterations + refit_iter,
        "concepts_used": int(mask_np.any(axis=0).sum()),
        "weights_per_class": [int(v) for v in mask_np.sum(axis=1)],
        "n_train": len(Zt), "path_rows": len(Xp), "n_val": len(Zv), "n_features": k,
        "n_classes": n_classes,
        "seed": seed, "device": str(dev), "seconds": time.perf_counter() - start,
    }
    return LinearHead(W_np, b_fit.cpu().numpy(), mean, std, info)
