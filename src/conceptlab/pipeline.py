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


def encode_split_views(encoder: Encoder, split: DataSplit, cache: ActivationCache | None = None,
                       *, desc: str | None = None, stats: EncodeStats | None = None) -> Views:
    """All cached-stage views of ``split`` (read from the cache when present)."""
    encoder.check_modality(split.modality)
    t0 = time.perf_counter()
    n = len(split)
    label = desc or f"encode {split.dataset}/{split.name}"

    def compute(start: int, stop: int) -> Views:
        parts: list[Views] = []
        for b in range(start, stop, encoder.batch_size):
            items = split.items(b, min(b + encoder.batch_size, stop))
            parts.append(encoder.encode_batch(items, split.modality))
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    if cache is None:
        out = _compute_with_progress(compute, n, encoder.batch_size * 8, label)
        hit = False
    else:
        key = split_cache_key(encoder, split)
        hit = cache.has(key)
        if hit:
            out = cache.load(key)
        else:
            bar = progress(range(n), total=n, desc=label, unit="item")
            pbar = bar if hasattr(bar, "update") else None
            done = [0]

            def tick(rows: int) -> None:
                if pbar is not None:
                    pbar.update(rows - done[0])  # type: ignore[union-attr]
                done[0] = rows

            info = {"encoder": encoder.spec, "dataset": split.dataset, "split": split.name}
            out = cache.get_or_compute(key, n, compute, info=info, on_progress=tick)
            if pbar is not None:
                pbar.close()  # type: ignore[union-attr]
    if stats is not None:
        stats.rows, stats.from_cache, stats.seconds = n, hit, time.perf_counter() - t0
    return out


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
