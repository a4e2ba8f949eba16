"""Activation sources (embeddings, spatial rows, crops) at any hook point of a tiny torch model,
the namers, discovered banks (provenance, save, apply) and recursive refinement."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from conceptlab.discover.bank import DiscoveredConcepts, discover
from conceptlab.discover.naming import NamingError, name_by_exemplars, name_by_head, name_by_text
from conceptlab.discover.refine import refine
from conceptlab.discover.sources import SourceError, TappedModel, crop_boxes, extract

SIZE = 16


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv1 = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU())
        self.conv2 = nn.Sequential(nn.Conv2d(8, 6, 3, 2, 1), nn.ReLU())
        self.fc = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv2(self.conv1(x)).mean(dim=(2, 3)))


def preprocess(images: Sequence[Any]) -> torch.Tensor:
    arr = [np.asarray(im.convert("RGB").resize((SIZE, SIZE)), np.float32) / 255 for im in images]
    return torch.from_numpy(np.stack(arr)).permute(0, 3, 1, 2)


def tapped(layer: str = "conv2", head: bool = True) -> TappedModel:
    net = Tiny()
    return TappedModel(net, layer, preprocess, "tiny", {"size": SIZE}, ["a", "b", "c"],
                       head=(lambda z: net.fc(z.mean(dim=(2, 3)) if z.dim() == 4 else z))
                       if head else None)


def images(n: int = 6) -> list[Image.Image]:
    r = np.random.default_rng(0)
    return [Image.fromarray(r.integers(0, 255, (24, 24, 3), dtype=np.uint8)) for _ in range(n)]


def test_sources_shapes_and_provenance() -> None:
    t, ims = tapped(), images()
    emb = extract(t, ims, "embeddings")
    assert emb.rows.shape == (6, 6) and list(emb.item) == list(range(6))
    sp = extract(t, ims, "spatial")
    assert sp.grid == (4, 4) and sp.rows.shape == (6 * 16, 6)
    # the mean of an input's spatial rows is its embedding row
    np.testing.assert_allclose(sp.maps().mean(axis=(1, 2)), emb.rows, rtol=1e-5, atol=1e-6)
    cr = extract(t, ims, "crops", n_crops=5, seed=1)
    assert cr.rows.shape == (30, 6) and cr.boxes is not None and cr.boxes.shape == (30, 3)
    assert (cr.boxes[:, 0] + cr.boxes[:, 2] <= 24).all()
    assert cr.provenance["layer"] == "conv2" and cr.provenance["source"] == "crops"
    again = extract(t, ims, "crops", n_crops=5, seed=1)
    np.testing.assert_array_equal(again.boxes, cr.boxes)
    assert extract(t, ims[:2], "crops").provenance["data_fingerprint"] != \
        cr.provenance["data_fingerprint"]


def test_a_crop_of_the_whole_image_is_the_image() -> None:
    t, ims = tapped(), images(2)
    whole = extract(t, ims, "crops", boxes=[np.array([[0, 0, 24]])] * 2)
    np.testing.assert_allclose(whole.rows, extract(t, ims, "embeddings").rows, atol=1e-6)


def test_source_errors() -> None:
    with pytest.raises(SourceError, match="no hook point 'conv9'"):
        tapped("conv9")
    with pytest.raises(SourceError, match="unknown activation source"):
        extract(tapped(), images(), "patches")
    with pytest.raises(SourceError, match="spatial rows need a conv map"):
        extract(tapped("fc"), images(), "spatial")
    with pytest.raises(SourceError, match="n_crops"):
        crop_boxes([(10, 10)], 0, 0.3, 0.5, 0)


def test_logits_from_latent_without_a_head_reruns_the_model() -> None:
    t = tapped("conv1", head=False)
    x = preprocess(images(3))
    lat = t.latent(x)
    np.testing.assert_allclose(t.logits_from_latent(lat, x).detach(), t.model(x).detach(),
                               atol=1e-6)
    zeroed = t.logits_from_latent(torch.zeros_like(lat), x).detach()
    assert not torch.allclose(zeroed, t.model(x).detach())
    with pytest.raises(SourceError, match="pass the inputs"):
        t.logits_from_latent(lat)


def test_namers_by_hand() -> None:
    E = np.array([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7]])
    out = name_by_text(np.array([[0.0, 2.0], [1.0, 0.9]]), E, ["red", "blue", "purple"])
    assert out[0]["name"] == "blue" and out[0]["score"] == pytest.approx(1.0)
    assert out[1]["name"] == "purple"
    with pytest.raises(NamingError, match="joint space"):
        name_by_text(np.ones((1, 3)), E, ["red", "blue", "purple"])
    head = nn.Linear(2, 2, bias=False)
    head.weight.data = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    names = name_by_head(np.array([[5.0, 0.0], [0.0, 5.0]]), head, ["x", "y"])
    assert [n["name"] for n in names] == ["x", "y"]
    assert names[0]["score"] == pytest.approx(np.exp(5) / (np.exp(5) + 1))
    U = np.array([[0.0, 3.0], [2.0, 0.0], [1.0, 0.5], [0.0, 2.0]])
    ex = name_by_exemplars(U, top=2, labels=["p", "q", "q", "p"])
    assert ex[0]["rows"] == [1, 2] and ex[0]["name"] == "q" and ex[0]["score"] == 1.0
    assert ex[1]["rows"] == [0, 3] and ex[1]["name"] == "p"


def test_discovered_bank_saves_applies_and_checks_its_model(tmp_path) -> None:
    t, ims = tapped(), images(8)
    acts = extract(t, ims, "crops", n_crops=4)
    found, _, report = discover(t, acts, "nmf", 3, seed=0, labels=list("aabbccdd"), top=4)
    prov = found.provenance
    for key in ("model", "layer", "source", "data_fingerprint", "method", "seed",
                "model_fingerprint"):
        assert key in prov
    assert prov["method"] == "nmf" and report["quality"]["r2"] > 0
    assert len(found.bank.names) == 3 and found.bank.names[0].startswith("c00 ")
    assert found.bank.metadata["exemplar_label"][0] in "abcd"
    found.save(tmp_path / "bank")
    back = DiscoveredConcepts.load(tmp_path / "bank")
    codes = back.apply(t, ims[:3])["codes"]
    whole = extract(t, ims[:3], "embeddings").rows
    np.testing.assert_allclose(codes, found.dictionary.encode(whole), rtol=1e-4, atol=1e-5)
    other = tapped()
    other.model.fc.weight.data += 1
    with pytest.raises(SourceError, match="these concepts were found on"):
        back.apply(other, ims[:1])


def test_spatial_bank_applies_with_maps(tmp_path) -> None:
    t, ims = tapped(), images(4)
    found, _, _ = discover(t, extract(t, ims, "spatial"), "pca", 2)
    out = found.apply(t, ims[:2])
    assert out["maps"].shape == (2, 4, 4, 2)
    np.testing.assert_allclose(out["codes"], out["maps"].mean(axis=(1, 2)), atol=1e-6)


def test_refinement_reads_a_concepts_crops_at_an_earlier_layer() -> None:
    ims = images(8)
    late = tapped("conv2")
    acts = extract(late, ims, "crops", n_crops=6)
    _, U, _ = discover(late, acts, "nmf", 2, seed=0)
    k = int(np.bincount(U.argmax(1)).argmax())
    early = TappedModel(late.model, "conv1", preprocess, "tiny", {"size": SIZE})
    sub, U_sub, _ = refine(early, ims, acts, U, k, n_sub=2)
    n_dom = int(((U.argmax(1) == k) & (U[:, k] > 0)).sum())
    assert U_sub.shape == (n_dom, 2) and sub.dictionary.dim == 8
    assert sub.provenance["parent_concept"] == k and sub.provenance["layer"] == "conv1"


@pytest.mark.slow
def test_efficientnet_heads_match_the_network() -> None:
    """The direct heads from `features` and from `_blocks.15` reproduce the packaged network's
    own logits (real weights, 3 images at 64 px)."""
    from conceptlab.discover.sources import build_tapped

    ims = images(3)
    for layer in ("features", "_blocks.15"):
        t = build_tapped("efficientnet", layer, image_size=64)
        x = t.preprocess(ims)
        with torch.no_grad():
            want = t.model(x)
            got = t.head(t.latent(x))
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-4, atol=1e-4)
    assert build_tapped("efficientnet", "_bn1", image_size=64).head is None
