"""A small reader of WordNet 3.0's noun database, and the concepts WordNet gives for a synset.

Reads the Princeton database files directly (Debian ``wordnet-base``, or an nltk_data copy):
:func:`find_wordnet` locates them, :class:`WordNet` looks nouns up (lemmas, senses, hypernyms,
hyponyms, parts), :func:`wordnet_phrases` turns a synset into concept phrases. WordNet is
optional: callers get None from :func:`load_wordnet` when it is not installed.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path

from conceptlab.concepts.phrases import clean_phrase, extract_phrases, unique
from conceptlab.concepts.vocab import VocabularyError

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
    return unique([p for p in cleaned if p])

