"""The association-bias measure on planted spaces: a bag-of-concepts space must show the bias,
a space that binds colour to shape must not, and a planted shape-colour association must
show up as a colour filled in that the image lacks, growing with its strength."""

from __future__ import annotations

import numpy as np
import pytest

from conceptlab.cab.measure import answers, cab_rates
from conceptlab.data.base import DataError, build_dataset
from conceptlab.data.twoshapes import COLOURS, SHAPES, prompt

D = 96
COLS = list(COLOURS)


def vectors(seed: int = 0) -> dict[str, np.ndarray]:
    r = np.random.default_rng(seed)
    words = COLS + SHAPES + [f"{c} {s}" for c in COLS for s in SHAPES]
    return {w: r.normal(size=D) / np.sqrt(D) for w in words}


def scenes(n: int, seed: int) -> list[list[tuple[str, str]]]:
    r = np.random.default_rng(seed)
    out = []
    for i in range(n):
        a, b = r.choice(4, 2, replace=False)
        ca, cb = r.choice(6, 2, replace=False)
        objs = [(SHAPES[a], COLS[ca]), (SHAPES[b], COLS[cb])]
        out.append(objs[:1] if i % 3 == 0 else objs)
    return out


def embed(sc, v, bound: bool, beta: float = 0.0, seed: int = 1) -> np.ndarray:
    r = np.random.default_rng(seed)
    rows = []
    for scene in sc:
        x = 0.05 * r.normal(size=D)
        for s, c in scene:
            x += v[f"{c} {s}"] if bound else v[s] + v[c]
            if s == "circle":
                x += beta * v["red"]
        rows.append(x)
    return np.array(rows)


def prompts(v, bound: bool):
    def emb(texts: list[str]) -> np.ndarray:
        out = []
        for t in texts:
            c, s = t.split()[-2:]
            out.append(v[f"{c} {s}"] if bound else v[c] + v[s])
        return np.array(out)
    return emb


def measure(bound: bool, beta: float = 0.0) -> dict:
    v, sc = vectors(), scenes(600, 2)
    said = answers(embed(sc, v, bound, beta), sc, COLS, prompts(v, bound), prompt)
    return cab_rates(sc, said, len(COLS), assoc=("circle", "red"))


def test_bag_of_concepts_space_shows_the_bias():
    bag = measure(bound=False)
    assert bag["single_accuracy"] > 0.95
    assert bag["cab"] > 0.3 and bag["other_rate"] > 0.3


def test_bound_space_shows_none():
    bound = measure(bound=True)
    assert bound["cab"] < 0.03 and bound["correct_rate"] > 0.95


def test_planted_association_fills_in_its_colour_and_grows():
    fills = [measure(bound=False, beta=b)["fill_rate"] for b in (0.0, 1.2, 2.0)]
    assert fills[0] < 0.05
    assert fills[0] < fills[1] < fills[2]
    assert fills[2] > 0.8


def test_twoshapes_association_is_planted_in_train_only():
    d = build_dataset("twoshapes", association=0.9, n_train=400, n_test=200)
    train = [o for s in d.objects_of(d.official_split("train")) for o in s if o[0] == "circle"]
    test = [o for s in d.objects_of(d.official_split("test")) for o in s if o[0] == "circle"]
    assert sum(c == "red" for _, c in train) / len(train) > 0.8
    assert sum(c == "red" for _, c in test) / len(test) < 0.35
    other = build_dataset("twoshapes", association=0.2, n_train=400, n_test=200)
    assert other.official_split("test").fingerprint() == d.official_split("test").fingerprint()
    with pytest.raises(DataError, match="association"):
        build_dataset("twoshapes", association=1.5)
