"""Concept importance: Sobol total indices, gradient x input and occlusion, on the codes.

Each estimator takes a ``ConceptModel``, codes ``(N, P, K)`` and a target class per input, and
returns local importances ``(N, K)`` (one row per input); ``global_importance`` averages them
per class (CRAFT's class-level importance is the mean of per-image indices, Fel et al. 2023).

* ``sobol``: CRAFT's estimator (Fel et al., CVPR 2023, section 3.2, eq. 3-4): concept ``k`` is
  scaled by a mask ``m_k ∈ [0, 1]`` at every position, masks drawn as a scrambled Sobol
  quasi-Monte-Carlo design in Saltelli's layout (SALib), and the total index
  ``S_T,k = E[(f(A) - f(A_B^k))^2] / (2 Var f)`` (Jansen's estimator, SALib's ``analyze``)
  says how much of the output's variance involves concept ``k``, interactions included.
* ``gradient_input``: ``sum_p u_pk * d f_c / d u_pk`` (holistic framework, section 4: "gradient
  x input" on concepts; exact contributions for a linear head).
* ``occlusion``: ``f_c(u) - f_c(u with concept k set to 0)`` (Zeiler & Fergus 2014, on concepts).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from conceptlab.errors import DependencyError
from conceptlab.importance.concept_model import ConceptModel, ImportanceError, as_codes
from conceptlab.utils.progress import progress

Estimator = Callable[..., np.ndarray]


def _salib() -> Any:
    try:
        import SALib.analyze.sobol as analyze
        import SALib.sample.sobol as sample
    except ImportError as err:  # pragma: no cover - an extra
        raise DependencyError("Sobol importance needs SALib: pip install 'conceptlab[discover]'"
                          ) from err
    return sample, analyze


def sobol_masks(n_concepts: int, n_design: int = 32, seed: int = 0) -> np.ndarray:
    """Saltelli's layout of a scrambled Sobol design in [0, 1]^K: ``n_design * (K + 2)`` rows."""
    sobol_sample, _ = _salib()

    problem = _problem(n_concepts)
    return sobol_sample.sample(problem, n_design, calc_second_order=False, scramble=True,
                               seed=seed).astype(np.float32)


def _problem(k: int) -> dict[str, Any]:
    return {"num_vars": k, "names": [f"c{i}" for i in range(k)], "bounds": [[0.0, 1.0]] * k}


def sobol_total_from_outputs(Y: np.ndarray, n_concepts: int, seed: int = 0) -> np.ndarray:
    """Total indices from outputs on ``sobol_masks`` (SALib's Jansen estimator); a constant
    output explains nothing and gives zeros."""
    _, sobol_analyze = _salib()
    Y = np.asarray(Y, np.float64)
    if np.ptp(Y) < 1e-12:
        return np.zeros(n_concepts)
    si = sobol_analyze.analyze(_problem(n_concepts), Y, calc_second_order=False,
                               num_resamples=2, seed=seed)
    return np.nan_to_num(np.asarray(si["ST"], np.float64))


def sobol_total_indices(f: Callable[[np.ndarray], np.ndarray], n_concepts: int,
                        n_design: int = 32, seed: int = 0) -> np.ndarray:
    """Total Sobol indices of a function of ``K`` masks in [0, 1] (``f``: (M, K) -> (M,))."""
    masks = sobol_masks(n_concepts, n_design, seed)
    return sobol_total_from_outputs(f(masks), n_concepts, seed)


def _check(model: ConceptModel, U: Any, target: Any) -> tuple[torch.Tensor, torch.Tensor]:
    codes = model.check(as_codes(U))
    t = torch.as_tensor(np.asarray(target)).long().view(-1)
    if len(t) != len(codes):
        raise ImportanceError(f"{len(t)} targets for {len(codes)} inputs")
    return codes, t


def sobol_importance(model: ConceptModel, U: Any, target: Any, *, n_design: int = 32,
                     seed: int = 0, residual: torch.Tensor | None = None) -> np.ndarray:
    """Per input, total Sobol indices of its target logit w.r.t. concept masks."""
    codes, t = _check(model, U, target)
    masks = torch.from_numpy(sobol_masks(model.n_concepts, n_design, seed))
    out = np.zeros((len(codes), model.n_concepts))
    with torch.no_grad():
        for i in progress(range(len(codes)), total=len(codes), desc="sobol"):
            perturbed = codes[i][None] * masks[:, None, :]
            res = None if residual is None else residual[i][None].expand(len(masks), -1, -1)
            y = model.target_logit(perturbed, t[i].repeat(len(masks)), res).numpy()
            out[i] = sobol_total_from_outputs(y, model.n_concepts, seed)
    return out


def gradient_input_importance(model: ConceptModel, U: Any, target: Any, *,
                              residual: torch.Tensor | None = None, **_: Any) -> np.ndarray:
    """Per input, ``sum over positions of u * d logit_target / d u``."""
    codes, t = _check(model, U, target)
    codes = codes.clone().requires_grad_(True)
    model.target_logit(codes, t, residual).sum().backward()
    assert codes.grad is not None
    return (codes.grad * codes).sum(1).detach().numpy().astype(np.float64)


def occlusion_importance(model: ConceptModel, U: Any, target: Any, *,
                         residual: torch.Tensor | None = None, **_: Any) -> np.ndarray:
    """Per input, the drop of the target logit when one concept is set to 0 everywhere."""
    codes, t = _check(model, U, target)
    out = np.zeros((len(codes), model.n_concepts))
    with torch.no_grad():
        base = model.target_logit(codes, t, residual)
        for k in range(model.n_concepts):
            off = codes.clone()
            off[..., k] = 0
            out[:, k] = (base - model.target_logit(off, t, residual)).numpy()
    return out


IMPORTANCE: dict[str, Estimator] = {"sobol": sobol_importance,
                                    "gradient_input": gradient_input_importance,
                                    "occlusion": occlusion_importance}


def local_importance(method: str, model: ConceptModel, U: Any, target: Any, **options: Any
                     ) -> np.ndarray:
    """``IMPORTANCE[method]`` by name (clear error for unknown names)."""
    if method not in IMPORTANCE:
        raise ImportanceError(f"unknown importance method {method!r}; choose from "
                              f"{', '.join(IMPORTANCE)}")
    return IMPORTANCE[method](model, U, target, **options)


def global_importance(local: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Per class, the mean local importance over its inputs ``(C, K)`` (NaN for absent ones)."""
    local, labels = np.asarray(local), np.asarray(labels)
    if len(local) != len(labels):
        raise ImportanceError(f"{len(local)} rows of importances for {len(labels)} labels")
    out = np.full((n_classes, local.shape[1]), np.nan)
    for c in range(n_classes):
        if (labels == c).any():
            out[c] = local[labels == c].mean(0)
    return out
