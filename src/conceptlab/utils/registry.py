"""One registry type for every pluggable kind (encoders, datasets, objectives, dictionaries,
importance estimators, CAV learners, ...), so that they all behave the same way:

* ``@REG.register("name")`` (or ``REG.add(name, value)``) adds an entry; a second, different
  entry under a taken name is refused with a :class:`RegistryError` (re-registering the same
  object, as a module reload does, is allowed);
* ``REG.lookup(name)`` answers an unknown name with one line naming the close matches
  (``difflib``) and the known names, raised as the registry's own error type (a family's
  ``EncoderError``, ``DataError``, ...; by default :class:`~conceptlab.errors.UnknownNameError`);
* ``REG.names()`` lists the names for help texts, in registration order (``sorted`` by caller);
* ``REG.unregister(name)`` removes an entry again, and :func:`registrations_undone` puts every
  registry back as it was (tests and the worked examples of docs/contributing.md register a
  toy entry and must leave the registries as they found them).

A ``Registry`` is a read-only ``Mapping``, so ``name in REG``, ``REG[name]``, ``list(REG)`` and
``REG.items()`` keep working where a plain dict was used before.
"""

from __future__ import annotations

import difflib
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

from conceptlab.errors import ConceptlabError, UnknownNameError

T = TypeVar("T")
V = TypeVar("V")


class RegistryError(ConceptlabError, ValueError):
    """A name registered twice with different entries, or an empty name."""


def unknown_name_message(kind: str, name: object, known: list[str], shown: str | None = None
                         ) -> str:
    """``unknown <kind> 'x'; did you mean y? (known: a, b, c)`` (one line)."""
    close = difflib.get_close_matches(str(name), known, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    what = shown if shown is not None else name
    return f"unknown {kind} {what!r}{hint} (known: {', '.join(sorted(known))})"


class Registry(Mapping[str, T], Generic[T]):
    """Named entries of one kind (see the module docstring)."""

    def __init__(self, kind: str, error: Callable[[str], Exception] = UnknownNameError) -> None:
        self.kind = kind
        self.error = error
        self._entries: dict[str, T] = {}
        _LIVE[id(self)] = self

    @classmethod
    def of(cls, kind: str, entries: Mapping[str, T],
           error: Callable[[str], Exception] = UnknownNameError) -> Registry[T]:
        """A registry holding ``entries`` (a fixed table written as a dict literal)."""
        reg: Registry[T] = cls(kind, error)
        for name, value in entries.items():
            reg.add(name, value)
        return reg

    def add(self, name: str, value: T) -> T:
        """Register ``value`` as ``name``; a different value under a taken name is refused."""
        if not isinstance(name, str) or not name:
            raise RegistryError(f"a {self.kind} needs a non-empty name, got {name!r}")
        old = self._entries.get(name)
        if old is not None and old is not value and not _same_definition(old, value):
            raise RegistryError(f"a {self.kind} named {name!r} is already registered "
                                f"({_describe(old)}); pick another name")
        self._entries[name] = value
        return value

    def register(self, name: str) -> Callable[[V], V]:
        """Decorator: ``@REG.register("name")`` registers the decorated object as ``name``."""

        def deco(value: V) -> V:
            self.add(name, value)  # type: ignore[arg-type]
            return value

        return deco

    def lookup(self, name: str, shown: str | None = None) -> T:
        """The entry registered as ``name``; an unknown name raises the registry's error with
        the close names (``shown``: what to call it in the message, e.g. the whole spec)."""
        if isinstance(name, str) and name in self._entries:
            return self._entries[name]
        raise self.error(unknown_name_message(self.kind, name, list(self._entries), shown))

    def unregister(self, name: str) -> T:
        """Remove ``name`` and return its entry (an unknown name raises the lookup error).

        Why: a test or a documentation example that registers a toy entry removes it again, so
        the contract tests that run over every entry see only the real ones."""
        value = self.lookup(name)
        del self._entries[name]
        return value

    def names(self) -> list[str]:
        """Registered names, in registration order."""
        return list(self._entries)

    def __getitem__(self, name: str) -> T:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"


#: every registry created so far (weakly: a registry dropped with its module goes away)
_LIVE: weakref.WeakValueDictionary[int, Registry[Any]] = weakref.WeakValueDictionary()


def live_registries() -> list[Registry[Any]]:
    """Every :class:`Registry` that exists in this process."""
    return list(_LIVE.values())


@contextmanager
def registrations_undone() -> Iterator[None]:
    """Every registry as it was on entry, again on exit: entries replaced or removed inside
    come back, and names added inside are removed, except functions and classes defined by
    conceptlab's own modules (a built-in module imported lazily inside the block registers
    its entries once per process; removing them would lose them for good).

    Use it around code that registers toy entries::

        with registrations_undone():
            register_dataset("toy")(build_toy)
            ...  # use "toy"
        # "toy" is gone again
    """
    saved = [(reg, dict(reg._entries)) for reg in live_registries()]
    try:
        yield
    finally:
        for reg, before in saved:
            kept = {name: value for name, value in reg._entries.items()
                    if name not in before and _defined_by_conceptlab(value)}
            reg._entries.clear()
            reg._entries.update(before)
            reg._entries.update(kept)


def _defined_by_conceptlab(value: object) -> bool:
    """A function, method or class whose definition lives in a conceptlab module (an
    instance of a conceptlab class, such as an ``Architecture`` an example builds, is not)."""
    if getattr(value, "__qualname__", None) is None:
        return False
    module = str(getattr(value, "__module__", "") or "")
    return module == "conceptlab" or module.startswith("conceptlab.")


def _same_definition(old: object, new: object) -> bool:
    """The same function or class defined again (a module re-imported under reload)."""
    return (getattr(old, "__module__", None) == getattr(new, "__module__", 0)
            and getattr(old, "__qualname__", None) == getattr(new, "__qualname__", 0))


def _describe(value: object) -> str:
    mod = getattr(value, "__module__", None)
    qual = getattr(value, "__qualname__", None)
    return f"{mod}.{qual}" if mod and qual else type(value).__name__
