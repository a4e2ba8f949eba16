"""Do a matcher's units mean their names? The project's unit audit applied to explicit matchers.

Unit k of an :class:`~conceptlab.match.model.ExplicitMatcher` carries concept k's name, and
the shared concepts that explain a match are read off those units, so the explanation is only
as good as the names. On held-out inputs: ``unit_fidelity_median`` (median over units of the
correlation of unit k with concept k's score in the encoder, ``faithfulness.units``),
``name_match_rate`` (share of units whose most correlated concept is their own) and, with
ground-truth labels, each unit's concept AUROC. The gate is the CBM's: a matcher whose median
fidelity is below 0.5 is ``trusted: false`` and its explanations must carry the warning.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from conceptlab.faithfulness.units import concept_auroc, name_match_rate, unit_fidelity
from conceptlab.match.model import ExplicitMatcher

FIDELITY_GATE = 0.5


def audit_matcher(matcher: ExplicitMatcher, X: np.ndarray,
                  concept_labels: np.ndarray | None = None) -> dict[str, Any]:
    """Fidelity, name match and (with labels) concept AUROC of the matcher's units on ``X``."""
    U = matcher.units(X)
    S = matcher.bank.scores(np.asarray(X, dtype=np.float32))
    fid = unit_fidelity(U, S)
    out: dict[str, Any] = {
        "unit_fidelity_median": fid["median"],
        "unit_fidelity": {n: float(r) for n, r in zip(matcher.names, fid["per_unit"],
                                                        strict=True)},
        "name_match_rate": name_match_rate(U, S),
    }
    if concept_labels is not None:
        lab = np.asarray(concept_labels)
        if lab.shape == U.shape:
            auc_units = concept_auroc(U, lab)
            auc_scores = concept_auroc(S, lab)
            out["concept_auroc_units_mean"] = float(np.nanmean(auc_units))
            out["concept_auroc_scores_mean"] = float(np.nanmean(auc_scores))
    trusted = bool(np.isfinite(fid["median"]) and fid["median"] >= FIDELITY_GATE)
    out["trusted"] = trusted
    out["warnings"] = [] if trusted else [
        f"unit fidelity {fid['median']:.2f} < {FIDELITY_GATE}: this matcher's units do not "
        "track their concepts; the shared concepts it names are not evidence"]
    return out
