"""Shift vectors on planted data where the answer is known: three clusters, fine-tuning moves
each by its own vector; the shift vectors must recover those vectors, the shifted concepts
must land on the fine-tuned concepts, and applying the shifts must reproduce the fine-tuned
states and a fine-tuned decision."""

from __future__ import annotations

import numpy as np
import pytest

from conceptlab.shift import ShiftError, apply_shift, concept_shift, match_concepts


def planted(n: int = 90, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = np.array([[10.0, 0, 0, 0], [0, 10, 0, 0], [0, 0, 10, 0]])
    moves = np.array([[0.0, 0, 0, 4], [0, 0, -3, 0], [2, 2, 0, 0]])
    label = np.repeat(np.arange(3), n // 3)
    base = centres[label] + rng.normal(0, 0.3, (n, 4))
    tuned = base + moves[label] + rng.normal(0, 0.05, (n, 4))
    return base.astype(np.float32), tuned.astype(np.float32), moves, label


def test_shift_vectors_recover_the_planted_moves() -> None:
    base, tuned, moves, label = planted()
    s = concept_shift(base, tuned, k=3, seed=0)
    # which concept is which cluster: the concept each cluster's inputs are assigned to
    concept_of = [np.bincount(s.assignment[label == c], minlength=3).argmax() for c in range(3)]
    assert sorted(concept_of) == [0, 1, 2]
    for c in range(3):
        np.testing.assert_allclose(s.shifts[concept_of[c]], moves[c], atol=0.05)
    rec = s.recovery()
    assert min(rec["improved_distance"]) > 1.5  # shifted concepts sit on the fine-tuned ones
    assert max(rec["distance_shifted"]) < 0.2
    assert min(s.consistency(base, tuned)) > 0.95


def test_applying_the_shift_reproduces_the_fine_tuned_states_and_decision() -> None:
    base, tuned, _, label = planted(seed=1)
    s = concept_shift(base, tuned, k=3, seed=0)
    steered = apply_shift(s, base)
    assert np.abs(steered - tuned).max() < 0.3 < np.abs(base - tuned).max()
    # a fine-tuned decision that reads only the new direction (dim 3 > 2: cluster 0 moved)
    def decide(h: np.ndarray) -> np.ndarray:
        return h[:, 3] > 2

    assert not decide(base).any() and (decide(tuned) == (label == 0)).all()
    assert (decide(steered) == (label == 0)).all()
    # shifting only another concept's inputs leaves the decision where it was
    other = int(s.assignment[label == 1][0])
    only = apply_shift(s, base, concepts=[other])
    assert not decide(only).any()
    assert np.allclose(apply_shift(s, base, alpha=0.0), base)


def test_matching_is_a_permutation_by_cosine() -> None:
    a = np.eye(3, 5, dtype=np.float32)
    b = a[[2, 0, 1]] + 0.01
    assert match_concepts(a, b).tolist() == [1, 2, 0]


def test_bad_input() -> None:
    base, tuned, _, _ = planted()
    with pytest.raises(ShiftError, match="equal shapes"):
        concept_shift(base, tuned[:, :3], k=3)
    with pytest.raises(ShiftError, match="number of concepts"):
        concept_shift(base, tuned, k=0)
    bad = tuned.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ShiftError, match="NaN"):
        concept_shift(base, bad, k=3)
    s = concept_shift(base, tuned, k=3)
    with pytest.raises(ShiftError, match="unknown concept"):
        apply_shift(s, base, concepts=[5])


def test_run_shift_writes_the_run_whole(tmp_path) -> None:
    from safetensors.numpy import load_file, save_file

    from conceptlab.errors import InputError
    from conceptlab.workflows.shift import run_shift

    base, tuned, moves, _ = planted()
    np.save(tmp_path / "a.npy", base)
    save_file({"states": tuned}, str(tmp_path / "b.safetensors"))
    m = run_shift(tmp_path / "a.npy", tmp_path / "b.safetensors", tmp_path / "run", k=3)
    assert m["k"] == 3 and m["mean_improved_distance"] > 1.5 and sum(m["counts"]) == len(base)
    saved = load_file(str(tmp_path / "run" / "shift.safetensors"))
    norms = sorted(np.linalg.norm(saved["shifts"], axis=1))
    assert np.allclose(norms, sorted(np.linalg.norm(moves, axis=1)), atol=0.05)
    with pytest.raises(InputError, match="no file"):
        run_shift(tmp_path / "missing.npy", tuned, tmp_path / "r2")
    assert not (tmp_path / "r2").exists()
