"""CRAFT's recursive refinement (Fel et al., CVPR 2023, section 3.3): a concept found at a late
layer is split into sub-concepts at an earlier layer, using only the crops that concept
dominates, so a broad concept ("wheel") resolves into finer parts.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from conceptlab.discover.bank import DiscoveredConcepts, discover
from conceptlab.discover.sources import Activations, SourceError, TappedModel, extract


def dominated_rows(U: np.ndarray, concept: int, min_rows: int = 1) -> np.ndarray:
    """Rows whose largest code is ``concept`` (the crops the concept explains best)."""
    rows = np.flatnonzero((U.argmax(1) == concept) & (U[:, concept] > 0))
    if len(rows) < min_rows:
        raise SourceError(f"concept {concept} dominates {len(rows)} rows; need {min_rows}")
    return rows


def refine(earlier: TappedModel, images: list[Any], acts: Activations, U: np.ndarray,
           concept: int, n_sub: int, method: str = "nmf", seed: int = 0,
           batch_size: int = 32) -> tuple[DiscoveredConcepts, np.ndarray, dict[str, Any]]:
    """Sub-concepts of ``concept`` at ``earlier.layer`` from the crops it dominates.

    ``acts`` must be crop activations of ``images`` (their boxes are re-read at the earlier
    layer). Returns what ``discover`` returns; the bank's provenance names the parent concept.
    """
    if acts.kind != "crops" or acts.boxes is None:
        raise SourceError("recursive refinement works on crop activations")
    rows = dominated_rows(U, concept, min_rows=n_sub)
    boxes: list[np.ndarray] = [np.zeros((0, 3), np.int64) for _ in images]
    for r in rows:
        boxes[int(acts.item[r])] = np.vstack([boxes[int(acts.item[r])], acts.boxes[r]])
    sub = extract(earlier, images, "crops", boxes=boxes, batch_size=batch_size)
    found, U_sub, report = discover(earlier, sub, method, n_sub, seed=seed)
    found.bank.provenance.update(parent_layer=acts.layer, parent_concept=int(concept),
                                 parent_rows=len(rows))
    return found, U_sub, report
