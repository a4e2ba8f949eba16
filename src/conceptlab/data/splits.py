"""Train / validation / test splits that never leak test items, with a record of how.

The rules (what the reference Sparse-CBM code got wrong, and what this module guarantees):

* the test split is the dataset's **official** test split (optionally a seeded, stratified
  subsample of it, ``n_test``); nothing is ever moved from it into training;
* validation is carved from the **official train split only**, stratified by class and
  seeded, unless the dataset ships its own validation split, which is then used as is;
* ``n_train`` subsamples what remains of train, ``n_val`` the validation split (both
  stratified, seeded; what ``n_val`` leaves out of validation never returns to train);
* the three splits are checked to be disjoint before they are returned;
* every choice (seed, fractions, requested and actual sizes, per-class counts, the
  fingerprints of the three splits) is written to ``SplitSet.record``, a JSON-able dict.

Each random step draws from its own stream (``numpy.random.default_rng([seed, step])``), so
asking for a different ``n_train`` never changes the validation split, and the same seed
always gives the same splits.

Datasets without an official split (an image folder with one pool, a CSV without a split
column, the generated robot texts) use :func:`pool_split`, the same stratified rule on its
own stream; they record it in ``split.meta["split_rule"]``, which lands in the record too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from conceptlab.data.base import DataError, Dataset, DataSplit

#: Name of the allocation rule, stored in records so that a future change of rule is visible.
RULE = "stratified-largest-remainder-v1"

_STREAM_VAL = 1
_STREAM_TRAIN = 2
_STREAM_TEST = 3
_STREAM_POOL = 4
_STREAM_VAL_SUBSAMPLE = 5


@dataclass
class SplitSet:
    """The three splits of one experiment and a JSON-able record of how they were made."""

    train: DataSplit
    val: DataSplit
    test: DataSplit
    record: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, DataSplit]:
        """``{"train": ..., "val": ..., "test": ...}``."""
        return {"train": self.train, "val": self.val, "test": self.test}


def check_fraction(name: str, value: float) -> float:
    """``value`` as a float if it lies strictly between 0 and 1, else a DataError."""
    try:
        f = float(value)
    except (TypeError, ValueError) as err:
        raise DataError(f"{name} must be a number in (0, 1), got {value!r}") from err
    if not 0.0 < f < 1.0:
        raise DataError(f"{name} must lie strictly between 0 and 1, got {value!r}")
    return f


def _check_count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value <= 0:
        raise DataError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _allocate(counts: np.ndarray, total: int, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Integers ``v`` with ``lo <= v <= hi``, ``sum(v) == total``, each close to its quota.

    Quota of class ``c`` is ``total * counts[c] / sum(counts)`` (largest-remainder rule;
    ties go to the lower class index, so the result is deterministic).
    """
    quota = total * counts / counts.sum()
    v = np.clip(np.floor(quota), lo, hi).astype(np.int64)
    while v.sum() < total:
        gap = np.where(v < hi, quota - v, -np.inf)
        v[int(np.argmax(gap))] += 1
    while v.sum() > total:
        gap = np.where(v > lo, v - quota, -np.inf)
        v[int(np.argmax(gap))] -= 1
    return v


def _class_name(class_names: list[str] | None, c: int) -> str:
    if class_names is not None and 0 <= c < len(class_names):
        return repr(class_names[c])
    return f"{c}"


