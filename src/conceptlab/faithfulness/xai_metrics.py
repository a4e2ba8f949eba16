"""The three metrics of "Concept-Based Explainable Artificial Intelligence: Metrics and
Benchmarks" (Aysel, Cai and Prugel-Bennett, arXiv:2501.19271, 2025), with its concept
activation mapping (CoAM), for the concept bottleneck models conceptlab fits.

Notation (the paper's): ``L`` concepts, ``K`` classes; ``theta`` the ``L x K`` weights of the
linear head on the concept activations ``u_hat`` (``L`` per image); ``u`` the 0/1 ground-truth
concept labels, ``Lambda_i`` the concepts present in image ``i``; ``p_ij`` the pixel where
concept ``j`` lies in image ``i``; ``E_i`` the ``H x W x d`` feature map before global average
pooling.

* **Concept global importance metric (CGIM)**, per concept ``j``: the cosine ``phi`` between
  row ``j`` of a model matrix and row ``j`` of ``V``, the ground-truth concept-class matrix
  (``V_jk``: share of class ``k``'s training images showing concept ``j``). Three model matrices:
  CGIM1 the head weights ``theta``; CGIM2 ``U*``, the mean concept activation of the correctly
  classified test images of each class; CGIM3 ``theta * U*`` (element-wise).
* **Concept existence metric (CEM@l)**, per image: the concepts ranked by their local
  importance for the predicted class ``k``, ``theta_jk * u_hat_ij``; the share of the top ``l``
  that are present in the image (in ``Lambda_i``).
* **Concept location metric (CLM@l, alpha)**, per image: for the same top ``l`` concepts, the
  share whose true location ``p_ij`` falls inside ``Omega_ij``, the ``alpha * M1 * M2 / 12``
  most activated pixels of the concept's CoAM upsampled to the ``M1 x M2`` image (the paper's
  ``/12``: CUB's 12 part locations). A concept absent from the image has no location and
  counts as a miss, so CLM@l <= CEM@l.
* **CoAM**: ``F_ij = (1/d) sum_k c_jk E_i(:, :, k)``, the concept's direction ``c_j`` in the
  feature space applied at every position of the pre-pooling map.

The paper's numbers are means over test images (all, or only the correctly classified ones);
:func:`xai_metrics` returns both. Source of the definitions: the paper's section 3 as
transcribed in a public summary of arXiv:2501.19271 (the paper's code was not found public);
where that transcription was silent (absent concepts in CLM) the choice is stated above.

For a CBM on a caption-trained linear map (``linear:`` encoders, ``conceptlab align``) the
concept's direction in the backbone's feature space is exact: unit values are affine in the
embedding ``e = normalize(((f - mu) / sigma) W + b)``, so unit ``j`` grows along
``c_j = (W d_j) / sigma`` in ``f``; the per-image normalisation and all offsets are the same at
every position of one image, and do not move the top pixels of its map
(:func:`feature_directions`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from conceptlab.errors import ComputeError, ConceptlabValueError

#: the paper's location denominator: CUB's 12 annotated part locations
PARTS_DENOMINATOR = 12


class XAIMetricError(ConceptlabValueError):
    """Inputs of mismatched shapes or out of range for the concept-XAI metrics."""


def _matrix(a: Any, name: str, ndim: int = 2, dtype: Any = np.float64) -> np.ndarray:
    arr = np.asarray(a, dtype=dtype)
    if arr.ndim != ndim:
        raise XAIMetricError(f"{name} must be {ndim}-D, got shape {arr.shape}")
    return arr


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine of each row of ``a`` with the same row of ``b`` (NaN where a row is all zero)."""
    a, b = _matrix(a, "a"), _matrix(b, "b")
    if a.shape != b.shape:
        raise XAIMetricError(f"cosine of rows: shapes differ ({a.shape} vs {b.shape})")
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (a * b).sum(1) / (na * nb)
    out[(na == 0) | (nb == 0)] = np.nan
    return out


