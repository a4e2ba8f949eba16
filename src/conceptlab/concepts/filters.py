"""Label-free CBM concept filters: prune a vocabulary before it becomes a concept bottleneck.

Oikarinen, Das, Nguyen and Weng, "Label-Free Concept Bottleneck Models", ICLR 2023: Sec. 3.1
filters a generated concept set by (1) length -- concepts longer than 30 characters are
deleted, to keep them simple; (2) similarity to the classes -- concepts whose text embedding
has cosine >= 0.85 to any class name are deleted, since a class name as a concept lets the
bottleneck skip the concepts; (3) similarity to each other -- of two concepts with cosine
>= 0.9 one is deleted (the one with the lower summed similarity to all concepts, "to keep
more general concepts"); and Sec. 3.2 (4) deletes concepts "not present in the training data":
those whose mean of the top-5 image-concept similarities over the training set is below a
cutoff (0.25 for CLIP ViT-B/16 in the paper's code).

Each filter here is a small function from a :class:`~conceptlab.concepts.vocab.Vocabulary` to a
filtered Vocabulary plus a :class:`FilterStep` that lists every removed concept with the score
that removed it. :func:`apply_filters` runs them in the paper's order, encoding concepts and
class names once, and returns a JSON-able :class:`FilterReport`.

Differences from the paper, on purpose: one text encoder (any, via ``encode_texts``) instead of
an average of CLIP and all-mpnet-base-v2 similarities; an exact/plural-insensitive whole-word
check against class names besides the embedding check (the paper only removes ``class``,
``a class``, ``the class`` verbatim); the near-duplicate that is removed gives its class
associations to the one kept. Thresholds depend on the encoder: MiniLM puts "short sleeves"
and "long sleeves" at cosine 0.92, so read the report before trusting a threshold.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from conceptlab.concepts.phrases import mentions_class, name_alternatives
from conceptlab.concepts.vocab import TextEncoder, Vocabulary, VocabularyError, encoder_identity
from conceptlab.utils.io import write_json_atomic


class FilterError(VocabularyError):
    """A filter got bad inputs (shapes, thresholds) or would remove every concept."""


@dataclass
class Removal:
    """One concept a filter removed: which filter, the score that decided it, and why."""

    concept: str
    filter: str
    score: float | None
    reason: str
    classes: list[str] = field(default_factory=list)
    kept: str | None = None  # near-duplicates: the concept kept in its place


@dataclass
class FilterStep:
    """What one filter did: its parameters, sizes before and after, and every removal."""

    filter: str
    params: dict[str, Any]
    n_before: int
    n_after: int
    removed: list[Removal] = field(default_factory=list)


@dataclass
class FilterReport:
    """All filter steps of one :func:`apply_filters` run (JSON-able through ``to_dict``)."""

    n_input: int
    n_output: int = 0
    steps: list[FilterStep] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    encoder: dict[str, Any] = field(default_factory=dict)

    @property
    def removed(self) -> list[Removal]:
        return [r for s in self.steps for r in s.removed]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the report as JSON, atomically."""
        return write_json_atomic(path, self.to_dict())

    def summary(self) -> str:
        """One line per step: ``length: 120 -> 111 (-9)``."""
        lines = [f"{s.filter}: {s.n_before} -> {s.n_after} (-{len(s.removed)})" for s in self.steps]
        lines += [f"skipped: {s}" for s in self.skipped]
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------

