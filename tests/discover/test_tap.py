"""One tap: a canonical hook-point name reads exactly what a hand-written torch hook on the
module it names reads (vision and language models alike), and discovery runs on every image
encoder family the registry builds offline, a user's own `hf:` CLIP folder included, with no
per-family code."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from conceptlab.discover.sources import SourceError, TappedModel, build_tapped
from conceptlab.encoders import EncoderError, build_encoder
from conceptlab.encoders.base import package_encoders
from conceptlab.hooks import HookError, capture, hooked
from tests.encoders.tiny_hf import save_tiny_dual


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return save_tiny_dual(tmp_path_factory.mktemp("hf"))


def _images(n: int, seed: int = 0, size: int = 40) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8))
            for _ in range(n)]


def _manual(module: torch.nn.Module, side: str, run: Any) -> torch.Tensor:
    """What a plain torch hook on ``module`` sees (its output, or its first input)."""
    seen: list[torch.Tensor] = []
    if side == "output":
        h = module.register_forward_hook(
            lambda _m, _a, out: seen.append(out[0] if isinstance(out, tuple) else out))
    else:
        h = module.register_forward_pre_hook(
            lambda _m, args, kwargs: seen.append(args[0] if args else kwargs["hidden_states"]),
            with_kwargs=True)
    try:
        with torch.no_grad():
            run()
    finally:
        h.remove()
    return seen[0]


def test_same_name_reads_what_a_manual_hook_reads_on_a_vision_transformer(tiny) -> None:
    tap = build_encoder(f"hf:{tiny['clip']}").tap()
    model: Any = tap.module
    layers = model.vision_model.encoder.layers
    x = tap.preprocess(_images(3))
    cases = {"blocks.1.hook_resid_post": (layers[1], "output"),
             "blocks.1.hook_resid_pre": (layers[1], "input"),
             "blocks.0.hook_attn_out": (layers[0].self_attn, "output"),
             "blocks.0.mlp.hook_post": (layers[0].mlp.fc2, "input"),
             "blocks.0.hook_mlp_out": (layers[0].mlp, "output"),
             "features": (model.visual_projection, "input")}
    with torch.no_grad(), capture(tap.points, list(cases)) as acts:
        emb = tap.run(x)
    for name, (module, side) in cases.items():
        want = _manual(module, side, lambda: tap.run(x))
        torch.testing.assert_close(acts[name], want, msg=name)
    # the block chain and the last point are consistent with the model's own outputs
    torch.testing.assert_close(acts["blocks.1.hook_resid_pre"],
                               _manual(layers[0], "output", lambda: tap.run(x)))
    torch.testing.assert_close(model.visual_projection(acts["features"]), emb)
    # a raw module path is the escape hatch: the module's output
    with torch.no_grad(), capture(tap.points, "vision_model.encoder.layers.1") as raw:
        tap.run(x)
    torch.testing.assert_close(raw["vision_model.encoder.layers.1"],
                               acts["blocks.1.hook_resid_post"])
    assert tap.hook_points()[:5] == ["blocks.0.hook_resid_pre", "blocks.0.hook_attn_out",
                                     "blocks.0.mlp.hook_post", "blocks.0.hook_mlp_out",
                                     "blocks.0.hook_resid_post"]
    with pytest.raises(HookError, match=r"did you mean 'blocks\.1\.hook_resid_post'"):
        tap.points.resolve("blocks.1.hook_resid_pst")


def test_an_edit_at_a_pre_hook_point_changes_the_output_and_leaves_no_hook(tiny) -> None:
    tap = build_encoder(f"hf:{tiny['clip']}").tap()
    x = tap.preprocess(_images(2))
    with torch.no_grad():
        base = tap.run(x)
        with hooked(tap.points, record=["blocks.1.mlp.hook_post"],
                    edits={"blocks.1.mlp.hook_post": torch.zeros_like}) as acts:
            ablated = tap.run(x)
    assert float(acts["blocks.1.mlp.hook_post"].abs().max()) == 0.0  # records the edited value
    assert not torch.allclose(base, ablated)
    n = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in tap.module.modules())
    assert n == 0
    with torch.no_grad():
        torch.testing.assert_close(tap.run(x), base)


def test_same_name_on_a_cnn_and_on_a_language_model() -> None:
    from tests.lm.tiny import tiny_lm

    enc = build_encoder("efficientnet", image_size=32, backend="torch")
    tap = enc.tap()
    x = tap.preprocess(_images(2, size=32))
    net: Any = tap.module
    with torch.no_grad(), capture(tap.points, ["blocks.3.hook_resid_post",
                                               "blocks.4.hook_resid_pre", "_blocks.3"]) as acts:
        tap.run(x)
    want = _manual(net._blocks[3], "output", lambda: tap.run(x))
    for name in ("blocks.3.hook_resid_post", "blocks.4.hook_resid_pre", "_blocks.3"):
        torch.testing.assert_close(acts[name], want, msg=name)
    # the direct head from a block equals re-running the network with the value swapped in
    t = TappedModel.from_tap(tap, "blocks.14.hook_resid_post")
    z = t.latent(x)
    assert t.head is not None
    torch.testing.assert_close(t.head(z), net(x), rtol=1e-4, atol=1e-4)
    lm = tiny_lm()
    b = lm.batch(["the cat", "a stone is grey"])
    with torch.no_grad(), capture(lm, "blocks.1.hook_resid_post") as lacts:
        lm.forward(b)
    want = _manual(lm.blocks[1], "output", lambda: lm.forward(b))
    torch.testing.assert_close(lacts["blocks.1.hook_resid_post"], want)


def _folder_data(root: Path) -> str:
    for c, seed in (("cats", 1), ("dogs", 2)):
        (root / c).mkdir(parents=True)
        for i, im in enumerate(_images(5, seed)):
            im.save(root / c / f"{i}.png")
    return f"folder:{root}"


def _linear_folder(root: Path, clip: str) -> str:
    """A saved linear map joining the tiny CLIP's images to its own texts."""
    from conceptlab.encoders.linear import LinearMap, encoder_record, save_map

    enc = build_encoder(f"hf:{clip}")
    rec = encoder_record(enc, f"hf:{clip}", {})
    d = enc.dim
    save_map(root / "map", LinearMap(np.eye(d), np.zeros(d), np.zeros(d), np.ones(d)),
             rec, rec)
    return f"linear:{root / 'map'}"