def concept_class_matrix(concepts: Any, labels: Any, n_classes: int) -> np.ndarray:
    """``V`` (L x K): the share of each class's images that show each concept (ground truth,
    from the training split)."""
    U = _matrix(concepts, "concepts")
    y = np.asarray(labels, dtype=np.int64)
    if len(y) != len(U):
        raise XAIMetricError(f"{len(U)} concept rows but {len(y)} labels")
    if len(y) and (y.min() < 0 or y.max() >= n_classes):
        raise XAIMetricError(f"labels must lie in [0, {n_classes})")
    V = np.zeros((U.shape[1], n_classes))
    for k in range(n_classes):
        rows = U[y == k]
        if len(rows):
            V[:, k] = rows.mean(0)
    return V


def class_mean_activations(activations: Any, labels: Any, predictions: Any,
                           n_classes: int) -> np.ndarray:
    """``U*`` (L x K): per class, the mean concept activation of its correctly classified
    images (a class with none gets zeros)."""
    H = _matrix(activations, "activations")
    y, p = np.asarray(labels, dtype=np.int64), np.asarray(predictions, dtype=np.int64)
    if not len(y) == len(p) == len(H):
        raise XAIMetricError(f"{len(H)} activation rows, {len(y)} labels, {len(p)} predictions")
    out = np.zeros((H.shape[1], n_classes))
    for k in range(n_classes):
        rows = H[(y == k) & (p == k)]
        if len(rows):
            out[:, k] = rows.mean(0)
    return out


def global_importance(theta: Any, V: Any, mean_activations: Any) -> dict[str, np.ndarray]:
    """CGIM1, CGIM2, CGIM3 per concept (see the module docstring); ``theta``, ``V`` and
    ``mean_activations`` (``U*``) are all L x K."""
    th, v, m = _matrix(theta, "theta"), _matrix(V, "V"), _matrix(mean_activations, "U*")
    if not th.shape == v.shape == m.shape:
        raise XAIMetricError(f"theta {th.shape}, V {v.shape} and U* {m.shape} must all be "
                             "concepts x classes")
    return {"cgim1": cosine_rows(th, v), "cgim2": cosine_rows(m, v),
            "cgim3": cosine_rows(th * m, v)}


def local_importance(theta: Any, activations: Any, predictions: Any) -> np.ndarray:
    """``theta_jk * u_hat_ij`` for each image's predicted class ``k`` (N x L)."""
    th, H = _matrix(theta, "theta"), _matrix(activations, "activations")
    p = np.asarray(predictions, dtype=np.int64)
    if H.shape[1] != th.shape[0] or len(p) != len(H):
        raise XAIMetricError(f"theta {th.shape}, activations {H.shape}, {len(p)} predictions")
    if len(p) and (p.min() < 0 or p.max() >= th.shape[1]):
        raise XAIMetricError("predictions out of the head's class range")
    return th[:, p].T * H


def ranking(importance: Any) -> np.ndarray:
    """Concept indices per image, most important first (stable on ties) (N x L)."""
    return np.argsort(-_matrix(importance, "importance"), axis=1, kind="stable")


def _check_l(l_top: int, n_concepts: int) -> None:
    if not 1 <= l_top <= n_concepts:
        raise XAIMetricError(f"l must be in [1, {n_concepts}], got {l_top}")


def concept_existence(importance: Any, present: Any, l_top: int) -> np.ndarray:
    """CEM@l per image: the share of its ``l`` most important concepts present in it."""
    imp = _matrix(importance, "importance")
    pres = np.asarray(present).astype(bool)
    if pres.shape != imp.shape:
        raise XAIMetricError(f"present {pres.shape} must match importance {imp.shape}")
    _check_l(l_top, imp.shape[1])
    top = ranking(imp)[:, :l_top]
    return np.take_along_axis(pres, top, axis=1).mean(1)


def coam(feature_maps: Any, directions: Any) -> np.ndarray:
    """Concept activation maps: ``(1/d) sum_k c_jk E(:, :, k)`` for maps ``E`` (N x H x W x d)
    and directions ``c`` (L x d); returns N x H x W x L."""
    E = _matrix(feature_maps, "feature maps", ndim=4, dtype=np.float32)
    C = _matrix(directions, "directions", dtype=np.float32)
    if C.shape[1] != E.shape[3]:
        raise XAIMetricError(f"directions are {C.shape[1]}-d, the maps have {E.shape[3]} "
                             "channels")
    return np.asarray(E @ C.T / E.shape[3])


