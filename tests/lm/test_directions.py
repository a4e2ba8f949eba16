"""Directions and edits on a planted concept: recovery, ablation to chance, saved banks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from conceptlab.concepts.bank import ConceptBank
from conceptlab.lm import edits
from conceptlab.lm.ablation import probe_after_edit
from conceptlab.lm.datasets import PromptSet
from conceptlab.lm.directions import directions_bank, mean_diff, pca_diff
from conceptlab.lm.effects import Baseline, side_effects, split_indices
from conceptlab.lm.probing import concept_depth, fit_probe, probe_layers
from tests.lm.tiny import tiny_lm

ANIMALS = ["cat", "dog", "horse", "cow", "bird", "fish", "lion", "tiger"]
OBJECTS = ["table", "chair", "car", "house", "stone", "lamp", "film", "day"]
FRAMES = ["the {}", "a {}", "it was a {}", "and the {}"]
EMB = "blocks.0.hook_resid_pre"


def planted() -> tuple[object, PromptSet, torch.Tensor]:
    """Paired words share a random base embedding and differ only by +-3u."""
    lm = tiny_lm(seed=1)
    g = torch.Generator().manual_seed(3)
    u = torch.randn(lm.d_model, generator=g)
    u /= u.norm()
    E = lm.model.model.embed_tokens.weight
    with torch.no_grad():
        for a, o in zip(ANIMALS, OBJECTS, strict=True):
            base = torch.randn(lm.d_model, generator=g)
            E[lm.token_ids([a])[0]] = base + 3 * u
            E[lm.token_ids([o])[0]] = base - 3 * u
    texts, labels, groups = [], [], []
    for f in FRAMES:
        for i, (a, o) in enumerate(zip(ANIMALS, OBJECTS, strict=True)):
            texts += [f.format(a), f.format(o)]
            labels += [1, 0]
            groups += [f"w{i}", f"w{i}"]
    return lm, PromptSet("planted", texts, np.asarray(labels), ["object", "animal"], groups), u


def test_directions_recover_the_planted_one_and_save_as_a_bank(tmp_path: Path) -> None:
    lm, ps, u = planted()
    X = lm.activations(ps.texts, [EMB])[EMB]
    assert abs(float(mean_diff(X, ps.labels) @ u.numpy())) > 0.999
    assert float(pca_diff(X, ps.labels, ps) @ u.numpy()) > 0.999
    bank = directions_bank(lm, {EMB: X}, ps)
    assert bank.names == [f"{m}@{EMB}" for m in ("mean_diff", "pca_diff", "probe")]
    assert bank.provenance["data_fingerprint"] == ps.fingerprint
    assert bank.provenance["model_fingerprint"] == lm.fingerprint()
    assert bank.metadata["class_gap"][0] == pytest.approx(6.0, rel=1e-4)  # +3u vs -3u
    bank.save(tmp_path / "bank")
    back = ConceptBank.load(tmp_path / "bank")
    assert np.allclose(back.vectors, bank.vectors) and back.metadata == bank.metadata


def test_probe_per_layer_and_depth() -> None:
    lm, ps, _ = planted()
    points = [EMB, "blocks.0.hook_resid_post", "blocks.2.hook_resid_post"]
    rows, dirs = probe_layers(lm.activations(ps.texts, points), ps, n_boot=200)
    for row in rows:  # standardised inside each fold
        assert row["accuracy"]["value"] >= 0.85
        assert row["accuracy"]["lo"] <= row["accuracy"]["value"] <= row["accuracy"]["hi"]
        assert row["control"]["accuracy"]["value"] < 0.8  # control task: no concept
    assert set(dirs) == set(points)
    assert concept_depth([0.5, 0.7, 0.9, 0.91, 0.92], tol=0.02) == 2
    assert concept_depth([0.5, 0.7, 0.9, 0.91, 0.92], tol=0.0) == 4


def test_ablating_the_planted_direction_drives_the_probe_to_chance() -> None:
    lm, ps, u = planted()
    X = lm.activations(ps.texts, [EMB])[EMB]
    direction = mean_diff(X, ps.labels)
    train, test = split_indices(ps, seed=0)
    later = "blocks.2.hook_resid_post"
    res = probe_after_edit(lm, ps, [later], [edits.project_out(EMB, direction)], train,
                           test)[later]
    assert res["heldout_before"] >= 0.9 and res["refit_before"] >= 0.9
    # held-out AUROC: near chance, and the refit does not fall below it
    assert 0.3 <= res["heldout_after"] <= 0.7 and 0.3 <= res["refit_after"] <= 0.7
    g = torch.Generator().manual_seed(9)
    rand = torch.randn(lm.d_model, generator=g)
    rand -= (rand @ u) * u  # a random direction orthogonal to the planted one
    ctrl = probe_after_edit(lm, ps, [later], [edits.project_out(EMB, rand)], train, test)[later]
    assert ctrl["refit_after"] >= 0.9


def test_side_effects_are_zero_without_an_edit_and_grow_with_steering() -> None:
    lm, _, u = planted()
    base = Baseline.of(lm, ["the cat was a very good day", "it was a happy film and a day"])
    none = side_effects(lm, base, [])
    assert none["kl"] == pytest.approx(0.0, abs=1e-7) and none["ppl_ratio"] == pytest.approx(1)
    small = side_effects(lm, base, [edits.add("blocks.1.hook_resid_post", u, 0.5)])
    big = side_effects(lm, base, [edits.add("blocks.1.hook_resid_post", u, 5.0)])
    assert 0 < small["kl"] < big["kl"]


def test_probe_needs_enough_items_per_class() -> None:
    with pytest.raises(ValueError, match="at least 5 items"):
        fit_probe(np.zeros((6, 3)), np.array([0, 0, 0, 1, 1, 1]))


def test_cached_activations_keep_layer_order(tmp_path: Path) -> None:
    """The cache stores views sorted by name (blocks.10 before blocks.2): reads keep order."""
    from conceptlab.cache import ActivationCache
    from conceptlab.lm.probing import cached_activations, layer_points
    from tests.lm.tiny import tiny_lm

    lm = tiny_lm(layers=12)
    ps = PromptSet("p", ["the cat", "a dog", "the table", "a chair"], np.array([1, 1, 0, 0]),
                   ["object", "animal"])
    points = layer_points(lm)
    cache = ActivationCache(tmp_path)
    first = cached_activations(lm, ps, points, cache=cache)
    again = cached_activations(lm, ps, points, cache=cache)  # read back from disk
    direct = lm.activations(ps.texts, points)
    for acts in (first, again):
        assert list(acts) == points
        for p in points:
            assert np.array_equal(acts[p], direct[p])
