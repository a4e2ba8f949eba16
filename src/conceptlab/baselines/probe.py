"""Linear probe: a dense multinomial logistic regression on frozen embeddings.

The reference point for every concept bottleneck built on the same embeddings (Radford et al.
2021, App. A.3: L-BFGS logistic regression, L2 strength swept on a validation split). It is
``fit_dense_head`` applied to the embeddings instead of concept activations, so a probe and a
bottleneck's final layer are fitted, standardised and saved the same way.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from conceptlab.bottleneck.heads import LinearHead, fit_dense_head


def fit_linear_probe(X_train: np.ndarray, y_train: np.ndarray, X_val: np.ndarray,
                     y_val: np.ndarray, *, n_classes: int, seed: int = 0,
                     **kwargs: Any) -> LinearHead:
    """Fit a dense linear probe on embeddings; ``kwargs`` go to ``fit_dense_head``
    (``weight_decays``, ``max_iter``, ``device``). The validation split must be carved from
    the training split by the caller."""
    head = fit_dense_head(X_train, y_train, X_val, y_val, n_classes=n_classes, seed=seed,
                          **kwargs)
    head.info["kind"] = "linear_probe"
    return head
