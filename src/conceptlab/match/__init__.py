"""Explicit concept matching (``conceptlab match``): retrieval in a space of named concepts,
after SESA; its ranking metrics and its unit audit."""

from conceptlab.match.audit import audit_matcher
from conceptlab.match.model import ExplicitMatcher, MatchConfig, MatchError
from conceptlab.match.ranking import cosine_matrix, retrieval_metrics

__all__ = ["ExplicitMatcher", "MatchConfig", "MatchError", "audit_matcher", "cosine_matrix",
           "retrieval_metrics"]
