"""Encoder adapters: real EfficientNet-Lite0 / MiniLM / ConSE answers, tiny random CLIP and SigLIP,
the open_clip install error, raw activations, and fingerprints that follow weights and options."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from conceptlab.encoders import EncoderError, build_encoder, known_encoders
from conceptlab.encoders.activations import ActivationEncoder, describe_callable
from conceptlab.encoders.conse import ConSEEncoder, conse_mix, parse_k
from conceptlab.encoders.efficientnet import (
    Conv2dSame,
    EfficientNetEncoder,
    default_weights_path,
    imagenet_class_names,
    load_efficientnet_lite0,
)
from conceptlab.encoders.hf_clip import HFClipEncoder
from conceptlab.encoders.open_clip import import_open_clip
from conceptlab.encoders.sentence import SentenceEncoder
from conceptlab.hooks import capture
from tests.encoders.tiny_hf import save_tiny_dual

# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def photos() -> dict[str, Image.Image]:
    """Three real photos that ship with matplotlib and scikit-learn."""
    import matplotlib.cbook as cbook
    from sklearn.datasets import load_sample_image

    return {"hopper": Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)),
            "china": Image.fromarray(load_sample_image("china.jpg")),
            "flower": Image.fromarray(load_sample_image("flower.jpg"))}


@pytest.fixture(scope="module")
def effnet() -> EfficientNetEncoder:
    return EfficientNetEncoder(image_size=224)


@pytest.fixture(scope="module")
def minilm() -> SentenceEncoder:
    enc = build_encoder("minilm")
    assert isinstance(enc, SentenceEncoder)
    return enc


@pytest.fixture(scope="module")
def conse(effnet: EfficientNetEncoder, minilm: SentenceEncoder) -> ConSEEncoder:
    return ConSEEncoder(backbone=effnet, text_encoder=minilm)


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


# --------------------------------------------------------------------------- registry


def test_registry_knows_every_adapter_and_rejects_bad_specs() -> None:
    assert {"conse", "efficientnet", "hf", "minilm", "openclip", "st"} <= set(known_encoders())
    with pytest.raises(EncoderError, match="unknown encoder 'clip-vit'"):
        build_encoder("clip-vit")
    with pytest.raises(EncoderError, match="unknown options"):
        build_encoder("efficientnet", size=224)
    with pytest.raises(EncoderError, match="unknown options"):
        build_encoder("conse", topk=5)
    with pytest.raises(EncoderError, match="only 'efficientnet'"):
        build_encoder("efficientnet:b7")
    with pytest.raises(EncoderError, match="use 'st:x'"):
        build_encoder("minilm:x")


# --------------------------------------------------------------------------- EfficientNet


def test_efficientnet_state_dict_loads_strictly() -> None:
    state = torch.load(default_weights_path(), map_location="cpu", weights_only=True)
    model = load_efficientnet_lite0()
    assert set(model.state_dict()) == set(state)
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(4.65e6, rel=0.01)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(m.eps == 1e-3 for m in bns) and not model.training


def test_same_padding_is_tensorflows() -> None:
    conv = Conv2dSame(1, 1, 3, stride=2, bias=False)
    x = torch.randn(1, 1, 224, 224)
    # TF "same" with an even input and stride 2 pads one pixel, on the right and bottom only
    expected = F.conv2d(F.pad(x, [0, 1, 0, 1]), conv.weight, stride=2)
    assert conv(x).shape[-2:] == (112, 112)
    torch.testing.assert_close(conv(x), expected)
    odd = torch.randn(1, 1, 7, 7)
    assert Conv2dSame(1, 1, 5, stride=2)(odd).shape[-2:] == (4, 4)


def test_efficientnet_classifies_real_photos(effnet: EfficientNetEncoder,
                                             photos: dict[str, Image.Image]) -> None:
    top = effnet.classify(list(photos.values()), top=5)
    hopper, china, flower = ([n for n, _ in t] for t in top)
    assert hopper[0] == "military uniform" and 0.3 < top[0][0][1] < 0.5
    assert {"suit", "Windsor tie"} & set(hopper)
    assert china[0] == "palace" and {"bell tower", "monastery"} <= set(china)
    assert flower[0] == "daisy"


def test_efficientnet_on_scikit_image_photos(effnet: EfficientNetEncoder) -> None:
    data = pytest.importorskip("skimage.data")
    top = effnet.classify([Image.fromarray(data.coffee()), Image.fromarray(data.chelsea())], top=5)
    assert top[0][0][0] == "espresso" and top[0][0][1] > 0.8
    assert "tabby cat" in [n for n, _ in top[1]]


def test_efficientnet_views_preprocessing_and_hooks(effnet: EfficientNetEncoder,
                                                    photos: dict[str, Image.Image]) -> None:
    imgs = list(photos.values())
    x = effnet.preprocess(imgs)
    assert x.shape == (3, 3, 224, 224) and x.is_contiguous(memory_format=torch.channels_last)
    assert -1.0 <= float(x.min()) < -0.9 and 0.9 < float(x.max()) <= 1.0
    views = effnet.encode_batch(imgs, "image")
    assert views["features"].shape == (3, 1280) and views["logits"].shape == (3, 1000)
    np.testing.assert_allclose(effnet.finalize(views, "image"), views["features"])
    np.testing.assert_allclose(effnet.encode_images(imgs), views["features"], atol=1e-5)
    model = effnet.model
    fc = model._fc(torch.from_numpy(views["features"])).detach().numpy()
    np.testing.assert_allclose(views["logits"], fc, atol=1e-4)
    # hook points are the checkpoint's module names; the head's output pools to the features
    with torch.inference_mode(), capture(model, ["_bn1", "_blocks.15"]) as acts:
        model(x)
    assert acts["_blocks.15"].shape == (3, 320, 7, 7) and acts["_bn1"].shape == (3, 1280, 7, 7)
    pooled = F.relu6(acts["_bn1"]).mean(dim=(2, 3)).numpy()
    np.testing.assert_allclose(pooled, views["features"], atol=1e-5)
    act = effnet.activations(["_blocks.11", "_conv_head"])
    v = act.encode_batch(imgs, "image")
    assert v["_blocks.11"].shape == (3, 192)
    np.testing.assert_allclose(act.finalize(v, "image"), acts_mean_head(model, x), atol=1e-4)


def acts_mean_head(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    with torch.inference_mode():
        h = model._blocks(F.relu6(model._bn0(model._conv_stem(x))))
        return model._conv_head(h).mean(dim=(2, 3)).numpy()


def test_efficientnet_bad_inputs(effnet: EfficientNetEncoder, tmp_path) -> None:
    with pytest.raises(EncoderError, match="item 1 is a ndarray, not a PIL image"):
        effnet.encode_images([Image.new("RGB", (8, 8)), np.zeros((8, 8, 3))])
    with pytest.raises(EncoderError, match="does not encode texts"):
        effnet.encode_texts(["a cat"])
    bad = tmp_path / "broken.png"
    good = tmp_path / "good.png"
    Image.new("RGB", (64, 64), "red").save(good)
    bad.write_bytes(good.read_bytes()[:60])
    with pytest.raises(EncoderError, match="item 0 could not be read"):
        effnet.encode_images([Image.open(bad)])
    with pytest.raises(EncoderError, match="image_size"):
        EfficientNetEncoder(image_size=8)
    assert effnet.encode_images([]).shape == (0, 1280)


def test_efficientnet_fingerprint_follows_weights_and_preprocessing(tmp_path) -> None:
    base = EfficientNetEncoder()
    assert base.fingerprint() == EfficientNetEncoder().fingerprint()
    assert base.fingerprint() != EfficientNetEncoder(image_size=160).fingerprint()
    assert base.fingerprint() != EfficientNetEncoder(crop=0.875).fingerprint()
    state = torch.load(default_weights_path(), map_location="cpu", weights_only=True)
    state["_fc.bias"] = state["_fc.bias"] + 1e-3
    torch.save(state, tmp_path / "w.pth")
    other = EfficientNetEncoder(weights=tmp_path / "w.pth")
    assert other.fingerprint() != base.fingerprint()
    assert base.cache_fingerprint("image") != other.cache_fingerprint("image")
    assert base._model is None  # fingerprints never load the network


def test_lower_resolution_keeps_the_answer(photos: dict[str, Image.Image]) -> None:
    small = EfficientNetEncoder(image_size=160)
    top = small.classify([photos["hopper"], photos["china"]], top=3)
    assert top[0][0][0] == "military uniform"
    assert {"palace", "bell tower", "monastery"} == {n for n, _ in top[1]}


def test_imagenet_class_names() -> None:
    clean = imagenet_class_names()
    assert len(clean) == 1000 and clean[770] == "sneaker" and clean[281] == "tabby cat"
    assert imagenet_class_names("wordnet")[770] == "running shoe"
    with pytest.raises(EncoderError, match="unknown class-name kind"):
        imagenet_class_names("fancy")


# --------------------------------------------------------------------------- MiniLM


def test_minilm_embeddings_are_normalised_and_semantic(minilm: SentenceEncoder) -> None:
    from sentence_transformers import SentenceTransformer

    texts = ["a cat", "a kitten", "a car", "stock markets fell sharply today"]
    emb = minilm.encode_texts(texts)
    assert emb.shape == (4, 384) and minilm.dim == 384
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    sims = emb @ emb.T
    assert sims[0, 1] > 0.7 > sims[0, 2] > sims[0, 3]
    # same numbers as sentence-transformers called directly
    direct = SentenceTransformer(minilm.name_or_path).encode(texts, normalize_embeddings=True)
    np.testing.assert_allclose(emb, direct, atol=1e-5)


def test_minilm_bad_inputs(minilm: SentenceEncoder) -> None:
    with pytest.raises(EncoderError, match="text 1 is empty"):
        minilm.encode_texts(["ok", "  "])
    with pytest.raises(EncoderError, match="text 0 is a int"):
        minilm.encode_texts([3])
    with pytest.raises(EncoderError, match="not one string"):
        minilm.encode_texts("a cat")
    with pytest.raises(EncoderError, match="does not encode images"):
        minilm.encode_images([Image.new("RGB", (4, 4))])


def test_minilm_fingerprint(minilm: SentenceEncoder) -> None:
    fp = minilm.fingerprint()
    assert build_encoder("minilm").fingerprint() == fp  # hashed once per process, stable
    assert build_encoder("minilm", normalize=False).fingerprint() != fp
    path = str(minilm.name_or_path)
    assert build_encoder(f"st:{path}").fingerprint() != fp  # other model name recorded


# --------------------------------------------------------------------------- ConSE


def test_conse_mix_is_eq1_of_norouzi() -> None:
    rng = np.random.default_rng(0)
    logits, emb = rng.normal(size=(4, 6)), rng.normal(size=(6, 3))
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    for k in (1, 2, 6):
        top = np.argsort(-p, axis=1)[:, :k]
        expected = np.stack([(p[i, t] / p[i, t].sum()) @ emb[t] for i, t in enumerate(top)])
        expected /= np.linalg.norm(expected, axis=1, keepdims=True)
        np.testing.assert_allclose(conse_mix(logits, emb, k), expected, atol=1e-6)
    # a low temperature approaches the top-1 class embedding
    sharp = conse_mix(logits, emb, 6, temperature=1e-3)
    top1 = emb[p.argmax(1)]
    np.testing.assert_allclose(sharp, top1 / np.linalg.norm(top1, axis=1, keepdims=True), atol=1e-5)
    assert parse_k(0) == parse_k("all") == 1000 and parse_k("5") == 5
    for bad in (-1, 1001, "many", 2.5):
        with pytest.raises(EncoderError):
            parse_k(bad)


def test_conse_construction_is_lazy() -> None:
    enc = build_encoder("conse", k=5, image_size=128)
    assert isinstance(enc, ConSEEncoder)
    assert enc.backbone._model is None and enc.text_encoder._model is None
    assert enc.k == 5 and enc.backbone.image_size == 128
    with pytest.raises(EncoderError, match="template"):
        ConSEEncoder(template="no slot")


def test_conse_maps_photos_near_their_names(conse: ConSEEncoder,
                                            photos: dict[str, Image.Image]) -> None:
    imgs = [photos["hopper"], photos["china"], photos["flower"]]
    img = conse.encode_images(imgs)
    txt = conse.encode_texts(["a military uniform", "a palace", "a daisy"])
    assert img.shape == (3, 384) and conse.dim == 384
    np.testing.assert_allclose(np.linalg.norm(img, axis=1), 1.0, atol=1e-5)
    assert list((img @ txt.T).argmax(1)) == [0, 1, 2]
    # k=1 is exactly the text embedding of the top class name
    views = conse.encode_batch(imgs, "image")
    one = ConSEEncoder(k=1, backbone=conse.backbone, text_encoder=conse.text_encoder)
    names = conse.class_names()
    tops = [names[i] for i in views["logits"].argmax(1)]
    np.testing.assert_allclose(one.finalize(views, "image"), conse.encode_texts(tops), atol=1e-5)
    # the probe-ceiling helper hands back the backbone's pooled features
    np.testing.assert_allclose(ConSEEncoder.features(views), conse.encode_features(imgs), atol=1e-5)


def test_conse_two_stage_fingerprints(conse: ConSEEncoder, effnet: EfficientNetEncoder) -> None:
    # the cached stage is the backbone's: k, template and temperature sweep on cached logits
    key = conse.cache_fingerprint("image")
    assert key == effnet.cache_fingerprint("image")
    variants = [ConSEEncoder(k=k, template=t, temperature=temp, backbone=effnet,
                             text_encoder=conse.text_encoder)
                for k, t, temp in [(10, "{}", 1.0), (0, "a photo of a {}", 1.0), (0, "{}", 2.0)]]
    fps = {conse.fingerprint(), *(v.fingerprint() for v in variants)}
    assert len(fps) == 4
    assert all(v.cache_fingerprint("image") == key for v in variants)
    small = ConSEEncoder(image_size=160, text_encoder=conse.text_encoder)
    assert small.cache_fingerprint("image") != key and small.fingerprint() != conse.fingerprint()
    assert conse.cache_fingerprint("text") == conse.text_encoder.cache_fingerprint("text")


# --------------------------------------------------------------------------- HF CLIP / SigLIP


@pytest.fixture(scope="module")
def tiny_dual(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Randomly initialised tiny CLIP and SigLIP checkpoints with a byte-level tokenizer."""
    return save_tiny_dual(tmp_path_factory.mktemp("hf"))


