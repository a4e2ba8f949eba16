"""Zero-shot classification in a joint embedding space (Radford et al. 2021, "Learning
Transferable Visual Models From Natural Language Supervision", Sec. 3.1).

Each class gets a text embedding ``t_c``; an input with embedding ``x`` is assigned
``argmax_c cos(x, t_c)``. With several prompt templates, ``t_c`` is the mean of the
L2-normalised embeddings of ``template.format(class_name)`` over the templates, normalised
again (CLIP's prompt ensembling, Sec. 3.1.4: averaging in embedding space costs one embedding
per class at prediction time).

Prompt wording matters a lot on some spaces (OFFLINE.md measured 34% vs 22% zero-shot on
Fashion-MNIST with the ConSE proxy for "{}" vs "a photo of a {}."), so the template set is an
explicit, recorded choice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from conceptlab.errors import ConceptlabValueError

#: named template lists; each template has exactly one "{}" for the class name
TEMPLATE_SETS: dict[str, tuple[str, ...]] = {
    "plain": ("{}",),
    "photo": ("a photo of a {}.",),
    "ensemble": (
        "{}",
        "a photo of a {}.",
        "a photo of the {}.",
        "a close-up photo of a {}.",
        "a cropped photo of a {}.",
        "a bright photo of a {}.",
        "a dark photo of a {}.",
        "a photo of a small {}.",
        "a photo of a large {}.",
    ),
    # the seven ImageNet templates the CLIP authors' prompt-engineering notebook kept
    "clip7": (
        "itap of a {}.",
        "a bad photo of the {}.",
        "a origami {}.",
        "a photo of the large {}.",
        "a {} in a video game.",
        "art of the {}.",
        "a photo of the small {}.",
    ),
}


@runtime_checkable
class TextEncoder(Protocol):
    """Anything that maps a list of strings to an (N, D) array (every conceptlab Encoder)."""

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray: ...


def get_templates(templates: str | Sequence[str]) -> list[str]:
    """A named template set (``"plain"``, ``"photo"``, ``"ensemble"``, ``"clip7"``) or a list of
    templates, checked: non-empty, each with exactly one ``{}``."""
    if isinstance(templates, str):
        if templates not in TEMPLATE_SETS:
            raise ConceptlabValueError(f"unknown template set {templates!r}; known: "
                             f"{', '.join(TEMPLATE_SETS)} (pass a list for custom templates)")
        return list(TEMPLATE_SETS[templates])
    out = [str(t) for t in templates]
    if not out:
        raise ConceptlabValueError("no prompt templates given")
    for t in out:
        if t.count("{}") != 1:
            raise ConceptlabValueError(f"template {t!r} must contain exactly one '{{}}' for the "
                                       f"class name")
    return out


def _normalize_rows(a: np.ndarray, what: str) -> np.ndarray:
    norms = np.linalg.norm(a, axis=1, keepdims=True)
    if (norms == 0).any():
        raise ConceptlabValueError(f"{what} contains zero-length vectors (rows "
                         f"{np.flatnonzero(norms[:, 0] == 0)[:5].tolist()})")
    return a / norms


def build_class_embeddings(text_encoder: TextEncoder, class_names: Sequence[str],
                           templates: str | Sequence[str] = "plain") -> np.ndarray:
    """Prompt-ensembled class embeddings (C x D float32, unit rows).

    All ``C * T`` prompts go to ``text_encoder.encode_texts`` in one call (class-major order);
    each prompt embedding is L2-normalised, averaged over the templates of its class, and the
    mean is normalised again (CLIP, Sec. 3.1.4).
    """
    if isinstance(class_names, str):
        raise ConceptlabValueError("class_names must be a list of names, not one string")
    names = [str(n) for n in class_names]
    if not names:
        raise ConceptlabValueError("no class names given")
    if any(not n.strip() for n in names):
        raise ConceptlabValueError("class names must be non-empty strings")
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise ConceptlabValueError(f"duplicate class names: {dupes[:5]}")
    temps = get_templates(templates)
    prompts = [t.format(n) for n in names for t in temps]
    emb = np.asarray(text_encoder.encode_texts(prompts), dtype=np.float64)
    if emb.ndim != 2 or emb.shape[0] != len(prompts):
        raise ConceptlabValueError(f"text encoder returned shape {emb.shape} for {len(prompts)} "
                                   f"prompts")
    if not np.isfinite(emb).all():
        raise ConceptlabValueError("text encoder returned NaN or infinity")
    emb = _normalize_rows(emb, "prompt embeddings")
    mean = emb.reshape(len(names), len(temps), -1).mean(axis=1)
    return _normalize_rows(mean, "averaged class embeddings").astype(np.float32)


def zero_shot_scores(embeddings: np.ndarray, class_text_embeddings: np.ndarray) -> np.ndarray:
    """Cosine similarity of every input to every class embedding (N x C)."""
    X = np.asarray(embeddings, dtype=np.float64)
    T = np.asarray(class_text_embeddings, dtype=np.float64)
    if X.ndim != 2 or T.ndim != 2:
        raise ConceptlabValueError(f"embeddings {X.shape} and class embeddings {T.shape} must be "
                                   f"2-D")
    if X.shape[1] != T.shape[1]:
        raise ConceptlabValueError(f"embeddings have dimension {X.shape[1]} but class embeddings "
                         f"{T.shape[1]}")
    if T.shape[0] < 2:
        raise ConceptlabValueError(f"zero-shot needs at least 2 classes, got {T.shape[0]}")
    if not (np.isfinite(X).all() and np.isfinite(T).all()):
        raise ConceptlabValueError("embeddings contain NaN or infinity")
    return (_normalize_rows(X, "embeddings") @ _normalize_rows(T, "class embeddings").T
            ).astype(np.float32)


def zero_shot_predict(embeddings: np.ndarray, class_text_embeddings: np.ndarray) -> np.ndarray:
    """``argmax_c cos(x_i, t_c)`` per input (N,), int64; ties go to the lowest class index."""
    return zero_shot_scores(embeddings, class_text_embeddings).argmax(axis=1).astype(np.int64)
