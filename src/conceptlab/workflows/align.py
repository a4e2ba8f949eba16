"""``conceptlab align``: fit a linear image-to-text map on captions and save it as ``linear:DIR``.

Steps: build the data and carve the recorded splits (validation from train only); read each
split's captions (``"auto"``: the dataset's own, e.g. idsprites; else a CSV of
``image,caption`` rows); encode images with the image encoder and the distinct caption texts
with the text encoder, both through the activation cache; fit every candidate map (ridge for
each ``alpha``, contrastive for each configuration; ``conceptlab.align.fit``), choose on
validation captions, save the winner to ``OUT`` (``map.safetensors`` + ``map.json``, usable as
``--encoder linear:OUT``), and report held-out image-to-caption recall and, where the data has
classes, zero-shot accuracy with the class names as prompts, and where it has ground-truth
concepts, each concept text's AUROC (also drawn in ``OUT/concept_auroc.png``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from conceptlab.align.evaluate import concept_auroc, concept_scores
from conceptlab.align.fit import (
    DEFAULT_ALPHAS,
    DEFAULT_CONTRASTIVE,
    AlignData,
    Candidate,
    fit_contrastive,
    fit_ridge,
    score_map,
    select_candidate,
)
from conceptlab.baselines.zeroshot import build_class_embeddings, zero_shot_predict
from conceptlab.cache import ActivationCache, CacheKey
from conceptlab.data.base import DataError, Dataset, DataSplit, build_dataset
from conceptlab.data.captions import split_captions
from conceptlab.data.splits import SplitSet, make_splits
from conceptlab.encoders.base import Encoder, build_encoder
from conceptlab.encoders.linear import LinearMap, encoder_record, write_map
from conceptlab.errors import ConceptlabValueError
from conceptlab.metrics import accuracy
from conceptlab.pipeline import EncodeStats, encode_split
from conceptlab.report.align_plots import plot_concept_auroc
from conceptlab.runs import open_run
from conceptlab.utils.hashing import hash_json
from conceptlab.utils.seed import seed_everything

METHODS = ("ridge", "contrastive")


@dataclass
class AlignConfig:
    """Everything that picks the data, the captions, both encoders and the fit (recorded)."""

    data: str = "idsprites"
    captions: str = "auto"
    image_encoder: str = "efficientnet"
    text_encoder: str = "minilm"
    methods: tuple[str, ...] = METHODS
    n_train: int | None = None
    n_val: int | None = None
    n_test: int | None = None
    val_fraction: float = 0.1
    seed: int = 0
    cache_dir: str | None = None
    data_options: dict[str, Any] = field(default_factory=dict)
    image_options: dict[str, Any] = field(default_factory=dict)
    text_options: dict[str, Any] = field(default_factory=dict)
    alphas: tuple[float, ...] = DEFAULT_ALPHAS
    contrastive_configs: tuple[dict[str, Any], ...] = DEFAULT_CONTRASTIVE
    contrastive_epochs: int = 60


@dataclass
class AlignPrepared:
    """Splits, encoders, captions and the encoded (image, caption) data of one run."""

    config: AlignConfig
    dataset: Dataset
    splits: SplitSet
    image_encoder: Encoder
    text_encoder: Encoder
    data: dict[str, AlignData]  # captioned items only
    kept: dict[str, np.ndarray]  # positions (in each split) of the captioned items
    features: dict[str, np.ndarray]  # every item's image features
    encode_stats: dict[str, dict[str, Any]]
    cache: ActivationCache

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        return embed_texts(self.text_encoder, texts, self.cache)


def check_methods(methods: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    out = tuple(dict.fromkeys(str(m) for m in methods))
    bad = [m for m in out if m not in METHODS]
    if not out or bad:
        raise ConceptlabValueError(f"unknown align method(s) {bad or '(none)'}; choose from "
                         f"{', '.join(METHODS)}")
    return out


def embed_texts(text_encoder: Encoder, texts: list[str], cache: ActivationCache) -> np.ndarray:
    """Text embeddings of ``texts`` through the activation cache (keyed on the exact texts)."""
    if not texts:
        return np.zeros((0, text_encoder.dim), np.float32)
    key = CacheKey(encoder=text_encoder.cache_fingerprint("text"), data=hash_json(texts),
                   extra="caption-texts")
    views = cache.get_or_compute(
        key, len(texts), lambda a, b: text_encoder.encode_batch(texts[a:b], "text"),
        info={"encoder": text_encoder.spec, "what": "caption texts"})
    return np.asarray(text_encoder.finalize(views, "text"), dtype=np.float32)


def image_features(encoder: Encoder, split: DataSplit, cache: ActivationCache,
                   stats: EncodeStats | None = None) -> np.ndarray:
    """The image encoder's final embedding of every item of ``split`` (cached stage)."""
    return encode_split(encoder, split, cache, stats=stats)


