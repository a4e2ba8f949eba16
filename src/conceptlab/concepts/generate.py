"""A concept vocabulary for any class list, without a language model.

Label-free CBM (Oikarinen et al., ICLR 2023, "Label-Free Concept Bottleneck Models", Sec. 3.1)
asks GPT-3 for a class's "important features", its "superclass" and "things seen around it".
:func:`generate_vocabulary` answers from what is installed instead: the visual descriptions of
the ImageNet classes a class name matches (:mod:`conceptlab.concepts.imagenet`) and WordNet's
superclass, gloss and parts (:mod:`conceptlab.concepts.wordnet`).
"""

from __future__ import annotations

import os
import warnings as _warnings
from collections.abc import Iterator, Sequence

from conceptlab.concepts.imagenet import imagenet_class_phrases, match_imagenet_classes
from conceptlab.concepts.phrases import mentions_class, name_variants, unique
from conceptlab.concepts.vocab import TextEncoder, Vocabulary, VocabularyError
from conceptlab.concepts.wordnet import WordNet, find_wordnet, load_wordnet, wordnet_phrases


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
    source = "generated:" + "+".join(unique(used) or ["none"])
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
    shared = sorted((p for p in unique(rr) if counts[p] > 1 and " " in p),
                    key=lambda p: -counts[p])
    return unique([*shared, *rr])


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
