"""Concept banks (named directions + provenance) and the vocabularies that seed them."""

from conceptlab.concepts.bank import ConceptBank, ConceptBankError

__all__ = ["ConceptBank", "ConceptBankError"]
