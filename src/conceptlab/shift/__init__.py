"""Fine-tuning shift vectors (Khayatan et al., "Analyzing Fine-tuning Representation Shift for
Multimodal LLMs Steering Alignment"; code mshukor/xl-vlms): the concept shift between a base
and a fine-tuned representation of the same inputs, as directions."""

from conceptlab.shift.changes import concept_changes
from conceptlab.shift.vectors import (
    ConceptShift,
    ShiftError,
    apply_shift,
    concept_shift,
    match_concepts,
)

__all__ = ["ConceptShift", "ShiftError", "apply_shift", "concept_changes", "concept_shift",
           "match_concepts"]