def upsample(maps: Any, size: tuple[int, int]) -> np.ndarray:
    """Bilinear upsampling (align_corners=False) of N x h x w x L maps to N x M1 x M2 x L."""
    import torch

    m = _matrix(maps, "maps", ndim=4, dtype=np.float32)
    t = torch.from_numpy(np.ascontiguousarray(m.transpose(0, 3, 1, 2)))
    up = torch.nn.functional.interpolate(t, size=size, mode="bilinear", align_corners=False)
    return up.numpy().transpose(0, 2, 3, 1)


def top_region(concept_map: np.ndarray, alpha: float) -> np.ndarray:
    """``Omega``: a boolean mask of the ``alpha * M1 * M2 / 12`` most activated pixels (ties
    broken by pixel order, so the region has exactly that many pixels)."""
    if alpha <= 0:
        raise XAIMetricError(f"alpha must be > 0, got {alpha}")
    flat = np.asarray(concept_map, dtype=np.float64).reshape(-1)
    n = min(len(flat), max(1, round(alpha * len(flat) / PARTS_DENOMINATOR)))
    mask = np.zeros(len(flat), dtype=bool)
    mask[np.argsort(-flat, kind="stable")[:n]] = True
    return mask.reshape(np.shape(concept_map))


def concept_location(maps: Any, importance: Any, present: Any, locations: Any, l_top: int,
                     alpha: float) -> np.ndarray:
    """CLM@l per image: of its ``l`` most important concepts, the share present in it whose
    location (``locations``: N x L x 2, row and column in pixels of the M1 x M2 image) lies in
    the top ``alpha/12`` of the concept's upsampled map (``maps``: N x M1 x M2 x L)."""
    M = _matrix(maps, "maps", ndim=4, dtype=np.float32)
    imp = _matrix(importance, "importance")
    pres = np.asarray(present).astype(bool)
    loc = np.asarray(locations, dtype=np.float64)
    n, m1, m2, n_concepts = M.shape
    if imp.shape != (n, n_concepts) or pres.shape != imp.shape or loc.shape != (n, n_concepts, 2):
        raise XAIMetricError(f"maps {M.shape}, importance {imp.shape}, present {pres.shape}, "
                             f"locations {loc.shape} disagree")
    _check_l(l_top, n_concepts)
    top = ranking(imp)[:, :l_top]
    out = np.zeros(n)
    for i in range(n):
        hits = 0
        for j in top[i]:
            if not pres[i, j]:
                continue
            r, c = (int(np.clip(np.floor(v), 0, s - 1)) for v, s in zip(loc[i, j], (m1, m2),
                                                                          strict=True))
            hits += bool(top_region(M[i, :, :, j], alpha)[r, c])
        out[i] = hits / l_top
    return out


def feature_directions(unit_values: Callable[[np.ndarray], np.ndarray], W: np.ndarray,
                       sigma: np.ndarray, *, check_seed: int = 0) -> np.ndarray:
    """Each unit's direction in the backbone's feature space through a linear map
    ``e = normalize(((f - mu) / sigma) W + b)`` (L x d_img), for a model whose unit values are
    affine in the unit-norm ``e`` (``unit_values``: N x d_text -> N x L; probed on the basis
    vectors and checked on random unit vectors; conceptlab's CBMs normalise ``e`` themselves,
    which changes nothing on the unit sphere)."""
    W = np.asarray(W, dtype=np.float64)
    sigma = np.asarray(sigma, dtype=np.float64).reshape(-1)
    d_text = W.shape[1]
    zero = np.asarray(unit_values(np.zeros((1, d_text), np.float32)), dtype=np.float64)
    D = np.asarray(unit_values(np.eye(d_text, dtype=np.float32)), dtype=np.float64) - zero
    rng = np.random.default_rng(check_seed)
    x = rng.normal(size=(3, d_text))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)  # e is unit-norm
    got = np.asarray(unit_values(x), dtype=np.float64)
    want = x @ D + zero
    if not np.allclose(got, want, rtol=1e-3, atol=1e-3 * max(1.0, float(np.abs(got).max()))):
        raise ComputeError("the model's unit values are not affine in its embedding (a "
                           "non-linear concept layer): CoAM needs a linear concept direction")
    return np.asarray((W @ D) / sigma[:, None]).T


