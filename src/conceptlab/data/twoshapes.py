"""Drawn scenes of one or two coloured shapes, with a chosen shape-colour association
(``twoshapes``): the offline probe of the concept association bias.

Each image (64 px, grey canvas) holds one shape, or two shapes side by side; shapes are
circle, square, triangle, star and colours red, orange, yellow, green, blue, purple (the two
objects of a scene always differ in shape and in colour). In the **train** split one pair is
associated: the ``assoc_shape`` (default circle) is drawn in ``assoc_colour`` (default red) with
probability ``association`` and in one of the other colours otherwise; every other shape takes
any colour uniformly (``association`` = 1/6 means no association). The **test** split is the
probe: its stream ignores ``association`` (colours uniform), so every association level is
measured on the same images. Captions name every object truthfully ("a red circle and a blue
square", "a blue square next to a red circle", ...; "a red circle", "one red circle" for one).

Classes: ``one object`` / ``two objects`` (the probe needs objects, not classes; see
``objects_of``). Drawn in memory with PIL from ``numpy.random.default_rng([seed, stream])``;
the same options give the same pixels.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from conceptlab.data.base import DataError, Dataset, DataSplit, register_dataset, take_options
from conceptlab.data.cifar import ArrayImageSource
from conceptlab.utils.hashing import hash_json

SHAPES = ["circle", "square", "triangle", "star"]
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30), "orange": (250, 140, 10), "yellow": (240, 220, 20),
    "green": (30, 160, 50), "blue": (30, 80, 230), "purple": (140, 40, 190)}
CLASS_NAMES = ["one object", "two objects"]
Obj = tuple[str, str]  # (shape, colour)


def draw_shape(draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float,
               fill: tuple[int, int, int]) -> None:
    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif shape == "square":
        s = r * 0.85
        draw.rectangle([cx - s, cy - s, cx + s, cy + s], fill=fill)
    elif shape == "triangle":
        draw.polygon([(cx, cy - r), (cx - r, cy + r * 0.8), (cx + r, cy + r * 0.8)], fill=fill)
    elif shape == "star":
        pts = []
        for i in range(10):
            a = -np.pi / 2 + i * np.pi / 5
            rr = r if i % 2 == 0 else r * 0.45
            pts.append((cx + rr * np.cos(a), cy + rr * np.sin(a)))
        draw.polygon(pts, fill=fill)
    else:
        raise DataError(f"unknown shape {shape!r}")


def render_scene(objects: list[Obj], rng: np.random.Generator, size: int) -> np.ndarray:
    img = Image.new("RGB", (size, size), (128, 128, 128))
    draw = ImageDraw.Draw(img)
    slots = [0.5] if len(objects) == 1 else [0.27, 0.73]
    for (shape, colour), x in zip(objects, slots, strict=True):
        cx = x * size + rng.uniform(-0.04, 0.04) * size
        cy = size * rng.uniform(0.4, 0.6)
        r = size * rng.uniform(0.15, 0.2)
        draw_shape(draw, shape, cx, cy, r, COLOURS[colour])
    return np.asarray(img, dtype=np.uint8)


def _colour(shape: str, rng: np.random.Generator, association: float | None,
            assoc: Obj) -> str:
    names = list(COLOURS)
    if association is None or shape != assoc[0]:
        return names[int(rng.integers(len(names)))]
    if rng.uniform() < association:
        return assoc[1]
    others = [c for c in names if c != assoc[1]]
    return others[int(rng.integers(len(others)))]


def sample_scenes(rng: np.random.Generator, n: int, single_fraction: float,
                  association: float | None, assoc: Obj) -> list[list[Obj]]:
    scenes: list[list[Obj]] = []
    for _ in range(n):
        if rng.uniform() < single_fraction:
            s = SHAPES[int(rng.integers(len(SHAPES)))]
            scenes.append([(s, _colour(s, rng, association, assoc))])
            continue
        a, b = rng.choice(len(SHAPES), size=2, replace=False)
        sa, sb = SHAPES[int(a)], SHAPES[int(b)]
        first, second = (sb, sa) if sb == assoc[0] else (sa, sb)  # associated shape first
        c1 = _colour(first, rng, association, assoc)
        c2 = _colour(second, rng, association, assoc)
        while c2 == c1:
            c2 = _colour(second, rng, association, assoc)
        colours = {first: c1, second: c2}
        scenes.append([(sa, colours[sa]), (sb, colours[sb])])
    return scenes


def _a(word: str) -> str:
    return f"an {word}" if word[0] in "aeiou" else f"a {word}"


def prompt(colour: str, shape: str) -> str:
    """The text naming one object: "a red circle", "an orange star"."""
    return f"{_a(colour)} {shape}"


def captions_of(scene: list[Obj]) -> list[str]:
    if len(scene) == 1:
        (s, c), = scene
        return [prompt(c, s), f"a {s} that is {c}", f"one {c} {s}"]
    (s1, c1), (s2, c2) = scene
    return [f"{prompt(c1, s1)} and {prompt(c2, s2)}", f"{prompt(c2, s2)} and {prompt(c1, s1)}",
            f"{prompt(c1, s1)} next to {prompt(c2, s2)}"]


class TwoShapes(Dataset):
    """One- and two-shape scenes, train with a planted shape-colour association."""

    modality = "image"

    def __init__(self, *, n_train: int = 1500, n_test: int = 600, seed: int = 0,
                 association: float = 1 / 6, assoc_shape: str = "circle",
                 assoc_colour: str = "red", single_fraction: float = 0.3,
                 img_size: int = 64) -> None:
        if not 0.0 <= float(association) <= 1.0:
            raise DataError(f"twoshapes: association must be in [0, 1], got {association}")
        if assoc_shape not in SHAPES or assoc_colour not in COLOURS:
            raise DataError(f"twoshapes: unknown associated pair {assoc_shape!r}, "
                            f"{assoc_colour!r} (shapes {SHAPES}, colours {list(COLOURS)})")
        if not 0.0 <= float(single_fraction) < 1.0:
            raise DataError("twoshapes: single_fraction must be in [0, 1)")
        if int(n_train) < 2 or int(n_test) < 2 or int(img_size) < 16:
            raise DataError("twoshapes: n_train and n_test >= 2, img_size >= 16")
        self.options = {"n_train": int(n_train), "n_test": int(n_test), "seed": int(seed),
                        "association": float(association), "assoc_shape": assoc_shape,
                        "assoc_colour": assoc_colour,
                        "single_fraction": float(single_fraction), "img_size": int(img_size)}
        self.spec = "twoshapes"
        assoc = (assoc_shape, assoc_colour)
        self._scenes: dict[str, list[list[Obj]]] = {}
        self._sources: dict[str, ArrayImageSource] = {}
        for stream, (name, n, a) in enumerate((("train", int(n_train), float(association)),
                                               ("test", int(n_test), None))):
            rng = np.random.default_rng([int(seed), stream])
            scenes = sample_scenes(rng, n, float(single_fraction), a, assoc)
            images = np.stack([render_scene(s, rng, int(img_size)) for s in scenes])
            keyed = {**self.options, "split": name}
            if name == "test":  # the probe does not depend on the association
                keyed = {k: v for k, v in keyed.items() if k not in ("association",
                                                                     "n_train")}
            self._scenes[name] = scenes
            self._sources[name] = ArrayImageSource(
                images, hash_json({"kind": "twoshapes", **keyed}), name=f"twoshapes/{name}")

    @property
    def class_names(self) -> list[str]:
        return list(CLASS_NAMES)

    def describe(self) -> dict[str, Any]:
        return {"spec": self.spec, "modality": self.modality, **self.options}

    def objects_of(self, split: DataSplit) -> list[list[Obj]]:
        """The (shape, colour) objects of every item of ``split`` (a view of an official one)."""
        owner = split.meta.get("official_split")
        if owner not in self._scenes or split.source is not self._sources[owner]:
            raise DataError(f"{split.dataset}/{split.name} is not a view of this twoshapes data")
        return [list(self._scenes[owner][int(i)]) for i in split.indices]

    def captions_for(self, split: DataSplit) -> list[list[str]]:
        return [captions_of(s) for s in self.objects_of(split)]

    def official_split(self, name: str) -> DataSplit:
        if name not in self._scenes:
            raise DataError(f"twoshapes: no split {name!r}; official splits: train, test")
        scenes = self._scenes[name]
        return DataSplit(
            dataset=self.spec, name=name, modality="image", source=self._sources[name],
            indices=np.arange(len(scenes)),
            labels=np.array([len(s) - 1 for s in scenes], dtype=np.int64),
            class_names=self.class_names,
            meta={"official": True, "official_split": name,
                  "split_rule": {"kind": "generated from separate seeded streams",
                                 **self.options}})


_DEFAULTS = {"n_train": 1500, "n_test": 600, "seed": 0, "association": 1 / 6,
             "assoc_shape": "circle", "assoc_colour": "red", "single_fraction": 0.3,
             "img_size": 64}


@register_dataset("twoshapes", options=_DEFAULTS)
def _build(arg: str, options: dict[str, Any]) -> Dataset:
    if arg:
        raise DataError(f"twoshapes takes no path; options: {', '.join(sorted(_DEFAULTS))}")
    return TwoShapes(**take_options("twoshapes", options, _DEFAULTS))
