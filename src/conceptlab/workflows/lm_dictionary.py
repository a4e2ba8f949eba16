"""``conceptlab lm dictionary``: an SAE on a language model's activations, named and audited.

Steps: load the corpus (fail early), split it (seeded, stratified by topic) into training and
held-out texts; stream activations of the training texts at the hook point into the SAE and
into a random-direction baseline of the same width and sparsity (``frozen_decoder``) until
the token budget; scan a slice of the training texts for each feature's top contexts and
name features from them (and from the logit lens); scan the held-out texts for the
reconstruction, sparsity and naming-audit measures; splice each reconstruction into the
model on held-out texts for the loss increase; time the bare GEMMs of the SAE's shapes for
the throughput bound. Writes ``OUT/metrics.json``, ``OUT/features.json`` and both SAEs in
SAELens' format (``OUT/sae``, ``OUT/random``), the run staged and swapped in whole.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from conceptlab.lm.corpus import load_corpus
from conceptlab.lm.dictionary import make_sae, method_name, rss_mb, train_on_stream
from conceptlab.lm.model import CausalLM, LMError, load_lm
from conceptlab.lm.sae_audit import (
    logit_lens,
    name_features,
    naming_audit,
    render,
    scan,
    spliced_loss,
)
from conceptlab.lm.saelens_format import save_saelens
from conceptlab.runs import open_run
from conceptlab.utils.io import write_json_atomic


def gemm_bound(batch: int, d_in: int, width: int, repeats: int = 5) -> dict[str, float]:
    """Tokens per second of the five dense GEMMs one SAE step needs at these shapes (encoder
    and decoder forward, the decoder's two gradients, the encoder's weight gradient), the
    fastest of ``repeats``: the ceiling for a dense-code implementation on this machine."""
    x = torch.randn(batch, d_in)
    W_e, W_d = torch.randn(d_in, width), torch.randn(width, d_in)
    z, g = torch.randn(batch, width), torch.randn(batch, d_in)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        _ = x @ W_e
        _ = z @ W_d
        _ = g @ W_d.T
        _ = z.T @ g
        _ = x.T @ z
        best = min(best, time.perf_counter() - t)
    return {"batch": batch, "seconds_per_step": best, "tokens_per_s": batch / best}


def run_lm_dictionary(corpus: str, out: str | Path | None = None, *, model: str = "smollm2",
                      lm: CausalLM | None = None, hook: str = "blocks.6.hook_resid_post",
                      method: str = "topk", width: int = 2304, k: int = 32, l1: float = 1.0,
                      lr: float = 5e-3, batch_size: int = 512, tokens: int = 100_000,
                      context: int = 64, heldout_fraction: float = 0.2,
                      name_tokens: int = 20_000, eval_tokens: int = 20_000,
                      loss_texts: int = 64, seed: int = 0) -> dict[str, Any]:
    """Train, name and audit an SAE (see the module docstring); returns the metrics."""
    t0 = time.perf_counter()
    method = method_name(method)
    corp = load_corpus(corpus)
    train, held = corp.split(heldout_fraction, seed)
    if not len(held) or not len(train):
        raise LMError(f"{corpus}: too few texts ({len(corp)}) to hold out {heldout_fraction}")
    with open_run("lm dictionary", out, seed=seed) as run:  # --out checked first
        lm = lm if lm is not None else load_lm(model)
        lm.resolve(hook)
        dicts = {name: make_sae(method, width, k=k, l1=l1, lr=lr, batch_size=batch_size,
                                seed=seed, frozen_decoder=name == "random")
                 for name in ("sae", "random")}
        rss0 = rss_mb()
        training = train_on_stream(lm, corp.texts, hook, dicts, token_budget=tokens,
                                   context=context, order=train.tolist())
        training["rss_before_mb"] = round(rss0, 1)
        bound = gemm_bound(batch_size, lm.point_dim(hook), width)
        for name in dicts:
            row = training["dictionaries"][name]
            row["gemm_bound_tokens_per_s"] = round(bound["tokens_per_s"], 1)
            row["ratio_to_bound"] = round(bound["tokens_per_s"] / max(row["tokens_per_s"], 1e-9), 2)
        # naming contexts from training texts the SAE was trained on, audit on held-out texts
        named = scan(lm, corp.texts, hook, dicts, order=train.tolist(), context=context,
                     max_tokens=name_tokens)
        heldout = scan(lm, corp.texts, hook, dicts, order=held.tolist(), context=context,
                       max_tokens=eval_tokens)
        held_labels = [corp.labels[int(i)] for i in held]
        loss = spliced_loss(lm, [corp.texts[int(i)] for i in held[:loss_texts]], hook, dicts,
                            context=context)
        results: dict[str, Any] = {}
        features: dict[str, Any] = {}
        for name, d in dicts.items():
            lens = logit_lens(lm, d)
            names = name_features(lm, named[name], corp.labels, lens)
            audit = naming_audit(names, heldout[name]["text_max"], held_labels, seed=seed)
            h = heldout[name]
            results[name] = {"fve": h["fve"], "l0": h["l0"], "dead_rate": h["dead_rate"],
                             "dense_rate": h["dense_rate"], "heldout_tokens": h["tokens"],
                             "ce_increase": loss[f"ce_increase_{name}"],
                             "loss_recovered": loss[f"loss_recovered_{name}"],
                             "naming_audit": {k2: v for k2, v in audit.items()
                                              if k2 != "per_feature"}}
            top, meta = named[name]["top"], named[name]["top_meta"]
            cache: dict[int, list[int]] = {}
            for n in names:
                kf = int(n["feature"])
                ctx = []
                for j in range(min(5, top.shape[0])):
                    if not np.isfinite(top[j, kf]) or top[j, kf] <= 0:
                        continue
                    ti, pos = int(meta[j, kf, 0]), int(meta[j, kf, 1])
                    if ti not in cache:
                        cache[ti] = lm.encode(corp.texts[ti])[:context]
                    ctx.append({"value": float(top[j, kf]), "topic": corp.labels[ti],
                                "text": render(lm, cache[ti], pos)})
                n["contexts"] = ctx
                n["frequency"] = float(named[name]["freq"][kf])
            features[name] = {"names": names, "audit": audit.get("per_feature", [])}
        metrics: dict[str, Any] = {
            "command": "lm dictionary", "model": lm.describe(), "hook": hook, "method": method,
            "width": width, "k": k, "l1": l1, "lr": lr, "batch_size": batch_size,
            "seed": seed, "corpus": corp.describe(), "heldout_fraction": heldout_fraction,
            "n_train_texts": len(train), "n_heldout_texts": len(held), "training": training,
            "gemm_bound": bound, "loss": loss, "results": results,
            "random_baseline": "same width, k and training stream; decoder atoms fixed at random "
                               "unit directions, encoder and biases trained"}
        metrics["seconds"] = round(time.perf_counter() - t0, 2)
        if run.writes:
            for name, d in dicts.items():
                save_saelens(d, run.path(name), hook_name=hook, model_name=lm.name,
                             context_size=context, dataset_path=corpus,
                             extra={"corpus_digest": corp.digest, "role": name})
            write_json_atomic(run.path("features.json"), features)
        return run.finish(metrics)