def summarize(values: Sequence[float] | np.ndarray) -> float:
    """The mean of the defined values (NaN when none is)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(v.mean()) if len(v) else float("nan")


def xai_metrics(theta: Any, activations: Any, labels: Any, predictions: Any, present: Any,
                V: Any, *, maps: Any = None, locations: Any = None,
                ls: Sequence[int] = (1, 3), alphas: Sequence[float] = (1.0, 3.0, 6.0)
                ) -> dict[str, Any]:
    """All three metrics for one model on one test set, as the paper reports them: CGIM1-3
    (mean over concepts, and per concept), CEM@l and CLM@l,alpha (means over all test images
    and over the correctly classified ones). ``maps`` (N x M1 x M2 x L, upsampled CoAMs) and
    ``locations`` (N x L x 2) are needed for CLM only."""
    th = _matrix(theta, "theta")
    H = _matrix(activations, "activations")
    y = np.asarray(labels, dtype=np.int64)
    p = np.asarray(predictions, dtype=np.int64)
    K = th.shape[1]
    cg = global_importance(th, V, class_mean_activations(H, y, p, K))
    imp = local_importance(th, H, p)
    right = y == p
    out: dict[str, Any] = {
        "n_images": len(y), "n_correct": int(right.sum()), "n_concepts": th.shape[0],
        **{k: summarize(v) for k, v in cg.items()},
        "per_concept": {k: [None if not np.isfinite(x) else float(x) for x in v]
                        for k, v in cg.items()}}
    for l_top in ls:
        cem = concept_existence(imp, present, l_top)
        out[f"cem@{l_top}"] = summarize(cem)
        out[f"cem@{l_top}_correct"] = summarize(cem[right])
        if maps is None or locations is None:
            continue
        for a in alphas:
            clm = concept_location(maps, imp, present, locations, l_top, a)
            out[f"clm@{l_top},a={a:g}"] = summarize(clm)
            out[f"clm@{l_top},a={a:g}_correct"] = summarize(clm[right])
    return out


def cbm_xai_metrics(model: Any, X: Any, labels: Any, present: Any, V: Any, feature_maps: Any,
                    W: np.ndarray, sigma: np.ndarray, centres: Any, image_size: int,
                    **options: Any) -> dict[str, Any]:
    """The three metrics for a fitted concept bottleneck model (``ConceptBottleneckModel``)
    on embeddings ``X`` of a caption-map encoder (``W``, ``sigma`` of its ``LinearMap``), with
    the images' pre-pooling maps ``feature_maps`` (N x h x w x d) and the pixel (row, column) of
    each image's object, ``centres`` (N x 2), which every present concept shares (idsprites).
    ``present`` and ``V`` are in the model's concept order. ``options``: ``ls``, ``alphas``."""
    w, _ = model.effective_head()
    H = model.concept_activations(X)
    pred = model.predict(X)
    C = feature_directions(model.unit_values, W, sigma)
    maps = upsample(coam(feature_maps, C), (image_size, image_size)).astype(np.float32)
    c = np.asarray(centres, dtype=np.float64)
    locs = np.repeat(c[:, None, :], H.shape[1], axis=1)
    out = xai_metrics(np.asarray(w).T, H, labels, pred, present, V, maps=maps, locations=locs,
                      **options)
    share = float(np.asarray(present, dtype=np.float64).mean())
    out["chance"] = {"cem": share, **{f"clm,a={a:g}": share * a / PARTS_DENOMINATOR
                                      for a in options.get("alphas", (1.0, 3.0, 6.0))}}
    return out
