"""Helpers shared by the image-text encoder adapters (``hf_clip``, ``open_clip``)."""

from __future__ import annotations

import threading
from collections.abc import Hashable, Iterable, MutableMapping
from typing import Any

import numpy as np
import torch

from conceptlab.encoders.base import EncoderError, Views
from conceptlab.utils.hashing import hash_state_dict


def embedding_views(emb: torch.Tensor, normalize: bool) -> Views:
    """``{"embedding": float32 array}`` of a batch of embeddings, L2-normalised if asked."""
    emb = emb.float()
    if normalize:
        emb = torch.nn.functional.normalize(emb, dim=-1)
    return {"embedding": emb.cpu().numpy().astype(np.float32)}


def cached_weight_hash(cache: MutableMapping[Any, str], lock: threading.Lock | threading.RLock,
                       key: Hashable, model: torch.nn.Module) -> str:
    """Hash of ``model``'s weights, computed once per process per ``key``."""
    with lock:
        if key not in cache:
            cache[key] = hash_state_dict(model.state_dict())
        return cache[key]


def check_options(prefix: str, arg: str, options: Iterable[str], known: set[str]) -> None:
    """Raise an EncoderError naming any option of ``prefix:arg`` not in ``known``."""
    unknown = set(options) - known
    if unknown:
        raise EncoderError(
            f"{prefix}:{arg}: unknown options {sorted(unknown)}; known: {sorted(known)}")
