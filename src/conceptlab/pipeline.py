"""Wires data -> encoder -> cache for the commands: the one place that encodes a split.

Everything after this (zero-shot, probes, bottlenecks, discovery) works on the arrays it
returns, so encoding runs once per (model, data) and every method after it takes seconds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from conceptlab.cache import ActivationCache, CacheKey
from conceptlab.data.base import DataSplit
from conceptlab.encoders.base import Encoder, Views
from conceptlab.utils.progress import progress


@dataclass
class EncodeStats:
    """What one call to ``encode_split`` did (recorded in metrics.json)."""

    rows: int = 0
    from_cache: bool = False
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def split_cache_key(encoder: Encoder, split: DataSplit) -> CacheKey:
    """The cache key of ``split`` encoded by ``encoder``'s cached stage."""
    return CacheKey(encoder=encoder.cache_fingerprint(split.modality), data=split.fingerprint())


def _batched_compute(encoder: Encoder, split: DataSplit) -> Any:
    def compute(start: int, stop: int) -> Views:
        parts: list[Views] = []
        for b in range(start, stop, encoder.batch_size):
            items = split.items(b, min(b + encoder.batch_size, stop))
            parts.append(encoder.encode_batch(items, split.modality))
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    return compute


def ensure_encoded(encoder: Encoder, split: DataSplit, cache: ActivationCache,
                   *, desc: str | None = None, stats: EncodeStats | None = None) -> bool:
    """Encode ``split`` into ``cache`` unless it is there; never reads the entry back.

    Memory stays bounded by one shard whatever the split's size. Returns True on a cache hit.
    """
    encoder.check_modality(split.modality)
    t0 = time.perf_counter()
    n = len(split)
    key = split_cache_key(encoder, split)
    bar = progress(range(n), total=n, desc=desc or f"encode {split.dataset}/{split.name}",
                   unit="item")
    done = [0]

    def tick(rows: int) -> None:
        if hasattr(bar, "update"):
            bar.update(rows - done[0])
        done[0] = rows

    info = {"encoder": encoder.spec, "dataset": split.dataset, "split": split.name}
    hit = cache.ensure(key, n, _batched_compute(encoder, split), info=info, on_progress=tick)
    if hasattr(bar, "close"):
        bar.close()
    if stats is not None:
        stats.rows, stats.from_cache, stats.seconds = n, hit, time.perf_counter() - t0
    return hit


def encode_split_views(encoder: Encoder, split: DataSplit, cache: ActivationCache | None = None,
                       *, desc: str | None = None, stats: EncodeStats | None = None) -> Views:
    """All cached-stage views of ``split`` (encoded into the cache first if missing)."""
    encoder.check_modality(split.modality)
    if cache is None:
        t0 = time.perf_counter()
        label = desc or f"encode {split.dataset}/{split.name}"
        out = _compute_with_progress(_batched_compute(encoder, split), len(split),
                                     encoder.batch_size * 8, label)
        if stats is not None:
            stats.rows, stats.from_cache, stats.seconds = len(split), False, \
                time.perf_counter() - t0
        return out
    ensure_encoded(encoder, split, cache, desc=desc, stats=stats)
    return cache.load(split_cache_key(encoder, split))


def _compute_with_progress(compute: Any, n: int, chunk: int, desc: str) -> Views:
    parts: list[Views] = []
    for start in progress(range(0, n, chunk), total=(n + chunk - 1) // chunk, desc=desc):
        parts.append(compute(start, min(start + chunk, n)))
    if not parts:
        raise ValueError(f"{desc}: nothing to encode (empty split)")
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def encode_split(encoder: Encoder, split: DataSplit, cache: ActivationCache | None = None,
                 *, stats: EncodeStats | None = None) -> np.ndarray:
    """Final embeddings ``(N, dim)`` of ``split`` (cached stage + cheap finalize)."""
    views = encode_split_views(encoder, split, cache, stats=stats)
    return np.asarray(encoder.finalize(views, split.modality), dtype=np.float32)
