"""The TCAV score and the statistics that make it mean something (Kim et al., ICML 2018).

``tcav_score``: the share of a class's inputs whose directional derivative of the class logit
along the CAV is positive (sec. 3.3, ``S_{C,k,l}(x) = grad h_{l,k}(f_l(x)) . v_C``).
``two_sided_ttest``: the concept's scores over many random counter-example sets against the
scores of random-vs-random CAVs (sec. 3.5; tensorflow/tcav ``utils_plot`` and Captum's tutorial
use ``scipy.stats.ttest_ind``); a concept passes only when the difference is significant.
``holm``: Holm's step-down correction over every test of one run (concepts x layers), which
controls the family-wise error as Bonferroni does with more power.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from conceptlab.errors import ConceptlabValueError


def directional_derivatives(gradients: np.ndarray, cav: np.ndarray) -> np.ndarray:
    """``gradients`` (N, D) of the class logit w.r.t. the layer, dotted with the CAV (D,)."""
    g, v = np.asarray(gradients, np.float64), np.asarray(cav, np.float64)
    if g.ndim != 2 or v.shape != (g.shape[1],):
        raise ConceptlabValueError(f"gradients {g.shape} and CAV {v.shape} do not match")
    return g @ v


def tcav_score(gradients: np.ndarray, cav: np.ndarray) -> float:
    """Share of inputs whose directional derivative along ``cav`` is positive."""
    return float((directional_derivatives(gradients, cav) > 0).mean())


def two_sided_ttest(concept_scores: Sequence[float], random_scores: Sequence[float]) -> float:
    """p-value of Student's two-sample t-test (two-sided, pooled variance, as ``ttest_ind``).

    Two constant samples: p = 1 when equal, 0 when they differ (the t statistic is infinite).
    """
    from scipy import stats

    a, b = np.asarray(concept_scores, np.float64), np.asarray(random_scores, np.float64)
    if len(a) < 2 or len(b) < 2:
        raise ConceptlabValueError(f"a t-test needs >= 2 scores per side, got {len(a)} and "
                                   f"{len(b)}")
    if np.ptp(a) == 0 and np.ptp(b) == 0:
        return 1.0 if a[0] == b[0] else 0.0
    return float(stats.ttest_ind(a, b).pvalue)


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm-adjusted p-values (reject where adjusted < alpha), in the input order.

    Sort ascending; the i-th smallest (0-based) is multiplied by ``m - i``; a running maximum
    keeps the adjusted values monotone; capped at 1.
    """
    p = np.asarray(pvalues, np.float64)
    if p.ndim != 1 or np.any((p < 0) | (p > 1)) or np.any(np.isnan(p)):
        raise ConceptlabValueError("Holm's correction needs p-values in [0, 1]")
    m = len(p)
    order = np.argsort(p, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adjusted
    return out
