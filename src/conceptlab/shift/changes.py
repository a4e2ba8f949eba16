"""Which concepts fine-tuning kept, lost and gained, and which a shift vector reaches.

Khayatan et al. trace how fine-tuning changes a model's concepts: some stay, some vanish, new
ones appear. Their code (mshukor/xl-vlms) matches the fine-tuned concepts to the base ones by
the Hungarian algorithm on cosine and reports distances; it draws no kept / lost / gained line.
This module's rule is conceptlab's own (a simplification with its own name, "matched at
cosine tau"): with the Hungarian pairs of :func:`conceptlab.shift.match_concepts`,

- a base concept is **kept** when its fine-tuned partner has cosine >= ``threshold`` with it;
- otherwise the base concept is **lost** and its partner is **gained** (a concept of the
  fine-tuned states that no base concept is near enough to);
- a lost concept is **reached by its shift** when the shifted concept (base + shift vector)
  has cosine >= ``threshold`` with the gained partner: the shift vector alone recovers the
  new concept, without training.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from conceptlab.shift.vectors import ConceptShift, ShiftError


def _cos_rows(P: np.ndarray, Q: np.ndarray) -> np.ndarray:
    """Row-wise cosine of two (K, D) arrays."""
    num = (P * Q).sum(1)
    den = np.maximum(np.linalg.norm(P, axis=1) * np.linalg.norm(Q, axis=1), 1e-12)
    return np.asarray(num / den, np.float64)


def concept_changes(shift: ConceptShift, threshold: float = 0.5) -> dict[str, Any]:
    """Kept, lost, gained and reached concepts of ``shift`` at cosine ``threshold`` (module
    doc). Returns JSON-ready lists: per base concept its partner, the cosine of the partner
    with the original and with the shifted concept, its share of the inputs and its status."""
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or \
            not -1.0 <= float(threshold) <= 1.0:
        raise ShiftError(f"the cosine threshold must be a number in [-1, 1], got "
                         f"{threshold!r}")
    partner = np.asarray(shift.matching, np.int64)
    target = shift.tuned_concepts[partner]
    cos_orig = _cos_rows(target, shift.concepts)
    cos_shift = _cos_rows(target, shift.shifted)
    share = shift.counts / max(int(shift.counts.sum()), 1)
    kept = cos_orig >= threshold
    reached = ~kept & (cos_shift >= threshold)
    status = np.where(kept, "kept", np.where(reached, "lost, reached by its shift", "lost"))
    return {"threshold": float(threshold),
            "partner": partner.tolist(),
            "cosine_original": cos_orig.tolist(), "cosine_shifted": cos_shift.tolist(),
            "share": share.tolist(), "status": status.tolist(),
            "kept": np.flatnonzero(kept).tolist(),
            "lost": np.flatnonzero(~kept).tolist(),
            "gained": sorted(partner[~kept].tolist()),
            "reached": np.flatnonzero(reached).tolist()}
