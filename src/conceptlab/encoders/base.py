"""The encoder protocol and the registry that builds encoders from spec strings.

An encoder turns raw inputs (PIL images or strings) into vectors in one space. Encoding runs
in two stages so that the expensive part is cached once per (model, data):

* ``encode_batch(items, modality)`` runs the network and returns named *views* (arrays with
  one row per item, e.g. ``{"embedding": ...}`` or ``{"features": ..., "logits": ...}``).
  Its identity is ``cache_fingerprint(modality)``: weights + preprocessing, nothing else.
* ``finalize(views, modality)`` turns views into the final embedding. It is cheap (no network),
  so options that act after the network (e.g. ConSE's top-k) can be swept without re-encoding.

``fingerprint()`` identifies the whole encoder (every option that changes the embedding) and
is what concept banks and fitted models record and check.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
import torch

from conceptlab.errors import ConceptlabError

Modality = Literal["image", "text"]
Views = dict[str, np.ndarray]


class EncoderError(ConceptlabError, ValueError):
    """Raised for an unknown encoder spec, a missing optional dependency or bad encoder input."""


class Encoder(ABC):
    """Base class of every encoder adapter: see the module docstring for the two stages."""

    #: the spec string this encoder was built from (e.g. ``"conse"``, ``"hf:openai/clip-..."``)
    spec: str = ""
    #: which inputs it accepts
    modalities: frozenset[str] = frozenset()
    #: items per forward pass
    batch_size: int = 32

    @property
    @abstractmethod
    def dim(self) -> int:
        """Dimension of the final embedding."""

    @property
    def device(self) -> torch.device:
        """Device the network runs on."""
        return torch.device("cpu")

    @abstractmethod
    def fingerprint(self) -> str:
        """Identity of all that shapes the final embedding (weights, preprocessing, options)."""

    def cache_fingerprint(self, modality: Modality) -> str:
        """Identity of the cached stage (``encode_batch``); defaults to the full fingerprint."""
        return f"{self.fingerprint()}:{modality}"

    @abstractmethod
    def encode_batch(self, items: Sequence[Any], modality: Modality) -> Views:
        """Run the network on one batch; return named views, each with ``len(items)`` rows."""

    def finalize(self, views: Views, modality: Modality) -> np.ndarray:
        """Turn cached views into final embeddings (default: the ``"embedding"`` view)."""
        return views["embedding"]

    def check_modality(self, modality: Modality) -> None:
        """Raise a clear error if this encoder cannot take ``modality`` inputs."""
        if modality not in self.modalities:
            raise EncoderError(
                f"encoder {self.spec!r} does not encode {modality}s "
                f"(it takes: {', '.join(sorted(self.modalities)) or 'nothing'})"
            )

    def _encode(self, items: Sequence[Any], modality: Modality) -> np.ndarray:
        self.check_modality(modality)
        if len(items) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = []
        for start in range(0, len(items), self.batch_size):
            views = self.encode_batch(items[start : start + self.batch_size], modality)
            out.append(self.finalize(views, modality))
        return np.concatenate(out).astype(np.float32, copy=False)

    def encode_images(self, images: Sequence[Any]) -> np.ndarray:
        """Encode PIL images (no cache) into an ``(N, dim)`` float32 array."""
        return self._encode(images, "image")

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Encode strings (no cache) into an ``(N, dim)`` float32 array."""
        if isinstance(texts, str):
            raise EncoderError("encode_texts takes a list of strings, not one string")
        return self._encode(list(texts), "text")

    def describe(self) -> dict[str, Any]:
        """JSON-able summary recorded next to results."""
        return {"spec": self.spec, "fingerprint": self.fingerprint(), "dim": self.dim,
                "modalities": sorted(self.modalities)}


EncoderFactory = Callable[[str, dict[str, Any]], Encoder]
_REGISTRY: dict[str, EncoderFactory] = {}


def register_encoder(prefix: str) -> Callable[[EncoderFactory], EncoderFactory]:
    """Register a factory for specs ``prefix`` or ``prefix:ARG`` (``ARG`` passed as the string)."""

    def deco(factory: EncoderFactory) -> EncoderFactory:
        _REGISTRY[prefix] = factory
        return factory

    return deco


def known_encoders() -> list[str]:
    """Registered spec prefixes."""
    _load_builtin_adapters()
    return sorted(_REGISTRY)


def build_encoder(spec: str, **options: Any) -> Encoder:
    """Build an encoder from a spec: ``conse``, ``minilm``, ``hf:PATH``, ``openclip:ARCH/TAG``."""
    _load_builtin_adapters()
    if not spec or not isinstance(spec, str):
        raise EncoderError("empty encoder spec")
    prefix, _, arg = spec.partition(":")
    if prefix not in _REGISTRY:
        raise EncoderError(f"unknown encoder {spec!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[prefix](arg, options)


def _load_builtin_adapters() -> None:
    # Importing the adapter modules registers them; each guards its own optional imports.
    from conceptlab.encoders import conse, efficientnet, hf_clip, open_clip, sentence  # noqa: F401
