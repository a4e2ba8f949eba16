"""How a head is fitted: one dataclass instead of a long parameter list."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from conceptlab.errors import ConceptlabValueError
from conceptlab.utils.configs import replace_fields

#: default L2 strengths (on the mean cross-entropy) swept by the dense fit, strongest first
DEFAULT_WEIGHT_DECAYS: tuple[float, ...] = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5)


class HeadConfigError(ConceptlabValueError):
    """An unknown or out-of-range head setting."""


@dataclass(frozen=True)
class HeadConfig:
    """Settings of the final layer's fit.

    ``nec``: ``None`` for a dense head; a number for exactly ``round(nec * C)`` non-zero weights
    (VLG-CBM's number of effective concepts). Dense fit: ``weight_decays`` swept on validation,
    ``max_iter`` L-BFGS iterations per strength, ``early_stop``. Sparse fit: the elastic-net
    path (``alpha``, ``solver`` from ``solvers.SOLVERS``, ``path_ratio``, ``refine_steps``,
    ``min_lambda_ratio``, ``max_iter_per_lambda``, ``tol``, ``path_rows``: a seeded row
    subsample for the path), then truncation, then a masked refit (``refit``,
    ``refit_weight_decay``, ``refit_max_iter``). ``refit=False`` stops after truncation, as
    VLG-CBM's protocol does. ``num_threads``: ``None`` follows ``utils.threads.threads_for``.
    """

    nec: float | None = None
    weight_decays: tuple[float, ...] = DEFAULT_WEIGHT_DECAYS
    max_iter: int = 100
    early_stop: bool = True
    alpha: float = 0.99
    solver: str = "proximal"
    path_ratio: float = 0.8
    refine_steps: int = 6
    min_lambda_ratio: float = 1e-4
    max_iter_per_lambda: int = 300
    tol: float = 1e-4
    path_rows: int | None = 16384
    refit: bool = True
    refit_weight_decay: float = 1e-4
    refit_max_iter: int = 100
    device: str = "auto"
    num_threads: int | None = None

    def __post_init__(self) -> None:
        nec = self.nec
        if nec is not None and (isinstance(nec, bool) or not isinstance(nec, int | float)
                                or not math.isfinite(nec) or nec <= 0):
            raise HeadConfigError(f"nec must be None (dense head) or a positive number, got "
                                  f"{nec!r}")
        wds = tuple(float(w) for w in self.weight_decays)
        if not wds:
            raise HeadConfigError("weight_decays is empty")
        if any((not math.isfinite(w)) or w < 0 for w in wds):
            raise HeadConfigError(f"weight decays must be finite and >= 0, got {wds}")
        object.__setattr__(self, "weight_decays", wds)
        if nec is not None:
            object.__setattr__(self, "nec", float(nec))
        for name in ("max_iter", "refit_max_iter", "max_iter_per_lambda"):
            if getattr(self, name) < 1:
                raise HeadConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 < self.alpha <= 1:
            raise HeadConfigError(f"alpha must be in (0, 1], got {self.alpha}")
        if not 0 < self.path_ratio < 1:
            raise HeadConfigError(f"path_ratio must be in (0, 1), got {self.path_ratio}")
        if self.path_rows is not None and self.path_rows < 2:
            raise HeadConfigError(f"path_rows must be None or >= 2, got {self.path_rows}")
        if self.num_threads is not None and (isinstance(self.num_threads, bool)
                                             or self.num_threads < 1):
            raise HeadConfigError(f"num_threads must be None or >= 1, got {self.num_threads}")
        from conceptlab.bottleneck.heads.solvers import SOLVERS

        if self.solver not in SOLVERS:
            raise HeadConfigError(f"unknown solver {self.solver!r} (use one of "
                                  f"{sorted(SOLVERS)})")

    def params(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["weight_decays"] = list(self.weight_decays)
        return out


def head_config(config: HeadConfig | None = None, **overrides: Any) -> HeadConfig:
    """``config`` (default ``HeadConfig()``) with ``overrides``; unknown names are refused."""
    return replace_fields(config or HeadConfig(), overrides, HeadConfigError, "head")
