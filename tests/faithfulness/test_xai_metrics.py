"""The concept-XAI benchmark metrics (CGIM, CEM, CLM and CoAM; Aysel et al. 2025) on planted
inputs whose answers are known, the pull-back of a fitted CBM's units through a linear map,
and the idsprites shape centres the location metric uses."""

from __future__ import annotations

import numpy as np
import pytest

from conceptlab.errors import ComputeError, ConceptlabError
from conceptlab.faithfulness.xai_metrics import (
    class_mean_activations,
    coam,
    concept_class_matrix,
    concept_existence,
    concept_location,
    feature_directions,
    global_importance,
    local_importance,
    top_region,
    upsample,
    xai_metrics,
)


def test_concept_class_matrix_is_the_share_of_each_class_showing_each_concept() -> None:
    u = np.array([[1, 0], [1, 1], [0, 1], [0, 0]])
    V = concept_class_matrix(u, [0, 0, 1, 1], 3)
    np.testing.assert_allclose(V, [[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]])
    with pytest.raises(ConceptlabError):
        concept_class_matrix(u, [0, 0, 1, 5], 3)


def test_global_importance_is_the_cosine_with_the_ground_truth_rows() -> None:
    V = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    theta = np.stack([V[0] * 4, -V[1], np.array([0.0, 0.0, 1.0])])
    H = np.array([[2.0, 0.0, 1.0], [0.0, 3.0, 1.0], [0.0, 3.0, 1.0]])
    y = np.array([0, 1, 2])
    Ustar = class_mean_activations(H, y, y, 3)
    np.testing.assert_allclose(Ustar, H.T)
    cg = global_importance(theta, V, Ustar)
    np.testing.assert_allclose(cg["cgim1"], [1.0, -1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(cg["cgim2"][0], 1.0)  # concept 0 active only in class 0
    np.testing.assert_allclose(cg["cgim3"][1], -1.0)  # negative weights where it is present
    # a misclassified image is left out of U*
    wrong = class_mean_activations(H, y, np.array([0, 1, 0]), 3)
    assert (wrong[:, 2] == 0).all()


def test_concept_existence_counts_the_present_among_the_top_l() -> None:
    theta = np.array([[3.0, 0.0], [2.0, 1.0], [1.0, 5.0]])  # 3 concepts x 2 classes
    H = np.ones((2, 3))
    imp = local_importance(theta, H, [0, 1])
    np.testing.assert_allclose(imp, [[3, 2, 1], [0, 1, 5]])
    present = np.array([[1, 0, 1], [1, 0, 0]])
    np.testing.assert_allclose(concept_existence(imp, present, 1), [1.0, 0.0])
    np.testing.assert_allclose(concept_existence(imp, present, 2), [0.5, 0.0])
    np.testing.assert_allclose(concept_existence(imp, present, 3), [2 / 3, 1 / 3])
    # the activation matters too: silence concept 0 in image 0 and it drops out of the top
    imp2 = local_importance(theta, np.array([[0.0, 1.0, 1.0], [1, 1, 1]]), [0, 1])
    assert concept_existence(imp2, present, 1)[0] == 0.0
    with pytest.raises(ConceptlabError):
        concept_existence(imp, present, 4)


def test_coam_projects_every_position_and_averages_to_the_pooled_score() -> None:
    rng = np.random.default_rng(0)
    E = rng.normal(size=(2, 4, 5, 6))
    C = rng.normal(size=(3, 6))
    F = coam(E, C)
    assert F.shape == (2, 4, 5, 3)
    np.testing.assert_allclose(F[1, 2, 3], C @ E[1, 2, 3] / 6, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(F.mean((1, 2)), E.mean((1, 2)) @ C.T / 6, rtol=1e-5,
                               atol=1e-6)  # GAP commutes


def test_top_region_has_alpha_twelfths_of_the_pixels() -> None:
    m = np.arange(144.0).reshape(12, 12)
    for alpha, n in ((1, 12), (3, 36), (6, 72)):
        mask = top_region(m, alpha)
        assert mask.sum() == n and mask[11, 11] and not mask[0, 0]


def test_concept_location_hits_where_the_map_peaks_on_the_concept() -> None:
    n, M, L = 2, 24, 2
    maps = np.zeros((n, M, M, L))
    maps[0, 2:6, 2:6, 0] = 1.0  # concept 0 of image 0 lights up around (4, 4)
    maps[0, 18:22, 18:22, 1] = 1.0  # concept 1 lights up far from its location
    maps[1, 10:14, 10:14, 0] = 1.0
    loc = np.array([[[4, 4], [4, 4]], [[12, 12], [0, 0]]], dtype=float)
    imp = np.array([[2.0, 1.0], [1.0, 2.0]])
    present = np.array([[1, 1], [1, 0]])
    np.testing.assert_allclose(concept_location(maps, imp, present, loc, 1, 1.0), [1.0, 0.0])
    np.testing.assert_allclose(concept_location(maps, imp, present, loc, 2, 1.0), [0.5, 0.5])
    # moving the location off the bright square turns the hit into a miss
    loc[0, 0] = [20, 3]
    assert concept_location(maps, imp, present, loc, 1, 1.0)[0] == 0.0


def test_upsample_keeps_a_constant_map_and_the_peak_side() -> None:
    m = np.zeros((1, 2, 2, 1))
    m[0, 0, 1, 0] = 1.0
    up = upsample(m, (8, 8))
    assert up.shape == (1, 8, 8, 1) and up[0, 0, 7, 0] > up[0, 7, 0, 0]
    np.testing.assert_allclose(upsample(np.ones((1, 3, 3, 2)), (9, 9)), 1.0)


def test_feature_directions_pull_units_back_through_the_map() -> None:
    rng = np.random.default_rng(1)
    d_img, d_text, L = 7, 5, 3
    W, sigma = rng.normal(size=(d_img, d_text)), rng.uniform(0.5, 2, d_img)
    D, b = rng.normal(size=(d_text, L)), rng.normal(size=L)
    C = feature_directions(lambda e: e @ D + b, W, sigma)
    np.testing.assert_allclose(C, ((W @ D) / sigma[:, None]).T, rtol=1e-5, atol=1e-5)
    with pytest.raises(ComputeError):
        feature_directions(lambda e: np.tanh(3 * e @ D), W, sigma)


def test_a_fitted_cbm_has_linear_units_and_its_metrics_are_bounded() -> None:
    from tests.report.tiny_explorer import fit_tiny

    model, data, _ = fit_tiny()
    d = data.X_test.shape[1]
    rng = np.random.default_rng(0)
    W, sigma = rng.normal(size=(10, d)), np.ones(10)
    C = feature_directions(model.unit_values, W, sigma)  # affine: no error
    assert C.shape == (model.n_concepts, 10)
    w, _ = model.effective_head()
    H = model.concept_activations(data.X_test)
    pred = model.predict(data.X_test)
    present = rng.integers(0, 2, size=H.shape)
    V = concept_class_matrix(present, data.y_test, model.n_classes)
    out = xai_metrics(w.T, H, data.y_test, pred, present, V)
    for key in ("cgim1", "cgim2", "cgim3"):
        assert -1 <= out[key] <= 1
    assert 0 <= out["cem@1"] <= 1 and out["n_images"] == len(pred)


def test_idsprites_centre_lies_on_the_drawn_shape() -> None:
    pytest.importorskip("idsprites")
    from conceptlab.data.idsprites import centre_pixel, render, sample_factors

    factors = sample_factors(np.random.default_rng(3), 12, 0)
    images = render(factors, 64, desc="test")
    for f, img in zip(factors, images, strict=True):
        fg = np.argwhere(np.abs(img.astype(int) - img[0, 0].astype(int)).sum(-1) > 30)
        r, c = centre_pixel(f, 64)
        assert np.hypot(*(fg.mean(0) - (r, c))) < 4.0, (f, fg.mean(0), (r, c))
