"""Cache invalidation, resume and atomicity, with a counting fake encoder over fake items."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conceptlab.cache import ActivationCache, CacheError, CacheKey
from conceptlab.data.base import DataSplit, ItemSource
from conceptlab.encoders.base import Encoder, Modality, Views
from conceptlab.pipeline import EncodeStats, encode_split, encode_split_views
from conceptlab.utils.hashing import hash_json


class ListSource(ItemSource):
    def __init__(self, values: list[float]) -> None:
        self.values = values

    def __len__(self) -> int:
        return len(self.values)

    def load(self, index: int) -> Any:
        return self.values[index]

    def fingerprint(self) -> str:
        return hash_json(self.values)


class CountingEncoder(Encoder):
    """Embeds x as [x*scale, x*scale+1]; counts the items it really encoded."""

    modalities = frozenset({"text"})
    batch_size = 4

    def __init__(self, scale: float = 1.0, fail_after: int | None = None) -> None:
        self.scale = scale
        self.calls = 0
        self.fail_after = fail_after
        self.spec = f"counting:{scale}"

    @property
    def dim(self) -> int:
        return 2

    def fingerprint(self) -> str:
        return hash_json({"scale": self.scale})

    def encode_batch(self, items: Sequence[Any], modality: Modality) -> Views:
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise KeyboardInterrupt("simulated interruption")
        self.calls += len(items)
        x = np.asarray(items, dtype=np.float32)[:, None] * self.scale
        return {"embedding": np.concatenate([x, x + 1], axis=1)}


def make_split(values: list[float], name: str = "train") -> DataSplit:
    return DataSplit(dataset="fake", name=name, modality="text", source=ListSource(values),
                     indices=np.arange(len(values)), labels=np.zeros(len(values), int),
                     class_names=["a"])


@pytest.fixture()
def cache(tmp_path: Path) -> ActivationCache:
    return ActivationCache(tmp_path / "cache", shard_rows=5)


def test_second_run_reads_instead_of_recomputing(cache: ActivationCache) -> None:
    enc, split = CountingEncoder(), make_split([float(i) for i in range(12)])
    first = encode_split(enc, split, cache)
    assert enc.calls == 12
    stats = EncodeStats()
    second = encode_split(enc, split, cache, stats=stats)
    assert enc.calls == 12 and stats.from_cache
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(first[:, 0], np.arange(12))


def test_other_weights_data_or_order_never_reuse_an_entry(cache: ActivationCache) -> None:
    values = [float(i) for i in range(7)]
    base = encode_split(CountingEncoder(1.0), make_split(values), cache)
    other_weights = CountingEncoder(2.0)
    assert not np.array_equal(encode_split(other_weights, make_split(values), cache), base)
    assert other_weights.calls == 7
    # rows are keyed by content: an edited item is encoded again, unchanged items are copied
    edited = CountingEncoder(1.0)
    out = encode_split(edited, make_split([*values[:-1], 99.0]), cache)
    assert edited.calls == 1 and out[-1, 0] == 99.0
    np.testing.assert_allclose(out[:-1], base[:-1])
    reordered = CountingEncoder(1.0)
    split = make_split(values)
    out = encode_split(reordered, split.subset(np.arange(7)[::-1]), cache)
    assert reordered.calls == 0 and out[0, 0] == 6.0  # a new entry, in the new order
    np.testing.assert_allclose(out, base[::-1])
    assert len(cache.entries()) == 4


def test_interrupted_run_leaves_no_entry_and_resumes_shards(cache: ActivationCache) -> None:
    split = make_split([float(i) for i in range(12)])
    crashing = CountingEncoder(fail_after=8)  # dies in the second shard (rows 5-9)
    with pytest.raises(KeyboardInterrupt):
        encode_split(crashing, split, cache)
    assert cache.entries() == []
    resumed = CountingEncoder()
    out = encode_split(resumed, split, cache)
    assert resumed.calls == 7  # the first shard (5 rows) was kept
    np.testing.assert_allclose(out[:, 0], np.arange(12))


def test_memory_bounded_writes_shards_of_fixed_size(cache: ActivationCache) -> None:
    split = make_split([float(i) for i in range(12)])
    encode_split_views(CountingEncoder(), split, cache)
    key = next(iter(cache.root.glob("*/meta.json"))).parent
    shards = sorted(key.glob("shard-*.safetensors"))
    assert len(shards) == 3
    rows = [len(s["embedding"]) for s in cache.iter_shards(
        CacheKey(encoder=CountingEncoder().cache_fingerprint("text"), data=split.fingerprint()))]
    assert rows == [5, 5, 2]


def test_corrupt_shard_is_reported_with_its_path(cache: ActivationCache) -> None:
    enc, split = CountingEncoder(), make_split([1.0, 2.0, 3.0])
    encode_split(enc, split, cache)
    shard = next(cache.root.glob("*/shard-00000.safetensors"))
    shard.write_bytes(shard.read_bytes()[:20])
    with pytest.raises(CacheError, match="shard-00000"):
        encode_split(enc, split, cache)


def test_compute_with_wrong_row_count_is_refused(cache: ActivationCache) -> None:
    key = CacheKey(encoder="e", data="d")
    with pytest.raises(CacheError, match="expected 5 rows"):
        cache.write(key, 5, lambda a, b: {"x": np.zeros((b - a + 1, 2))})
    assert not cache.has(key)


def test_wrong_modality_is_a_clear_error(cache: ActivationCache) -> None:
    split = make_split([1.0])
    split.modality = "image"
    with pytest.raises(ValueError, match="does not encode images"):
        encode_split(CountingEncoder(), split, cache)


def test_concurrent_writers_of_one_key_compute_it_once(cache: ActivationCache) -> None:
    import threading
    import time

    calls: list[int] = []
    key = CacheKey(encoder="e", data="d")

    def compute(start: int, stop: int) -> dict[str, np.ndarray]:
        calls.append(start)
        time.sleep(0.05)
        return {"x": np.arange(start, stop, dtype=np.float32)[:, None]}

    errors: list[BaseException] = []

    def worker() -> None:
        try:
            cache.ensure(key, 12, compute)
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(calls) == [0, 5, 10]  # three shards, computed by exactly one writer
    np.testing.assert_array_equal(cache.load(key)["x"][:, 0], np.arange(12))
