"""Wires data -> encoder -> cache for the commands: the one place that encodes a split.

Everything after this (zero-shot, probes, bottlenecks, discovery) works on the arrays it
returns, so encoding runs once per (model, data) and every method after it takes seconds.

Rows are keyed by item content (:func:`item_keys`), so a split that shares items with an
entry already cached for the same encoder computes only its new items; an engine
(``conceptlab.engines``: local loop or Ray Data) computes them.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from conceptlab.cache import ITEM_KEY_BYTES, ActivationCache, CacheKey, as_key_array
from conceptlab.data.base import DataSplit
from conceptlab.encoders.base import Encoder, Views
from conceptlab.errors import ConceptlabValueError
from conceptlab.utils.progress import progress

if TYPE_CHECKING:
    from conceptlab.engines import Engine


@dataclass
class EncodeStats:
    """What one call to ``encode_split`` did (recorded in metrics.json)."""

    rows: int = 0
    from_cache: bool = False
    seconds: float = 0.0
    computed: int = 0  # rows the encoder ran on
    reused: int = 0  # rows copied from other entries of the same encoder (same content)
    extra: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """JSON-able summary for metrics.json."""
        return {"rows": self.rows, "from_cache": self.from_cache,
                "seconds": round(self.seconds, 3), "computed": self.computed,
                "reused": self.reused}


def item_digest(item: Any) -> bytes:
    """16-byte key of one item's decoded content (pixels + mode + size, or the text).

    Content, not position: the same image in two datasets, or in two subsamples, gets the
    same key, and an edited file gets a new one.
    """
    h = hashlib.blake2b(digest_size=ITEM_KEY_BYTES)
    if isinstance(item, str):
        h.update(b"str\0")
        h.update(item.encode("utf-8"))
    elif isinstance(item, bytes):
        h.update(b"bytes\0")
        h.update(item)
    elif isinstance(item, np.ndarray):
        arr = np.ascontiguousarray(item)
        h.update(f"ndarray\0{arr.dtype.str}{arr.shape}\0".encode())
        h.update(arr.tobytes())
    elif hasattr(item, "tobytes") and hasattr(item, "mode") and hasattr(item, "size"):
        h.update(f"image\0{item.mode}\0{item.size}\0".encode())  # a PIL image
        h.update(item.tobytes())
    else:
        h.update(f"json\0{type(item).__name__}\0".encode())
        h.update(json.dumps(item, sort_keys=True, default=repr).encode())
    return h.digest()


def item_keys(split: DataSplit, chunk: int = 512) -> np.ndarray:
    """``(N, 16)`` content keys of the split's items, in order.

    A source may provide its own ``item_keys(indices) -> (N, 16) uint8`` (e.g. hashes of
    file bytes, cheaper than decoding); otherwise each item is loaded and hashed.
    """
    own = getattr(split.source, "item_keys", None)
    if callable(own):
        return as_key_array(own(split.indices), len(split))
    keys: list[bytes] = []
    for start in range(0, len(split), chunk):
        keys.extend(item_digest(x) for x in split.items(start, min(start + chunk, len(split))))
    return as_key_array(keys, len(split)) if keys else np.zeros((0, ITEM_KEY_BYTES), np.uint8)


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
                   *, desc: str | None = None, stats: EncodeStats | None = None,
                   engine: Engine | None = None) -> bool:
    """Encode ``split`` into ``cache`` unless it is there; never reads the entry back.

    Only items whose content no entry of the same encoder holds are encoded, by ``engine``
    (default: the local loop). Memory stays bounded by one shard whatever the split's size.
    Returns True on a cache hit.
    """
    encoder.check_modality(split.modality)
    t0 = time.perf_counter()
    n = len(split)
    key = split_cache_key(encoder, split)
    if cache.has(key):
        if stats is not None:
            stats.rows, stats.from_cache, stats.seconds = n, True, time.perf_counter() - t0
        return True
    if engine is None:
        from conceptlab.engines.local import LocalEngine

        engine = LocalEngine()
    keys = item_keys(split)
    bar = progress(range(n), total=n, desc=desc or f"encode {split.dataset}/{split.name}",
                   unit="item")
    done = [0]

    def tick(rows: int) -> None:
        if hasattr(bar, "update"):
            bar.update(rows - done[0])
        done[0] = rows

    info = {"encoder": encoder.spec, "dataset": split.dataset, "split": split.name,
            "engine": engine.name}
    run = engine
    report = cache.ensure_rows(key, keys, lambda pos: run.rows(encoder, split, pos), info=info,
                               on_progress=tick)
    if hasattr(bar, "close"):
        bar.close()
    if stats is not None:
        stats.rows, stats.from_cache, stats.seconds = n, report.hit, time.perf_counter() - t0
        stats.computed, stats.reused = report.computed, report.reused
    return report.hit


def encode_split_views(encoder: Encoder, split: DataSplit, cache: ActivationCache | None = None,
                       *, desc: str | None = None, stats: EncodeStats | None = None,
                       engine: Engine | None = None) -> Views:
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
            stats.computed = len(split)
        return out
    ensure_encoded(encoder, split, cache, desc=desc, stats=stats, engine=engine)
    return cache.load(split_cache_key(encoder, split))


def _compute_with_progress(compute: Any, n: int, chunk: int, desc: str) -> Views:
    parts: list[Views] = []
    for start in progress(range(0, n, chunk), total=(n + chunk - 1) // chunk, desc=desc):
        parts.append(compute(start, min(start + chunk, n)))
    if not parts:
        raise ConceptlabValueError(f"{desc}: nothing to encode (empty split)")
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def encode_split(encoder: Encoder, split: DataSplit, cache: ActivationCache | None = None,
                 *, stats: EncodeStats | None = None) -> np.ndarray:
    """Final embeddings ``(N, dim)`` of ``split`` (cached stage + cheap finalize)."""
    views = encode_split_views(encoder, split, cache, stats=stats)
    return np.asarray(encoder.finalize(views, split.modality), dtype=np.float32)
