"""Checks of an ``lm`` command's options that need no model weights, run before the model
loads: the probe's fold count against the prompt sets, and ``--layers`` against the model's
``config.json`` (its layer count), so a bad value is one line in a second, not after loading.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from conceptlab.errors import OptionError

#: the config.json keys that hold a causal LM's number of blocks, by family
LAYER_KEYS = ("num_hidden_layers", "n_layer", "num_layers", "n_layers")


def check_folds(folds: int, prompt_sets: Sequence[Any]) -> int:
    """``folds`` for stratified cross-validation over every prompt set: at least 2 and at most
    the smallest class count (each fold needs one prompt of each class)."""
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise OptionError(f"--folds must be an integer >= 2, got {folds!r}")
    for ps in prompt_sets:
        counts = np.bincount(np.asarray(ps.labels, dtype=np.int64))
        smallest = int(counts[counts > 0].min()) if counts.size else 0
        if folds > smallest:
            raise OptionError(f"--folds {folds}: prompt set {ps.name!r} has only {smallest} "
                              f"prompts in its smallest class; use --folds 2..{smallest}")
    return folds


def config_layer_count(spec: str) -> int | None:
    """The number of blocks recorded in the model's ``config.json``, read without the weights:
    a local folder, the converted SmolLM2 folder when it exists, or a Hugging Face name in the
    local cache. None when it cannot be known cheaply (the model load checks it then)."""
    from conceptlab.encoders.causal_lm import SMOLLM2, default_model_dir

    if spec == SMOLLM2:
        config = default_model_dir() / "smollm2-135m-instruct" / "config.json"
    else:
        config = Path(spec).expanduser() / "config.json"
    meta: Any = None
    if config.is_file():
        try:
            meta = json.loads(config.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            return None
    elif spec != SMOLLM2 and not Path(spec).expanduser().exists():
        try:
            from transformers import AutoConfig

            meta = AutoConfig.from_pretrained(spec, local_files_only=True).to_dict()
        except Exception:  # not cached, not a model name: the load reports it
            return None
    if not isinstance(meta, dict):
        return None
    for source in (meta, meta.get("text_config") or {}):
        for key in LAYER_KEYS:
            value = source.get(key) if isinstance(source, dict) else None
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
    return None


def check_layers(spec: str, layers: Sequence[int] | None) -> None:
    """Refuse ``--layers`` outside the model's blocks (read from its config) before loading."""
    if not layers:
        return
    negative = [int(i) for i in layers if int(i) < 0]
    if negative:
        raise OptionError(f"--layers {negative}: block indices start at 0")
    n = config_layer_count(spec)
    if n is None:
        return
    bad = [int(i) for i in layers if int(i) >= n]
    if bad:
        raise OptionError(f"--layers {bad} out of range: model {spec!r} has {n} blocks "
                          f"(0..{n - 1})")