def prepare_align(config: AlignConfig) -> AlignPrepared:
    """Data, splits, captions, encoders and encoded pairs; fails early on bad input."""
    check_methods(config.methods)
    seed_everything(config.seed)
    dataset = build_dataset(config.data, **config.data_options)
    if dataset.modality != "image":
        raise DataError(f"{config.data}: align needs images, this data holds {dataset.modality}s")
    splits = make_splits(dataset, val_fraction=config.val_fraction, n_train=config.n_train,
                         n_val=config.n_val, n_test=config.n_test, seed=config.seed)
    captions = {name: split_captions(dataset, split, config.captions)
                for name, split in splits.as_dict().items()}
    kept = {name: np.flatnonzero([len(c) > 0 for c in caps]) for name, caps in captions.items()}
    for name in ("train", "val"):
        if len(kept[name]) < 2:
            raise DataError(f"{config.data}: only {len(kept[name])} captioned {name} image(s); "
                            "need at least 2")
    image_encoder = build_encoder(config.image_encoder, **config.image_options)
    image_encoder.check_modality("image")
    text_encoder = build_encoder(config.text_encoder, **config.text_options)
    text_encoder.check_modality("text")
    cache = ActivationCache(config.cache_dir)
    features: dict[str, np.ndarray] = {}
    stats_out: dict[str, dict[str, Any]] = {}
    data: dict[str, AlignData] = {}
    for name, split in splits.as_dict().items():
        stats = EncodeStats()
        features[name] = image_features(image_encoder, split, cache, stats)
        stats_out[name] = {"rows": stats.rows, "from_cache": stats.from_cache,
                           "seconds": round(stats.seconds, 3)}
        if len(kept[name]):
            caps = [captions[name][int(i)] for i in kept[name]]
            data[name] = AlignData.build(features[name][kept[name]], caps,
                                         lambda t: embed_texts(text_encoder, t, cache))
    return AlignPrepared(config, dataset, splits, image_encoder, text_encoder, data, kept,
                         features, stats_out, cache)


def fit_candidates(prep: AlignPrepared) -> list[Candidate]:
    """Every candidate map of the configured methods, scored on validation captions."""
    cfg = prep.config
    out: list[Candidate] = []
    for method in check_methods(cfg.methods):
        if method == "ridge":
            out += fit_ridge(prep.data["train"], prep.data["val"], cfg.alphas)
        else:
            out += fit_contrastive(prep.data["train"], prep.data["val"],
                                   cfg.contrastive_configs, seed=cfg.seed,
                                   epochs=cfg.contrastive_epochs)
    return out


def zero_shot_accuracy(prep: AlignPrepared, image_emb: np.ndarray, split: str = "test",
                       template: str = "{}") -> float | None:
    """Zero-shot accuracy of ``image_emb`` (rows of ``split``) with class names as prompts."""
    names = prep.dataset.class_names
    if len(names) < 2:
        return None
    class_emb = build_class_embeddings(_CachedTexts(prep), names, [template])
    pred = zero_shot_predict(image_emb, class_emb)
    return accuracy(prep.splits.as_dict()[split].labels, pred)


