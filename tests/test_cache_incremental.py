"""Rows keyed by content: a grown subsample or an overlapping dataset encodes only new items,
with the same arrays as a fresh encoding, and still never reuses rows across encoders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conceptlab.cache import ActivationCache, CacheKey
from conceptlab.data.base import DataSplit
from conceptlab.data.splits import stratified_sample
from conceptlab.pipeline import EncodeStats, encode_split, item_digest, item_keys
from tests.test_cache import CountingEncoder, ListSource


def pool_split(values: list[float], name: str = "train") -> DataSplit:
    labels = np.arange(len(values)) % 10
    return DataSplit(dataset="fake", name=name, modality="text", source=ListSource(values),
                     indices=np.arange(len(values)), labels=labels,
                     class_names=[str(i) for i in range(10)])


def subsample(split: DataSplit, n: int, seed: int = 0) -> DataSplit:
    """What make_splits does for --n-train: a seeded stratified subsample, sorted."""
    return split.subset(stratified_sample(split.labels, n, np.random.default_rng([seed, 2])))


@pytest.fixture()
def cache(tmp_path: Path) -> ActivationCache:
    return ActivationCache(tmp_path / "cache", shard_rows=512)


def test_growing_n_train_from_2000_to_4000_encodes_2000_items(cache: ActivationCache) -> None:
    pool = pool_split([float(i) for i in range(6000)])
    small, large = subsample(pool, 2000), subsample(pool, 4000)
    assert set(small.indices) <= set(large.indices)  # the larger draw contains the smaller
    enc = CountingEncoder()
    encode_split(enc, small, cache)
    assert enc.calls == 2000
    stats = EncodeStats()
    grown = encode_split(enc, large, cache, stats=stats)
    assert enc.calls == 4000  # 2,000 new items, not 4,000
    assert (stats.computed, stats.reused, stats.from_cache) == (2000, 2000, False)
    fresh = encode_split(CountingEncoder(), large, ActivationCache(cache.root.parent / "fresh"))
    np.testing.assert_array_equal(grown, fresh)
    np.testing.assert_allclose(grown[:, 0], large.indices.astype(np.float32))


def test_a_second_dataset_sharing_items_encodes_only_the_new_ones(
        cache: ActivationCache) -> None:
    enc = CountingEncoder()
    encode_split(enc, pool_split([float(i) for i in range(100)]), cache)
    other = pool_split([float(i) for i in range(50, 130)][::-1], name="other")  # 30 new, reordered
    out = encode_split(enc, other, cache)
    assert enc.calls == 100 + 30
    np.testing.assert_allclose(out[:, 0], np.arange(50, 130)[::-1])


def test_rows_are_never_shared_across_encoders_or_with_changed_content(
        cache: ActivationCache) -> None:
    values = [float(i) for i in range(40)]
    encode_split(CountingEncoder(1.0), pool_split(values), cache)
    other_weights = CountingEncoder(2.0)
    out = encode_split(other_weights, pool_split(values[:30]), cache)
    assert other_weights.calls == 30 and out[3, 0] == 6.0
    edited = CountingEncoder(1.0)
    out = encode_split(edited, pool_split([*values[:29], 999.0]), cache)
    assert edited.calls == 1 and out[-1, 0] == 999.0


def test_interrupted_incremental_write_resumes_and_matches(cache: ActivationCache) -> None:
    pool = pool_split([float(i) for i in range(3000)])
    encode_split(CountingEncoder(), subsample(pool, 1000), cache)
    large = subsample(pool, 2500)
    crashing = CountingEncoder(fail_after=900)  # dies inside the second or third shard
    with pytest.raises(KeyboardInterrupt):
        encode_split(crashing, large, cache)
    resumed = CountingEncoder()
    out = encode_split(resumed, large, cache)
    assert resumed.calls < 1500 - 256  # finished shards were kept
    np.testing.assert_allclose(out[:, 0], large.indices.astype(np.float32))


def test_entries_record_item_keys_and_old_entries_are_simply_not_donors(
        cache: ActivationCache) -> None:
    split = pool_split([float(i) for i in range(20)])
    key = CacheKey(encoder=CountingEncoder().cache_fingerprint("text"), data="legacy")
    cache.write(key, 20, lambda a, b: {"embedding": np.zeros((b - a, 2), np.float32)})
    assert cache.item_keys(key) is None
    enc = CountingEncoder()
    out = encode_split(enc, split, cache)
    assert enc.calls == 20 and out[5, 0] == 5.0  # the legacy zeros were not used
    new_key = CacheKey(encoder=enc.cache_fingerprint("text"), data=split.fingerprint())
    np.testing.assert_array_equal(cache.item_keys(new_key), item_keys(split))


def test_item_digest_follows_content_not_identity() -> None:
    from PIL import Image

    a = Image.new("RGB", (4, 4), (10, 20, 30))
    assert item_digest(a) == item_digest(Image.new("RGB", (4, 4), (10, 20, 30)))
    assert item_digest(a) != item_digest(Image.new("RGB", (4, 4), (10, 20, 31)))
    assert item_digest(a) != item_digest(a.convert("L"))
    assert item_digest("cat") != item_digest("cat ") and len(item_digest("cat")) == 16
