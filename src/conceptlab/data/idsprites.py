"""Captioned dSprites-style shapes with ground-truth concepts (``idsprites``).

Images are drawn with the ``idsprites`` package's renderer (``InfiniteDSprites.draw``: a filled,
anti-aliased polygon scaled, rotated and placed on a grey canvas; Dittadi et al.'s dSprites
factors). The package samples its factors from numpy's *global* generator and makes random
spline shapes; here every factor is drawn from a local ``numpy.random.default_rng([seed,
split])`` and the shapes are four named outlines (square, circle, triangle, star), so the same
options always give the same pixels, captions and labels, and shapes have names a caption can
use.

Factors per image (bands leave a gap, so every binary concept is clear-cut):

* colour: red, orange, yellow, green, blue, purple (small seeded RGB jitter);
  (colour, size, shape) cycle through shuffled rounds of all 48 combinations (balanced);
* size: small (scale 0.45-0.60) or large (0.85-1.05) of the package's 0.45 x canvas unit;
* horizontal position: left (x in 0-0.3) or right (0.7-1); vertical: top or bottom (same bands);
* shape: square, circle, triangle, star; orientation: upright (0 deg) or tilted (15-35 deg,
  either way; never said of circles, which look the same at every angle).

Ground-truth concepts (``split.concept_names``, texts usable as concept prompts): one per
colour ("a red shape"), size ("a large shape", "a small shape"), position ("a shape on the
left", ... "a shape near the bottom"), shape ("a square", ...) and orientation ("a tilted
shape", "an upright shape"; both 0 for circles).

Classes (option ``classes``, factor names joined by ``+``; default ``color+size``: 12 classes
such as "small red shape"). The default needs two concepts per class: neither colour nor size
alone decides it, and the other concepts (position, shape, orientation) are distractors a
faithful bottleneck should not lean on. Class names double as zero-shot prompts.

Captions (``dataset.captions("train")``, one list per item of the official split, or
``captions_for(split)`` for any view of it): ``captions_per_image`` (default 3) captions per
image, written from its factors with distinct templates and synonyms ("a small red square near
the top left", "top left: a little red square", "a red square, tilted, in the upper left"),
some naming only part of the factors, all drawn from the same seeded stream.

Splits: the official train and test splits are generated from separate streams
(``[seed, 0]`` and ``[seed, 1]``), so ``n_test`` never changes the training images; the rule
is recorded in ``split.meta["split_rule"]``. Rendering runs once per option set and is cached
(images as uint8 safetensors, factors and captions as JSON, written atomically) under
``cache_dir`` (default ``$CONCEPTLAB_CACHE/datasets/idsprites``, else
``~/.cache/conceptlab/datasets/idsprites``). Images are ``img_size`` (default 64) pixels square;
image encoders resize them (EfficientNet-Lite0 to 224).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file

from conceptlab.data.base import (
    DataError,
    Dataset,
    DataSplit,
    dataset_cache_dir,
    file_digest,
    register_dataset,
    take_options,
)
from conceptlab.data.cifar import ArrayImageSource
from conceptlab.utils.hashing import hash_json
from conceptlab.utils.io import atomic_path, save_tensors, write_json_atomic
from conceptlab.utils.progress import progress

PACKAGE = "idsprites"
FORMAT_VERSION = 1
_LOG = logging.getLogger(__name__)

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30), "orange": (250, 140, 10), "yellow": (240, 220, 20),
    "green": (30, 160, 50), "blue": (30, 80, 230), "purple": (140, 40, 190),
}
SHAPES = ["square", "circle", "triangle", "star"]
SIZES = ["small", "large"]
HPOS = ["left", "right"]
VPOS = ["top", "bottom"]
TILTS = ["upright", "tilted"]
SCALE_BANDS = {"small": (0.45, 0.60), "large": (0.85, 1.05)}
POSITION_BANDS = {"left": (0.0, 0.3), "right": (0.7, 1.0), "top": (0.0, 0.3),
                  "bottom": (0.7, 1.0)}
TILT_DEGREES = (15.0, 35.0)
BACKGROUND = "darkgray"

#: factor name -> its values, in the order class names and concept columns use
FACTORS: dict[str, list[str]] = {"color": list(COLORS), "size": SIZES, "shape": SHAPES,
                                 "hpos": HPOS, "vpos": VPOS}

_ARTICLE_AN = ("orange", "upright")


def _a(word: str) -> str:
    return f"an {word}" if word.startswith(_ARTICLE_AN) else f"a {word}"


def concept_texts() -> list[str]:
    """The ground-truth concept names, in column order (also good concept prompts)."""
    return ([f"{_a(c)} shape" for c in COLORS] + ["a large shape", "a small shape",
            "a shape on the left", "a shape on the right", "a shape near the top",
            "a shape near the bottom"] + [_a(s) for s in SHAPES]
            + ["a tilted shape", "an upright shape"])


@dataclass(frozen=True)
class SpriteFactors:
    """What one image shows (the words its captions and concept labels are written from)."""

    color: str
    size: str
    shape: str
    hpos: str
    vpos: str
    tilt: str  # "upright" or "tilted" (circles: always recorded "upright", never captioned)
    rgb: tuple[int, int, int]
    scale: float
    orientation_deg: float
    x: float
    y: float

    def as_dict(self) -> dict[str, Any]:
        return {"color": self.color, "size": self.size, "shape": self.shape, "hpos": self.hpos,
                "vpos": self.vpos, "tilt": self.tilt, "rgb": list(self.rgb),
                "scale": self.scale, "orientation_deg": self.orientation_deg,
                "x": self.x, "y": self.y}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SpriteFactors:
        return cls(color=d["color"], size=d["size"], shape=d["shape"], hpos=d["hpos"],
                   vpos=d["vpos"], tilt=d["tilt"], rgb=tuple(d["rgb"]),
                   scale=float(d["scale"]), orientation_deg=float(d["orientation_deg"]),
                   x=float(d["x"]), y=float(d["y"]))


def concept_row(f: SpriteFactors) -> list[int]:
    """0/1 concept labels of one image, in :func:`concept_texts` order."""
    visible_tilt = f.shape != "circle"
    return ([int(f.color == c) for c in COLORS] + [int(f.size == "large"), int(f.size == "small"),
            int(f.hpos == "left"), int(f.hpos == "right"), int(f.vpos == "top"),
            int(f.vpos == "bottom")] + [int(f.shape == s) for s in SHAPES]
            + [int(visible_tilt and f.tilt == "tilted"), int(visible_tilt and f.tilt == "upright")])


def sample_factors(rng: np.random.Generator, n: int, color_jitter: int) -> list[SpriteFactors]:
    """``n`` images' factors from ``rng``.

    (colour, size, shape) run through shuffled cycles of all 48 combinations, so every class
    rule over them is balanced to within one cycle (no class left empty in small sets);
    positions and tilt are drawn independently and uniformly.
    """
    combos = [(c, z, s) for c in COLORS for z in SIZES for s in SHAPES]
    order: list[int] = []
    while len(order) < n:
        order.extend(int(i) for i in rng.permutation(len(combos)))
    return [_one(rng, *combos[order[i]], color_jitter) for i in range(n)]


def _one(rng: np.random.Generator, color: str, size: str, shape: str,
         color_jitter: int) -> SpriteFactors:
    hpos, vpos = HPOS[int(rng.integers(2))], VPOS[int(rng.integers(2))]
    tilt = TILTS[int(rng.integers(2))]
    lo, hi = SCALE_BANDS[size]
    scale = float(rng.uniform(lo, hi))
    x = float(rng.uniform(*POSITION_BANDS[hpos]))
    y = float(rng.uniform(*POSITION_BANDS[vpos]))
    angle = float(rng.uniform(*TILT_DEGREES) * rng.choice([-1.0, 1.0]))
    jitter = rng.integers(-color_jitter, color_jitter + 1, size=3) if color_jitter else 0
    r, g, b = (int(v) for v in np.clip(np.asarray(COLORS[color]) + jitter, 0, 255))
    if shape == "circle":
        tilt, angle = "upright", 0.0
    elif tilt == "upright":
        angle = 0.0
    return SpriteFactors(color=color, size=size, shape=shape, hpos=hpos, vpos=vpos, tilt=tilt,
                         rgb=(r, g, b), scale=round(scale, 6), orientation_deg=round(angle, 4),
                         x=round(x, 6), y=round(y, 6))


# ---- captions --------------------------------------------------------------------------------

_SIZE_WORDS = {"small": ["small", "little", "tiny"], "large": ["large", "big"]}
_TILT_WORDS = {"tilted": ["tilted", "rotated", "slanted"], "upright": ["upright", "straight"]}
_VPOS_WORDS = {"top": ["top", "upper"], "bottom": ["bottom", "lower"]}


def _position(f: SpriteFactors, rng: np.random.Generator) -> str:
    v = _VPOS_WORDS[f.vpos][int(rng.integers(2))]
    forms = [f"near the {v} {f.hpos}", f"in the {v} {f.hpos}",
             f"in the {v} {f.hpos} corner", f"at the {v} {f.hpos}"]
    return forms[int(rng.integers(len(forms)))]


def _templates(f: SpriteFactors, rng: np.random.Generator) -> list[str]:
    """Every caption form for one image, words drawn from ``rng`` (order fixed)."""
    size = _SIZE_WORDS[f.size][int(rng.integers(len(_SIZE_WORDS[f.size])))]
    pos = _position(f, rng)
    corner = f"{_VPOS_WORDS[f.vpos][int(rng.integers(2))]} {f.hpos}"
    c, s = f.color, f.shape
    out = [
        f"{_a(size)} {c} {s} {pos}",
        f"{_a(c)} {s}, {size}, {pos}",
        f"{corner}: {_a(size)} {c} {s}",
        f"there is {_a(size)} {s} in {c} {pos}",
        f"{_a(c)} {s} {pos}",
        f"{_a(size)} {c} shape {pos}",
        f"a picture of {_a(size)} {c} {s}",
        f"{_a(size)} {s} {pos}, coloured {c}",
    ]
    if f.shape != "circle":
        tilt = _TILT_WORDS[f.tilt][int(rng.integers(len(_TILT_WORDS[f.tilt])))]
        out += [f"{_a(tilt)} {size} {c} {s} {pos}", f"{_a(c)} {s}, {tilt}, {pos}"]
    return out


def write_captions(f: SpriteFactors, rng: np.random.Generator, n: int) -> list[str]:
    """``n`` distinct captions of one image (distinct templates), drawn from ``rng``."""
    forms = _templates(f, rng)
    pick = rng.choice(len(forms), size=min(n, len(forms)), replace=False)
    return [forms[int(i)] for i in pick]


# ---- rendering -------------------------------------------------------------------------------

def _outline(name: str) -> np.ndarray:
    """A named outline as (2, P) points, bounding box centred at 0 with longest side 1."""
    if name == "square":
        pts = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=np.float64).T
    elif name == "circle":
        t = np.linspace(0, 2 * np.pi, 120, endpoint=False)
        pts = np.stack([np.cos(t), np.sin(t)])
    elif name == "triangle":  # pointing up (image y grows downward)
        t = np.deg2rad([-90.0, 30.0, 150.0])
        pts = np.stack([np.cos(t), np.sin(t)])
    elif name == "star":  # five points, inner radius 0.45
        t = np.deg2rad(-90.0 + 36.0 * np.arange(10))
        r = np.where(np.arange(10) % 2 == 0, 1.0, 0.45)
        pts = np.stack([r * np.cos(t), r * np.sin(t)])
    else:
        raise DataError(f"unknown shape {name!r}; known: {', '.join(SHAPES)}")
    lo, hi = pts.min(axis=1, keepdims=True), pts.max(axis=1, keepdims=True)
    return (pts - (lo + hi) / 2) / float((hi - lo).max())


def _renderer(img_size: int) -> Any:
    try:
        from idsprites import InfiniteDSprites
    except ImportError as err:
        raise DataError(f"idsprites needs the {PACKAGE} package: pip install idsprites==1.0.1"
                        ) from err
    return InfiniteDSprites(img_size=img_size, orientation_marker=False,
                            background_color=BACKGROUND)


def render(factors: list[SpriteFactors], img_size: int, desc: str = "render idsprites"
           ) -> np.ndarray:
    """uint8 images (N, img_size, img_size, 3) of ``factors`` through the package's renderer."""
    from idsprites import Factors

    drawer = _renderer(img_size)
    outlines = {s: _outline(s) for s in SHAPES}
    out = np.zeros((len(factors), img_size, img_size, 3), dtype=np.uint8)
    for i in progress(range(len(factors)), total=len(factors), desc=desc, unit="img"):
        f = factors[i]
        img = drawer.draw(Factors(shape=outlines[f.shape], color=np.asarray(f.rgb) / 255.0,
                                  shape_id=SHAPES.index(f.shape), scale=f.scale,
                                  orientation=math.radians(f.orientation_deg),
                                  position_x=f.x, position_y=f.y), channels_first=False)
        out[i] = np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)
    return out


