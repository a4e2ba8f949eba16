"""Offline text corpora for dictionaries on a language model's activations, with provenance.

A ``Corpus`` is a list of texts, each with a label (its topic when the source has one, else
``""``), a name and a digest of its content, recorded with every dictionary trained on it.

Specs (``load_corpus(spec)``):

* ``fortunes`` / ``fortunes:CAT1,CAT2``: Debian's ``fortunes`` and ``fortunes-min`` collections
  (plain text under ``/usr/share/games/fortunes``, one quotation per ``%``-separated record),
  each text labelled by its file (``computers``, ``food``, ``law``, ...), the topic names the
  naming audit checks features against. Installed by ``scripts/setup.sh``.
* ``prompts:NAME``: a shipped prompt set (``animals``, ``sentiment``, ``gender``), labelled by
  class.
* ``text:PATH``: any UTF-8 text file, one text per non-empty line, unlabelled.
* ``csv:PATH``: a CSV with a ``text`` column and an optional ``label`` column.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from conceptlab.lm.model import LMError
from conceptlab.utils.hashing import hash_json

FORTUNES_DIR = Path("/usr/share/games/fortunes")
#: fortune files whose records are not prose about one topic (ASCII drawings, untranslated)
FORTUNES_SKIP = ("ascii-art", "translate-me", "pratchett")
_WS = re.compile(r"\s+")


@dataclass
class Corpus:
    """Texts with per-text labels ("" when unlabelled) and where they came from."""

    name: str
    texts: list[str]
    labels: list[str]
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.texts) != len(self.labels):
            raise LMError(f"{self.name}: {len(self.texts)} texts but {len(self.labels)} labels")
        if not self.texts:
            raise LMError(f"{self.name}: the corpus has no texts")

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def digest(self) -> str:
        return hash_json({"texts": self.texts, "labels": self.labels})

    def categories(self) -> list[str]:
        return sorted({lab for lab in self.labels if lab})

    def describe(self) -> dict[str, Any]:
        cats = self.categories()
        return {"name": self.name, "n_texts": len(self), "digest": self.digest,
                "n_chars": int(sum(len(t) for t in self.texts)), "categories": cats,
                "per_category": {c: self.labels.count(c) for c in cats}, **self.meta}

    def split(self, heldout_fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Seeded (train, held-out) index arrays, stratified by label."""
        if not 0 < heldout_fraction < 1:
            raise LMError(f"held-out fraction must be in (0, 1), got {heldout_fraction}")
        rng = np.random.default_rng(seed)
        train, held = [], []
        labels = np.asarray(self.labels)
        for lab in sorted(set(self.labels)):
            idx = rng.permutation(np.flatnonzero(labels == lab))
            cut = round(heldout_fraction * len(idx))
            held += idx[:cut].tolist()
            train += idx[cut:].tolist()
        return (rng.permutation(np.asarray(train, np.int64)),
                rng.permutation(np.asarray(held, np.int64)))


def _clean(text: str) -> str:
    return _WS.sub(" ", text).strip()


def read_fortune_file(path: Path) -> list[str]:
    """The records of one fortune file (``%`` lines separate them), whitespace collapsed."""
    try:
        raw = path.read_text(encoding="utf-8", errors="replace")
    except OSError as err:
        raise LMError(f"{path}: cannot read ({err.strerror or err})") from err
    out = []
    for rec in raw.split("\n%\n"):
        t = _clean(rec.strip("%"))
        if len(t) >= 20:
            out.append(t)
    return out


def fortunes(categories: list[str] | None = None, root: Path | None = None) -> Corpus:
    """Debian's fortunes, each labelled by its file; ``categories`` picks files by name."""
    root = Path(os.environ.get("CONCEPTLAB_FORTUNES_DIR", root or FORTUNES_DIR))
    if not root.is_dir():
        raise LMError(f"{root}: no fortunes here; install Debian's fortunes and fortunes-min "
                      "(scripts/setup.sh does) or pass another corpus (text:PATH, csv:PATH)")
    files = sorted(p for p in root.iterdir() if p.is_file() and not p.suffix
                   and p.name not in FORTUNES_SKIP)
    known = [p.name for p in files]
    if categories:
        bad = [c for c in categories if c not in known]
        if bad:
            raise LMError(f"no fortune file {', '.join(bad)} in {root}; there are: "
                          f"{', '.join(known)}")
        files = [p for p in files if p.name in categories]
    texts: list[str] = []
    labels: list[str] = []
    for p in files:
        recs = read_fortune_file(p)
        texts += recs
        labels += [p.name] * len(recs)
    return Corpus("fortunes" + (":" + ",".join(categories) if categories else ""), texts,
                  labels, {"source": str(root), "package": "Debian fortunes, fortunes-min",
                           "files": [p.name for p in files]})


def text_file(path: str | Path) -> Corpus:
    path = Path(path).expanduser()
    if not path.is_file():
        raise LMError(f"{path}: no such file")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise LMError(f"{path}: cannot read as UTF-8 text ({err})") from err
    texts = [_clean(ln) for ln in lines if ln.strip()]
    return Corpus(path.name, texts, [""] * len(texts), {"source": str(path)})


def csv_file(path: str | Path) -> Corpus:
    path = Path(path).expanduser()
    if not path.is_file():
        raise LMError(f"{path}: no such file")
    texts, labels = [], []
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh)
            if "text" not in (reader.fieldnames or []):
                raise LMError(f"{path}:1: no column 'text' (columns: "
                              f"{', '.join(reader.fieldnames or [])})")
            for row in reader:
                t = _clean(row.get("text") or "")
                if t:
                    texts.append(t)
                    labels.append(str(row.get("label") or "").strip())
    except OSError as err:
        raise LMError(f"{path}: cannot read ({err.strerror or err})") from err
    return Corpus(path.name, texts, labels, {"source": str(path)})


def load_corpus(spec: str) -> Corpus:
    """A Corpus from a spec (see the module docstring)."""
    if not spec or not isinstance(spec, str):
        raise LMError("empty corpus spec")
    prefix, _, arg = spec.partition(":")
    if prefix == "fortunes":
        cats = [c.strip() for c in arg.split(",") if c.strip()] if arg else None
        return fortunes(cats)
    if prefix == "prompts":
        from conceptlab.lm.datasets import load_prompts

        ps = load_prompts(arg)
        return Corpus(f"prompts:{arg}", list(ps.texts),
                      [ps.classes[int(y)] for y in ps.labels], {"source": ps.describe()})
    if prefix == "text" and arg:
        return text_file(arg)
    if prefix == "csv" and arg:
        return csv_file(arg)
    raise LMError(f"unknown corpus {spec!r}; use fortunes[:CAT,...], prompts:NAME, "
                  "text:PATH or csv:PATH")
