"""Prepare a run: build data and encoder from spec strings, carve the recorded splits, and
encode each split once through the activation cache. Every workflow starts here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from conceptlab.cache import ActivationCache
from conceptlab.data.base import Dataset, DataSplit, build_dataset
from conceptlab.data.splits import SplitSet, make_splits
from conceptlab.encoders.base import Encoder, Views, build_encoder
from conceptlab.pipeline import (
    EncodeStats,
    encode_split_views,
    split_cache_key,
)
from conceptlab.utils.io import write_json_atomic
from conceptlab.utils.seed import seed_everything

DEFAULT_ENCODER = {"image": "conse", "text": "minilm"}


@dataclass
class RunConfig:
    """Everything that picks the data and the embeddings of a run (recorded in metrics.json)."""

    data: str = "fashion-mnist"
    encoder: str | None = None  # default by modality: conse (images), minilm (texts)
    n_train: int | None = None  # subsample of official train after validation is carved
    n_val: int | None = None
    n_test: int | None = None  # None = the full official test split
    val_fraction: float = 0.1
    seed: int = 0
    cache_dir: str | None = None
    data_options: dict[str, Any] = field(default_factory=dict)
    encoder_options: dict[str, Any] = field(default_factory=dict)


@dataclass
class Prepared:
    """Splits, the encoder and each split's cached views and final embeddings."""

    config: RunConfig
    dataset: Dataset
    splits: SplitSet
    encoder: Encoder
    views: dict[str, Views]
    X: dict[str, np.ndarray]
    y: dict[str, np.ndarray]
    encode_stats: dict[str, dict[str, Any]]

    @property
    def class_names(self) -> list[str]:
        return self.dataset.class_names

    def write_encoder_json(self, out: str | Path) -> None:
        """``OUT/encoder.json``: how ``predict`` and the report rebuild this run's encoder."""
        write_json_atomic(Path(out) / "encoder.json", {
            "spec": self.config.encoder, "options": self.config.encoder_options,
            "fingerprint": self.encoder.fingerprint()})

    def base_metrics(self) -> dict[str, Any]:
        """Fields every metrics.json carries: what ran, on what, with which seed."""
        return {
            "encoder": self.config.encoder, "encoder_fingerprint": self.encoder.fingerprint(),
            "data": self.config.data, "seed": self.config.seed,
            "n_train": len(self.y["train"]), "n_val": len(self.y["val"]),
            "n_test": len(self.y["test"]), "n_classes": len(self.class_names),
            "splits": self.splits.record, "encoding": self.encode_stats,
            "config": asdict(self.config),
        }


def build_parts(config: RunConfig) -> tuple[Dataset, Encoder, SplitSet]:
    """Dataset, encoder and recorded splits of ``config`` (seeds everything first)."""
    seed_everything(config.seed)
    dataset = build_dataset(config.data, **config.data_options)
    if config.encoder is None:
        config.encoder = DEFAULT_ENCODER[dataset.modality]
    encoder = build_encoder(config.encoder, **config.encoder_options)
    encoder.check_modality(dataset.modality)
    splits = make_splits(dataset, val_fraction=config.val_fraction, n_train=config.n_train,
                         n_val=config.n_val, n_test=config.n_test, seed=config.seed)
    return dataset, encoder, splits


def prepare(config: RunConfig, splits_needed: tuple[str, ...] = ("train", "val", "test")
            ) -> Prepared:
    """Build data and encoder, make the recorded splits, encode the needed splits (cached)."""
    dataset, encoder, splits = build_parts(config)
    cache = ActivationCache(config.cache_dir)
    check_cache_for(cache, encoder, [s for n, s in splits.as_dict().items()
                                     if n in splits_needed])
    views: dict[str, Views] = {}
    X: dict[str, np.ndarray] = {}
    y: dict[str, np.ndarray] = {}
    stats_out: dict[str, dict[str, Any]] = {}
    for name, split in splits.as_dict().items():
        y[name] = split.labels
        if name not in splits_needed:
            X[name] = np.zeros((0, encoder.dim), np.float32)
            continue
        stats = EncodeStats()
        views[name] = encode_split_views(encoder, split, cache, stats=stats)
        X[name] = np.asarray(encoder.finalize(views[name], split.modality), dtype=np.float32)
        stats_out[name] = stats.record()
    return Prepared(config, dataset, splits, encoder, views, X, y, stats_out)


def check_cache_for(cache: ActivationCache, encoder: Encoder, splits: list[DataSplit]) -> None:
    """Before any encoding: if some split is not cached yet, the cache must be writable
    (a read-only cache that already holds every entry is fine)."""
    if not all(cache.has(split_cache_key(encoder, s)) for s in splits):
        cache.check_writable()
