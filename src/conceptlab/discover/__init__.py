"""Concept discovery inside any network: dictionaries on activations (CRAFT, the holistic
framework, DN-CBM), where activations come from, naming, and discovered concept banks."""

from conceptlab.discover.base import (
    Dictionary,
    DictionaryError,
    build_dictionary,
    known_dictionaries,
    register_dictionary,
)
from conceptlab.discover.metrics import dictionary_report, match_dictionaries

__all__ = ["Dictionary", "DictionaryError", "build_dictionary", "dictionary_report",
           "known_dictionaries", "match_dictionaries", "register_dictionary"]
