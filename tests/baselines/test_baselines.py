"""Training-free and baseline predictors: CMS rules, zero-shot, linear probe."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from conceptlab import metrics
from conceptlab.baselines import (
    TEMPLATE_SETS,
    build_class_embeddings,
    fit_linear_probe,
    get_templates,
    zero_shot_predict,
    zero_shot_scores,
)
from conceptlab.bottleneck.cms import (
    class_concept_similarities,
    cms_cosine_scores,
    cms_predict_cosine,
    cms_predict_top_concept,
)

# ---------------------------------------------------------------------------------------------
# Concept Matrix Search
# ---------------------------------------------------------------------------------------------

# 3 classes over 4 concepts: "stripes", "mane", "hooves", "whiskers"
T = np.array([
    [0.9, 0.1, 0.8, 0.0],  # zebra
    [0.1, 0.9, 0.7, 0.1],  # horse... with a mane
    [0.7, 0.0, 0.0, 0.9],  # tiger
])
V = np.array([
    [0.8, 0.2, 0.9, 0.1],  # stripes + hooves -> zebra by both rules
    [0.2, 0.8, 0.6, 0.0],  # mane -> horse by both rules
    [0.95, 0.0, 0.1, 0.9],  # stripes strongest, but whiskers too: cosine says tiger,
                            # the top concept (stripes) says zebra
])


def test_cms_cosine_rule_on_a_known_example() -> None:
    np.testing.assert_array_equal(cms_predict_cosine(V, T), [0, 1, 2])
    scores = cms_cosine_scores(V, T)
    expected = (V / np.linalg.norm(V, axis=1, keepdims=True)) @ (
        T / np.linalg.norm(T, axis=1, keepdims=True)).T
    np.testing.assert_allclose(scores, expected)
    # invariant to positive rescaling of rows (the reference code's row-sum normalisation)
    np.testing.assert_array_equal(cms_predict_cosine(V * [[3.0], [0.5], [7.0]], T / 2), [0, 1, 2])


def test_cms_top_concept_rule_on_a_known_example() -> None:
    np.testing.assert_array_equal(cms_predict_top_concept(V, T), [0, 1, 0])


def test_cms_row_centring_is_pearson_correlation() -> None:
    scores = cms_cosine_scores(V, T, center="row")
    for i in range(len(V)):
        for c in range(len(T)):
            assert scores[i, c] == pytest.approx(np.corrcoef(V[i], T[c])[0, 1])


def test_cms_centring_removes_a_common_offset() -> None:
    # every similarity sits near 0.8 (CLIP cosines share a similar offset): the image's faint
    # pattern matches class 0, but plain cosine prefers the flat class 1, which is closer to the
    # common offset direction; centring each row compares the patterns only
    p0, p1 = np.array([1.0, -1.0, 0.0, 0.0]), np.array([0.0, 0.0, 1.0, -1.0])
    Tc = 0.8 + np.stack([0.3 * p0, 0.01 * p1])
    Vc = (0.8 + 0.02 * p0)[None]
    assert cms_predict_cosine(Vc, Tc)[0] == 1
    assert cms_predict_cosine(Vc, Tc, center="row")[0] == 0


def test_cms_binary_association_matrix_and_tie_breaking() -> None:
    A = np.array([
        [True, False, True, False],
        [False, True, True, False],
        [True, False, False, True],
    ])
    np.testing.assert_array_equal(cms_predict_cosine(V, A), [0, 1, 2])
    # image 0's top concept is "hooves", shared by classes 0 and 1: the tie goes to the class
    # with the higher cosine score (0); image 2's top concept "stripes" is shared by 0 and 2
    np.testing.assert_array_equal(cms_predict_top_concept(V, A), [0, 1, 2])
    # a class with no concept is never predicted by the cosine rule
    A0 = A.copy()
    A0[2] = False
    assert np.isneginf(cms_cosine_scores(V, A0)[:, 2]).all()
    assert 2 not in cms_predict_cosine(V, A0)


def test_cms_class_normalisation_for_top_concept() -> None:
    # class 1 is similar to every concept: unnormalised it wins every top concept
    Tn = np.array([[0.5, 0.1, 0.1], [0.6, 0.6, 0.6], [0.1, 0.1, 0.5]])
    Vn = np.array([[0.9, 0.1, 0.1], [0.1, 0.1, 0.9]])
    np.testing.assert_array_equal(cms_predict_top_concept(Vn, Tn), [1, 1])
    np.testing.assert_array_equal(cms_predict_top_concept(Vn, Tn, class_norm="sum"), [0, 2])
    np.testing.assert_array_equal(cms_predict_top_concept(Vn, Tn, class_norm="zscore"), [0, 2])
    with pytest.raises(ValueError, match="positive row sums"):
        cms_predict_top_concept(Vn, Tn - 0.5, class_norm="sum")


def test_cms_input_errors() -> None:
    with pytest.raises(ValueError, match="4 concepts but class_concept_sims has 3"):
        cms_predict_cosine(V, T[:, :3])
    bad = V.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        cms_predict_top_concept(bad, T)
    with pytest.raises(ValueError, match="at least 2 classes"):
        cms_predict_cosine(V, T[:1])
    with pytest.raises(ValueError, match="2-D"):
        cms_predict_cosine(V[0], T)
    with pytest.raises(ValueError, match="center"):
        cms_predict_cosine(V, T, center="columns")  # type: ignore[arg-type]


def test_class_concept_similarities_are_cosines() -> None:
    classes = np.array([[2.0, 0.0], [0.0, 3.0]])
    concepts = np.array([[1.0, 1.0], [0.0, -1.0], [5.0, 0.0]])
    sims = class_concept_similarities(classes, concepts)
    np.testing.assert_allclose(sims, [[2 ** -0.5, 0, 1], [2 ** -0.5, -1, 0]], atol=1e-6)


# ---------------------------------------------------------------------------------------------
# Zero-shot
# ---------------------------------------------------------------------------------------------


AXES = {"cat": 0, "dog": 1, "car": 2}
OFFSETS = {"{}": (3, 0.0), "a photo of a {}.": (3, 1.0), "a drawing of a {}.": (4, 1.0)}


class FakeTextEncoder:
    """Known vectors: the class word sets the direction, the template adds a known offset."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(list(texts))
        out = np.zeros((len(texts), 5), dtype=np.float32)
        for i, text in enumerate(texts):
            for word, axis in AXES.items():
                if word in text.split() or f"{word}." in text.split():
                    template = text.replace(word, "{}")
                    out[i, axis] = 2.0  # non-unit on purpose
                    dim, value = OFFSETS[template]
                    out[i, dim] += value * 2.0
        return out