def test_discover_on_a_users_hf_clip_folder(tiny, tmp_path) -> None:
    from conceptlab.workflows.discover import apply_concepts, run_discover

    data = _folder_data(tmp_path / "data")
    m = run_discover(data, tmp_path / "run", method="seminmf", k=2, encoder=f"hf:{tiny['clip']}",
                     n_per_class=3, n_crops=2, cache_dir=str(tmp_path / "cache"))
    assert m["layer"] == "features" and m["encoder"] == f"hf:{tiny['clip']}"
    assert set(m["per_class"]) == {"cats", "dogs"} and m["probe_train_accuracy"] is None
    bank = json.loads((tmp_path / "run" / "concepts" / "cats" / "bank.json").read_text())
    assert bank["provenance"]["layer"] == "features" and len(bank["names"]) == 2
    rows = apply_concepts(tmp_path / "run" / "concepts" / "cats", _images(2, 9))
    assert len(rows) == 2 and len(rows[0]["concepts"]) == 2
    # a block of the vision transformer, by its canonical name
    m2 = run_discover(data, tmp_path / "run2", method="pca", k=2, encoder=f"hf:{tiny['clip']}",
                      layer="blocks.0.hook_resid_post", n_per_class=3, n_crops=2,
                      cache_dir=str(tmp_path / "cache"))
    assert m2["layer"] == "blocks.0.hook_resid_post"
    with pytest.raises(SourceError, match="did you mean"):
        build_tapped(f"hf:{tiny['clip']}", "blocks.0.hook_resid_postt")


def _family_spec(prefix: str, tiny: dict[str, str], root: Path) -> str:
    """An offline spec for each registered family."""
    from conceptlab.encoders.sentence import minilm_path

    specs = {"hf": lambda: f"hf:{tiny['clip']}", "efficientnet": lambda: "efficientnet",
             "conse": lambda: "conse", "linear": lambda: _linear_folder(root, tiny["clip"]),
             "openclip": lambda: pytest.skip("open_clip is not installed here"),
             "minilm": lambda: "minilm", "st": lambda: f"st:{minilm_path()}"}
    if prefix not in specs:
        pytest.fail(f"encoder family {prefix!r} is new: add an offline spec to this test")
    return specs[prefix]()


@pytest.mark.parametrize("prefix", package_encoders())
def test_discover_runs_on_every_registered_image_encoder(prefix, tiny, tmp_path) -> None:
    from conceptlab.workflows.discover import run_discover

    spec = _family_spec(prefix, tiny, tmp_path)
    enc = build_encoder(spec)
    if "image" not in enc.modalities:  # a text-only family says so in one line
        with pytest.raises(EncoderError, match="no torch network to tap"):
            enc.tap()
        return
    m = run_discover(_folder_data(tmp_path / "data"), tmp_path / "run", method="seminmf", k=2,
                     encoder=spec, image_size=32, n_per_class=2, n_crops=2,
                     cache_dir=str(tmp_path / "cache"))
    assert m["encoder"] == spec and m["layer"] == "features"
    for c in ("cats", "dogs"):
        q = m["per_class"][c]["quality"]
        assert np.isfinite(q["r2"]) and len(m["per_class"][c]["concepts"]) == 2
