"""Dictionaries (sparse autoencoders) learnt on a language model's activations, streamed.

The dictionaries are the discovery room's (``conceptlab.discover``: one protocol for image and
text activations); this module only feeds them. Token activations come from
``lm.stream.stream_activations`` batch by batch, gather into chunks of ``chunk_rows`` rows and
go to every dictionary's ``partial_fit``; then the chunk is dropped, so memory does not grow
with the corpus. Training stops on a token budget (or when the texts run out) and shows its
progress in tokens.

Several dictionaries can learn from one stream (the trained SAE and its random-direction
baseline see the same tokens for the price of one pass through the model).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from conceptlab.discover.base import Dictionary, DictionaryError, build_dictionary
from conceptlab.lm.model import CausalLM, LMError
from conceptlab.lm.stream import TokenRows, stream_activations
from conceptlab.utils.progress import counter

#: the command line's short method names -> the discovery registry's
METHODS = {"relu": "sae", "topk": "topk-sae", "batchtopk": "batchtopk-sae"}


def method_name(method: str) -> str:
    """``topk`` -> ``topk-sae`` (registry names pass through); refuses non-streaming methods."""
    name = METHODS.get(method, method)
    d = build_dictionary(name, 1)
    if not d.streaming:
        raise LMError(f"method {method!r} cannot learn from a stream; use one of "
                      f"{', '.join(METHODS)}")
    return name


def make_sae(method: str, width: int, *, k: int = 32, l1: float = 1.0, lr: float = 1e-3,
             batch_size: int = 512, seed: int = 0, frozen_decoder: bool = False,
             init: str = "random") -> Dictionary:
    """A streaming SAE of the discovery registry (``k`` for TopK variants, ``l1`` for ReLU).

    ``init="random"``: atoms start at random unit directions (Gao et al. 2024), not at data
    rows: a residual stream's tokens come in tight clusters (repeated tokens), and a row's
    TopK atoms started at rows of its own cluster are near copies of each other. On SmolLM2's
    block 6 (12k tokens seen 4 times, k=32, width 2304, lr 1.5e-3) data-row atoms left 93% of
    the features dead (held-out FVE -0.90); random atoms 0.2% dead (FVE 0.64), and data-row
    atoms with the encoder calibration (``calibrate=True``, ``discover.sae``, always on here)
    25% dead (FVE 0.65)."""
    if width < 1 or k < 1:
        raise LMError(f"width and k must be >= 1, got width={width}, k={k}")
    if k > width:
        raise LMError(f"k={k} is larger than the width {width}")
    try:
        return build_dictionary(method_name(method), width, seed=seed, k=k, l1=l1, lr=lr,
                                batch_size=batch_size, frozen_decoder=frozen_decoder,
                                init=init, calibrate=True)
    except DictionaryError as err:
        raise LMError(str(err)) from err


def rss_mb() -> float:
    """This process's resident memory now (Linux ``/proc``; NaN elsewhere)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def train_on_stream(lm: CausalLM, texts: Sequence[str], point: str,
                    dictionaries: Mapping[str, Dictionary], *, token_budget: int,
                    context: int = 64, batch_texts: int = 32, chunk_rows: int = 4096,
                    order: Sequence[int] | None = None, desc: str = "train dictionary",
                    ) -> dict[str, Any]:
    """Stream activations at ``point`` into every dictionary until ``token_budget`` tokens.

    Returns the run's record: tokens and texts used, whether the texts ran out first, seconds
    in the model and in each dictionary (tokens per second), the mean loss per chunk, and the
    process's memory after each chunk (flat when nothing accumulates).
    """
    if token_budget < 1:
        raise LMError(f"token budget must be >= 1, got {token_budget}")
    if not dictionaries:
        raise LMError("no dictionaries to train")
    for name, d in dictionaries.items():
        if not d.streaming:
            raise LMError(f"{name}: {d.name} has no streaming fit")
    t_lm = 0.0
    t_fit = {name: 0.0 for name in dictionaries}
    losses: dict[str, list[float]] = {name: [] for name in dictionaries}
    memory: list[tuple[int, float]] = []
    buf: list[TokenRows] = []
    n_buf = seen = dropped = 0
    texts_used: set[int] = set()
    bar = counter(total=token_budget, desc=desc, unit="tok")

    def flush() -> None:
        nonlocal buf, n_buf
        A = np.concatenate([r.acts for r in buf])
        buf, n_buf = [], 0
        for name, d in dictionaries.items():
            t = time.perf_counter()
            d.partial_fit(A, total_rows=token_budget)
            t_fit[name] += time.perf_counter() - t
            losses[name].append(float(getattr(d, "last_loss", float("nan"))))
        memory.append((seen, round(rss_mb(), 1)))

    stream = stream_activations(lm, texts, point, context=context, batch_texts=batch_texts,
                                max_tokens=token_budget, order=order)
    t0 = time.perf_counter()
    while True:
        t = time.perf_counter()
        rows = next(stream, None)
        t_lm += time.perf_counter() - t
        if rows is None:
            break
        buf.append(rows)
        n_buf += len(rows)
        seen += len(rows)
        dropped += rows.dropped
        texts_used.update(np.unique(rows.text).tolist())
        bar.update(len(rows))
        if n_buf >= chunk_rows:
            flush()
    if n_buf:
        flush()
    bar.close()
    if not seen:
        raise LMError("the corpus gave no tokens (every text shorter than 2 tokens?)")
    return {"tokens": seen, "texts": len(texts_used), "token_budget": token_budget,
            "exhausted": seen < token_budget, "sink_tokens_dropped": dropped,
            "context": context, "chunk_rows": chunk_rows,
            "seconds_total": round(time.perf_counter() - t0, 2),
            "seconds_model": round(t_lm, 2),
            "model_tokens_per_s": round(seen / max(t_lm, 1e-9), 1),
            "dictionaries": {name: {"seconds": round(t_fit[name], 2),
                                    "tokens_per_s": round(seen / max(t_fit[name], 1e-9), 1),
                                    "loss_per_chunk": [round(x, 5) for x in losses[name]]}
                             for name in dictionaries},
            "memory_mb": memory}
