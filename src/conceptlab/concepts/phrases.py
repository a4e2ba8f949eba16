"""Text helpers for concepts and class names: normalising, comparing, and cutting phrases.

Two jobs that every other concept module leans on, kept free of any other conceptlab import:

* comparing names and concepts without a lemmatiser: :func:`norm_name` (case-, underscore- and
  space-insensitive key), :func:`singular` / :func:`lemma_tokens` (plural-insensitive tokens),
  :func:`name_alternatives` and :func:`name_variants` (the spellings a class name goes by) and
  :func:`mentions_class` (does a concept name its class?);
* cutting descriptions into short concept phrases, rule-based: :func:`extract_phrases` and
  :func:`clean_phrase`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Hashable, Iterable, Sequence
from typing import TypeVar

_H = TypeVar("_H", bound=Hashable)


def unique(items: Iterable[_H]) -> list[_H]:
    """``items`` without repeats, in order of first appearance."""
    return list(dict.fromkeys(items))


# ---------------------------------------------------------------------------------------------
# comparing names and concepts
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


_GENERIC_HEADS = frozenset({"tree", "fish", "plant", "flower", "animal", "bird", "bush", "shrub"})


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
    return unique([norm_name(v) for v in out if v.strip()])


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


def drop_mentions(phrases: Iterable[str], class_names: Iterable[str]) -> list[str]:
    """``phrases`` without those that name any of ``class_names`` (:func:`mentions_class`)."""
    forms = [f for name in class_names for f in _name_token_forms(name)]
    return [p for p in phrases if not _mentions(lemma_tokens(p), forms)]


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


def split_sentences(text: str) -> list[str]:
    """``text`` cut after ``.``, ``!`` or ``?`` where a capital letter follows."""
    return _SENTENCE_RE.split(text.strip())


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
    for sentence in split_sentences(text):
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


