"""DN-CBM (Rao et al., ECCV 2024, "Discover-then-Name: Task-Agnostic Concept Bottlenecks via
Automated Concept Discovery"): a sparse autoencoder on encoder embeddings discovers concepts,
each unit is named by the vocabulary entry whose text embedding is closest to its decoder
direction (section 3.2), and a sparse linear head on the unit activations classifies
(section 3.3).

Here the SAE is ``discover.sae`` (ReLU + l1 by default), the namer ``naming.name_by_text`` and
the head ``bottleneck.heads.fit_sparse_head`` at a chosen NEC (or ``fit_dense_head`` with
``nec=None``), all on the same embeddings as the other rows of a comparison. The paper trains
its SAE on CC3M embeddings (task-agnostic); offline we train it on the task's training
embeddings, which is recorded as ``sae_data = "train split"``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from conceptlab.bottleneck.heads import LinearHead, fit_dense_head, fit_sparse_head
from conceptlab.discover.base import Dictionary, build_dictionary
from conceptlab.discover.metrics import dictionary_report
from conceptlab.discover.naming import name_by_text


@dataclass
class DNCBM:
    """A fitted DN-CBM: SAE (``dictionary``), unit names with scores, and the head."""

    dictionary: Dictionary
    names: list[str]
    name_scores: np.ndarray
    head: LinearHead
    alive: np.ndarray  # units the head reads (those active on the training split)
    info: dict[str, Any] = field(default_factory=dict)

    def codes(self, Z: np.ndarray) -> np.ndarray:
        """Unit activations of embeddings ``Z`` (N x units read by the head)."""
        return self.dictionary.encode(Z)[:, self.alive]

    def logits(self, Z: np.ndarray) -> np.ndarray:
        return self.head.logits(self.codes(Z))

    def predict(self, Z: np.ndarray) -> np.ndarray:
        return self.head.predict(self.codes(Z))

    @property
    def concept_names(self) -> list[str]:
        """Names of the units the head reads, in its column order."""
        return [self.names[i] for i in self.alive]


def fit_dncbm(Z_train: np.ndarray, y_train: np.ndarray, Z_val: np.ndarray, y_val: np.ndarray,
              *, n_classes: int, vocab: list[str], vocab_embeddings: np.ndarray,
              n_concepts: int | None = None, nec: float | None = 5.0, seed: int = 0,
              method: str = "sae", sae_options: dict[str, Any] | None = None,
              head_options: dict[str, Any] | None = None) -> DNCBM:
    """Fit DN-CBM on embeddings (see the module docstring).

    ``n_concepts`` defaults to 4 x the embedding width (the paper's expansion factor is 8 on
    CLIP's 512/768-d). Units never active on the training split are dropped before the head.
    ``vocab_embeddings``: the vocabulary through the text side of the same joint space.
    """
    Z_train = np.asarray(Z_train, np.float32)
    k = int(n_concepts or 4 * Z_train.shape[1])
    sae = build_dictionary(method, k, seed=seed, **(sae_options or {})).fit(Z_train)
    U_train = sae.encode(Z_train)
    named = name_by_text(sae.dictionary, vocab_embeddings, vocab, top=3)
    alive = np.flatnonzero((U_train > 0).any(0))
    if len(alive) == 0:
        raise ValueError("DN-CBM: every SAE unit is dead on the training split; lower l1")
    U_val = sae.encode(np.asarray(Z_val, np.float32))
    opts = dict(head_options or {})
    if nec is None:
        head = fit_dense_head(U_train[:, alive], y_train, U_val[:, alive], y_val,
                              n_classes=n_classes, seed=seed, **opts)
    else:
        head = fit_sparse_head(U_train[:, alive], y_train, U_val[:, alive], y_val,
                               n_classes=n_classes, nec=nec, seed=seed, **opts)
    quality = dictionary_report(Z_train, U_train, sae.decode(U_train))
    info = {"method": "dn-cbm", "sae": {"method": method, **sae.params()}, "nec": nec,
            "units": k, "alive_units": len(alive), "sae_data": "train split",
            "sae_quality": quality, "seed": seed}
    return DNCBM(sae, [n["name"] for n in named], np.array([n["score"] for n in named]),
                 head, alive, info)
