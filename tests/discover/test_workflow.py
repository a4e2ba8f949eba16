"""`conceptlab discover`, `importance` and `concepts apply` end to end on a few real
Fashion-MNIST images through the packaged EfficientNet-Lite0 (small input size)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from conceptlab.cli import app
from conceptlab.data.base import build_dataset

pytestmark = pytest.mark.slow  # real weights (still run in CI)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("disc")
    res = CliRunner().invoke(app, [
        "discover", "--data", "fashion-mnist", "--method", "nmf", "--k", "3",
        "--image-size", "64", "--n-per-class", "4", "--n-crops", "3", "--class", "Trouser",
        "--class", "Bag", "--out", str(root / "run"), "--cache", str(root / "cache")],
        env={"CONCEPTLAB_NO_PROGRESS": "1"})
    assert res.exit_code == 0, res.output
    return root


def test_discover_writes_banks_gallery_and_provenance(run_dir) -> None:
    m = json.loads((run_dir / "run" / "metrics.json").read_text())
    assert set(m["per_class"]) == {"Trouser", "Bag"} and m["layer"] == "features"
    bank = json.loads((run_dir / "run" / "concepts" / "bag" / "bank.json").read_text())
    prov = bank["provenance"]
    assert prov["method"] == "nmf" and prov["layer"] == "features" and prov["seed"] == 0
    assert prov["source"] == "crops" and prov["class"] == "Bag" and prov["data_fingerprint"]
    assert len(bank["names"]) == 3 and all(0 <= s <= 1 for s in bank["metadata"]["head_score"])
    assert (run_dir / "run" / "gallery" / "bag.png").stat().st_size > 1000
    q = m["per_class"]["Bag"]["quality"]
    assert 0 < q["r2"] <= 1 and m["probe_train_accuracy"] > 0.9


def test_importance_writes_bars_overlays_and_fidelity(run_dir) -> None:
    res = CliRunner().invoke(app, ["importance", str(run_dir / "run"), "--class", "Bag",
                                   "--n-images", "4", "--n-design", "8", "--cache",
                                   str(run_dir / "cache")], env={"CONCEPTLAB_NO_PROGRESS": "1"})
    assert res.exit_code == 0, res.output
    r = json.loads((run_dir / "run" / "importance" / "bag" / "importance.json").read_text())
    assert set(r["fidelity"]) == {"sobol", "gradient_input", "occlusion", "random"}
    for m in ("sobol", "gradient_input", "occlusion"):
        assert len(r["ranking"][m]) == 3
        assert 0 <= r["fidelity"][m]["deletion_auc"] <= 1
    for name in ("bars.png", "overlays.png", "deletion.png"):
        assert (run_dir / "run" / "importance" / "bag" / name).is_file()


def test_apply_and_bad_input(run_dir, tmp_path) -> None:
    img = build_dataset("fashion-mnist").official_split("test")[0]
    img.save(tmp_path / "x.png")
    res = CliRunner().invoke(app, ["concepts", "apply", str(run_dir / "run" / "concepts" / "bag"),
                                   "--input", str(tmp_path / "x.png")])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    codes = [c["code"] for c in rows[0]["concepts"]]
    assert len(codes) == 3 and codes == sorted(codes, reverse=True) and np.isfinite(codes).all()
    bad = CliRunner().invoke(app, ["importance", str(run_dir / "run"), "--class", "Sandal"])
    assert bad.exit_code == 2 and "no concepts for class 'Sandal'" in bad.output
    bad = CliRunner().invoke(app, ["discover", "--method", "nfm", "--out", str(tmp_path / "o")])
    assert bad.exit_code == 2 and "did you mean nmf" in bad.output


def test_spatial_source_at_an_earlier_signed_layer(tmp_path) -> None:
    """Discovery on map positions at `_blocks.15` (signed activations: semi-NMF), and
    importance through the rest of the network (a nonlinear head)."""
    from conceptlab.workflows.discover import run_discover, run_importance

    m = run_discover("fashion-mnist", tmp_path / "r", method="seminmf", k=3, layer="_blocks.15",
                     image_size=64, n_per_class=3, classes=["Bag", "Sandal"], source="spatial",
                     cache_dir=str(tmp_path / "c"))
    assert m["source"] == "spatial" and m["layer"] == "_blocks.15"
    r = run_importance(tmp_path / "r", "Bag", n_images=3, n_design=8,
                       cache_dir=str(tmp_path / "c"))
    assert r["fidelity"]["sobol"]["deletion_auc"] <= 1.0 and r["recall_original"] >= 0


def test_craft_reference_discovers_on_grid_patches(tmp_path) -> None:
    """`discover --method craft`: CRAFT's grid patches (16 per 64-pixel input: patch 18,
    stride 14) and its regularised NMF, recorded as such."""
    from conceptlab.workflows.discover import run_discover

    m = run_discover("fashion-mnist", tmp_path / "r", method="craft", k=3, image_size=64,
                     n_per_class=3, classes=["Bag", "Sandal"], cache_dir=str(tmp_path / "c"))
    assert m["patches"] == "craft-grid" and m["patch_size"] == 18
    assert m["per_class"]["Bag"]["quality"]["relative_error"] < 1.0
    plain = run_discover("fashion-mnist", tmp_path / "p", method="nmf", k=3, image_size=64,
                         n_per_class=3, classes=["Bag", "Sandal"], cache_dir=str(tmp_path / "c"))
    assert plain["patches"] == "random-crops" and plain["patch_size"] is None


def test_resampled_deletion_takes_removed_codes_from_donors() -> None:
    """The resample baseline: kept concepts keep their codes, removed ones take the donors'."""
    import torch

    from conceptlab.workflows.discover import resampled_output

    W = torch.tensor([[2.0, 0.0], [0.0, 3.0], [1.0, 1.0]])  # 3 concepts -> 2 classes

    def model(u: torch.Tensor) -> torch.Tensor:  # (B, P, K) -> (B, 2)
        return u.mean(1) @ W

    U = torch.tensor([[[1.0, 0.0, 2.0]], [[0.0, 1.0, 0.0]], [[3.0, 3.0, 3.0]]])
    f = resampled_output(model, U, 0, 1, np.array([1, 2]))
    masks = np.array([[1, 1, 1], [0, 0, 0], [1, 0, 1]], np.float32)
    got = f(masks)

    def p(u: list[float]) -> float:
        return float((torch.tensor([u], dtype=torch.float32) @ W).softmax(-1)[0, 1])

    assert np.allclose(got[0], p([1, 0, 2]))
    assert np.allclose(got[1], (p([0, 1, 0]) + p([3, 3, 3])) / 2)
    assert np.allclose(got[2], (p([1, 1, 2]) + p([1, 3, 2])) / 2)


def test_a_killed_discover_rerun_leaves_the_earlier_run_whole(run_dir, monkeypatch) -> None:
    """Issue 19: a rerun (here at k=2) killed after the first class's new bank was written
    must leave the earlier run, not one class at k=2 beside another at k=3."""
    from conceptlab.workflows import discover as wf

    out = run_dir / "run"
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    calls = []
    real = wf.plot_concept_gallery

    def killed_on_the_second_class(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(wf, "plot_concept_gallery", killed_on_the_second_class)
    with pytest.raises(KeyboardInterrupt):
        wf.run_discover("fashion-mnist", out, method="nmf", k=2, image_size=64, n_per_class=4,
                        n_crops=3, classes=["Trouser", "Bag"], cache_dir=str(run_dir / "cache"))
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert not [p for p in run_dir.iterdir() if ".stage-" in p.name]
