"""Whether concepts mean their names and explanations hold: pure functions of arrays.

* ``units``: does unit k track concept k (correlation with the encoder's concept score, best
  match among all concepts, AUROC against ground-truth concept labels, intervention gain);
* ``decisions``: do explanations hold (the bias's share of a logit, concept deletion and
  insertion curves against a random order, agreement of two models' predictions);
* ``verdict``: the gate that marks a model's concept names as not to be trusted.

The same functions serve concept bottleneck models, discovered concepts and language-model
directions: they see arrays, never models.
"""

from conceptlab.faithfulness.decisions import (
    deletion_insertion,
    intercept_share,
    prediction_agreement,
    top_unit_unused_rate,
)
from conceptlab.faithfulness.units import (
    column_correlations,
    concept_auroc,
    correlation_matrix,
    intervention_gain,
    name_match_rate,
    unit_fidelity,
)
from conceptlab.faithfulness.verdict import (
    AGREEMENT_MAX,
    FIDELITY_MIN,
    Verdict,
    verdict,
)

__all__ = [
    "AGREEMENT_MAX",
    "FIDELITY_MIN",
    "Verdict",
    "column_correlations",
    "concept_auroc",
    "correlation_matrix",
    "deletion_insertion",
    "intercept_share",
    "intervention_gain",
    "name_match_rate",
    "prediction_agreement",
    "top_unit_unused_rate",
    "unit_fidelity",
    "verdict",
]
