"""Concept importance (Sobol, gradient x input, occlusion; local and per class) and concept
attribution maps, on any dictionary's codes."""

from conceptlab.importance.concept_model import ConceptModel, ImportanceError
from conceptlab.importance.estimators import (
    IMPORTANCE,
    global_importance,
    local_importance,
    sobol_total_indices,
)

__all__ = ["IMPORTANCE", "ConceptModel", "ImportanceError", "global_importance",
           "local_importance", "sobol_total_indices"]
