"""make_splits: official test untouched, validation from train only, seeded, recorded."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conceptlab.data.base import DataError, Dataset, DataSplit, ItemSource
from conceptlab.data.splits import (
    check_disjoint,
    make_splits,
    pool_split,
    stratified_holdout,
    stratified_sample,
)


class _Source(ItemSource):
    def __init__(self, n: int, tag: str) -> None:
        self.n, self.tag = n, tag

    def __len__(self) -> int:
        return self.n

    def load(self, index: int) -> str:
        return f"{self.tag}-{index}"

    def fingerprint(self) -> str:
        return f"fp-{self.tag}"


class _Toy(Dataset):
    """3 classes; train counts per class, test counts per class; optional official val."""

    modality = "text"

    def __init__(self, train=(40, 30, 20), test=(10, 10, 10), val=None, has_train=True):
        self.spec = "toy"
        self._counts = {"train": train, "test": test, "val": val}
        self._has_train = has_train

    @property
    def class_names(self) -> list[str]:
        return ["a", "b", "c"]

    def available_splits(self) -> list[str]:
        out = ["test"]
        if self._has_train:
            out.insert(0, "train")
        if self._counts["val"] is not None:
            out.append("val")
        return out

    def official_split(self, name: str) -> DataSplit:
        counts = self._counts[name]
        labels = np.repeat(np.arange(len(counts)), counts)
        rng = np.random.default_rng(123)
        labels = labels[rng.permutation(len(labels))]  # interleaved, like real files
        return DataSplit(dataset="toy", name=name, modality="text",
                         source=_Source(len(labels), name), indices=np.arange(len(labels)),
                         labels=labels, class_names=self.class_names)


def _ids(split: DataSplit) -> set[str]:
    return {split[i] for i in range(len(split))}


def test_no_test_item_in_train_or_val_and_train_val_disjoint():
    ss = make_splits(_Toy(), val_fraction=0.2, seed=3)
    train, val, test = _ids(ss.train), _ids(ss.val), _ids(ss.test)
    assert not (train & test) and not (val & test) and not (train & val)
    assert all(x.startswith("train-") for x in train | val)
    assert all(x.startswith("test-") for x in test)
    assert len(train) + len(val) == 90  # nothing lost, nothing duplicated
    assert len(test) == 30  # the full official test split by default


def test_validation_is_stratified_by_class():
    ss = make_splits(_Toy(), val_fraction=0.2, seed=0)
    assert ss.record["class_counts"]["val"] == [8, 6, 4]
    assert ss.record["class_counts"]["train"] == [32, 24, 16]


def test_same_seed_same_split_different_seed_different():
    a = make_splits(_Toy(), seed=1, n_train=30)
    b = make_splits(_Toy(), seed=1, n_train=30)
    c = make_splits(_Toy(), seed=2, n_train=30)
    assert a.record["fingerprints"] == b.record["fingerprints"]
    assert np.array_equal(a.val.indices, b.val.indices)
    assert not np.array_equal(a.val.indices, c.val.indices)
    assert not np.array_equal(a.train.indices, c.train.indices)


def test_n_train_subsamples_remaining_train_without_changing_val():
    full = make_splits(_Toy(), seed=5)
    sub = make_splits(_Toy(), seed=5, n_train=27)
    assert np.array_equal(full.val.indices, sub.val.indices)
    assert len(sub.train) == 27
    assert set(sub.train.indices) <= set(full.train.indices)
    assert np.bincount(sub.train.labels).tolist() == [12, 9, 6]
    assert sub.record["n_train_requested"] == 27 and sub.record["sizes"]["train"] == 27


def test_n_val_and_n_test_subsample_stratified():
    ss = make_splits(_Toy(), seed=0, n_val=6, n_test=9)
    assert np.bincount(ss.val.labels).tolist() == [3, 2, 1]
    assert np.bincount(ss.test.labels).tolist() == [3, 3, 3]
    full = make_splits(_Toy(), seed=0)
    assert np.array_equal(ss.train.indices, full.train.indices)  # n_val never feeds train


def test_record_is_json_and_complete():
    ss = make_splits(_Toy(), seed=9, n_train=20, val_fraction=0.25)
    rec = json.loads(json.dumps(ss.record))
    assert rec["seed"] == 9 and rec["val_fraction"] == 0.25
    assert rec["val_source"] == "carved from official train"
    assert rec["sizes"] == {"official_train": 90, "official_test": 30, "val_before_n_val": 23,
                            "train": 20, "val": 23, "test": 30}
    assert set(rec["fingerprints"]) == {"train", "val", "test"}
    assert rec["fingerprints"]["train"] == ss.train.fingerprint()


def test_official_val_is_used_when_shipped():
    ss = make_splits(_Toy(val=(5, 5, 5)), val_fraction=0.3, seed=0)
    assert len(ss.val) == 15 and _ids(ss.val) == {f"val-{i}" for i in range(15)}
    assert len(ss.train) == 90  # nothing carved out of train
    assert ss.record["val_source"] == "official" and ss.record["val_fraction"] is None


@pytest.mark.parametrize("bad", [0, 1, -0.1, 1.5, "x", None])
def test_bad_fraction_is_a_clear_error(bad):
    with pytest.raises(DataError, match="val_fraction"):
        make_splits(_Toy(), val_fraction=bad)


def test_bad_sizes_are_clear_errors():
    with pytest.raises(DataError, match="larger than the"):
        make_splits(_Toy(), n_train=1000)
    with pytest.raises(DataError, match="smaller than the 3 classes"):
        make_splits(_Toy(), n_train=2)
    with pytest.raises(DataError, match="n_test=31 is larger"):
        make_splits(_Toy(), n_test=31)
    with pytest.raises(DataError, match="positive integer"):
        make_splits(_Toy(), n_train=0)
    assert len(make_splits(_Toy(), n_test=2).test) == 2  # a tiny test sample may skip a class
    with pytest.raises(DataError, match="positive integer"):
        make_splits(_Toy(), n_train=2.5)  # type: ignore[arg-type]


def test_class_with_too_few_items_is_named():
    with pytest.raises(DataError, match=r"'c' have fewer than 2 items"):
        make_splits(_Toy(train=(10, 10, 1)))


def test_test_only_dataset_needs_explicit_opt_in():
    toy = _Toy(has_train=False)
    with pytest.raises(DataError, match=r"no official train split.*allow_test_only"):
        make_splits(toy)
    ss = make_splits(toy, allow_test_only=True, n_test=6)
    assert len(ss.train) == 0 and len(ss.val) == 0 and len(ss.test) == 6
    assert ss.record["test_only"] is True
    with pytest.raises(DataError, match="no train split"):
        make_splits(toy, allow_test_only=True, n_train=5)


def test_check_disjoint_catches_a_leak_within_one_source():
    base = _Toy().official_split("train")
    with pytest.raises(DataError, match="in both train and test"):
        check_disjoint({"train": base.subset(np.arange(0, 20)),
                        "test": base.subset(np.arange(15, 30))})
    check_disjoint({"train": base.subset(np.arange(0, 20)), "test": base.subset(np.arange(20, 30))})


def test_pool_split_is_seeded_stratified_and_recorded():
    labels = np.repeat([0, 1], [50, 25])
    tr, te, rule = pool_split(labels, 0.2, seed=4)
    _, te2, _ = pool_split(labels, 0.2, seed=4)
    _, te3, _ = pool_split(labels, 0.2, seed=5)
    assert np.array_equal(te, te2) and not np.array_equal(te, te3)
    assert np.bincount(labels[te]).tolist() == [10, 5]
    assert not set(tr) & set(te) and len(tr) + len(te) == 75
    assert rule["seed"] == 4 and rule["test_fraction"] == 0.2


def test_allocation_helpers_keep_every_class():
    labels = np.repeat([0, 1, 2], [100, 3, 2])
    keep, held = stratified_holdout(labels, 0.1, np.random.default_rng(0))
    assert set(labels[held]) == {0, 1, 2} and set(labels[keep]) == {0, 1, 2}
    pos = stratified_sample(labels, 10, np.random.default_rng(0))
    assert len(pos) == 10 and set(labels[pos]) == {0, 1, 2}
