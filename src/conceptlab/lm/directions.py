"""Concept directions from labelled activations, saved as ConceptBanks with provenance.

Three estimators, each a plain function ``(X, y, prompts) -> unit vector`` (in the style of
steering-vectors' aggregators):

* ``mean_diff``: the difference of class means, mu_+ - mu_- (Marks & Tegmark, 2023, "The
  geometry of truth", mass-mean probe, eq. 1; Turner et al., 2023, ActAdd).
* ``pca_diff``: the first principal component of the paired differences x_+ - x_- of
  contrast pairs, signed to agree with the mean difference (Zou et al., 2023, "Representation
  engineering", LAT with PCA, section 3.1).
* ``probe``: the weight of a logistic-regression probe, mapped to the raw space
  (see ``probing.fit_probe``; Alain & Bengio, 2016, linear classifier probes).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from conceptlab.concepts.bank import ConceptBank
from conceptlab.lm.datasets import PromptSet
from conceptlab.lm.model import CausalLM, LMError
from conceptlab.lm.probing import fit_probe
from conceptlab.utils.registry import Registry

Estimator = Callable[[np.ndarray, np.ndarray, PromptSet], np.ndarray]


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    if not np.isfinite(n) or n == 0:
        raise LMError("the concept direction is zero (are both classes the same?)")
    return (v / n).astype(np.float32)


def mean_diff(X: np.ndarray, y: np.ndarray, prompts: PromptSet | None = None) -> np.ndarray:
    """Unit difference of the class means."""
    X = np.asarray(X, dtype=np.float64)
    return _unit(X[y == 1].mean(0) - X[y == 0].mean(0))


def pca_diff(X: np.ndarray, y: np.ndarray, prompts: PromptSet) -> np.ndarray:
    """First principal direction of the contrast pairs' differences, signed by the mean diff."""
    X = np.asarray(X, dtype=np.float64)
    pairs = prompts.pairs()
    if len(pairs) < 2:
        raise LMError("pca_diff needs at least two contrast pairs")
    D = X[pairs[:, 0]] - X[pairs[:, 1]]
    # uncentred: the direction that best explains the differences themselves (RepE's choice
    # for paired data keeps the mean; centring would drop the shared shift we want)
    _, _, vt = np.linalg.svd(D, full_matrices=False)
    v = vt[0]
    if float(v @ D.mean(0)) < 0:
        v = -v
    return _unit(v)


def probe_direction(X: np.ndarray, y: np.ndarray, prompts: PromptSet) -> np.ndarray:
    """The full-data logistic probe's weight in the raw space (unit)."""
    return fit_probe(X, y, prompts.groups).direction


ESTIMATORS: Registry[Estimator] = Registry.of(
    "direction estimator", {"mean_diff": mean_diff, "pca_diff": pca_diff,
                            "probe": probe_direction}, LMError)


def estimate(method: str, X: np.ndarray, prompts: PromptSet) -> np.ndarray:
    if method not in ESTIMATORS:
        raise LMError(f"unknown direction method {method!r}; choose from "
                      f"{', '.join(ESTIMATORS)}")
    prompts.require_binary("a concept direction")
    return ESTIMATORS[method](np.asarray(X), prompts.labels, prompts)


def directions_bank(lm: CausalLM, acts: Mapping[str, np.ndarray], prompts: PromptSet,
                    methods: tuple[str, ...] = ("mean_diff", "pca_diff", "probe"),
                    ) -> ConceptBank:
    """A bank holding each method's direction at each hook point (names ``METHOD@POINT``).

    Per-concept metadata: ``point``, ``method``, ``concept`` (the positive class),
    ``class_gap`` (mean projection of positives minus negatives, in activation units, the
    natural unit for steering coefficients) and ``resid_norm`` (mean activation norm there).
    """
    prompts.require_binary("a bank of concept directions")
    vecs, names = [], []
    meta: dict[str, list[Any]] = {"point": [], "method": [], "concept": [], "class_gap": [],
                                  "resid_norm": []}
    dims = {X.shape[1] for X in acts.values()}
    if len(dims) != 1:
        raise LMError(f"a bank holds one space; points of different widths {sorted(dims)}")
    for point, X in acts.items():
        X = np.asarray(X)
        for m in methods:
            v = estimate(m, X, prompts)
            proj = X @ v
            vecs.append(v)
            names.append(f"{m}@{point}")
            meta["point"].append(point)
            meta["method"].append(m)
            meta["concept"].append(prompts.classes[1])
            meta["class_gap"].append(float(proj[prompts.labels == 1].mean()
                                           - proj[prompts.labels == 0].mean()))
            meta["resid_norm"].append(float(np.linalg.norm(X, axis=1).mean()))
    provenance = {"model": lm.name, "model_fingerprint": lm.fingerprint(),
                  "hook_points": list(acts), "data": prompts.name,
                  "data_fingerprint": prompts.fingerprint, "method": "+".join(methods),
                  "reduce": "last", "classes": prompts.classes}
    return ConceptBank(np.stack(vecs), names, provenance=provenance, metadata=meta)
