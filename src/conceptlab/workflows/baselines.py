"""Workflows that need no concepts: encode into the cache, zero-shot, linear probe."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from conceptlab.baselines.probe import fit_linear_probe
from conceptlab.baselines.zeroshot import build_class_embeddings, get_templates, zero_shot_predict
from conceptlab.bottleneck.heads import LinearHead
from conceptlab.cache import ActivationCache
from conceptlab.metrics import accuracy
from conceptlab.pipeline import EncodeStats, ensure_encoded, split_cache_key
from conceptlab.runs import open_run
from conceptlab.workflows.prepare import (
    Prepared,
    RunConfig,
    build_parts,
    check_cache_for,
    prepare,
)


def run_encode(config: RunConfig, out: str | Path | None = None, *, engine: str = "local",
               address: str | None = None, engine_options: dict[str, Any] | None = None
               ) -> dict[str, Any]:
    """Encode every split into the cache (bounded memory: nothing is read back).

    ``engine``: ``local`` (this process) or ``ray`` (Ray Data on ``address``, or a local Ray);
    both write the same cache entries (see ``conceptlab.engines``).
    """
    from conceptlab.engines import build_engine, check_engine_options

    check_engine_options(engine, engine_options)  # a bad option fails before any encoding
    with open_run("encode", out) as run:  # --out checked before any encoding
        t0 = time.perf_counter()
        _, encoder, splits = build_parts(config)
        cache = ActivationCache(config.cache_dir)
        check_cache_for(cache, encoder, list(splits.as_dict().values()))
        runner = build_engine(engine, address=address, encoder_spec=config.encoder,
                              encoder_options=config.encoder_options, **(engine_options or {}))
        encoding: dict[str, dict[str, Any]] = {}
        try:
            for name, split in splits.as_dict().items():
                stats = EncodeStats()
                ensure_encoded(encoder, split, cache, stats=stats, engine=runner)
                encoding[name] = {**stats.record(),
                                  "cache_entry": split_cache_key(encoder, split).digest}
        finally:
            close = getattr(runner, "close", None)
            if close is not None:
                close()
        metrics = {"command": "encode", "engine": engine, "encoder": config.encoder,
                   "encoder_fingerprint": encoder.fingerprint(), "data": config.data,
                   "seed": config.seed, "dim": encoder.dim, "splits": splits.record,
                   "encoding": encoding, "cache_dir": str(cache.root),
                   "config": asdict(config), "seconds": round(time.perf_counter() - t0, 3)}
        return run.finish(metrics)


def zero_shot_accuracy(prep: Prepared, templates: str | list[str] = "plain") -> float:
    """Test accuracy of class-name prompts through the encoder's text side."""
    tmpl = get_templates(templates)
    class_emb = build_class_embeddings(prep.encoder, prep.class_names, tmpl)
    return accuracy(prep.y["test"], zero_shot_predict(prep.X["test"], class_emb))


def run_zeroshot(config: RunConfig, out: str | Path | None = None,
                 templates: str = "plain") -> dict[str, Any]:
    """Zero-shot classification of the test split; no training data is encoded."""
    with open_run("zeroshot", out) as run:  # --out checked before any encoding
        t0 = time.perf_counter()
        prep = prepare(config, splits_needed=("test",))
        acc = zero_shot_accuracy(prep, templates)
        metrics = {"command": "zeroshot", "accuracy": acc, **prep.base_metrics(),
                   "templates": templates, "templates_used": get_templates(templates),
                   "seconds": round(time.perf_counter() - t0, 3)}
        return run.finish(metrics)


def probe_accuracy(prep: Prepared, arrays: dict[str, np.ndarray] | None = None
                   ) -> tuple[float, LinearHead]:
    """Test accuracy of a dense linear probe fitted on train (model selection on val);
    ``arrays`` gives other per-split inputs (e.g. backbone features), default the embeddings."""
    A = prep.X if arrays is None else arrays
    head = fit_linear_probe(A["train"], prep.y["train"], A["val"], prep.y["val"],
                            n_classes=len(prep.class_names), seed=prep.config.seed)
    return accuracy(prep.y["test"], head.predict(A["test"])), head


def backbone_features(prep: Prepared) -> dict[str, np.ndarray] | None:
    """Per-split ``features`` views (the ConSE backbone's pooled features), when cached."""
    if "features" not in prep.views.get("train", {}):
        return None
    return {k: v["features"] for k, v in prep.views.items()}


def run_probe(config: RunConfig, out: str | Path | None = None) -> dict[str, Any]:
    """Linear probe on the final embeddings; for ConSE also on the backbone's 1280-d features.

    The second number is the ceiling a model without concepts reaches on the same images.
    """
    with open_run("probe", out) as run:  # --out checked before any encoding
        t0 = time.perf_counter()
        prep = prepare(config)
        acc, head = probe_accuracy(prep)
        metrics: dict[str, Any] = {"command": "probe", "accuracy": acc, **prep.base_metrics(),
                                   "probe": head.info}
        F = backbone_features(prep)
        if F is not None:
            metrics["accuracy_backbone_features"], _ = probe_accuracy(prep, F)
            metrics["backbone_features_dim"] = int(F["train"].shape[1])
        metrics["seconds"] = round(time.perf_counter() - t0, 3)
        return run.finish(metrics)
