"""Naming discovered concepts, each name with its score so that weak names are visible.

* ``name_by_text``: nearest vocabulary entries in a joint space (DN-CBM, Rao et al. ECCV 2024,
  section 3.2: a unit's name is the vocabulary word whose text embedding has the highest cosine
  with the unit's decoder direction). Score: that cosine.
* ``name_by_head``: the direction decoded through the model's own output head (for
  EfficientNet, ImageNet classes). Score: the softmax probability of the top class when the
  latent is the concept at a strong activation.
* ``name_by_exemplars``: top-activating inputs or crops (CRAFT's way of showing a concept,
  Fel et al. 2023, fig. 1); when the inputs carry labels, the majority label among them is a
  name too. Score: its share of the exemplars.
* ``name_by_class_mix``: for a model without a text side (EfficientNet), the concept's class
  distribution through the head mapped into a text space as ConSE maps an image (Norouzi et al.,
  ICLR 2014, eq. 1: the probability-weighted mean of the class names' text embeddings), then
  the nearest entry of a naming vocabulary (``name_by_text``). Score: that cosine.

Naming vocabularies (:func:`naming_vocabulary`, chosen by ``run_discover(naming=...)``):
``parts`` (default), the built-in parts-and-attributes list (colours, textures, materials, object
parts, shapes; ``concepts/builtin/parts_attributes.txt`` says where each group comes from), and
``imagenet``, the head's own class names (what EfficientNet was trained on: apt for ImageNet
photos, misleading for parts of sandals, which it calls "oboe" or "corkscrew"). Every name is
returned with the label of the vocabulary it came from (``vocabulary``), which the bank, the
run's metrics and the gallery show beside it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from conceptlab.discover.metrics import cosine_matrix
from conceptlab.errors import ConceptlabValueError
from conceptlab.utils.registry import Registry


class NamingError(ConceptlabValueError):
    """Raised for mismatched vocabularies, directions or codes."""


def name_by_text(directions: np.ndarray, vocab_embeddings: np.ndarray, vocab: Sequence[str],
                 top: int = 3) -> list[dict[str, Any]]:
    """Per direction (K x D), the ``top`` vocabulary entries by cosine in the joint space."""
    E = np.asarray(vocab_embeddings)
    if E.ndim != 2 or len(E) != len(vocab) or len(vocab) == 0:
        raise NamingError(f"{len(vocab)} vocabulary entries but embeddings of shape {E.shape}")
    if np.asarray(directions).shape[1] != E.shape[1]:
        raise NamingError(f"directions have {np.asarray(directions).shape[1]} dims, the text "
                          f"space has {E.shape[1]}: text naming needs a joint space")
    C = cosine_matrix(directions, E)
    out = []
    for row in C:
        idx = np.argsort(-row, kind="stable")[:top]
        out.append({"name": vocab[idx[0]], "score": float(row[idx[0]]),
                    "alternatives": [[vocab[i], float(row[i])] for i in idx]})
    return out


def strong_activation(U: np.ndarray, q: float = 0.99) -> np.ndarray:
    """Per concept, the ``q`` quantile of its positive codes (1.0 when it never fires)."""
    U = np.asarray(U, np.float64)
    out = np.ones(U.shape[1])
    for k in range(U.shape[1]):
        pos = U[:, k][U[:, k] > 0]
        if len(pos):
            out[k] = float(np.quantile(pos, q))
    return out


def head_probabilities(directions: np.ndarray, head: Callable[[torch.Tensor], torch.Tensor],
                       scale: np.ndarray | None = None, base: np.ndarray | None = None
                       ) -> np.ndarray:
    """Class probabilities (K x C) of each concept decoded through the output head: softmax of
    the logits of ``base + scale_k * w_k``.

    ``base`` (default 0) is the latent the concept is added to (e.g. the decoder bias);
    ``scale`` (default 1) its strength, e.g. ``strong_activation(U)``.
    """
    W = np.asarray(directions, np.float32)
    s = np.ones(len(W)) if scale is None else np.asarray(scale, np.float64)
    b = np.zeros(W.shape[1], np.float32) if base is None else np.asarray(base, np.float32)
    latent = torch.from_numpy((b[None] + s[:, None] * W).astype(np.float32))
    with torch.no_grad():
        logits = head(latent)
    return np.asarray(logits.softmax(-1).numpy(), dtype=np.float64)


def names_from_probabilities(probs: np.ndarray, class_names: Sequence[str], top: int = 3
                             ) -> list[dict[str, Any]]:
    """Per concept, its ``top`` classes by probability (the head's own names)."""
    if probs.shape[1] != len(class_names):
        raise NamingError(f"head gives {probs.shape[1]} outputs for {len(class_names)} names")
    out = []
    for p in probs:
        idx = np.argsort(-p, kind="stable")[:top]
        out.append({"name": class_names[idx[0]], "score": float(p[idx[0]]),
                    "alternatives": [[class_names[i], float(p[i])] for i in idx]})
    return out


def name_by_head(directions: np.ndarray, head: Callable[[torch.Tensor], torch.Tensor],
                 class_names: Sequence[str], scale: np.ndarray | None = None,
                 base: np.ndarray | None = None, top: int = 3) -> list[dict[str, Any]]:
    """Decode each concept through the output head (:func:`head_probabilities`) and name it
    after its most probable classes."""
    return names_from_probabilities(head_probabilities(directions, head, scale, base),
                                    class_names, top)


def name_by_exemplars(U: np.ndarray, top: int = 8, labels: Sequence[str] | None = None,
                      item: np.ndarray | None = None) -> list[dict[str, Any]]:
    """Per concept, the rows with the largest codes; with ``labels`` (per input, ``item`` maps
    rows to inputs) the majority label among them and its share."""
    U = np.asarray(U)
    if labels is not None and item is None:
        item = np.arange(len(U))
    out = []
    for k in range(U.shape[1]):
        rows = np.argsort(-U[:, k], kind="stable")[:top]
        entry: dict[str, Any] = {"rows": rows.tolist(), "values": U[rows, k].tolist()}
        if labels is not None and item is not None:
            counts = Counter(labels[int(item[r])] for r in rows)
            name, n = counts.most_common(1)[0]
            entry.update(name=name, score=n / len(rows))
        out.append(entry)
    return out


def unique_names(names: Sequence[str]) -> list[str]:
    """``"c00 sandal"``-style labels: index + name, unique even when names repeat."""
    return [f"c{k:02d} {n}" for k, n in enumerate(names)]


def name_by_class_mix(probs: np.ndarray, class_embeddings: np.ndarray,
                      vocab_embeddings: np.ndarray, vocab: Sequence[str], top: int = 3
                      ) -> list[dict[str, Any]]:
    """ConSE naming: each concept's class distribution (K x C) mixes the classes' text
    embeddings (C x D) into one text-space vector (Norouzi et al. 2014, eq. 1, over all
    classes), named by its nearest vocabulary entries (:func:`name_by_text`)."""
    P = np.asarray(probs, np.float64)
    E = np.asarray(class_embeddings, np.float64)
    if P.ndim != 2 or E.ndim != 2 or P.shape[1] != len(E):
        raise NamingError(f"class probabilities {P.shape} do not match class embeddings "
                          f"{E.shape}")
    mix = P @ E
    mix /= np.maximum(np.linalg.norm(mix, axis=1, keepdims=True), 1e-12)
    return name_by_text(mix, vocab_embeddings, vocab, top=top)


@dataclass(frozen=True)
class NamingVocabulary:
    """Where discovered concepts' names come from: ``key`` (the option value), ``label`` (shown
    beside every name), ``source`` (provenance) and ``entries`` (empty for the head's classes,
    which come with the model)."""

    key: str
    label: str
    source: str
    entries: tuple[str, ...] = ()
    uses_head: bool = False


#: option value -> a builder of the vocabulary it names concepts from (the default first; each
#: builder's docstring says what it is); a new vocabulary is one ``@NAMING_VOCABULARIES.register``
NAMING_VOCABULARIES: Registry[Callable[[], NamingVocabulary]] = Registry("naming vocabulary",
                                                                         NamingError)
DEFAULT_NAMING = "parts"


@NAMING_VOCABULARIES.register("parts")
def parts_naming() -> NamingVocabulary:
    """The built-in parts-and-attributes vocabulary (colours, textures, materials, object
    parts, shapes), reached from the concept's class distribution by ConSE."""
    from conceptlab.concepts.builtin import builtin_vocabulary

    vocab = builtin_vocabulary("parts-attributes")
    return NamingVocabulary("parts", "parts-attributes", vocab.source, tuple(vocab.concepts))


@NAMING_VOCABULARIES.register("imagenet")
def head_naming() -> NamingVocabulary:
    """The model head's own class names (ImageNet-1k for EfficientNet-Lite0)."""
    return NamingVocabulary("imagenet", "head classes", "the model's output head",
                            uses_head=True)


def naming_vocabulary(name: str = DEFAULT_NAMING) -> NamingVocabulary:
    """The naming vocabulary called ``name`` (see :data:`NAMING_VOCABULARIES`); an unknown
    name is a ``NamingError`` naming the close and the known ones."""
    return NAMING_VOCABULARIES.lookup(str(name).strip().lower(), shown=name)()


TextEmbedder = Callable[[Sequence[str]], np.ndarray]


def minilm_embedder() -> TextEmbedder:
    """Texts -> MiniLM embeddings (the packaged all-MiniLM-L6-v2, ConSE's text side), loaded on
    first use and kept in the default activation cache (as ConSE keeps its class prompts), so
    the 1000 ImageNet names are encoded once per machine, not once per run."""
    from conceptlab.cache import ActivationCache, CacheKey
    from conceptlab.encoders.base import build_encoder
    from conceptlab.utils.hashing import hash_json

    encoders: list[Any] = []

    def embed(texts: Sequence[str]) -> np.ndarray:
        if not encoders:
            encoders.append(build_encoder("minilm"))
        encoder = encoders[0]
        items = list(texts)
        key = CacheKey(encoder=encoder.cache_fingerprint("text"), data=hash_json(items),
                       extra="naming-texts")
        views = ActivationCache().get_or_compute(
            key, len(items), lambda a, b: {"embedding": encoder.encode_texts(items[a:b])})
        return np.asarray(views["embedding"])

    return embed


@dataclass
class ConceptNamer:
    """Names concepts from one :class:`NamingVocabulary`; text vocabularies need ``embed``
    (texts -> vectors of one text space; default :func:`minilm_embedder`)."""

    vocabulary: NamingVocabulary
    embed: TextEmbedder | None = None
    _cache: dict[tuple[str, ...], np.ndarray] = field(default_factory=dict, repr=False)

    def _embedded(self, texts: Sequence[str]) -> np.ndarray:
        key = tuple(texts)
        if key not in self._cache:
            if self.embed is None:
                self.embed = minilm_embedder()
            self._cache[key] = np.asarray(self.embed(list(texts)), np.float64)
        return self._cache[key]

    def name(self, probs: np.ndarray, class_names: Sequence[str], top: int = 3
             ) -> list[dict[str, Any]]:
        """Names (with score, alternatives and ``vocabulary``) of concepts whose class
        distributions through the model's head are ``probs`` (K x C)."""
        if self.vocabulary.uses_head:
            out = names_from_probabilities(np.asarray(probs), class_names, top)
            method = "head"
        else:
            out = name_by_class_mix(probs, self._embedded(class_names),
                                    self._embedded(self.vocabulary.entries),
                                    self.vocabulary.entries, top)
            method = "conse"
        return [{**o, "vocabulary": self.vocabulary.label, "method": method} for o in out]

    def record(self) -> dict[str, Any]:
        """What the run and the bank record about the names."""
        v = self.vocabulary
        return {"vocabulary": v.label, "option": v.key, "source": v.source,
                "n_entries": len(v.entries) or None,
                "method": "head classes" if v.uses_head else
                "ConSE class mix (Norouzi et al. 2014) -> nearest entry by cosine (MiniLM)"}
