"""A linear map from an image encoder into a text encoder's space, as one encoder (``linear:DIR``).

LiMBeR (Merullo et al., ICLR 2023, "Linearly Mapping from Image to Text Space", sec. 2): a
frozen image encoder's features ``f(x)`` are carried into a frozen language model's space by
one linear map ``P``; trained on image-caption pairs, the map carries much of the image's
meaning. Here the text side is a sentence encoder (MiniLM), so an image's embedding is

    e(x) = normalize( ((f(x) - mu) / sigma) W + b )          (W: d_img x d_text)

and a text's embedding is the text encoder's own. Images, captions, class prompts and concept
texts then share one space, and concept scores are cosines in it. ``W``, ``b``, ``mu`` and
``sigma`` are fitted by ``conceptlab.align`` (ridge regression or a CLIP-style contrastive
loss) and saved in ``DIR`` as ``map.safetensors`` + ``map.json`` (never pickle), with the
spec, options and fingerprint of both encoders.

Two stages (``encoders/base.py``): the cached stage is the image encoder's own (its views,
e.g. EfficientNet-Lite0's ``features`` and ``logits``), keyed by its weights and
preprocessing, so refitting a map reuses every cached image; ``finalize`` applies the map
(cheap). ``fingerprint()`` covers the map's weights, so concept banks, fitted models and
anything keyed on it change when the map changes. Loading checks that both encoders still
have the fingerprints the map was fitted with.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from conceptlab.encoders.base import (
    Encoder,
    EncoderError,
    Modality,
    Views,
    build_encoder,
    register_encoder,
)
from conceptlab.tap import Tap
from conceptlab.utils.hashing import hash_array, hash_json
from conceptlab.utils.io import atomic_dir, write_json_atomic
from conceptlab.utils.saved import SavedKind, read_saved, write_saved

MAP_FORMAT = 1
MAP_WEIGHTS = "map.safetensors"
MAP_META = "map.json"
#: ``map.json`` (method, dims, both encoders' records) + ``map.safetensors`` (W, b, mu, sigma)
SAVED_MAP = SavedKind("linear-image-to-text", (MAP_FORMAT,), "map", error=EncoderError)


@dataclass
class LinearMap:
    """``e = normalize(((f - mu) / sigma) W + b)``; see the module docstring."""

    W: np.ndarray  # (d_img, d_text)
    b: np.ndarray  # (d_text,)
    mu: np.ndarray  # (d_img,)
    sigma: np.ndarray  # (d_img,)
    method: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.W = np.asarray(self.W, dtype=np.float32)
        self.b = np.asarray(self.b, dtype=np.float32).reshape(-1)
        self.mu = np.asarray(self.mu, dtype=np.float32).reshape(-1)
        self.sigma = np.asarray(self.sigma, dtype=np.float32).reshape(-1)
        if self.W.ndim != 2 or self.W.shape[0] == 0 or self.W.shape[1] == 0:
            raise EncoderError(f"linear map: W must be a non-empty 2-D matrix, got {self.W.shape}")
        d_in, d_out = self.W.shape
        if self.b.shape != (d_out,) or self.mu.shape != (d_in,) or self.sigma.shape != (d_in,):
            raise EncoderError(f"linear map: shapes disagree (W {self.W.shape}, b {self.b.shape}, "
                               f"mu {self.mu.shape}, sigma {self.sigma.shape})")
        arrays = (self.W, self.b, self.mu, self.sigma)
        if not all(np.isfinite(a).all() for a in arrays) or (self.sigma <= 0).any():
            raise EncoderError("linear map: weights must be finite and sigma positive")

    @property
    def in_dim(self) -> int:
        return int(self.W.shape[0])

    @property
    def out_dim(self) -> int:
        return int(self.W.shape[1])

    def weights_hash(self) -> str:
        return hash_json([hash_array(a) for a in (self.W, self.b, self.mu, self.sigma)])

    def check_features(self, features: np.ndarray) -> np.ndarray:
        """``features`` as float32 (N, in_dim), or an EncoderError naming the width mismatch."""
        F = np.asarray(features)
        if F.ndim != 2:
            raise EncoderError(f"linear map: image features must be 2-D (N x {self.in_dim}), "
                               f"got shape {F.shape}")
        if F.shape[1] != self.in_dim:
            raise EncoderError(f"linear map expects {self.in_dim}-d image features but got "
                               f"{F.shape[1]}-d ones: the image encoder is not the one the map "
                               "was fitted on")
        return F.astype(np.float32, copy=False)

    def raw(self, features: np.ndarray) -> np.ndarray:
        """The map before normalisation, ``((f - mu) / sigma) W + b``: (N, out_dim)."""
        F = self.check_features(features)
        return ((F - self.mu) / self.sigma) @ self.W + self.b

    def __call__(self, features: np.ndarray) -> np.ndarray:
        """Unit-norm embeddings (N, out_dim) of image features (N, in_dim)."""
        z = self.raw(features)
        return (z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)).astype(
            np.float32)


def encoder_record(encoder: Encoder, spec: str, options: dict[str, Any]) -> dict[str, Any]:
    """What a map records of one side: spec, options (to rebuild it), fingerprint, dim."""
    return {"spec": spec, "options": dict(options), "fingerprint": encoder.fingerprint(),
            "dim": int(encoder.dim)}


def save_map(folder: str | Path, linear_map: LinearMap, image: dict[str, Any],
             text: dict[str, Any], extra_files: dict[str, Any] | None = None) -> Path:
    """Write ``map.safetensors`` + ``map.json`` (and JSON ``extra_files``) into ``folder``,
    atomically. ``image`` / ``text`` are :func:`encoder_record` dicts."""
    check_map_joins(linear_map, image, text)
    with atomic_dir(folder) as tmp:
        write_map(tmp, linear_map, image, text, extra_files)
    return Path(folder)


def check_map_joins(linear_map: LinearMap, image: dict[str, Any], text: dict[str, Any]) -> None:
    """EncoderError unless the map joins the recorded image encoder to the text encoder."""
    if image.get("dim") != linear_map.in_dim or text.get("dim") != linear_map.out_dim:
        raise EncoderError(f"linear map {linear_map.in_dim}->{linear_map.out_dim} does not join "
                           f"a {image.get('dim')}-d image encoder to a {text.get('dim')}-d text "
                           "encoder")


def write_map(folder: Path, linear_map: LinearMap, image: dict[str, Any], text: dict[str, Any],
              extra_files: dict[str, Any] | None = None) -> Path:
    """The map's files written into an existing (staging) ``folder``, no swap: for a caller
    that stages the whole run itself (``runs.open_run``)."""
    check_map_joins(linear_map, image, text)
    write_saved(folder, SAVED_MAP, {
        "method": linear_map.method, "in_dim": linear_map.in_dim, "out_dim": linear_map.out_dim,
        "weights_hash": linear_map.weights_hash(), "image_encoder": image,
        "text_encoder": text, "info": linear_map.info},
        {"W": linear_map.W, "b": linear_map.b, "mu": linear_map.mu, "sigma": linear_map.sigma})
    for name, obj in (extra_files or {}).items():
        write_json_atomic(folder / name, obj)
    return folder


def load_map(folder: str | Path) -> tuple[LinearMap, dict[str, Any]]:
    """The map saved in ``folder`` and its JSON record; a clear error for a bad folder."""
    d = Path(folder).expanduser()
    if not (d / MAP_META).is_file():
        raise EncoderError(f"linear:{folder}: no {MAP_META} there (a folder written by "
                           "`conceptlab align`)")
    meta, arrays = read_saved(d, SAVED_MAP, required=("W", "b", "mu", "sigma"))
    lm = LinearMap(arrays["W"], arrays["b"], arrays["mu"], arrays["sigma"],
                   method=str(meta.get("method", "")), info=dict(meta.get("info", {})))
    if meta.get("weights_hash") not in (None, lm.weights_hash()):
        raise EncoderError(f"linear:{folder}: {MAP_WEIGHTS} does not match the hash in {MAP_META}")
    return lm, meta


class LinearMapEncoder(Encoder):
    """Images through an image encoder and a fitted linear map; texts through the text encoder."""

    modalities = frozenset({"image", "text"})

    def __init__(self, linear_map: LinearMap, image_encoder: Encoder, text_encoder: Encoder,
                 spec: str = "linear", meta: dict[str, Any] | None = None) -> None:
        image_encoder.check_modality("image")
        text_encoder.check_modality("text")
        if text_encoder.dim != linear_map.out_dim:
            raise EncoderError(f"{spec}: the map outputs {linear_map.out_dim}-d vectors but the "
                               f"text encoder {text_encoder.spec!r} is {text_encoder.dim}-d")
        self.map = linear_map
        self.image_encoder = image_encoder
        self.text_encoder = text_encoder
        self.spec = spec
        self.meta = dict(meta or {})
        self.batch_size = image_encoder.batch_size

    @classmethod
    def load(cls, folder: str | Path, check_fingerprints: bool = True) -> LinearMapEncoder:
        """Rebuild both encoders from the records in ``folder`` and attach the map."""
        lm, meta = load_map(folder)
        sides = {}
        for side in ("image_encoder", "text_encoder"):
            rec = meta.get(side) or {}
            if not rec.get("spec"):
                raise EncoderError(f"linear:{folder}: {MAP_META} does not name its {side}")
            enc = build_encoder(rec["spec"], **rec.get("options", {}))
            if check_fingerprints and rec.get("fingerprint") and \
                    enc.fingerprint() != rec["fingerprint"]:
                raise EncoderError(f"linear:{folder}: the {side.replace('_', ' ')} "
                                   f"{rec['spec']!r} is not the one the map was fitted with "
                                   f"(fingerprint {enc.fingerprint()} != {rec['fingerprint']})")
            sides[side] = enc
        return cls(lm, sides["image_encoder"], sides["text_encoder"], spec=f"linear:{folder}",
                   meta=meta)

    @property
    def dim(self) -> int:
        return self.map.out_dim

    def fingerprint(self) -> str:
        return hash_json({"method": "linear-map", "map": self.map.weights_hash(),
                          "image": self.image_encoder.fingerprint(),
                          "text": self.text_encoder.fingerprint()})

    def cache_fingerprint(self, modality: Modality) -> str:
        """Images: the image encoder's cached stage (the map is applied in ``finalize``)."""
        if modality == "image":
            return self.image_encoder.cache_fingerprint("image")
        return self.text_encoder.cache_fingerprint("text")

    def encode_batch(self, items: Sequence[Any], modality: Modality) -> Views:
        self.check_modality(modality)
        if modality == "image":
            return self.image_encoder.encode_batch(items, "image")
        return self.text_encoder.encode_batch(items, "text")

    def image_features(self, views: Views) -> np.ndarray:
        """The image encoder's final embedding (what the map reads) from cached views."""
        return np.asarray(self.image_encoder.finalize(views, "image"), dtype=np.float32)

    def finalize(self, views: Views, modality: Modality) -> np.ndarray:
        if modality == "text":
            return self.text_encoder.finalize(views, "text")
        return self.map(self.image_features(views))

    def tap(self) -> Tap:
        """The image encoder's tap (the map acts after the network)."""
        return self.image_encoder.tap()

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "method": self.map.method,
                "image_encoder": self.image_encoder.spec, "text_encoder": self.text_encoder.spec,
                "map_hash": self.map.weights_hash()}


_OPTIONS = {"check_fingerprints"}


@register_encoder("linear", options=_OPTIONS, arg="runs/align")
def _build(arg: str, options: dict[str, Any]) -> LinearMapEncoder:
    if not arg:
        raise EncoderError("linear: needs the folder written by `conceptlab align`, e.g. "
                           "linear:runs/align")
    unknown = set(options) - _OPTIONS
    if unknown:
        raise EncoderError(f"linear:{arg}: unknown options {sorted(unknown)}; known: "
                           f"{sorted(_OPTIONS)}")
    return LinearMapEncoder.load(arg, **options)
