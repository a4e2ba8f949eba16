"""The root of every error conceptlab raises on purpose, so callers (the CLI) catch one type.

Why: the command line turns every error a user can cause (bad input, bad option, an output it
cannot write) into one line and exit code 2; one base class lets it catch them all in one
place, and lets Python callers do the same. The families keep their own classes
(``DataError``, ``EncoderError``, ...), all derived from :class:`ConceptlabError`.
"""

from __future__ import annotations


class ConceptlabError(Exception):
    """Base class of conceptlab's own errors: bad input, malformed files, failed checks."""


class ConceptlabValueError(ConceptlabError, ValueError):
    """Bad input (shape, range, unknown name); also a ``ValueError`` for older callers."""


class OptionError(ConceptlabValueError):
    """An option (command-line flag, ``KEY=VALUE`` pair, hyper-parameter) has a bad value."""


class InputError(ConceptlabValueError):
    """An input given to a saved model (a file, a text) is missing, empty or of the wrong kind."""


class OutputError(ConceptlabError, OSError):
    """An output folder or file cannot be written (a file in the way, no permission)."""


class UnknownNameError(ConceptlabError, KeyError):
    """A name that no registry, concept bank or class list holds (the message lists close or
    valid names); also a ``KeyError`` for older callers."""

    def __str__(self) -> str:  # a KeyError would print its message in quotes
        return str(self.args[0]) if self.args else ""


class MissingFileError(ConceptlabError, FileNotFoundError):
    """A file or folder the user named (or a run needs) does not exist."""


class FormatError(ConceptlabValueError):
    """A file exists but is malformed: bad JSON, wrong ``kind`` or version, bad tensor header."""


class DependencyError(ConceptlabError, ImportError):
    """An optional extra needed by this feature is not installed (the message names it)."""


class ComputeError(ConceptlabError, RuntimeError):
    """A computation cannot go on with these inputs (diverged training, no items left after a
    filter, a device that is not there)."""


class DivergedError(ComputeError, FloatingPointError):
    """Training diverged (a loss became inf or nan): usually a setting too large (a learning
    rate, a penalty); also a ``FloatingPointError`` for older callers."""