def stratified_holdout(labels: np.ndarray, fraction: float, rng: np.random.Generator, *,
                       what: str = "validation", class_names: list[str] | None = None,
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Split positions ``0..N-1`` into (kept, held out), held-out share ``fraction`` per class.

    Every class keeps at least one item and gives at least one, so each class needs at
    least two items (a DataError names the class otherwise). Both arrays are sorted.
    """
    fraction = check_fraction(f"{what} fraction", fraction)
    labels = np.asarray(labels, dtype=np.int64)
    classes, counts = np.unique(labels, return_counts=True)
    if len(labels) == 0:
        raise DataError(f"cannot carve a {what} split from an empty split")
    few = classes[counts < 2]
    if len(few):
        names = ", ".join(_class_name(class_names, int(c)) for c in few[:10])
        raise DataError(f"class(es) {names} have fewer than 2 items; a stratified {what} split "
                        "needs at least 2 per class (one to keep, one to hold out)")
    target = int(np.floor(fraction * len(labels) + 0.5))  # round half up
    target = int(np.clip(target, len(classes), len(labels) - len(classes)))
    take = _allocate(counts.astype(float), target, np.ones_like(counts), counts - 1)
    held = _draw(labels, classes, take, rng)
    keep = np.setdiff1d(np.arange(len(labels)), held)
    return keep, held


def stratified_sample(labels: np.ndarray, n: int, rng: np.random.Generator, *,
                      what: str = "n_train", allow_fewer_than_classes: bool = False,
                      ) -> np.ndarray:
    """Sorted positions of ``n`` items drawn per class in proportion to class sizes.

    Every class present keeps at least one item, so ``n`` must be at least the number of
    classes present and at most the number of items. With ``allow_fewer_than_classes``
    (used for test subsamples, e.g. 500 of ImageNet's 1,000 classes) a smaller ``n`` takes
    one item from each of ``n`` classes drawn at random, in proportion to class size.
    """
    n = _check_count(what, n)
    labels = np.asarray(labels, dtype=np.int64)
    classes, counts = np.unique(labels, return_counts=True)
    if n > len(labels):
        raise DataError(f"{what}={n} is larger than the {len(labels)} items available")
    if n < len(classes) and allow_fewer_than_classes:
        chosen = rng.choice(len(classes), size=n, replace=False, p=counts / counts.sum())
        take = np.zeros_like(counts)
        take[chosen] = 1
        return _draw(labels, classes, take, rng)
    if n < len(classes):
        raise DataError(f"{what}={n} is smaller than the {len(classes)} classes present; a "
                        "stratified subsample keeps at least one item per class")
    if n == len(labels):
        return np.arange(len(labels), dtype=np.int64)
    take = _allocate(counts.astype(float), n, np.ones_like(counts), counts)
    return _draw(labels, classes, take, rng)


def _draw(labels: np.ndarray, classes: np.ndarray, take: np.ndarray,
          rng: np.random.Generator) -> np.ndarray:
    parts = []
    for c, k in zip(classes, take, strict=True):
        members = np.flatnonzero(labels == c)
        parts.append(rng.permutation(members)[:k])
    return np.sort(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)


def pool_split(labels: np.ndarray, test_fraction: float, seed: int,
               class_names: list[str] | None = None,
               ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """(train positions, test positions, rule) for a dataset that ships no official split.

    The rule dict (kind, fraction, seed, algorithm) belongs in ``split.meta["split_rule"]``
    so that the record says the test split was drawn, not official.
    """
    rng = np.random.default_rng([int(seed), _STREAM_POOL])
    train, test = stratified_holdout(labels, test_fraction, rng, what="test",
                                     class_names=class_names)
    rule = {"kind": "seeded stratified holdout (no official split)",
            "test_fraction": float(test_fraction), "seed": int(seed), "algorithm": RULE}
    return train, test, rule


def _empty(split: DataSplit, name: str) -> DataSplit:
    return split.subset(np.zeros(0, dtype=np.int64), name=name)


def _class_counts(split: DataSplit) -> list[int]:
    return np.bincount(split.labels, minlength=len(split.class_names)).tolist()


def check_disjoint(splits: dict[str, DataSplit]) -> None:
    """DataError if two splits share an item (same source, or same content, and same index)."""
    names = list(splits)
    for i, a_name in enumerate(names):
        for b_name in names[i + 1:]:
            a, b = splits[a_name], splits[b_name]
            if len(a) == 0 or len(b) == 0:
                continue
            same = a.source is b.source or a.source.fingerprint() == b.source.fingerprint()
            if same:
                shared = np.intersect1d(a.indices, b.indices)
                if len(shared):
                    raise DataError(f"{a.dataset}: {len(shared)} item(s) are in both {a_name} "
                                    f"and {b_name} (e.g. index {int(shared[0])})")


def make_splits(dataset: Dataset, *, val_fraction: float = 0.1, n_train: int | None = None,
                n_val: int | None = None, n_test: int | None = None, seed: int = 0,
                allow_test_only: bool = False) -> SplitSet:
    """Official test, validation carved from official train only, optional subsamples.

    ``val_fraction``: share of the official train split held out for validation (ignored,
    and recorded as ignored, when the dataset ships its own validation split).
    ``n_train``: keep this many of the remaining training items (stratified); default all.
    ``n_val``: keep this many validation items (stratified); default all. The items it
    drops are not given back to train, so ``n_val`` never changes the training pool.
    ``n_test``: evaluate on this many test items (stratified); default the full test split.
    ``allow_test_only``: for datasets with no train split (ImageNet val, Places365 without
    its training images), return empty train and val splits instead of raising, for
    zero-shot evaluation.
    """
    seed = int(seed)
    val_fraction = check_fraction("val_fraction", val_fraction)
    if n_train is not None:
        n_train = _check_count("n_train", n_train)
    if n_test is not None:
        n_test = _check_count("n_test", n_test)
    if n_val is not None:
        n_val = _check_count("n_val", n_val)
    available = dataset.available_splits()
    spec = dataset.spec or type(dataset).__name__
    if "test" not in available:
        raise DataError(f"{spec}: no official test split (has: {', '.join(available)})")

    test_full = dataset.official_split("test")
    test = test_full
    if n_test is not None:
        rng = np.random.default_rng([seed, _STREAM_TEST])
        pos = stratified_sample(test_full.labels, n_test, rng, what="n_test",
                                allow_fewer_than_classes=True)
        test = test_full.subset(pos, name="test")

    if "train" not in available:
        if not allow_test_only:
            raise DataError(f"{spec} has no official train split (only: "
                            f"{', '.join(available)}); use it for zero-shot evaluation with "
                            "make_splits(..., allow_test_only=True) or "
                            "dataset.official_split('test')")
        if n_train is not None or n_val is not None:
            raise DataError(f"{spec}: n_train / n_val asked for, but there is no train split")
        train, val = _empty(test, "train"), _empty(test, "val")
        val_source = "none (test-only dataset)"
        train_full_size = val_pool_size = 0
    else:
        train_full = dataset.official_split("train")
        train_full_size = len(train_full)
        if "val" in available:
            val = dataset.official_split("val")
            remaining = train_full
            val_source = "official"
        else:
            rng = np.random.default_rng([seed, _STREAM_VAL])
            keep, held = stratified_holdout(train_full.labels, val_fraction, rng,
                                            class_names=train_full.class_names)
            remaining = train_full.subset(keep, name="train")
            val = train_full.subset(held, name="val")
            val_source = "carved from official train"
        val_pool_size = len(val)
        if n_val is not None:
            rng = np.random.default_rng([seed, _STREAM_VAL_SUBSAMPLE])
            val = val.subset(stratified_sample(val.labels, n_val, rng, what="n_val"), name="val")
        train = remaining
        if n_train is not None:
            rng = np.random.default_rng([seed, _STREAM_TRAIN])
            train = remaining.subset(stratified_sample(remaining.labels, n_train, rng),
                                     name="train")
        if train.class_names != test.class_names:
            raise DataError(f"{spec}: train and test splits disagree on class names")

    splits = {"train": train, "val": val, "test": test}
    check_disjoint(splits)
    record: dict[str, Any] = {
        "dataset": dataset.describe(),
        "algorithm": RULE,
        "seed": seed,
        "val_fraction": val_fraction if val_source == "carved from official train" else None,
        "val_source": val_source,
        "n_train_requested": n_train,
        "n_val_requested": n_val,
        "n_test_requested": n_test,
        "test_only": "train" not in available,
        "sizes": {"official_train": train_full_size, "official_test": len(test_full),
                  "val_before_n_val": val_pool_size,
                  **{name: len(split) for name, split in splits.items()}},
        "class_counts": {name: _class_counts(split) for name, split in splits.items()},
        "fingerprints": {name: split.fingerprint() for name, split in splits.items()},
        "source_split_rule": test_full.meta.get("split_rule"),
    }
    return SplitSet(train=train, val=val, test=test, record=record)


__all__ = ["RULE", "SplitSet", "check_disjoint", "check_fraction", "make_splits", "pool_split",
           "stratified_holdout", "stratified_sample"]
