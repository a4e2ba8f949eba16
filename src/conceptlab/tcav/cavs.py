"""Concept activation vectors: a direction in a layer's activation space that points from
random counter-examples toward a concept's examples.

Two learners, one signature ``(concept_rows, random_rows, seed) -> unit direction``:

* ``svm``: TCAV's (Kim et al., ICML 2018, sec. 3.1) linear classifier as the reference code
  trains it: tensorflow/tcav, ``tcav/cav.py``, ``CAV.train`` with ``model_type='linear'``:
  ``sklearn.linear_model.SGDClassifier(alpha=0.01, max_iter=1000, tol=1e-3)`` (hinge loss: a
  linear SVM), fitted by ``CAV._train_lm`` on a stratified two-thirds split of the examples
  (the other third scores the CAV's accuracy); the CAV is the coefficient vector, oriented
  toward the concept (the reference flips ``coef_`` because its concept is label 0).
* ``fast``: FastCAV (Schmalwasser et al., 2025): the closed form ``v = mean_{a in C}(a - a_bar)``
  with ``a_bar`` the global mean over concept and random examples together, normalised; no
  iterative training, hence its speed. It is fitted on the same two-thirds split.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from conceptlab.errors import ConceptlabValueError
from conceptlab.utils.registry import Registry

CAVLearner = Callable[[np.ndarray, np.ndarray, int], np.ndarray]

#: the reference code's defaults (tensorflow/tcav ``get_or_train_cav``: alpha 0.01)
SVM_ALPHA = 0.01
SVM_MAX_ITER = 1000
SVM_TOL = 1e-3
#: share of each example set held out to score a CAV (tcav ``_train_lm``: test_size=0.33)
HELD_OUT = 0.33


class CAVError(ConceptlabValueError):
    """Raised for empty or mismatched example sets and unknown CAV methods."""


def _unit(v: np.ndarray, scale: float = 1.0) -> np.ndarray:
    n = float(np.linalg.norm(v))
    if not np.isfinite(n) or n <= 1e-12 * max(scale, 1e-30):
        raise CAVError("the CAV is zero: the concept and random examples have the same mean "
                       "activations")
    return (v / n).astype(np.float64)


def _check(concept: np.ndarray, random: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    c, r = np.asarray(concept, np.float64), np.asarray(random, np.float64)
    if c.ndim != 2 or r.ndim != 2 or c.shape[1] != r.shape[1]:
        raise CAVError(f"CAV example sets must be (n, d) rows of one width, got {c.shape} and "
                       f"{r.shape}")
    if len(c) < 2 or len(r) < 2:
        raise CAVError(f"a CAV needs at least 2 examples per set, got {len(c)} and {len(r)}")
    return c, r


def svm_cav(concept: np.ndarray, random: np.ndarray, seed: int = 0) -> np.ndarray:
    """The reference TCAV direction: a hinge-loss SGD linear classifier, concept = 1."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import SGDClassifier

    c, r = _check(concept, random)
    X = np.vstack([c, r])
    y = np.r_[np.ones(len(c)), np.zeros(len(r))]
    clf = SGDClassifier(alpha=SVM_ALPHA, max_iter=SVM_MAX_ITER, tol=SVM_TOL, random_state=seed)
    with warnings.catch_warnings():  # the reference fits with the same budget and warns alike
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    return _unit(np.asarray(clf.coef_[0]))


def fast_cav(concept: np.ndarray, random: np.ndarray, seed: int = 0) -> np.ndarray:
    """FastCAV: the concept examples' mean offset from the global mean, normalised."""
    c, r = _check(concept, random)
    global_mean = np.vstack([c, r]).mean(axis=0)
    return _unit((c - global_mean).mean(axis=0), float(np.abs(c).max()))


CAV_METHODS: Registry[CAVLearner] = Registry("CAV method", CAVError)
CAV_METHODS.add("svm", svm_cav)
CAV_METHODS.add("fast", fast_cav)


@dataclass(frozen=True)
class CAVFit:
    """One CAV: its unit direction, held-out accuracy and the seconds its learner took."""

    direction: np.ndarray
    accuracy: float
    seconds: float


def split_rows(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (train, held-out) positions of ``n`` rows; the held-out part is ``HELD_OUT``."""
    order = np.random.default_rng(seed).permutation(n)
    n_out = round(HELD_OUT * n) if n >= 6 else 0
    return np.sort(order[n_out:]), np.sort(order[:n_out])


def fit_cav(concept: np.ndarray, random: np.ndarray, method: str = "svm", seed: int = 0
            ) -> CAVFit:
    """Fit a CAV on a seeded two-thirds of each set; score it on the other third.

    Accuracy: the share of held-out rows on the right side of the hyperplane through the
    midpoint of the two training means along the direction (the same rule for both learners,
    so that their accuracies compare); NaN when the sets are too small to hold any out.
    """
    learner = CAV_METHODS.lookup(method)
    c, r = _check(concept, random)
    c_in, c_out = split_rows(len(c), seed)
    r_in, r_out = split_rows(len(r), seed + 1)
    t0 = time.perf_counter()
    v = learner(c[c_in], r[r_in], seed)
    seconds = time.perf_counter() - t0
    acc = float("nan")
    if len(c_out) and len(r_out):
        mid = 0.5 * (c[c_in].mean(0) + r[r_in].mean(0)) @ v
        right = np.r_[(c[c_out] @ v) > mid, (r[r_out] @ v) <= mid]
        acc = float(right.mean())
    return CAVFit(v, acc, seconds)