def _unit_rows(x: np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float32)
    if arr.ndim != 2:
        raise FilterError(f"{what} must be a 2-D array (N x D), got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise FilterError(f"{what} contain NaN or infinity")
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    if (norms == 0).any():
        raise FilterError(f"{what} contain zero-length rows")
    return arr / norms


def _encode(encoder: TextEncoder, texts: Sequence[str], what: str) -> np.ndarray:
    emb = np.asarray(encoder.encode_texts(list(texts)), dtype=np.float32)
    if emb.ndim != 2 or emb.shape[0] != len(texts):
        raise FilterError(f"text encoder returned shape {emb.shape} for {len(texts)} {what}")
    return _unit_rows(emb, f"{what} embeddings")


def _keep(vocab: Vocabulary, keep: list[int], step: FilterStep,
          classes: list[list[str]] | None = None) -> Vocabulary:
    if not keep:
        raise FilterError(f"filter {step.filter!r} with {step.params} would remove all "
                          f"{step.n_before} concepts; loosen its threshold")
    out = vocab.select(keep)
    if classes is not None:
        out.classes = [list(classes[i]) for i in keep]
    step.n_after = len(out)
    return out


def _check_embeddings(vocab: Vocabulary, emb: np.ndarray | None, what: str) -> np.ndarray | None:
    if emb is None:
        return None
    arr = _unit_rows(emb, what)
    if arr.shape[0] != len(vocab):
        raise FilterError(f"{what}: {arr.shape[0]} rows for {len(vocab)} concepts")
    return arr


# ---------------------------------------------------------------------------------------------
# the filters
# ---------------------------------------------------------------------------------------------

def filter_length(vocab: Vocabulary, *, max_chars: int | None = 30,
                  max_words: int | None = None) -> tuple[Vocabulary, FilterStep]:
    """Remove concepts longer than ``max_chars`` characters or ``max_words`` words.

    Label-free CBM Sec. 3.1, filter 1 (30 characters): long concepts are compound and hard to
    read or to check in an image. ``None`` disables a limit.
    """
    step = FilterStep("length", {"max_chars": max_chars, "max_words": max_words}, len(vocab), 0)
    keep = []
    for i, c in enumerate(vocab.concepts):
        n_words = len(c.split())
        if max_chars is not None and len(c) > max_chars:
            step.removed.append(Removal(c, "length", float(len(c)),
                                        f"{len(c)} characters > {max_chars}", vocab.classes[i]))
        elif max_words is not None and n_words > max_words:
            step.removed.append(Removal(c, "length", float(n_words),
                                        f"{n_words} words > {max_words}", vocab.classes[i]))
        else:
            keep.append(i)
    return _keep(vocab, keep, step), step


def filter_class_similarity(vocab: Vocabulary, class_names: Sequence[str], *,
                            text_encoder: TextEncoder | None = None, threshold: float = 0.85,
                            substring: bool = True,
                            concept_embeddings: np.ndarray | None = None,
                            class_embeddings: np.ndarray | None = None,
                            ) -> tuple[Vocabulary, FilterStep]:
    """Remove concepts that are (nearly) a class name.

    Label-free CBM Sec. 3.1, filter 2: a concept whose text embedding has cosine >=
    ``threshold`` (0.85 in the paper) to any class name is removed, so the bottleneck cannot
    simply encode the label. With ``substring`` (default) a concept is also removed when it
    holds a class name (or one of its "/" alternatives) as whole words, plural-insensitive
    ("white sneakers" for class "Sneaker"), or is part of one ("boot" for "Ankle boot").
    Embeddings come from ``text_encoder`` or are passed precomputed (``concept_embeddings``:
    K x D; ``class_embeddings``: C x D, one row per class name).
    """
    if isinstance(class_names, str) or len(class_names) == 0:
        raise FilterError("filter_class_similarity needs a non-empty list of class names")
    if not -1.0 <= threshold <= 1.0:
        raise FilterError(f"threshold must be a cosine in [-1, 1], got {threshold}")
    names = [str(c) for c in class_names]
    cemb = _check_embeddings(vocab, concept_embeddings, "concept embeddings")
    sims: np.ndarray | None = None  # K x C cosines
    if class_embeddings is not None or text_encoder is not None:
        if cemb is None:
            if text_encoder is None:
                raise FilterError("class_embeddings given without concept_embeddings or a "
                                  "text_encoder")
            cemb = _encode(text_encoder, vocab.concepts, "concepts")
        if class_embeddings is not None:
            nemb = _unit_rows(class_embeddings, "class embeddings")
            if nemb.shape[0] != len(names):
                raise FilterError(f"class embeddings: {nemb.shape[0]} rows for "
                                  f"{len(names)} classes")
            if nemb.shape[1] != cemb.shape[1]:
                raise FilterError(f"class embeddings have dimension {nemb.shape[1]}, concept "
                                  f"embeddings {cemb.shape[1]}")
            sims = cemb @ nemb.T
        elif text_encoder is not None:
            # a class is as close as its closest spelling ("T-shirt/top", "T-shirt", "top")
            alts = [name_alternatives(n) for n in names]
            flat = _encode(text_encoder, [a for al in alts for a in al], "class names")
            bounds = np.cumsum([0] + [len(al) for al in alts])
            sims = np.stack([(cemb @ flat[bounds[j]:bounds[j + 1]].T).max(axis=1)
                             for j in range(len(names))], axis=1)
    elif cemb is not None:
        raise FilterError("concept_embeddings given without class_embeddings or a text_encoder")
    step = FilterStep("class_similarity", {"threshold": threshold, "substring": substring,
                                           "embedding": sims is not None}, len(vocab), 0)
    keep = []
    for i, c in enumerate(vocab.concepts):
        hit = next((n for n in names if mentions_class(c, n)), None) if substring else None
        if hit is not None:
            step.removed.append(Removal(c, "class_similarity", 1.0,
                                        f"names class {hit!r}", vocab.classes[i]))
            continue
        if sims is not None:
            j = int(np.argmax(sims[i]))
            if sims[i, j] >= threshold:
                step.removed.append(Removal(c, "class_similarity", float(sims[i, j]),
                                            f"cosine {sims[i, j]:.3f} >= {threshold} to class "
                                            f"{names[j]!r}", vocab.classes[i]))
                continue
        keep.append(i)
    return _keep(vocab, keep, step), step


def filter_duplicates(vocab: Vocabulary, *, text_encoder: TextEncoder | None = None,
                      threshold: float = 0.9, keep: Literal["general", "first"] = "general",
                      embeddings: np.ndarray | None = None) -> tuple[Vocabulary, FilterStep]:
    """Remove near-duplicate concepts (cosine >= ``threshold``), keeping one of each pair and
    giving it the removed one's class associations.

    Label-free CBM Sec. 3.1, filter 3 (0.9 in the paper). Which one stays: ``"general"`` (the
    paper's rule) keeps the concept with the higher summed similarity to all concepts, "to keep
    more general concepts"; ``"first"`` keeps the earlier one in vocabulary order (use it when
    the order is a priority, e.g. a hand-ranked list). Pairs are handled from the most similar
    down, so the result does not depend on the vocabulary's order beyond ties.
    """
    if not -1.0 <= threshold <= 1.0:
        raise FilterError(f"threshold must be a cosine in [-1, 1], got {threshold}")
    if keep not in ("general", "first"):
        raise FilterError(f"keep must be 'general' or 'first', got {keep!r}")
    emb = _check_embeddings(vocab, embeddings, "concept embeddings")
    if emb is None:
        if text_encoder is None:
            raise FilterError("filter_duplicates needs a text_encoder or embeddings")
        emb = _encode(text_encoder, vocab.concepts, "concepts")
    sims = emb @ emb.T
    generality = sims.sum(axis=1)
    k = len(vocab)
    iu, ju = np.triu_indices(k, 1)
    mask = sims[iu, ju] >= threshold
    pairs = sorted(zip(sims[iu, ju][mask].tolist(), iu[mask].tolist(), ju[mask].tolist(),
                       strict=True), key=lambda t: (-t[0], t[1], t[2]))
    step = FilterStep("duplicates", {"threshold": threshold, "keep": keep}, k, 0)
    removed: set[int] = set()
    classes = [list(c) for c in vocab.classes]
    for sim, i, j in pairs:
        if i in removed or j in removed:
            continue
        winner, loser = (i, j)
        if keep == "general" and generality[j] > generality[i]:
            winner, loser = j, i
        removed.add(loser)
        classes[winner] = list(dict.fromkeys([*classes[winner], *classes[loser]]))
        step.removed.append(Removal(vocab.concepts[loser], "duplicates", float(sim), "",
                                    list(vocab.classes[loser]), kept=vocab.concepts[winner]))
    # a kept concept may lose a later, weaker pair itself: name the final keeper in the report
    index = {c: i for i, c in enumerate(vocab.concepts)}
    merged_into = {index[r.concept]: index[r.kept] for r in step.removed if r.kept is not None}
    for r in step.removed:
        partner = r.kept
        final = index[r.concept]
        while final in merged_into:
            final = merged_into[final]
        r.kept = vocab.concepts[final]
        r.reason = f"cosine {r.score:.3f} >= {threshold} to {partner!r}"
        if r.kept != partner:
            r.reason += f" (itself merged into {r.kept!r})"
    keep_idx = [i for i in range(k) if i not in removed]
    return _keep(vocab, keep_idx, step, classes), step


def top_k_activation(concept_embeddings: np.ndarray, train_embeddings: np.ndarray,
                     top_k: int = 5, contrast: bool = False) -> np.ndarray:
    """Per concept: the mean of its ``top_k`` highest cosine similarities to the training
    examples (Label-free CBM's "top-5 activation"); with ``contrast``, minus its mean cosine
    over all examples, which scores how much the concept stands out on some examples rather
    than how similar it is to everything (useful on spaces where all cosines are high)."""
    c = _unit_rows(concept_embeddings, "concept embeddings")
    x = _unit_rows(train_embeddings, "training embeddings")
    if c.shape[1] != x.shape[1]:
        raise FilterError(f"concept embeddings have dimension {c.shape[1]} but training "
                          f"embeddings {x.shape[1]}: they must come from one space")
    if top_k < 1:
        raise FilterError(f"top_k must be >= 1, got {top_k}")
    k = min(top_k, x.shape[0])
    scores = x @ c.T  # N x K
    top = -np.sort(-scores, axis=0)[:k]  # k x K
    out = top.mean(axis=0)
    if contrast:
        out = out - scores.mean(axis=0)
    return out.astype(np.float64)


def filter_inactive(vocab: Vocabulary, train_embeddings: np.ndarray, *,
                    text_encoder: TextEncoder | None = None,
                    concept_embeddings: np.ndarray | None = None, template: str = "{}",
                    top_k: int = 5, cutoff: float = 0.25,
                    contrast: bool = False) -> tuple[Vocabulary, FilterStep]:
    """Remove concepts the encoder does not find in the training data.

    Label-free CBM Sec. 3.2: a concept whose mean of its ``top_k`` (5) highest similarities to
    the training examples is below ``cutoff`` (0.25 for CLIP ViT-B/16 in the paper's code) is
    not present in the data, or the encoder cannot see it, and cannot be learned. Scores are
    cosines between ``train_embeddings`` (N x D: image or text embeddings of the training set,
    in the text encoder's space) and the concepts encoded through ``template`` (or
    ``concept_embeddings``, K x D). The right cutoff depends on the space: print the scores
    (the report has them) before choosing one. ``contrast``: see :func:`top_k_activation`.
    """
    emb = _check_embeddings(vocab, concept_embeddings, "concept embeddings")
    if emb is None:
        if text_encoder is None:
            raise FilterError("filter_inactive needs a text_encoder or concept_embeddings")
        if "{}" not in template:
            raise FilterError(f"template {template!r} must contain '{{}}'")
        emb = _encode(text_encoder, [template.format(c) for c in vocab.concepts], "concepts")
    train = np.asarray(train_embeddings, dtype=np.float32)
    if train.ndim != 2 or train.shape[0] == 0:
        raise FilterError(f"training embeddings must be a non-empty N x D array, "
                          f"got shape {train.shape}")
    scores = top_k_activation(emb, train, top_k=top_k, contrast=contrast)
    step = FilterStep("inactive", {"top_k": top_k, "cutoff": cutoff, "contrast": contrast,
                                   "template": template, "n_train": int(train.shape[0])},
                      len(vocab), 0)
    keep = []
    for i, c in enumerate(vocab.concepts):
        if scores[i] < cutoff:
            what = "top-{k} mean{minus} cosine".format(k=top_k,
                                                       minus=" minus mean" if contrast else "")
            step.removed.append(Removal(c, "inactive", float(scores[i]),
                                        f"{what} {scores[i]:.3f} < {cutoff} on "
                                        f"{train.shape[0]} training examples", vocab.classes[i]))
        else:
            keep.append(i)
    return _keep(vocab, keep, step), step


# ---------------------------------------------------------------------------------------------
# all together
# ---------------------------------------------------------------------------------------------

FILTER_ORDER = ("length", "class_similarity", "duplicates", "inactive")


def apply_filters(vocab: Vocabulary, *, text_encoder: TextEncoder | None,
                  class_names: Sequence[str] | None = None,
                  train_embeddings: np.ndarray | None = None,
                  steps: Sequence[str] = FILTER_ORDER, max_chars: int | None = 30,
                  max_words: int | None = None, class_threshold: float = 0.85,
                  substring: bool = True, duplicate_threshold: float = 0.9,
                  keep: Literal["general", "first"] = "general", top_k: int = 5,
                  activation_cutoff: float = 0.25, contrast: bool = False,
                  template: str = "{}") -> tuple[Vocabulary, FilterReport]:
    """Run the Label-free CBM filters in the paper's order and report every removal.

    ``steps`` picks filters from ``("length", "class_similarity", "duplicates", "inactive")``;
    a step whose inputs are missing is skipped and listed in ``report.skipped`` (no
    ``class_names``: no class filter; no ``text_encoder``: class filter by substring only and no
    duplicate filter; no ``train_embeddings``: no activation filter). Concepts and class names
    are encoded once. Raises :class:`FilterError` if a step would remove every concept.
    """
    unknown = [s for s in steps if s not in FILTER_ORDER]
    if unknown:
        raise FilterError(f"unknown filter steps {unknown}; known: {', '.join(FILTER_ORDER)}")
    report = FilterReport(n_input=len(vocab))
    if text_encoder is not None:
        report.encoder = encoder_identity(text_encoder)
    cache: dict[str, np.ndarray] = {}

    def embeddings(v: Vocabulary) -> np.ndarray | None:
        if text_encoder is None:
            return None
        todo = [c for c in v.concepts if c not in cache]
        if todo:
            for c, e in zip(todo, _encode(text_encoder, todo, "concepts"), strict=True):
                cache[c] = e
        return np.stack([cache[c] for c in v.concepts])

    current = vocab
    for name in FILTER_ORDER:
        if name not in steps:
            continue
        if name == "length":
            current, step = filter_length(current, max_chars=max_chars, max_words=max_words)
        elif name == "class_similarity":
            if not class_names:
                report.skipped.append("class_similarity: no class_names given")
                continue
            if text_encoder is None:
                report.skipped.append("class_similarity embedding check: no text_encoder "
                                      "(whole-word class-name check only)")
            current, step = filter_class_similarity(
                current, class_names, text_encoder=text_encoder, threshold=class_threshold,
                substring=substring, concept_embeddings=embeddings(current))
        elif name == "duplicates":
            if text_encoder is None:
                report.skipped.append("duplicates: no text_encoder")
                continue
            current, step = filter_duplicates(current, threshold=duplicate_threshold, keep=keep,
                                              embeddings=embeddings(current))
        else:
            if train_embeddings is None:
                report.skipped.append("inactive: no train_embeddings")
                continue
            if text_encoder is None:
                report.skipped.append("inactive: no text_encoder")
                continue
            pre = embeddings(current) if template == "{}" else None
            current, step = filter_inactive(current, train_embeddings, text_encoder=text_encoder,
                                            concept_embeddings=pre, template=template,
                                            top_k=top_k, cutoff=activation_cutoff,
                                            contrast=contrast)
        report.steps.append(step)
    report.n_output = len(current)
    return current, report
