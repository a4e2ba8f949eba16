"""Whether concepts mean their names and explanations hold: pure functions of arrays.

* ``units``: does unit k track concept k (correlation with the encoder's concept score, best
  match among all concepts, AUROC against ground-truth concept labels, intervention gain);
* ``decisions``: do explanations hold (the bias's share of a logit, concept deletion and
  insertion curves against a random order, agreement of two models' predictions);
* ``links``: do a head's class-concept links agree with what the words say;
* ``claims``: the audit as a profile of claims (each with its measurement, control and
  status) and the verdict that combines them.

The same functions serve concept bottleneck models, discovered concepts and language-model
directions: they see arrays, never models.
"""

from conceptlab.faithfulness.claims import (
    FIDELITY_MIN,
    Claim,
    Verdict,
    profile_verdict,
)
from conceptlab.faithfulness.decisions import (
    deletion_insertion,
    intercept_share,
    prediction_agreement,
    top_unit_unused_rate,
)
from conceptlab.faithfulness.links import (
    class_link_agreement,
    class_link_support,
    permuted_supports,
)
from conceptlab.faithfulness.units import (
    auroc_figures,
    column_correlations,
    concept_auroc,
    correlation_matrix,
    intervention_gain,
    name_match_rate,
    unit_fidelity,
    unit_figures,
)

__all__ = [
    "FIDELITY_MIN",
    "Claim",
    "Verdict",
    "auroc_figures",
    "class_link_agreement",
    "class_link_support",
    "column_correlations",
    "concept_auroc",
    "correlation_matrix",
    "deletion_insertion",
    "intercept_share",
    "intervention_gain",
    "name_match_rate",
    "permuted_supports",
    "prediction_agreement",
    "profile_verdict",
    "top_unit_unused_rate",
    "unit_fidelity",
    "unit_figures",
]
