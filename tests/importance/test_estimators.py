"""Importance estimators: Sobol total indices against closed forms, and every estimator ranks
a planted decisive concept first; concept attribution maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conceptlab.importance import (
    IMPORTANCE,
    ConceptModel,
    ImportanceError,
    global_importance,
    local_importance,
    sobol_total_indices,
)
from conceptlab.importance.attribution import concept_maps, crop_attribution


def test_sobol_total_indices_of_an_additive_function() -> None:
    # f = sum a_i x_i, x_i ~ U[0, 1] independent: S_T,i = a_i^2 / sum a_j^2
    a = np.array([4.0, 2.0, 1.0, 0.0])
    st = sobol_total_indices(lambda m: m @ a, 4, n_design=256, seed=0)
    np.testing.assert_allclose(st, a**2 / (a**2).sum(), atol=0.03)


def test_sobol_sees_interactions() -> None:
    # f = x0 * x1: the two interact, x2 does nothing; both totals equal, x2's zero
    st = sobol_total_indices(lambda m: m[:, 0] * m[:, 1], 3, n_design=256, seed=1)
    assert st[0] == pytest.approx(st[1], abs=0.05) and st[0] > 0.5 and abs(st[2]) < 1e-6


def planted_model(spatial: bool) -> tuple[ConceptModel, torch.Tensor, np.ndarray]:
    """5 concepts, 3 classes; class 0's logit rests on concept 3 (weight 5 vs <= 0.5)."""
    g = torch.Generator().manual_seed(0)
    K, D, C = 5, 12, 3
    W = torch.linalg.qr(torch.randn(D, K, generator=g))[0].T.contiguous()  # orthonormal atoms
    head_w = 0.5 * torch.rand(C, D, generator=g)
    head_w[0] = 0.1 * W.sum(0) + 5.0 * W[3]

    def head(latent: torch.Tensor) -> torch.Tensor:
        if latent.dim() == 4:
            latent = latent.mean(dim=(2, 3))
        return latent @ head_w.T

    grid = (2, 2) if spatial else None
    P = 4 if spatial else 1
    U = torch.rand(20, P, K, generator=g) + 0.5
    return ConceptModel(W, torch.zeros(D), head, grid), U, np.zeros(20, np.int64)


@pytest.mark.parametrize("spatial", [False, True])
@pytest.mark.parametrize("method", sorted(IMPORTANCE))
def test_each_estimator_ranks_the_planted_concept_first(method: str, spatial: bool) -> None:
    model, U, target = planted_model(spatial)
    local = local_importance(method, model, U, target, **({"n_design": 32}
                                                           if method == "sobol" else {}))
    assert local.shape == (20, 5)
    assert (local.argmax(1) == 3).all()
    glob = global_importance(local, target, 3)
    assert glob[0].argmax() == 3 and np.isnan(glob[1]).all()


def test_gradient_input_is_exact_for_a_linear_head() -> None:
    model, U, target = planted_model(False)
    gi = local_importance("gradient_input", model, U, target)
    occ = local_importance("occlusion", model, U, target)
    np.testing.assert_allclose(gi, occ, rtol=1e-4, atol=1e-5)  # linear: both = u_k * w_k


def test_bad_inputs() -> None:
    model, U, target = planted_model(False)
    with pytest.raises(ImportanceError, match="unknown importance method"):
        local_importance("shap", model, U, target)
    with pytest.raises(ImportanceError, match="targets"):
        local_importance("occlusion", model, U, target[:3])
    with pytest.raises(ImportanceError, match="codes must be"):
        model(torch.zeros(2, 1, 4))


def test_attribution_maps() -> None:
    codes = np.zeros((2, 2, 2))
    codes[0, 1, 0] = 1.0  # concept 0 at the top-right cell
    maps = concept_maps(codes, (8, 8))
    assert maps.shape == (2, 8, 8) and maps[1].max() == 0
    assert maps[0, :4, 4:].mean() > maps[0, 4:, :4].mean()
    crop = crop_attribution(np.array([[1.0], [3.0]]), np.array([[0, 0, 2], [1, 1, 2]]), (3, 3))
    np.testing.assert_allclose(crop[0], [[1, 1, 0], [1, 2, 3], [0, 3, 3]])


def test_unit_maps_by_crops_find_where_a_unit_fires() -> None:
    from PIL import Image

    from conceptlab.importance.attribution import unit_maps_by_crops

    img = np.zeros((20, 20, 3), np.uint8)
    img[:8, 12:] = 255  # a bright patch top-right: the "unit" is the crop's mean brightness
    maps = unit_maps_by_crops(
        Image.fromarray(img), lambda crops: np.stack([np.asarray(c, float).mean() for c in crops]
                                                     )[:, None],
        lambda emb: emb, n_crops=64, seed=0)
    assert maps.shape == (1, 20, 20)
    assert maps[0, :8, 12:].mean() > 2 * maps[0, 12:, :8].mean()


def test_unit_maps_by_occlusion_point_at_the_pixels_a_unit_reads() -> None:
    from PIL import Image

    from conceptlab.importance.attribution import unit_maps_by_occlusion

    img = np.full((32, 32, 3), 128, np.uint8)
    img[4:10, 22:28] = (255, 0, 0)  # a red square top-right on a grey canvas

    def redness(images: list) -> np.ndarray:  # unit 0: red pixels; unit 1: constant
        a = np.stack([np.asarray(i, float) for i in images])
        red = ((a[..., 0] > 200) & (a[..., 1] < 50)).sum((1, 2))
        return np.stack([red, np.ones(len(images))], axis=1)

    maps = unit_maps_by_occlusion(Image.fromarray(img), redness, lambda e: e)
    assert maps.shape == (2, 32, 32)
    y, x = np.unravel_index(int(np.argmax(maps[0])), (32, 32))
    assert 4 <= y < 10 and 22 <= x < 28  # the maximum lies on the square
    assert maps[0, 20:, :12].max() == 0 and np.abs(maps[1]).max() == 0
    # a patch grid that does not divide the side still covers the last rows and columns
    img2 = np.full((30, 30, 3), 128, np.uint8)
    img2[26:, 26:] = (255, 0, 0)
    edge = unit_maps_by_occlusion(Image.fromarray(img2), redness, lambda e: e)
    assert edge[0, 27:, 27:].min() > 0
    with pytest.raises(ValueError, match="stride_frac"):
        unit_maps_by_occlusion(Image.fromarray(img), redness, lambda e: e, stride_frac=0.5,
                               patch_frac=0.25)
