"""Raw activations of any torch module as an encoder, so the cache can store them.

CRAFT-style concept discovery (Fel et al., CVPR 2023, "CRAFT: Concept Recursive Activation
FacTorization for Explainability") and TCAV-style probing (Kim et al., ICML 2018) work on a
model's intermediate activations, not on a joint image-text space. ``ActivationEncoder`` wraps
a module, a preprocessing function and hook names (canonical names when a ``HookPoints`` map is
given, raw module paths always; see ``conceptlab.hooks``); ``encode_batch`` returns one view per
hook, reduced to one row per item. Any encoder whose family exposes a tap builds one with
``encoder.activations(hooks)``.

>>> enc = ActivationEncoder(net.model, hooks=["_blocks.11", "_blocks.15"],
...                         preprocess=net.preprocess, preprocess_id=net.preprocess_config())
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from conceptlab.encoders.base import (
    Encoder,
    EncoderError,
    Modality,
    Views,
    option_int,
)
from conceptlab.hooks import REDUCTIONS, HookError, HookPoints, capture
from conceptlab.utils.hashing import hash_json, hash_module

Batch = torch.Tensor | Mapping[str, torch.Tensor]


def describe_callable(fn: Callable[..., Any]) -> str:
    """A stable description of a function: qualified name plus a hash of its code and constants.

    Used when no explicit ``preprocess_id`` is given, so that editing the function's body
    changes the fingerprint (values captured from enclosing scopes are not seen: pass
    ``preprocess_id`` when those vary).
    """
    target = getattr(fn, "func", fn)  # functools.partial
    code = getattr(target, "__code__", None)
    if code is None and callable(target):  # a callable object: hash its __call__
        code = getattr(type(target).__call__, "__code__", None)
    qualname = getattr(target, "__qualname__", type(target).__name__)
    name = f"{getattr(target, '__module__', '?')}.{qualname}"
    if code is None:
        return name
    h = hashlib.sha256(code.co_code)
    h.update(repr(code.co_consts).encode())
    extra = (getattr(fn, "args", ()), getattr(fn, "keywords", {})) if target is not fn else ()
    h.update(repr(extra).encode())
    return f"{name}#{h.hexdigest()[:12]}"


class ActivationEncoder(Encoder):
    """Activations at named hook points of ``model`` as cacheable views (one per hook).

    ``preprocess(items) -> Tensor | dict of Tensors`` builds a batch (a dict is passed as
    ``model(**batch)``; its ``attention_mask``, if any, makes token reductions skip padding).
    ``reduce`` turns each output into one row per item (``"mean"`` over space or tokens by
    default); anything left over is flattened. ``finalize`` returns the view of
    ``embedding_hook`` (default: the last hook).

    The fingerprint hashes the weights (re-hashed only when a parameter changes in place),
    the hook names, the reduction and ``preprocess_id`` (default: ``describe_callable``).
    """

    def __init__(self, model: nn.Module, hooks: str | Sequence[str],
                 preprocess: Callable[[Sequence[Any]], Batch], name: str = "activations",
                 reduce: str = "mean", modality: Modality = "image",
                 preprocess_id: Any = None, embedding_hook: str | None = None,
                 batch_size: int = 32, points: HookPoints | None = None,
                 forward: Callable[[Any], Any] | None = None) -> None:
        if not isinstance(model, nn.Module):
            raise EncoderError(
                f"ActivationEncoder needs a torch module, got {type(model).__name__}")
        hooks = [hooks] if isinstance(hooks, str) else list(dict.fromkeys(hooks))
        if not hooks:
            raise EncoderError("ActivationEncoder needs at least one hook name")
        if reduce not in REDUCTIONS:
            raise EncoderError(f"unknown reduce {reduce!r}; choose from {', '.join(REDUCTIONS)}")
        if modality not in ("image", "text"):
            raise EncoderError(f"modality must be 'image' or 'text', got {modality!r}")
        self.points = points if points is not None else HookPoints(model)
        self.forward = forward
        try:
            for h in hooks:
                self.points.resolve(h)
        except HookError as err:
            raise EncoderError(str(err)) from err
        self.embedding_hook = embedding_hook or hooks[-1]
        if self.embedding_hook not in hooks:
            raise EncoderError(
                f"embedding_hook {self.embedding_hook!r} is not one of the hooks {hooks}")
        self.model = model.eval()
        self.hooks = hooks
        self.preprocess = preprocess
        if preprocess_id is None:
            preprocess_id = describe_callable(preprocess)
        self.preprocess_id = preprocess_id
        self.reduce = reduce
        self.spec = f"activations:{name}"
        self.modalities = frozenset({modality})
        self.batch_size = option_int(self.spec, "batch_size", batch_size)
        self._dims: dict[str, int] = {}
        self._hash_key: tuple[Any, ...] | None = None
        self._weights_hash = ""

    @property
    def device(self) -> torch.device:
        param = next(self.model.parameters(), None)
        return param.device if param is not None else torch.device("cpu")

    @property
    def dim(self) -> int:
        if self.embedding_hook not in self._dims:
            raise EncoderError(f"{self.spec}: the dimension is known after the first encoded batch")
        return self._dims[self.embedding_hook]

    def dims(self) -> dict[str, int]:
        """Row width of each hook's view (after the first encoded batch)."""
        return dict(self._dims)

    def weights_hash(self) -> str:
        """Hash of the state dict; recomputed only if a tensor was replaced or changed in place."""
        state = self.model.state_dict()
        key = tuple((k, v.data_ptr(), v._version) for k, v in state.items())
        if key != self._hash_key:
            self._weights_hash, self._hash_key = hash_module(self.model), key
        return self._weights_hash

    def fingerprint(self) -> str:
        return hash_json({"kind": "activations", "model": type(self.model).__name__,
                          "weights": self.weights_hash(), "hooks": self.hooks,
                          "reduce": self.reduce,
                          "preprocess": self.preprocess_id, "modality": sorted(self.modalities)})

    def encode_batch(self, items: Sequence[Any], modality: Modality) -> Views:
        self.check_modality(modality)
        try:
            batch = self.preprocess(items)
        except EncoderError:
            raise
        except Exception as err:
            raise EncoderError(
                f"{self.spec}: preprocess failed: {type(err).__name__}: {err}") from err
        device = self.device  # the batch follows the model
        if isinstance(batch, Mapping):
            batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v
                     for k, v in batch.items()}
        elif isinstance(batch, torch.Tensor):
            batch = batch.to(device)
        mask = batch.get("attention_mask") if isinstance(batch, Mapping) else None
        with torch.inference_mode(), capture(self.points, self.hooks, reduce=self.reduce,
                                             mask=mask) as acts:
            if self.forward is not None:
                self.forward(batch)
            elif isinstance(batch, Mapping):
                self.model(**batch)
            else:
                self.model(batch)
        views: Views = {}
        for hook in self.hooks:
            tensor = acts[hook]
            array = tensor.reshape(tensor.shape[0], -1).float().cpu().numpy().astype(np.float32)
            self._dims[hook] = array.shape[1]
            views[hook] = array
        return views

    def finalize(self, views: Views, modality: Modality) -> np.ndarray:
        return views[self.embedding_hook]

    def describe(self) -> dict[str, Any]:
        return {"spec": self.spec, "fingerprint": self.fingerprint(), "hooks": self.hooks,
                "reduce": self.reduce, "modalities": sorted(self.modalities), "dims": self.dims()}
