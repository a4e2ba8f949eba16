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
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from conceptlab.errors import ConceptlabError
from conceptlab.tap import Tap
from conceptlab.utils.registry import Registry

Modality = Literal["image", "text"]
Views = dict[str, np.ndarray]


class EncoderError(ConceptlabError, ValueError):
    """Raised for an unknown encoder spec, a missing optional dependency or bad encoder input."""


def option_int(spec: str, name: str, value: Any, minimum: int = 1,
               maximum: int | None = None) -> int:
    """An integer option of encoder ``spec`` in ``[minimum, maximum]``, or an EncoderError
    naming the option and its range (a bool, a float or a string is refused, not truncated)."""
    ok = isinstance(value, int | np.integer) and not isinstance(value, bool)
    if not ok or value < minimum or (maximum is not None and value > maximum):
        bound = f"in [{minimum}, {maximum}]" if maximum is not None else f">= {minimum}"
        raise EncoderError(f"{spec}: option {name} must be an integer {bound}, got {value!r}")
    return int(value)


def option_float(spec: str, name: str, value: Any, low: float, high: float | None = None,
                 low_open: bool = True) -> float:
    """A finite number option in ``(low, high]`` (``[low, high]`` unless ``low_open``)."""
    ok = isinstance(value, int | float | np.number) and not isinstance(value, bool)
    f = float(value) if ok else float("nan")
    inside = np.isfinite(f) and (f > low if low_open else f >= low) and (high is None
                                                                         or f <= high)
    if not inside:
        lo = "(" if low_open else "["
        rng = f"{lo}{low}, {high}]" if high is not None else f"{'>' if low_open else '>='} {low}"
        raise EncoderError(f"{spec}: option {name} must be a number {'in ' if high else ''}"
                           f"{rng}, got {value!r}")
    return f


def check_model_source(spec: str, name_or_path: str) -> None:
    """A ``name_or_path`` written as a local path (``/x``, ``./x``, ``~/x``, or more than one
    ``/``) must exist: say so, instead of the hub's "Repo id must be in the form ..."."""
    name = str(name_or_path)
    looks_local = name.startswith(("/", "./", "../", "~", ".\\")) or name.count("/") > 1
    if looks_local and not Path(name).expanduser().exists():
        raise EncoderError(f"{spec}: {name}: no such folder (a local model must be a folder "
                           "that exists; a hub model is named like 'org/name')")


def option_bool(spec: str, name: str, value: Any) -> bool:
    """A true/false option (JSON ``true``/``false`` on the command line)."""
    if not isinstance(value, bool | np.bool_):
        raise EncoderError(f"{spec}: option {name} must be true or false, got {value!r}")
    return bool(value)


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

    def tap(self) -> Tap:
        """The torch network behind this encoder, opened for hooking (``conceptlab.tap``):
        its module, hook-point map, preprocessing and forward call. Families that run a torch
        network override it; discovery, TCAV and :meth:`activations` read only this."""
        raise EncoderError(f"encoder {self.spec!r} exposes no torch network to tap (hook "
                           "points need a family that runs one, e.g. efficientnet, conse, hf:)")

    def hook_points(self) -> list[str]:
        """The canonical hook-point names of :meth:`tap` (raw module paths work too)."""
        return self.tap().hook_points()

    def activations(self, hooks: str | Sequence[str], reduce: str = "mean") -> Encoder:
        """An ``ActivationEncoder`` reading ``hooks`` (canonical names or raw module paths) of
        this encoder's network with this encoder's preprocessing (in its fingerprint)."""
        from conceptlab.encoders.activations import ActivationEncoder

        t = self.tap()
        return ActivationEncoder(t.module, hooks, preprocess=t.preprocess, name=t.name,
                                 reduce=reduce, modality="text" if t.modality == "text"
                                 else "image", preprocess_id=t.preprocess_id,
                                 batch_size=self.batch_size, points=t.points,
                                 forward=t.forward)


EncoderFactory = Callable[[str, dict[str, Any]], Encoder]
_REGISTRY: Registry[EncoderFactory] = Registry("encoder", EncoderError)
_OPTIONS: dict[str, tuple[list[str], str | None]] = {}


def register_encoder(prefix: str, options: Iterable[str] = (), arg: str | None = None
                     ) -> Callable[[EncoderFactory], EncoderFactory]:
    """Register a factory for specs ``prefix`` or ``prefix:ARG`` (``ARG`` passed as the string).

    ``options``: the ``-E`` option names the family takes; ``arg``: an example ``ARG`` when the
    spec takes one (``None``: none). Both are what :func:`encoder_options` returns, so the
    documentation is derived from the registry.
    """

    def deco(factory: EncoderFactory) -> EncoderFactory:
        _REGISTRY.add(prefix, factory)
        _OPTIONS[prefix] = (sorted(options), arg)
        return factory

    return deco


def encoder_options(prefix: str) -> tuple[list[str], str | None]:
    """``(option names, example ARG or None)`` of a registered encoder family."""
    _load_builtin_adapters()
    _REGISTRY.lookup(prefix)
    names, arg = _OPTIONS[prefix]
    return list(names), arg


def known_encoders() -> list[str]:
    """Registered spec prefixes."""
    _load_builtin_adapters()
    return sorted(_REGISTRY)


def package_encoders() -> list[str]:
    """The families conceptlab itself registers (factories defined in the ``conceptlab``
    package): what the documentation lists and the contract tests check. A family a user
    (or a test) registers is built like any other but is not part of the package's docs."""
    _load_builtin_adapters()
    return sorted(p for p in _REGISTRY
                  if getattr(_REGISTRY[p], "__module__", "").startswith("conceptlab."))


def build_encoder(spec: str, **options: Any) -> Encoder:
    """Build an encoder from a spec: ``conse``, ``minilm``, ``hf:PATH``, ``openclip:ARCH/TAG``."""
    _load_builtin_adapters()
    if not spec or not isinstance(spec, str):
        raise EncoderError("empty encoder spec")
    prefix, _, arg = spec.partition(":")
    return _REGISTRY.lookup(prefix, shown=spec)(arg, options)


def _load_builtin_adapters() -> None:
    # Importing the adapter modules registers them; each guards its own optional imports.
    from conceptlab.encoders import (  # noqa: F401
        conse,
        efficientnet,
        hf_clip,
        linear,
        open_clip,
        sentence,
    )