def centre_pixel(f: SpriteFactors, img_size: int) -> tuple[float, float]:
    """(row, column) in pixels of the shape's centre in an ``img_size`` image: the renderer
    places the outline's origin at ``(0.25 + 0.5 * position) * img_size`` on each axis
    (``InfiniteDSprites.apply_position``; x is the column, y the row). Every concept of an image
    (colour, size, shape, tilt, position) lies on its one shape, so this is each concept's
    location for the concept location metric (``faithfulness.xai_metrics``)."""
    return ((0.25 + 0.5 * f.y) * img_size, (0.25 + 0.5 * f.x) * img_size)


# ---- the dataset -----------------------------------------------------------------------------

def package_version() -> str:
    try:
        return metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        raise DataError(f"idsprites needs the {PACKAGE} package: pip install idsprites==1.0.1"
                        ) from None


def parse_classes(rule: str) -> list[str]:
    """``"color+size"`` -> ``["color", "size"]``, each a known factor, no repeats."""
    parts = [p.strip() for p in str(rule).split("+") if p.strip()]
    unknown = [p for p in parts if p not in FACTORS]
    if not parts or unknown or len(set(parts)) != len(parts):
        raise DataError(f"idsprites: classes must join distinct factors with '+' (from "
                        f"{', '.join(FACTORS)}), got {rule!r}")
    return [p for p in FACTORS if p in parts]  # canonical order


