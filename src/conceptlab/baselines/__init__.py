"""Baselines a concept bottleneck is compared against, on the same cached embeddings.

* ``zeroshot``: zero-shot classification by cosine to (prompt-ensembled) class-name embeddings;
* ``probe``: a dense linear probe on the embeddings (an upper reference for bottlenecks).

Concept Matrix Search, the training-free concept rule, lives in ``conceptlab.bottleneck.cms``.
"""

from conceptlab.baselines.probe import fit_linear_probe
from conceptlab.baselines.zeroshot import (
    TEMPLATE_SETS,
    TextEncoder,
    build_class_embeddings,
    get_templates,
    zero_shot_predict,
    zero_shot_scores,
)

__all__ = [
    "TEMPLATE_SETS",
    "TextEncoder",
    "build_class_embeddings",
    "fit_linear_probe",
    "get_templates",
    "zero_shot_predict",
    "zero_shot_scores",
]
