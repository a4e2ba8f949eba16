"""The root of conceptlab's own errors.

Why: the command line turns every error a user can cause (bad input, bad option, an output it
cannot write) into one line and exit code 2; one base class lets it catch them all in one
place, and lets Python callers do the same. The families keep their own classes
(``DataError``, ``EncoderError``, ...); new ones derive from :class:`ConceptlabError`.
"""

from __future__ import annotations


class ConceptlabError(Exception):
    """Base class of errors caused by the user's input, options or environment."""


class OptionError(ConceptlabError, ValueError):
    """An option (command-line flag, ``KEY=VALUE`` pair, hyper-parameter) has a bad value."""


class OutputError(ConceptlabError, OSError):
    """An output folder or file cannot be written (a file in the way, no permission)."""


class InputError(ConceptlabError, ValueError):
    """An input given to a saved model (a file, a text) is missing, empty or of the wrong kind."""
