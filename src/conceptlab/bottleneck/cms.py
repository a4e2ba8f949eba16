"""Concept Matrix Search (CMS): training-free classification through concept similarities.

Semenov et al. 2024, "Sparse Concept Bottleneck Models: Gumbel Tricks in Contrastive
Learning", section "Concept Matrix Search". Two matrices over the same K concepts:

* ``V`` (N x K), the image-concept matrix: ``V[i, k] = cos(image_i, concept_k)`` in a joint
  image-text space;
* ``T`` (C x K), the class-concept matrix: ``T[c, k] = cos(text(class_c), concept_k)`` (or a
  binary class-concept association matrix, e.g. which concepts a language model listed for
  which class).

Two decision rules (the reference code calls them "similarity score" and "max score"):

* cosine rule: ``y_i = argmax_c  <V_i, T_c> / (||V_i|| ||T_c||)``;
* top-concept rule: ``y_i = argmax_c  T[c, argmax_k V[i, k]]``.

The reference code (Andron00e/SparseCBM, ``additional_evaluations/cms_scores.ipynb``) has two
forms, and reports the mean per-class accuracy of each. Its primary one
(``get_dot_prods_matrix``) divides each *row* of ``V`` and of ``T`` by its sum (+ 1e-8):
``cms_rowsum_predict``, ``cms --rule ref``; it is inductive. Its second one divides each
*column* of ``V`` by its sum over all test images and each column of ``T`` by its sum over all
classes: ``cms_reference_predict``; normalising ``V`` by statistics of the whole test set makes
it transductive (one image's prediction depends on the others), so it is marked so wherever
reported. The rules below, without any normalisation, are what conceptlab uses by default.
Optional variants, off by default: ``center="row"`` subtracts each
row's mean before the cosine (a Pearson correlation; useful when every similarity carries the
same large offset, as CLIP cosines do), and ``class_norm`` rescales class rows for the
top-concept rule (``"sum"`` divides each row by its sum, ``"zscore"`` standardises each row) so
that a class whose name is similar to everything does not win every concept.

Both rules only read arrays; the caller computes the similarities (``class_concept_similarities``
helps with that).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from conceptlab.errors import ConceptlabValueError

Center = Literal["none", "row"]
ClassNorm = Literal["none", "sum", "zscore"]


def _as_matrix(a: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(a)
    if arr.dtype == bool:
        arr = arr.astype(np.float64)
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ConceptlabValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ConceptlabValueError(f"{name} must be a non-empty 2-D matrix, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ConceptlabValueError(f"{name} contains NaN or infinity")
    return arr


def _check_pair(image_concept_sims: np.ndarray,
                class_concept_sims: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    V = _as_matrix(image_concept_sims, "image_concept_sims")
    T = _as_matrix(class_concept_sims, "class_concept_sims")
    if V.shape[1] != T.shape[1]:
        raise ConceptlabValueError(f"image_concept_sims has {V.shape[1]} concepts but "
                                   f"class_concept_sims "
                         f"has {T.shape[1]}")
    if T.shape[0] < 2:
        raise ConceptlabValueError(f"class_concept_sims needs at least 2 classes, got {T.shape[0]}")
    return V, T


def cms_cosine_scores(image_concept_sims: np.ndarray, class_concept_sims: np.ndarray, *,
                      center: Center = "none") -> np.ndarray:
    """Cosine between each image's concept-similarity row and each class's row (N x C).

    ``score[i, c] = <V_i, T_c> / (||V_i|| ||T_c||)`` after optional row centring. A class row
    of zeros (a class with no associated concept) scores ``-inf``, so it is never predicted; an
    image row of zeros scores 0 for every class.
    """
    V, T = _check_pair(image_concept_sims, class_concept_sims)
    if center == "row":
        V = V - V.mean(axis=1, keepdims=True)
        T = T - T.mean(axis=1, keepdims=True)
    elif center != "none":
        raise ConceptlabValueError(f"center must be 'none' or 'row', got {center!r}")
    v_norm = np.linalg.norm(V, axis=1, keepdims=True)
    t_norm = np.linalg.norm(T, axis=1)
    Vn = V / np.where(v_norm > 0, v_norm, 1.0)
    scores = (Vn @ T.T) / np.where(t_norm > 0, t_norm, 1.0)
    scores[:, t_norm == 0] = -np.inf
    return scores


def cms_predict_cosine(image_concept_sims: np.ndarray, class_concept_sims: np.ndarray, *,
                       center: Center = "none") -> np.ndarray:
    """CMS cosine rule: ``argmax_c cos(V_i, T_c)`` per image (N,), ties to the lowest class."""
    return cms_cosine_scores(image_concept_sims, class_concept_sims,
                             center=center).argmax(axis=1).astype(np.int64)


def _normalize_classes(T: np.ndarray, class_norm: ClassNorm) -> np.ndarray:
    if class_norm == "none":
        return T
    if class_norm == "sum":
        sums = T.sum(axis=1, keepdims=True)
        if (sums <= 0).any():
            bad = np.flatnonzero(sums[:, 0] <= 0)[:5].tolist()
            raise ConceptlabValueError(f"class_norm='sum' needs positive row sums; classes {bad} "
                                       f"have "
                             "sums <= 0 (use 'zscore')")
        return T / sums
    if class_norm == "zscore":
        std = T.std(axis=1, keepdims=True)
        return (T - T.mean(axis=1, keepdims=True)) / np.where(std > 0, std, 1.0)
    raise ConceptlabValueError(f"class_norm must be 'none', 'sum' or 'zscore', got {class_norm!r}")


def cms_predict_top_concept(image_concept_sims: np.ndarray, class_concept_sims: np.ndarray, *,
                            class_norm: ClassNorm = "none") -> np.ndarray:
    """CMS top-concept rule: the class that matches the image's most similar concept best (N,).

    ``k_i = argmax_k V[i, k]`` (ties: lowest concept index), then ``argmax_c T'[c, k_i]`` with
    ``T'`` the class matrix after ``class_norm``. Several classes can tie on one concept (always
    so with a binary association matrix): the tie goes to the tied class with the highest
    cosine-rule score for that image, then to the lowest class index.
    """
    V, T = _check_pair(image_concept_sims, class_concept_sims)
    Tn = _normalize_classes(T, class_norm)
    top = V.argmax(axis=1)
    column = Tn[:, top].T  # N x C: each class's match to the image's top concept
    best = column.max(axis=1, keepdims=True)
    tied = column >= best
    if (tied.sum(axis=1) > 1).any():
        cos = cms_cosine_scores(V, T)
        tie_break = np.where(tied, cos, -np.inf)
        # all tied classes may score -inf on the cosine (all-zero rows): fall back to the first
        fallback = tied.argmax(axis=1)
        pick = tie_break.argmax(axis=1)
        ok = np.isfinite(tie_break.max(axis=1))
        return np.where(ok, pick, fallback).astype(np.int64)
    return column.argmax(axis=1).astype(np.int64)


def class_concept_similarities(class_embeddings: np.ndarray,
                               concept_vectors: np.ndarray) -> np.ndarray:
    """``T[c, k] = cos(class_embeddings[c], concept_vectors[k])`` (C x K), e.g. from
    ``baselines.zeroshot.build_class_embeddings`` and ``ConceptBank.vectors``."""
    A = _as_matrix(class_embeddings, "class_embeddings")
    B = _as_matrix(concept_vectors, "concept_vectors")
    if A.shape[1] != B.shape[1]:
        raise ConceptlabValueError(f"class embeddings have dimension {A.shape[1]}, concepts "
                                   f"{B.shape[1]}")
    na, nb = np.linalg.norm(A, axis=1, keepdims=True), np.linalg.norm(B, axis=1, keepdims=True)
    if (na == 0).any() or (nb == 0).any():
        raise ConceptlabValueError("zero-length class or concept vector")
    return ((A / na) @ (B / nb).T).astype(np.float32)


def cms_reference_predict(image_concept_sims: np.ndarray, class_concept_sims: np.ndarray, *,
                          rule: Literal["cosine", "top-concept"] = "cosine") -> np.ndarray:
    """The reference notebook's second CMS form: column-normalised ``V`` and ``T``, then
    ``rule`` (N,).

    ``V[:, k] /= sum_i V[i, k]`` (over every test image: **transductive**) and
    ``T[:, k] /= sum_c T[c, k]`` (over classes). Columns with a non-positive sum are left as
    they are (the reference would divide by it; a cosine column summing to <= 0 does not occur
    with CLIP similarities but can with centred ones).
    """
    V, T = _check_pair(image_concept_sims, class_concept_sims)
    vs, ts = V.sum(axis=0, keepdims=True), T.sum(axis=0, keepdims=True)
    V = V / np.where(vs > 0, vs, 1.0)
    T = T / np.where(ts > 0, ts, 1.0)
    if rule == "cosine":
        return cms_predict_cosine(V, T)
    if rule == "top-concept":
        return cms_predict_top_concept(V, T)
    raise ConceptlabValueError(f"rule must be 'cosine' or 'top-concept', got {rule!r}")


def cms_rowsum_predict(image_concept_sims: np.ndarray, class_concept_sims: np.ndarray, *,
                       rule: Literal["cosine", "top-concept"] = "cosine",
                       eps: float = 1e-8) -> np.ndarray:
    """The reference notebook's primary CMS (``cms --rule ref``): row-normalised ``V`` and
    ``T``, then ``rule`` (N,).

    Andron00e/SparseCBM, ``additional_evaluations/cms_scores.ipynb``,
    ``get_dot_prods_matrix`` (each row of the cosine matrix divided by ``its sum + 1e-8``)
    and ``calculate_similarity_score_accuracy_for_class`` / ``calculate_max_score_accuracy_
    for_class`` (cosine of rows, argmax; or the class with the largest ``T`` entry at the
    image's largest concept). Each image is normalised by its own row only, so this form is
    inductive. Ties go to the lowest index (``torch.argmax``); a row whose sum is negative
    flips sign, as in the notebook.
    """
    V, T = _check_pair(image_concept_sims, class_concept_sims)
    V = V / (V.sum(axis=1, keepdims=True) + eps)
    T = T / (T.sum(axis=1, keepdims=True) + eps)
    if rule == "cosine":
        v_norm = np.linalg.norm(V, axis=1, keepdims=True)
        t_norm = np.linalg.norm(T, axis=1)
        return ((V @ T.T) / (v_norm * t_norm[None, :])).argmax(axis=1).astype(np.int64)
    if rule == "top-concept":
        return T[:, V.argmax(axis=1)].argmax(axis=0).astype(np.int64)
    raise ConceptlabValueError(f"rule must be 'cosine' or 'top-concept', got {rule!r}")
