"""The root of every error conceptlab raises on purpose, so callers (the CLI) catch one type."""

from __future__ import annotations


class ConceptlabError(Exception):
    """Base class of conceptlab's own errors: bad input, malformed files, failed checks."""


class ConceptlabValueError(ConceptlabError, ValueError):
    """Bad input (shape, range, unknown name); also a ``ValueError`` for older callers."""
