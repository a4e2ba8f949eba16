"""Final linear layers of a concept bottleneck (and of a linear probe), fitted on cached arrays.

Two ways to fit a multinomial logistic-regression head ``logits = W . standardize(z) + b``:

* ``fit_dense_head`` (``dense.py``): every weight free, an L2 penalty chosen on a validation
  split (the CLIP linear-probe protocol, Radford et al. 2021, App. A.3).
* ``fit_sparse_head`` (``sparse.py``): exactly ``round(nec * C)`` non-zero weights, VLG-CBM's
  "number of effective concepts" protocol (Srivastava et al. 2024): the elastic-net
  regularisation path of Wong et al. 2021 (glm-saga's objective; the solvers in ``solvers.py``),
  truncated to the largest weights, then (optionally) refitted.

``LinearHead`` (``linear.py``) is the fitted head; ``HeadConfig`` (``config.py``) how to fit one.
Inputs are standardised with the *training* statistics, stored in the head. Everything here
works on arrays and never calls an encoder.
"""

import numpy as np

from conceptlab.bottleneck.heads.config import (
    DEFAULT_WEIGHT_DECAYS,
    HeadConfig,
    HeadConfigError,
    head_config,
)
from conceptlab.bottleneck.heads.dense import fit_dense_head
from conceptlab.bottleneck.heads.linear import LinearHead
from conceptlab.bottleneck.heads.solvers import SOLVERS, ProximalPath, SagaPath
from conceptlab.bottleneck.heads.sparse import fit_sparse_head

__all__ = [
    "DEFAULT_WEIGHT_DECAYS",
    "SOLVERS",
    "HeadConfig",
    "HeadConfigError",
    "LinearHead",
    "ProximalPath",
    "SagaPath",
    "fit_dense_head",
    "fit_head",
    "fit_sparse_head",
    "head_config",
]


def fit_head(Z_train: np.ndarray, y_train: np.ndarray, Z_val: np.ndarray, y_val: np.ndarray,
             *, n_classes: int, seed: int = 0, config: HeadConfig | None = None) -> LinearHead:
    """Dense when ``config.nec`` is None, else sparse at that NEC."""
    cfg = config or HeadConfig()
    fit = fit_dense_head if cfg.nec is None else fit_sparse_head
    return fit(Z_train, y_train, Z_val, y_val, n_classes=n_classes, seed=seed, config=cfg)