def test_build_class_embeddings_averages_normalised_prompts() -> None:
    enc = FakeTextEncoder()
    templates = ["{}", "a photo of a {}."]
    emb = build_class_embeddings(enc, ["cat", "dog", "car"], templates)
    assert enc.calls == [["cat", "a photo of a cat.", "dog", "a photo of a dog.", "car",
                          "a photo of a car."]]  # one call, class-major
    plain = np.array([1.0, 0, 0, 0, 0])
    photo = np.array([1.0, 0, 0, 1.0, 0]) / np.sqrt(2)
    expected = (plain + photo) / np.linalg.norm(plain + photo)
    np.testing.assert_allclose(emb[0], expected, rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-6)
    assert emb.shape == (3, 5) and emb.dtype == np.float32


def test_zero_shot_predicts_the_nearest_class_by_cosine() -> None:
    emb = build_class_embeddings(FakeTextEncoder(), ["cat", "dog", "car"], "plain")
    X = np.array([[0.1, 5.0, 0.0, 0.0, 0.0],     # dog, large norm
                  [0.01, 0.0, 0.02, 0.0, 0.0],   # car, tiny norm
                  [3.0, 2.9, 0.0, 0.0, 1.0]])    # cat, barely
    np.testing.assert_array_equal(zero_shot_predict(X, emb), [1, 2, 0])
    scores = zero_shot_scores(X, emb)
    assert scores.shape == (3, 3) and np.all(np.abs(scores) <= 1 + 1e-6)


def test_template_sets() -> None:
    assert get_templates("plain") == ["{}"]
    assert get_templates("photo") == ["a photo of a {}."]
    assert len(get_templates("ensemble")) > 3
    assert all(t.count("{}") == 1 for ts in TEMPLATE_SETS.values() for t in ts)
    with pytest.raises(ValueError, match="unknown template set"):
        get_templates("a photo of {}")
    with pytest.raises(ValueError, match=r"exactly one '\{\}'"):
        get_templates(["a photo"])
    with pytest.raises(ValueError, match="no prompt templates"):
        get_templates([])


def test_zero_shot_errors() -> None:
    enc = FakeTextEncoder()
    with pytest.raises(ValueError, match="duplicate class names"):
        build_class_embeddings(enc, ["cat", "cat"], "plain")
    with pytest.raises(ValueError, match="no class names"):
        build_class_embeddings(enc, [], "plain")
    with pytest.raises(ValueError, match="zero-length"):
        build_class_embeddings(enc, ["cat", "zebra"], "plain")  # unknown word -> zero vector

    class Broken:
        def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
            return np.ones((len(texts) - 1, 5))

    with pytest.raises(ValueError, match="returned shape"):
        build_class_embeddings(Broken(), ["cat", "dog"], "plain")
    with pytest.raises(ValueError, match="dimension 4 but class embeddings 5"):
        zero_shot_predict(np.ones((2, 4)), np.eye(5)[:2])
    with pytest.raises(ValueError, match="NaN"):
        zero_shot_predict(np.full((1, 5), np.nan), np.eye(5)[:2])


# ---------------------------------------------------------------------------------------------
# Linear probe
# ---------------------------------------------------------------------------------------------


def test_linear_probe_fits_embeddings() -> None:
    rng = np.random.default_rng(0)
    protos = rng.normal(size=(3, 16)) * 2
    y = rng.integers(0, 3, 1200)
    X = (protos[y] + rng.normal(size=(1200, 16))).astype(np.float32)
    head = fit_linear_probe(X[:600], y[:600], X[600:800], y[600:800], n_classes=3, seed=1)
    assert head.info["kind"] == "linear_probe" and head.info["seed"] == 1
    assert metrics.accuracy(y[800:], head.predict(X[800:])) > 0.9
