"""ONNX Runtime vs eager torch: same outputs on real images and sentences, the backend in the
cache fingerprint only, exports made once and atomically, and the fallback when onnxruntime
is missing."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conceptlab.encoders import EncoderError, build_encoder
from conceptlab.encoders import onnx_backend as ob
from conceptlab.encoders.efficientnet import EfficientNetEncoder, fold_batchnorm
from conceptlab.encoders.sentence import SentenceEncoder
from conceptlab.errors import ConceptlabError

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def photos() -> list[Image.Image]:
    import matplotlib.cbook as cbook
    from sklearn.datasets import load_sample_image

    return [Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)),
            Image.fromarray(load_sample_image("china.jpg")),
            Image.fromarray(load_sample_image("flower.jpg"))]


@pytest.fixture()
def onnx_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CONCEPTLAB_ONNX_DIR", str(tmp_path / "onnx"))
    return tmp_path / "onnx"


def test_batchnorm_folding_keeps_the_function() -> None:
    from conceptlab.encoders.efficientnet import load_efficientnet_lite0

    model = load_efficientnet_lite0()
    folded = fold_batchnorm(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())  # original kept
    x = torch.randn(2, 3, 96, 96).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        torch.testing.assert_close(folded(x), model(x), atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_efficientnet_onnx_matches_torch_on_real_photos(photos: list[Image.Image],
                                                         onnx_dir: Path) -> None:
    torch_enc = EfficientNetEncoder(image_size=224, backend="torch")
    onnx_enc = EfficientNetEncoder(image_size=224, backend="onnx")
    a = torch_enc.encode_batch(photos, "image")
    b = onnx_enc.encode_batch(photos, "image")
    assert len(list(onnx_dir.glob("efficientnet-lite0-*.onnx"))) == 1
    for view in ("features", "logits"):
        assert b[view].dtype == np.float32 and b[view].shape == a[view].shape
        np.testing.assert_allclose(b[view], a[view], atol=1e-4, rtol=0)
    # the unfolded eager network (what hooks see) agrees too
    with torch.inference_mode():
        m = torch_enc.model
        eager = m.pool(m.forward_features(torch_enc.preprocess(photos))).numpy()
    np.testing.assert_allclose(b["features"], eager, atol=1e-4, rtol=0)
    assert onnx_enc.classify(photos[2:], top=1)[0][0][0] == "daisy"


@pytest.mark.slow
def test_minilm_onnx_matches_torch(onnx_dir: Path) -> None:
    texts = ["a photo of a cat", "shoes", "the quick brown fox jumps over the lazy dog",
             "un chien", "a long sleeve shirt with buttons and a collar, folded on a table"]
    a = build_encoder("minilm", backend="torch").encode_texts(texts)
    onnx_enc = build_encoder("minilm", backend="onnx")
    assert isinstance(onnx_enc, SentenceEncoder) and onnx_enc.backend_id() == "onnx-v1"
    b = onnx_enc.encode_texts(texts)
    np.testing.assert_allclose(b, a, atol=1e-4, rtol=0)
    np.testing.assert_allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)
    # order is restored after length-sorted batching: row i is text i
    assert np.argmax(b @ a.T, axis=1).tolist() == list(range(len(texts)))


def test_backend_is_in_the_cache_fingerprint_only() -> None:
    t = EfficientNetEncoder(image_size=64, backend="torch")
    o = EfficientNetEncoder(image_size=64, backend="onnx")
    assert t.fingerprint() == o.fingerprint()
    assert t.cache_fingerprint("image") != o.cache_fingerprint("image")
    ct = build_encoder("conse", image_size=64, backend="torch")
    co = build_encoder("conse", image_size=64, backend="onnx")
    assert ct.cache_fingerprint("image") != co.cache_fingerprint("image")
    assert ct.cache_fingerprint("text") != co.cache_fingerprint("text")
    assert ct.fingerprint() == co.fingerprint()


def test_default_is_measured_and_bad_backend_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONCEPTLAB_BACKEND", raising=False)
    # auto with both backends installed: decided by timing on first use (test_backend_choice)
    assert ob.resolve_backend("auto", "efficientnet") == ob.MEASURE
    assert ob.resolve_backend(None, "minilm") == ob.MEASURE
    assert ob.resolve_backend("auto", "efficientnet", "cuda") == "torch"  # auto, not CPU
    with pytest.raises(ConceptlabError, match="unknown device 'meta'"):  # conceptlab.device
        EfficientNetEncoder(image_size=64, device="meta")
    with pytest.raises(EncoderError, match="unknown backend 'tensorrt'"):
        build_encoder("efficientnet", backend="tensorrt")
    monkeypatch.setenv("CONCEPTLAB_BACKEND", "torch")  # the environment picks what auto means
    assert EfficientNetEncoder(image_size=64).backend == "torch"
    assert EfficientNetEncoder(image_size=64, backend="onnx").backend == "onnx"


def test_missing_onnxruntime_falls_back_to_torch_with_one_line(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(ob, "onnxruntime_available", lambda: False)
    monkeypatch.setattr(ob, "_NOTED", set())
    encs = [EfficientNetEncoder(image_size=64), EfficientNetEncoder(image_size=64, backend="onnx")]
    assert [e.backend for e in encs] == ["torch", "torch"]
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "onnxruntime is not installed" in lines[0]


def test_export_runs_once_and_never_leaves_a_partial_graph(onnx_dir: Path) -> None:
    calls: list[Path] = []
    model = torch.nn.Linear(3, 2)

    def export(path: Path) -> None:
        calls.append(path)
        ob.torch_export(model, (torch.zeros(1, 3),), path, input_names=["x"],
                        output_names=["y"], dynamic_axes={"x": {0: "n"}, "y": {0: "n"}})

    first = ob.ensure_export("lin", {"w": 1}, export)
    assert ob.ensure_export("lin", {"w": 1}, export) == first and len(calls) == 1
    assert ob.ensure_export("lin", {"w": 2}, export) != first and len(calls) == 2
    y = ob.OrtSession(first, threads=1).run({"x": np.ones((4, 3), np.float32)})["y"]
    with torch.no_grad():
        np.testing.assert_allclose(y, model(torch.ones(4, 3)).numpy(), atol=1e-6)

    def broken(path: Path) -> None:
        path.write_bytes(b"half a graph")
        raise RuntimeError("exporter died")

    with pytest.raises(RuntimeError, match="exporter died"):
        ob.ensure_export("lin", {"w": 3}, broken)
    assert sorted(p.name for p in onnx_dir.iterdir() if not p.name.startswith(".")) == sorted(
        [first.name, ob.ensure_export("lin", {"w": 2}, export).name])
    assert not list(onnx_dir.glob("*.tmp"))