class _CachedTexts:
    """``encode_texts`` through the run's cache (what ``build_class_embeddings`` calls)."""

    def __init__(self, prep: AlignPrepared) -> None:
        self.prep = prep

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        return self.prep.embed_texts(list(texts))


def evaluate_map(prep: AlignPrepared, linear_map: LinearMap, split: str = "test"
                 ) -> dict[str, Any]:
    """Held-out recall@1/5 image->caption (and zero-shot accuracy) of a map on ``split``."""
    out: dict[str, Any] = {}
    if split in prep.data:
        out.update(score_map(linear_map, prep.data[split]))
        out["n_images"] = len(prep.data[split].features)
        out["n_gallery_texts"] = len(prep.data[split].texts)
    zs = zero_shot_accuracy(prep, linear_map(prep.features[split]), split)
    if zs is not None:
        out["zero_shot_accuracy"] = zs
    return out


def concept_auroc_of(prep: AlignPrepared, linear_map: LinearMap, split: str = "test"
                     ) -> dict[str, float] | None:
    """Per ground-truth concept, the AUROC of its text's cosine with the mapped images of
    ``split`` (``None`` when the data has no concept labels)."""
    data_split = prep.splits.as_dict()[split]
    names, labels = data_split.concept_names, data_split.concept_labels
    if not names or labels is None or not len(data_split):
        return None
    scores = concept_scores(linear_map(prep.features[split]), prep.embed_texts(list(names)))
    auc = concept_auroc(scores, np.asarray(labels))
    return {n: float(a) for n, a in zip(names, auc, strict=True)}


def run_align(config: AlignConfig, out: str | Path) -> dict[str, Any]:
    """Fit, choose, save ``OUT`` (a ``linear:OUT`` encoder) and its metrics.json."""
    # the run lifecycle (runs.open_run): --out checked before any encoding, written whole
    with open_run("align", out, seed=config.seed) as run:
        prep = prepare_align(config)
        t_fit = time.perf_counter()
        candidates = fit_candidates(prep)
        best = select_candidate(candidates)
        per_method = {m: select_candidate([c for c in candidates if c.method == m])
                      for m in dict.fromkeys(c.method for c in candidates)}
        fit_seconds = time.perf_counter() - t_fit
        test = {m: evaluate_map(prep, c.linear_map) for m, c in per_method.items()}
        auroc = {m: concept_auroc_of(prep, c.linear_map) for m, c in per_method.items()}
        for m, a in auroc.items():
            if a is not None:
                test[m]["concept_auroc"] = a
        best.linear_map.info = {**best.linear_map.info, "chosen_on": "validation R@5",
                                "val": best.val, "params": best.params}
        metrics: dict[str, Any] = {
            "command": "align", "chosen": best.summary(), "test": test,
            "test_chosen": test[best.method],
            "candidates": [c.summary() for c in candidates],
            "data": config.data, "captions": str(config.captions), "seed": config.seed,
            "n_images": {k: len(v) for k, v in prep.kept.items()},
            "n_uncaptioned": {k: int(len(prep.features[k]) - len(v))
                              for k, v in prep.kept.items()},
            "n_caption_pairs": {k: v.n_pairs for k, v in prep.data.items()},
            "splits": prep.splits.record, "encoding": prep.encode_stats,
            "config": {**asdict(config), "methods": list(config.methods)},
            "fit_seconds": round(fit_seconds, 3),
        }
        image_rec = encoder_record(prep.image_encoder, config.image_encoder,
                                   config.image_options)
        text_rec = encoder_record(prep.text_encoder, config.text_encoder, config.text_options)
        metrics["encoder_spec"] = f"linear:{out}"
        write_map(run.path(), best.linear_map, image_rec, text_rec)
        concept_aurocs = {m: a for m, a in auroc.items() if a is not None}
        if concept_aurocs:
            plot_concept_auroc(concept_aurocs, run.path("concept_auroc.png"),
                               title=f"{config.data}: concept text score vs ground truth (test)")
        return run.finish(metrics)