def class_name(values: dict[str, str]) -> str:
    """Readable class name (and zero-shot prompt): ``small red shape``, ``red square on the
    left``."""
    words = [values[k] for k in ("size", "color") if k in values]
    words.append(values.get("shape", "shape"))
    where = [f"near the {values['vpos']}"] if "vpos" in values else []
    if "hpos" in values:
        where.append(f"on the {values['hpos']}")
    return " ".join(words + ([" and ".join(where)] if where else []))


def _check_int(name: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or \
            not lo <= value <= hi:
        raise DataError(f"idsprites: {name} must be an integer in [{lo}, {hi}], got {value!r}")
    return int(value)


class IDSprites(Dataset):
    """Rendered shapes with factor-written captions and 18 ground-truth binary concepts."""

    modality = "image"

    def __init__(self, *, n_train: int = 2000, n_test: int = 500, seed: int = 0,
                 img_size: int = 64, captions_per_image: int = 3, color_jitter: int = 12,
                 classes: str = "color+size", cache_dir: str | Path | None = None) -> None:
        self.n_train = _check_int("n_train", n_train, 1, 10_000_000)
        self.n_test = _check_int("n_test", n_test, 1, 10_000_000)
        self.seed = _check_int("seed", seed, 0, 2**63 - 1)
        self.img_size = _check_int("img_size", img_size, 16, 1024)
        self.captions_per_image = _check_int("captions_per_image", captions_per_image, 1, 8)
        self.color_jitter = _check_int("color_jitter", color_jitter, 0, 60)
        self.class_factors = parse_classes(classes)
        self.classes = "+".join(self.class_factors)
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else \
            dataset_cache_dir("idsprites")
        self.version = package_version()
        self.spec = "idsprites"
        self._class_values = self._class_table()
        self.path = self.cache_dir / f"idsprites-{self._render_key()}"
        if not (self.path.with_suffix(".json").is_file()
                and self.path.with_suffix(".safetensors").is_file()):
            _LOG.info("rendering idsprites into %s, once", self.path)
            self._generate()
        self._load()

    # -- identity and generation ----------------------------------------------------------------

    def _render_options(self) -> dict[str, Any]:
        """Everything that changes pixels, factors or captions (not the class rule)."""
        return {"format": FORMAT_VERSION, "package": f"{PACKAGE}=={self.version}",
                "n_train": self.n_train, "n_test": self.n_test, "seed": self.seed,
                "img_size": self.img_size, "captions_per_image": self.captions_per_image,
                "color_jitter": self.color_jitter}

    def _render_key(self) -> str:
        return hash_json(self._render_options())

    def _generate(self) -> None:
        arrays: dict[str, np.ndarray] = {}
        record: dict[str, Any] = {**self._render_options(), "splits": {}}
        for stream, (name, n) in enumerate((("train", self.n_train), ("test", self.n_test))):
            rng = np.random.default_rng([self.seed, stream])
            factors = sample_factors(rng, n, self.color_jitter)
            cap_rng = np.random.default_rng([self.seed, stream, 1])
            captions = [write_captions(f, cap_rng, self.captions_per_image) for f in factors]
            arrays[name] = render(factors, self.img_size, desc=f"render idsprites/{name}")
            record["splits"][name] = {"factors": [f.as_dict() for f in factors],
                                      "captions": captions}
        with atomic_path(self.path.with_suffix(".safetensors")) as tmp:
            save_tensors(arrays, tmp)
        write_json_atomic(self.path.with_suffix(".json"), record)

    def _load(self) -> None:
        json_path, st_path = self.path.with_suffix(".json"), self.path.with_suffix(".safetensors")
        try:
            record = json.loads(json_path.read_text(encoding="utf-8"))
            arrays = load_file(str(st_path))
            self._factors = {s: [SpriteFactors.from_dict(d) for d in record["splits"][s]["factors"]]
                             for s in ("train", "test")}
            self._captions = {s: [list(c) for c in record["splits"][s]["captions"]]
                              for s in ("train", "test")}
        except (OSError, ValueError, KeyError, TypeError, RecursionError,
                SafetensorError) as err:
            raise DataError(f"{self.path}.*: unreadable idsprites cache ({err}); delete it to "
                            "re-render") from err
        fingerprint = {s: hash_json({"kind": "idsprites", "images": file_digest(st_path),
                                     "record": file_digest(json_path), "split": s})
                       for s in ("train", "test")}
        self._sources: dict[str, ArrayImageSource] = {}
        for s, n in (("train", self.n_train), ("test", self.n_test)):
            images = arrays.get(s)
            if images is None or images.shape != (n, self.img_size, self.img_size, 3) or \
                    len(self._factors[s]) != n or len(self._captions[s]) != n:
                raise DataError(f"{self.path}.*: inconsistent idsprites cache for {s}; delete "
                                "it to re-render")
            self._sources[s] = ArrayImageSource(images, fingerprint[s], name=f"idsprites/{s}")

    # -- classes, concepts, captions ------------------------------------------------------------

    def _class_table(self) -> list[dict[str, str]]:
        table: list[dict[str, str]] = [{}]
        for factor in self.class_factors:
            table = [{**row, factor: v} for row in table for v in FACTORS[factor]]
        return table

    @property
    def class_names(self) -> list[str]:
        return [class_name(v) for v in self._class_values]

    @property
    def concept_names(self) -> list[str]:
        return concept_texts()

    def labels_of(self, factors: list[SpriteFactors]) -> np.ndarray:
        """Class index of each image under this dataset's class rule."""
        index = {tuple(v[k] for k in self.class_factors): i
                 for i, v in enumerate(self._class_values)}
        return np.array([index[tuple(getattr(f, k) for k in self.class_factors)]
                         for f in factors], dtype=np.int64)

    def factors(self, name: str) -> list[SpriteFactors]:
        """The factors of every image of official split ``name``, in item order."""
        self._check_split(name)
        return list(self._factors[name])

    def captions(self, name: str) -> list[list[str]]:
        """The captions of every image of official split ``name``, in item order."""
        self._check_split(name)
        return [list(c) for c in self._captions[name]]

    def captions_for(self, split: DataSplit) -> list[list[str]]:
        """The captions of the items of ``split`` (any subset of an official split)."""
        owner = split.meta.get("official_split")
        if split.dataset != self.spec or owner not in self._captions or \
                split.source is not self._sources[owner]:
            raise DataError(f"captions_for: {split.dataset}/{split.name} is not a view of this "
                            "idsprites dataset")
        return [list(self._captions[owner][int(i)]) for i in split.indices]

    def _check_split(self, name: str) -> None:
        if name not in ("train", "test"):
            raise DataError(f"idsprites: no split {name!r}; official splits: train, test")

    def describe(self) -> dict[str, Any]:
        return {"spec": self.spec, "modality": self.modality, **self._render_options(),
                "classes": self.classes}

    def official_split(self, name: str) -> DataSplit:
        self._check_split(name)
        factors = self._factors[name]
        concepts = np.array([concept_row(f) for f in factors], dtype=np.float32)
        rule = {"kind": "generated: train and test drawn from separate seeded streams",
                "seed": self.seed, "streams": {"train": [self.seed, 0], "test": [self.seed, 1]},
                "n_train": self.n_train, "n_test": self.n_test}
        return DataSplit(
            dataset=self.spec, name=name, modality="image", source=self._sources[name],
            indices=np.arange(len(factors)), labels=self.labels_of(factors),
            class_names=self.class_names, concept_labels=concepts,
            concept_names=self.concept_names,
            meta={"official": True, "official_split": name, "split_rule": rule,
                  "classes": self.classes, "cache_file": str(self.path),
                  "package": f"{PACKAGE}=={self.version}"})


_DEFAULTS = {"n_train": 2000, "n_test": 500, "seed": 0, "img_size": 64, "captions_per_image": 3,
             "color_jitter": 12, "classes": "color+size", "cache_dir": None}


@register_dataset("idsprites", options=_DEFAULTS)
def _build(arg: str, options: dict[str, Any]) -> Dataset:
    if arg:
        raise DataError(f"idsprites takes no path; options: {', '.join(sorted(_DEFAULTS))}")
    return IDSprites(**take_options("idsprites", options, _DEFAULTS))