@pytest.mark.parametrize("kind", ["clip", "siglip"])
def test_hf_dual_encoder_matches_the_model(tiny_dual: dict[str, str], kind: str) -> None:
    enc = build_encoder(f"hf:{tiny_dual[kind]}")
    assert isinstance(enc, HFClipEncoder) and enc.model_type == kind
    rng = np.random.default_rng(0)
    imgs = [Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)) for _ in range(3)]
    img = enc.encode_images(imgs)
    assert img.shape == (3, enc.dim) == (3, 16 if kind == "clip" else 32)
    np.testing.assert_allclose(np.linalg.norm(img, axis=1), 1.0, atol=1e-5)
    pixels = enc.processor(images=imgs, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        out = enc.model.get_image_features(pixel_values=pixels)
    ref = F.normalize(getattr(out, "pooler_output", out), dim=-1).numpy()
    np.testing.assert_allclose(img, ref, atol=1e-5)
    # a text's embedding does not depend on what else is in its batch (padding is handled)
    alone = enc.encode_texts(["a cat"])
    mixed = enc.encode_texts(["a much longer sentence about a dog", "a cat"])
    np.testing.assert_allclose(alone[0], mixed[1], atol=1e-5)
    assert abs(_cos(mixed[0], mixed[1])) < 0.999
    if kind == "siglip":
        ids = enc.processor(text=["a"], return_tensors="pt", **enc._text_kwargs())["input_ids"]
        assert ids.shape[1] == 24  # SigLIP pads to the model's maximum length
    with pytest.raises(EncoderError, match="not a PIL image"):
        enc.encode_images(["not an image"])
    with pytest.raises(EncoderError, match="text 0 is empty"):
        enc.encode_texts([""])


def test_hf_fingerprint_follows_weights_and_preprocessing(tiny_dual: dict[str, str],
                                                          tmp_path) -> None:
    from transformers import AutoModel, AutoProcessor

    path = tiny_dual["clip"]
    fp = HFClipEncoder(path).fingerprint()
    assert HFClipEncoder(path).fingerprint() == fp
    assert HFClipEncoder(path, normalize=False).fingerprint() != fp
    model = AutoModel.from_pretrained(path)
    with torch.no_grad():
        model.visual_projection.weight.mul_(2)
    model.save_pretrained(tmp_path / "w")
    AutoProcessor.from_pretrained(path).save_pretrained(tmp_path / "w")
    reweighted = HFClipEncoder(tmp_path / "w").fingerprint()
    assert reweighted != fp
    proc = AutoProcessor.from_pretrained(path)
    proc.image_processor.size = {"shortest_edge": 48}
    proc.image_processor.crop_size = {"height": 48, "width": 48}
    AutoModel.from_pretrained(path).save_pretrained(tmp_path / "p")
    proc.save_pretrained(tmp_path / "p")
    other = HFClipEncoder(tmp_path / "p")
    assert other.fingerprint() not in (fp, reweighted)


def test_hf_missing_model_is_a_clear_error(tmp_path) -> None:
    # a local path that does not exist is named as such when the encoder is built (not the
    # hub's "Repo id must be in the form ..."); a folder without a model cannot be loaded
    with pytest.raises(EncoderError, match="nothing-here: no such folder"):
        HFClipEncoder(tmp_path / "nothing-here")
    (tmp_path / "empty").mkdir()
    with pytest.raises(EncoderError, match="could not load"):
        HFClipEncoder(tmp_path / "empty").encode_texts(["a"])


# --------------------------------------------------------------------------- open_clip


def test_open_clip_missing_gives_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    if importlib.util.find_spec("open_clip") is None:
        with pytest.raises(EncoderError, match=r"pip install open-clip-torch.*torchvision"):
            build_encoder("openclip:ViT-B-32/laion2b_s34b_b79k")
    with pytest.raises(EncoderError, match="ARCH/TAG"):
        build_encoder("openclip:ViT-B-32")

    def broken(name: str) -> None:
        raise RuntimeError("operator torchvision::nms does not exist")

    monkeypatch.setattr("importlib.import_module", broken)
    with pytest.raises(EncoderError, match="torchvision/torch mismatch"):
        import_open_clip()


# --------------------------------------------------------------------------- raw activations


class TinyTextNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(30, 8)
        self.mix = nn.Linear(8, 8)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.mix(self.embed(input_ids))


def _tokenize(texts: list[str]) -> dict[str, torch.Tensor]:
    ids = [[ord(c) % 30 for c in t] for t in texts]
    width = max(map(len, ids))
    return {"input_ids": torch.tensor([i + [0] * (width - len(i)) for i in ids]),
            "attention_mask": torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i in ids])}


