"""CRAFT as its reference code runs it: grid patches and regularised NMF.

The patches mirror deel-ai/Craft ``craft/craft_torch.py``, ``Craft.fit`` (xplique's
``xplique/concepts/craft_torch.py``, ``CraftTorch._extract_patches``, has the same lines); the
NMF is xplique's (``xplique/concepts/craft.py``, ``BaseCraft.fit``, which hard-codes
``NMF(n_components=..., alpha_W=1e-2)``). deel-ai/Craft's own ``Craft.fit`` calls
``NMF(n_components=...)`` without a penalty: ``CraftNMF(alpha_W=0)`` is that variant.

* patches: ``torch.nn.functional.unfold(inputs, kernel_size=patch_size, stride=int(patch_size *
  0.80))`` on the *preprocessed* inputs (N, C, S, S), reshaped to (n_patches, C, p, p) in
  unfold's order (per input, rows of patches top to bottom, each row left to right); each patch
  resized back to the input size S with bilinear interpolation (``align_corners=False``) before
  the first part of the model; 4-D activations mean-pooled over space;
* NMF: scikit-learn ``NMF(n_components=k, alpha_W=1e-2)`` with every other setting at its
  default (xplique's ``alpha_W=1e-2``; ``l1_ratio=0`` and ``alpha_H='same'``: an L2 penalty on
  codes and atoms); new activations are encoded with ``NMF.transform``, i.e. the same penalty.

What conceptlab called CRAFT before (``discover --method nmf --source crops``) differs: 8
seeded *random* square crops per input (side 0.3-0.6 of the image), unregularised NMF with 400
iterations. It is kept under that description ("nmf on random crops"), not CRAFT's name.

The reference's default ``patch_size`` is 64 pixels of a 224-pixel input; ``default_patch``
keeps that ratio at other input sizes.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from conceptlab.discover.base import (
    Dictionary,
    DictionaryError,
    check_activations,
    check_nonnegative,
    register_dictionary,
)
from conceptlab.discover.sources import Activations, SourceError, TappedModel, images_fingerprint

#: the reference's stride as a fraction of the patch side (``int(patch_size * 0.80)``)
STRIDE_FRACTION = 0.80
#: xplique ``BaseCraft.fit``: ``NMF(n_components=..., alpha_W=1e-2)`` (deel-ai/Craft: none)
ALPHA_W = 1e-2


def default_patch(image_size: int) -> int:
    """CRAFT's 64-pixel patch on a 224-pixel input, scaled to ``image_size``."""
    return max(2, round(image_size * 64 / 224))


def grid_offsets(size: int, patch: int) -> np.ndarray:
    """Top-left offsets along one axis of unfold with ``stride = int(patch * 0.8)``."""
    if not 1 <= patch <= size:
        raise SourceError(f"patch size {patch} must be between 1 and the input size {size}")
    stride = max(1, int(patch * STRIDE_FRACTION))
    return np.arange(0, size - patch + 1, stride)


def grid_patches(x: torch.Tensor, patch: int) -> torch.Tensor:
    """(N, C, S, S) -> (N * P, C, patch, patch), unfold's order (as ``Craft.fit``)."""
    if x.dim() != 4 or x.shape[2] != x.shape[3]:
        raise SourceError(f"grid patches need square (N, C, S, S) inputs, got {tuple(x.shape)}")
    offsets = grid_offsets(int(x.shape[2]), patch)
    rows = [x[:, :, int(t):int(t) + patch, int(s):int(s) + patch]
            for t in offsets for s in offsets]
    return torch.stack(rows, 1).reshape(-1, x.shape[1], patch, patch)


def grid_boxes(size: int, patch: int, n_inputs: int) -> np.ndarray:
    """``(left, top, side)`` of every patch in ``grid_patches``'s order, in input pixels."""
    offsets = grid_offsets(size, patch)
    one = np.array([[s, t, patch] for t in offsets for s in offsets], np.int64)
    return np.tile(one, (n_inputs, 1))


