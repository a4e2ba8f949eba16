"""Linear image-to-text maps (LiMBeR): planted recovery, linear:DIR, align end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from conceptlab.align.evaluate import concept_auroc, mean_interval, nonsense_texts
from conceptlab.align.fit import (
    AlignData,
    fit_contrastive_one,
    fit_ridge,
    score_map,
    select_candidate,
)
from conceptlab.align.retrieval import caption_gallery, recall_at_k
from conceptlab.cache import ActivationCache
from conceptlab.encoders import EncoderError, build_encoder
from conceptlab.encoders.linear import LinearMap, LinearMapEncoder, encoder_record, save_map


def _planted(n: int = 600, d: int = 48, D: int = 12, noise: float = 0.05, seed: int = 0):
    rng = np.random.default_rng(seed)
    A, b0 = rng.normal(size=(d, D)), rng.normal(size=D)
    X = rng.normal(size=(n, d)) * rng.uniform(0.5, 3.0, size=d) + rng.normal(size=d)
    T = X @ A + b0 + noise * rng.normal(size=(n, D))

    def part(lo: int, hi: int) -> AlignData:
        return AlignData(X[lo:hi], [f"t{i}" for i in range(lo, hi)], T[lo:hi],
                         [np.array([i]) for i in range(hi - lo)])

    return A, b0, part(0, 500), part(500, n)


def test_ridge_recovers_a_planted_linear_function():
    A, b0, train, val = _planted()
    cands = fit_ridge(train, val)
    best = select_candidate(cands)
    lm = best.linear_map
    # back in raw feature units: f A_hat + b_hat
    A_hat = lm.W / lm.sigma[:, None]
    b_hat = lm.b - (lm.mu / lm.sigma) @ lm.W
    assert np.abs(A_hat - A).max() < 0.02 * np.abs(A).max()
    assert np.abs(b_hat - b0).max() < 0.1
    assert best.params["alpha"] <= 0.1  # little noise: validation picks a weak penalty
    assert best.val["R@1"] == 1.0
    # a heavy penalty shrinks the map and scores worse on validation
    assert cands[-1].val["own_cosine"] < best.val["own_cosine"]


def test_contrastive_map_learns_planted_pairs_and_is_seeded():
    _, _, train, val = _planted(noise=0.1)
    a = fit_contrastive_one(train, val, lr=1e-2, epochs=12, batch_size=64, seed=1)
    b = fit_contrastive_one(train, val, lr=1e-2, epochs=12, batch_size=64, seed=1)
    np.testing.assert_array_equal(a.linear_map.W, b.linear_map.W)
    rng = np.random.default_rng(99)  # not seed 0: that one drew the planted A
    random_map = LinearMap(rng.normal(size=a.linear_map.W.shape), np.zeros(12),
                           a.linear_map.mu, a.linear_map.sigma)
    chance = score_map(random_map, val)
    assert a.val["R@5"] > 0.9 > chance["R@5"] + 0.5
    assert a.params["learn_temperature"] and a.params["final_temperature"] != 0.07
    kept = a.history[a.params["best_epoch"]]
    assert kept["R@5"] == a.val["R@5"] == max(h["R@5"] for h in a.history)


def test_retrieval_counts_each_distinct_text_once():
    texts, owners = caption_gallery([["a", "b"], ["b"], ["c"]])
    assert texts == ["a", "b", "c"] and [o.tolist() for o in owners] == [[0, 1], [1], [2]]
    T = np.eye(3)
    # image 1 (caption "b") looks most like "c", then "a": its caption ranks third
    img = np.array([[1.0, 0, 0], [0.5, 0, 1.0], [0, 0, 1.0]])
    r = recall_at_k(img, T, owners, (1, 2))
    assert r == {"R@1": pytest.approx(2 / 3), "R@2": pytest.approx(2 / 3)}
    assert recall_at_k(img, T, owners, (3,))["R@3"] == 1.0


def test_concept_auroc_nonsense_and_interval():
    labels = np.array([[1, 0, 1], [1, 1, 1], [0, 0, 1], [0, 1, 1]])
    scores = np.array([[0.9, 0.1, 0], [0.8, 0.2, 0], [0.1, 0.3, 0], [0.2, 0.4, 0]])
    auc = concept_auroc(scores, labels)
    # column 1: 3 of the 4 (positive, negative) pairs are ordered; column 2 has no negatives
    assert auc[0] == 1.0 and auc[1] == 0.75 and np.isnan(auc[2])
    words = nonsense_texts(18, seed=2)
    assert len(set(words)) == 18 and words == nonsense_texts(18, seed=2)
    assert words != nonsense_texts(18, seed=3)
    mean, half = mean_interval([1.0, 2.0, 3.0])
    assert mean == 2.0 and half == pytest.approx(4.303 / np.sqrt(3), rel=1e-3)


def test_map_refuses_features_of_the_wrong_width():
    lm = LinearMap(np.zeros((1280, 384)), np.zeros(384), np.zeros(1280), np.ones(1280))
    with pytest.raises(EncoderError, match="expects 1280-d image features but got 512-d"):
        lm(np.zeros((2, 512)))
    with pytest.raises(EncoderError, match="2-D"):
        lm(np.zeros(1280))
    with pytest.raises(EncoderError, match="shapes disagree"):
        LinearMap(np.zeros((4, 3)), np.zeros(2), np.zeros(4), np.ones(4))
    with pytest.raises(EncoderError, match="needs the folder"):
        build_encoder("linear")
    with pytest.raises(EncoderError, match=r"no map\.json"):
        build_encoder("linear:/nonexistent/folder")


# ---- real weights: EfficientNet-Lite0 + MiniLM (small images keep it quick) ------------------

@pytest.fixture(scope="module")
def sprites(tmp_path_factory):
    pytest.importorskip("idsprites")
    from conceptlab.data import build_dataset

    return build_dataset("idsprites", n_train=60, n_test=24, img_size=32, seed=1,
                         cache_dir=str(tmp_path_factory.mktemp("sprites")))


@pytest.fixture(scope="module")
def map_dir(tmp_path_factory):
    image = build_encoder("efficientnet", image_size=64)
    text = build_encoder("minilm")
    rng = np.random.default_rng(0)
    lm = LinearMap(rng.normal(size=(1280, 384)) / 36, rng.normal(size=384), rng.random(1280),
                   rng.uniform(0.5, 2, 1280), method="ridge")
    folder = tmp_path_factory.mktemp("map") / "m"
    save_map(folder, lm, encoder_record(image, "efficientnet", {"image_size": 64}),
             encoder_record(text, "minilm", {}))
    return folder, lm, image


@pytest.mark.slow
def test_linear_encoder_round_trips_through_save_load_and_cache(map_dir, sprites, tmp_path):
    from conceptlab.pipeline import encode_split

    folder, lm, image = map_dir
    enc = build_encoder(f"linear:{folder}")
    assert isinstance(enc, LinearMapEncoder) and enc.dim == 384
    np.testing.assert_array_equal(enc.map.W, lm.W)
    split = sprites.official_split("test").subset(np.arange(8))
    imgs = [split[i] for i in range(len(split))]
    direct = enc.encode_images(imgs)
    np.testing.assert_allclose(direct, lm(image.encode_images(imgs)), atol=1e-6)
    assert np.allclose(np.linalg.norm(direct, axis=1), 1.0, atol=1e-5)
    cache = ActivationCache(tmp_path / "cache")
    first = encode_split(enc, split, cache)
    again = encode_split(build_encoder(f"linear:{folder}"), split, cache)
    np.testing.assert_array_equal(first, again)
    np.testing.assert_allclose(first, direct, atol=1e-6)
    # the cached stage is the backbone's; the full fingerprint covers the map
    assert enc.cache_fingerprint("image") == image.cache_fingerprint("image")
    other = LinearMapEncoder(LinearMap(lm.W * 2, lm.b, lm.mu, lm.sigma), enc.image_encoder,
                             enc.text_encoder)
    assert other.fingerprint() != enc.fingerprint()
    texts = enc.encode_texts(["a red shape", "a small shape"])
    np.testing.assert_allclose(texts, enc.text_encoder.encode_texts(["a red shape",
                                                                     "a small shape"]))


@pytest.mark.slow
def test_linear_encoder_checks_its_encoders(map_dir, tmp_path):
    import shutil

    folder, _, _ = map_dir
    moved = tmp_path / "m"
    shutil.copytree(folder, moved)
    meta = json.loads((moved / "map.json").read_text())
    meta["image_encoder"]["options"] = {"image_size": 96}  # another preprocessing
    (moved / "map.json").write_text(json.dumps(meta))
    with pytest.raises(EncoderError, match="not the one the map was fitted with"):
        build_encoder(f"linear:{moved}")
    meta["image_encoder"]["options"] = {"image_size": 64}
    meta["weights_hash"] = "0" * 16
    (moved / "map.json").write_text(json.dumps(meta))
    with pytest.raises(EncoderError, match="does not match the hash"):
        build_encoder(f"linear:{moved}")
    # a map whose input width is not the image encoder's: refused at encode time
    image, text = build_encoder("efficientnet", image_size=64), build_encoder("minilm")
    narrow = LinearMapEncoder(LinearMap(np.zeros((512, 384)), np.zeros(384), np.zeros(512),
                                        np.ones(512)), image, text)
    from PIL import Image

    with pytest.raises(EncoderError, match="expects 512-d image features but got 1280-d"):
        narrow.encode_images([Image.new("RGB", (32, 32))])


@pytest.mark.slow
def test_align_command_end_to_end(sprites, tmp_path):
    from conceptlab.cli import app

    out = tmp_path / "align"
    result = CliRunner().invoke(app, [
        "align", "--data", "idsprites", "-D", "n_train=60", "-D", "n_test=24", "-D",
        "img_size=32", "-D", "seed=1", "-D", f"cache_dir={sprites.cache_dir}",
        "--image-option", "image_size=64", "--contrastive-epochs", "8", "--out", str(out),
        "--cache", str(tmp_path / "c")])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert {c["method"] for c in metrics["candidates"]} == {"ridge", "contrastive"}
    assert metrics["chosen"]["val"]["R@5"] == max(c["val"]["R@5"] for c in metrics["candidates"])
    assert metrics["splits"]["val_source"] == "carved from official train"
    enc = build_encoder(f"linear:{out}")
    assert enc.map.method == metrics["chosen"]["method"]
    test = metrics["test_chosen"]
    # the map was fitted on captions, so held-out images find their captions far above chance
    chance_r5 = 5 / test["n_gallery_texts"]
    assert test["R@5"] > 3 * chance_r5
    auroc = test["concept_auroc"]
    assert list(auroc) == sprites.concept_names and (out / "concept_auroc.png").is_file()
    colours = [auroc[n] for n in sprites.concept_names[:6]]
    assert np.mean(colours) > 0.75, auroc  # colour words are in every caption
    bad = CliRunner().invoke(app, ["align", "--data", "idsprites", "--method", "lasso",
                                   "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "unknown align method" in bad.output