def test_activation_encoder_views_and_masked_mean() -> None:
    torch.manual_seed(0)
    net = TinyTextNet()
    enc = ActivationEncoder(net, hooks=["embed", "mix"], preprocess=_tokenize, name="tiny",
                            modality="text")
    with pytest.raises(EncoderError, match="after the first encoded batch"):
        _ = enc.dim
    views = enc.encode_batch(["abc", "hello world"], "text")
    assert set(views) == {"embed", "mix"} and enc.dims() == {"embed": 8, "mix": 8}
    batch = _tokenize(["abc", "hello world"])
    with torch.no_grad():
        h = net.mix(net.embed(batch["input_ids"]))
    np.testing.assert_allclose(views["mix"][0], h[0, :3].mean(0).numpy(), atol=1e-6)  # no padding
    np.testing.assert_allclose(enc.encode_texts(["abc"])[0], views["mix"][0], atol=1e-6)
    with pytest.raises(EncoderError, match="does not encode images"):
        enc.encode_images([Image.new("RGB", (4, 4))])
    with pytest.raises(EncoderError, match="did you mean 'mix'"):
        ActivationEncoder(net, hooks=["mixx"], preprocess=_tokenize)


def test_activation_encoder_fingerprint() -> None:
    torch.manual_seed(0)
    net = TinyTextNet()
    enc = ActivationEncoder(net, hooks=["mix"], preprocess=_tokenize, modality="text")
    fp = enc.fingerprint()
    assert enc.fingerprint() == fp
    assert ActivationEncoder(net, hooks=["embed"], preprocess=_tokenize,
                             modality="text").fingerprint() != fp
    assert ActivationEncoder(net, hooks=["mix"], preprocess=_tokenize, reduce="last",
                             modality="text").fingerprint() != fp
    assert ActivationEncoder(net, hooks=["mix"], preprocess=_tokenize, preprocess_id="v2",
                             modality="text").fingerprint() != fp
    with torch.no_grad():
        net.mix.bias.add_(1.0)  # an in-place weight change is noticed
    assert enc.fingerprint() != fp
    assert describe_callable(_tokenize) != describe_callable(lambda texts: _tokenize(texts))