def extract_grid(tapped: TappedModel, images: Sequence[Any], patch: int | None = None,
                 batch_size: int = 32) -> Activations:
    """Pooled activations of CRAFT's grid patches of ``images`` (PIL) at ``tapped.layer``.

    ``boxes`` are in the original image's pixels (the patch grid on the preprocessed input,
    scaled back), so galleries crop the right region.
    """
    if len(images) == 0:
        raise SourceError("no inputs to extract activations from")
    x = tapped.preprocess(images[:1])
    size = int(x.shape[-1])
    patch = default_patch(size) if patch is None else int(patch)
    per_input = len(grid_offsets(size, patch)) ** 2
    rows = []
    for s in range(0, len(images), batch_size):
        xb = tapped.preprocess(images[s:s + batch_size]).contiguous()
        patches = grid_patches(xb, patch)
        patches = F.interpolate(patches, size=(size, size), mode="bilinear",
                                align_corners=False)
        lat = tapped.latent(patches)
        if lat.dim() == 4:
            lat = lat.mean(dim=(2, 3))
        if float(lat.min()) < 0:
            raise SourceError(f"CRAFT needs non-negative activations at {tapped.layer!r}")
        rows.append(lat.reshape(lat.shape[0], -1).numpy().astype(np.float32))
    item = np.repeat(np.arange(len(images)), per_input)
    boxes = grid_boxes(size, patch, len(images)).astype(np.float64)
    scale = np.array([images[int(i)].size[0] / size for i in item])  # square inputs
    boxes = np.round(boxes * scale[:, None]).astype(np.int64)
    prov = {**tapped.describe(), "source": "crops", "patches": "craft-grid",
            "patch_size": patch, "stride": max(1, int(patch * STRIDE_FRACTION)),
            "input_size": size, "data_fingerprint": images_fingerprint(images)}
    return Activations(np.concatenate(rows), item, "crops", tapped.layer, boxes=boxes,
                       provenance=prov)


@register_dictionary
class CraftNMF(Dictionary):
    """The reference's NMF: ``sklearn.decomposition.NMF(n_components=k, alpha_W=1e-2)``,
    every other setting at scikit-learn's default (xplique ``BaseCraft.fit``); ``encode`` is
    ``NMF.transform`` (the same penalty). ``seed`` is passed as ``random_state`` (the default
    ``nndsvda`` initialisation does not use it)."""

    name = "craft"

    def __init__(self, n_concepts: int, seed: int = 0, alpha_W: float = ALPHA_W) -> None:
        super().__init__(n_concepts, seed)
        if not (isinstance(alpha_W, int | float) and math.isfinite(alpha_W) and alpha_W >= 0):
            raise DictionaryError(f"alpha_W must be a finite number >= 0, got {alpha_W!r}")
        self.alpha_W = float(alpha_W)

    def params(self) -> dict[str, Any]:
        return {**super().params(), "alpha_W": self.alpha_W}

    def _reducer(self) -> Any:
        from sklearn.decomposition import NMF

        return NMF(n_components=self.n_concepts, alpha_W=self.alpha_W, random_state=self.seed)

    def fit(self, A: np.ndarray) -> CraftNMF:
        A = check_activations(A)
        check_nonnegative(A, self.name)
        from sklearn.exceptions import ConvergenceWarning

        reducer = self._reducer()
        with warnings.catch_warnings():  # the reference's default 200 iterations, recorded
            warnings.simplefilter("ignore", ConvergenceWarning)
            reducer.fit(A)
        self._set(reducer.components_)
        return self

    def encode(self, A: np.ndarray) -> np.ndarray:
        from sklearn.decomposition import non_negative_factorization

        A = check_activations(A, dim=self.dim)
        check_nonnegative(A, self.name)
        from sklearn.exceptions import ConvergenceWarning

        r = self._reducer()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            U, _, _ = non_negative_factorization(
                A, H=self.dictionary.astype(np.float32), n_components=self.n_concepts,
                update_H=False, init=None, solver=r.solver, beta_loss=r.beta_loss, tol=r.tol,
                max_iter=r.max_iter, alpha_W=self.alpha_W, alpha_H=r.alpha_H,
                l1_ratio=r.l1_ratio, random_state=self.seed)
        return np.asarray(U, np.float32)
