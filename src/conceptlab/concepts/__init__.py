"""Concept banks (named directions + provenance) and the vocabularies that seed them.

Modules, each importing only those above it:

* :mod:`~conceptlab.concepts.bank`: :class:`ConceptBank`, concept vectors with provenance;
* :mod:`~conceptlab.concepts.phrases`: name/concept normalisation and phrase extraction;
* :mod:`~conceptlab.concepts.vocab`: :class:`Vocabulary`, its file formats, :func:`load_vocabulary`;
* :mod:`~conceptlab.concepts.wordnet`: a WordNet 3.0 noun reader (optional concept source);
* :mod:`~conceptlab.concepts.imagenet`: ImageNet-1k names, descriptions and name matching;
* :mod:`~conceptlab.concepts.generate`: :func:`generate_vocabulary` for any class list;
* :mod:`~conceptlab.concepts.cub`: CUB-200-2011's attributes as a vocabulary;
* :mod:`~conceptlab.concepts.builtin`: :func:`builtin_vocabulary` by name (shipped files too);
* :mod:`~conceptlab.concepts.filters`: the Label-free CBM filters, :func:`apply_filters`.
"""

from conceptlab.concepts.bank import ConceptBank, ConceptBankError
from conceptlab.concepts.builtin import builtin_vocabulary
from conceptlab.concepts.filters import FilterError, FilterReport, apply_filters
from conceptlab.concepts.generate import generate_vocabulary
from conceptlab.concepts.vocab import Vocabulary, VocabularyError, load_vocabulary

__all__ = [
    "ConceptBank",
    "ConceptBankError",
    "FilterError",
    "FilterReport",
    "Vocabulary",
    "VocabularyError",
    "apply_filters",
    "builtin_vocabulary",
    "generate_vocabulary",
    "load_vocabulary",
]
