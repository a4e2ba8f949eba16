"""Naming and auditing dictionaries learnt on a language model's activations.

* ``scan``: one streamed pass over texts with every dictionary: fraction of variance explained
  (``1 - SSE / SST`` over all tokens and dims), mean active features per token (L0), how often
  each feature fires (dead: never on these tokens; dense: on more than 10% of them), each
  feature's top-activating contexts (value, text, position, token) and each text's largest
  activation per feature (for the naming audit).
* ``spliced_loss``: next-token cross-entropy with the dictionary's reconstruction in place of
  the activation at the hook point, beside the clean model and the activation zeroed (the
  numbers SAELens' evals report; "loss recovered" = (zero - spliced) / (zero - clean)). The
  first position and the sink tokens the stream drops are left as they are.
* ``logit_lens``: each decoder direction through the final norm's gain and the unembedding,
  its top tokens (the final norm's per-token 1/rms is ignored, as for neurons).
* ``name_features`` / ``naming_audit``: a feature's names are its most frequent top-context
  token, its top logit-lens token and, when texts carry topic labels, the majority topic of
  its top contexts (with its share). A topic name is checked on held-out texts: the AUROC of
  the text's largest activation for texts of that topic against the rest, beside the same
  AUROC with the names shuffled among the named features (the null).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from conceptlab.discover.base import Dictionary
from conceptlab.lm.model import CausalLM
from conceptlab.lm.stream import stream_activations, tokenize

DENSE = 0.1


def scan(lm: CausalLM, texts: Sequence[str], point: str, dicts: Mapping[str, Dictionary], *,
         order: Sequence[int], context: int = 64, max_tokens: int | None = None,
         top: int = 8) -> dict[str, dict[str, Any]]:
    """One pass over ``texts[order]``; per dictionary the measures in the module docstring."""
    pos_of = {int(t): i for i, t in enumerate(order)}
    acc: dict[str, dict[str, Any]] = {}
    n = 0
    sum_x: np.ndarray | None = None
    sum_x2 = 0.0
    for rows in stream_activations(lm, texts, point, context=context, max_tokens=max_tokens,
                                   order=order):
        A = rows.acts.astype(np.float64)
        sum_x = A.sum(0) if sum_x is None else sum_x + A.sum(0)
        sum_x2 += float((A ** 2).sum())
        n += len(A)
        where = np.asarray([pos_of[int(t)] for t in rows.text])
        for name, d in dicts.items():
            U = d.encode(rows.acts)
            R = d.decode(U)
            a = acc.setdefault(name, {
                "sse": 0.0, "l0": 0.0, "fires": np.zeros(d.n_concepts),
                "text_max": np.zeros((len(order), d.n_concepts), np.float32),
                "top": np.full((0, d.n_concepts), -np.inf, np.float32),
                "top_meta": np.zeros((0, d.n_concepts, 3), np.int64)})
            a["sse"] += float(((rows.acts - R).astype(np.float64) ** 2).sum())
            active = U > 0
            a["l0"] += float(active.sum())
            a["fires"] += active.sum(0)
            np.maximum.at(a["text_max"], where, U)
            kb = min(top, len(U))
            vals, idx = torch.topk(torch.from_numpy(U), kb, dim=0)
            meta = np.stack([rows.text[idx.numpy()], rows.pos[idx.numpy()],
                             rows.tokens[idx.numpy()]], axis=-1)
            allv = np.concatenate([a["top"], vals.numpy()])
            allm = np.concatenate([a["top_meta"], meta])
            keep = np.argsort(-allv, axis=0, kind="stable")[:top]
            a["top"] = np.take_along_axis(allv, keep, 0)
            a["top_meta"] = np.take_along_axis(allm, keep[..., None], 0)
    if n == 0 or sum_x is None:
        return {}
    sst = sum_x2 - float((sum_x ** 2).sum()) / n
    out = {}
    for name, a in acc.items():
        freq = a["fires"] / n
        out[name] = {"tokens": n, "fve": 1 - a["sse"] / sst, "l0": a["l0"] / n,
                     "dead_rate": float((freq == 0).mean()),
                     "dense_rate": float((freq > DENSE).mean()), "freq": freq,
                     "text_max": a["text_max"], "top": a["top"], "top_meta": a["top_meta"]}
    return out


def spliced_loss(lm: CausalLM, texts: Sequence[str], point: str,
                 dicts: Mapping[str, Dictionary], *, context: int = 64,
                 max_norm_ratio: float = 4.0, batch_texts: int = 16) -> dict[str, float]:
    """Mean next-token cross-entropy (nats) clean, zero-ablated and with each reconstruction."""
    ids = [t for t in tokenize(lm, texts, context) if len(t) > 2]
    totals: dict[str, float] = {}
    count = 0

    def splice(d: Dictionary | None) -> Any:
        def fn(h: torch.Tensor) -> torch.Tensor:
            flat = h[:, 1:].reshape(-1, h.shape[-1]).float()
            norms = flat.norm(dim=-1)
            ok = norms <= max_norm_ratio * norms.median()
            new = flat.clone()
            if d is None:
                new[ok] = 0.0
            else:
                x = flat[ok].cpu().numpy()
                new[ok] = torch.from_numpy(d.decode(d.encode(x))).to(new)
            out = h.clone()
            out[:, 1:] = new.reshape(h.shape[0], -1, h.shape[-1]).to(h.dtype)
            return out
        return fn

    variants: dict[str, Any] = {"clean": None, "zero": splice(None),
                                **{k: splice(d) for k, d in dicts.items()}}
    for s in range(0, len(ids), batch_texts):
        chunk = ids[s:s + batch_texts]
        for name, fn in variants.items():
            logits, _, b = lm.run(chunk, edits=None if fn is None else {point: fn})
            valid = (b.attention_mask[:, :-1] * b.attention_mask[:, 1:]).bool()
            valid[:, 0] = False  # predictions from the first position are not spliced
            lp = torch.log_softmax(logits[:, :-1].float(), -1)
            nll = -lp.gather(-1, b.input_ids[:, 1:, None].to(lp.device))[..., 0]
            totals[name] = totals.get(name, 0.0) + float(nll[valid].sum())
            if name == "clean":
                count += int(valid.sum())
    out = {f"ce_{k}": v / max(count, 1) for k, v in totals.items()}
    out["tokens"] = float(count)
    for k in dicts:
        gap = out["ce_zero"] - out["ce_clean"]
        out[f"ce_increase_{k}"] = out[f"ce_{k}"] - out["ce_clean"]
        out[f"loss_recovered_{k}"] = (out["ce_zero"] - out[f"ce_{k}"]) / gap if gap else np.nan
    return out


def logit_lens(lm: CausalLM, d: Dictionary, top: int = 5, chunk: int = 256) -> list[list[str]]:
    """Top tokens of each decoder direction read through ``g * W_U``."""
    W_U = lm.unembed_weight().float()
    g = lm.final_norm_gain().float()
    vocab = lm.vocab_strings()
    D = torch.from_numpy(d.dictionary).float() * g
    out: list[list[str]] = []
    for s in range(0, len(D), chunk):
        logits = D[s:s + chunk] @ W_U.T
        idx = logits.topk(top, dim=1).indices
        out += [[vocab[int(i)] for i in row] for row in idx]
    return out


def render(lm: CausalLM, ids: Sequence[int], pos: int, before: int = 10, after: int = 4) -> str:
    """The context around ``pos`` with the token there in ``[[...]]``."""
    dec = lm.tokenizer.decode
    return (dec(list(ids[max(0, pos - before):pos])) + "[[" + dec([ids[pos]]) + "]]"
            + dec(list(ids[pos + 1:pos + 1 + after])))


def name_features(lm: CausalLM, scanned: Mapping[str, Any], labels: Sequence[str],
                  lens: list[list[str]], min_share: float = 0.5) -> list[dict[str, Any]]:
    """Per feature: top-context token, logit-lens token, majority topic and its share."""
    vocab = lm.vocab_strings()
    top, meta = scanned["top"], scanned["top_meta"]
    out = []
    for k in range(top.shape[1]):
        live = np.isfinite(top[:, k]) & (top[:, k] > 0)
        m = meta[live, k]
        toks = Counter(vocab[int(t)].strip().lower() for t in m[:, 2])
        topics = Counter(labels[int(t)] for t in m[:, 0] if labels[int(t)])
        tok, tn = toks.most_common(1)[0] if toks else ("", 0)
        topic, cn = topics.most_common(1)[0] if topics else ("", 0)
        share = cn / max(int(live.sum()), 1)
        out.append({"feature": k, "n_contexts": int(live.sum()), "token": tok,
                    "token_share": tn / max(int(live.sum()), 1), "logit_lens": lens[k],
                    "topic": topic if share >= min_share and int(live.sum()) >= 4 else "",
                    "topic_share": share,
                    "name": (topic + ": " if share >= min_share else "") + (
                        tok if tn >= 2 else (lens[k][0].strip() if lens[k] else ""))})
    return out


def _auroc(score: np.ndarray, y: np.ndarray) -> float:
    from scipy.stats import rankdata

    pos, neg = int(y.sum()), int(len(y) - y.sum())
    if not pos or not neg:
        return float("nan")
    r = rankdata(score)
    return float((r[y == 1].sum() - pos * (pos + 1) / 2) / (pos * neg))


def naming_audit(names: Sequence[Mapping[str, Any]], text_max: np.ndarray,
                 labels: Sequence[str], n_shuffles: int = 20, seed: int = 0) -> dict[str, Any]:
    """AUROC of each topic-named feature on held-out texts, against shuffled names."""
    lab = np.asarray(labels)
    named = [(int(n["feature"]), str(n["topic"])) for n in names if n["topic"]]
    if not named:
        return {"n_named": 0}
    real = np.array([_auroc(text_max[:, k], (lab == t).astype(int)) for k, t in named])
    rng = np.random.default_rng(seed)
    topics = [t for _, t in named]
    null = []
    for _ in range(n_shuffles):
        perm = rng.permutation(topics)
        null.append(np.nanmean([_auroc(text_max[:, k], (lab == t).astype(int))
                                for (k, _), t in zip(named, perm, strict=True)]))
    return {"n_named": len(named), "auroc_mean": float(np.nanmean(real)),
            "auroc_median": float(np.nanmedian(real)),
            "share_above_0_7": float(np.nanmean(real > 0.7)),
            "shuffled_auroc_mean": float(np.mean(null)),
            "shuffled_auroc_sd": float(np.std(null)),
            "per_feature": [{"feature": k, "topic": t, "auroc": float(a)}
                            for (k, t), a in zip(named, real, strict=True)]}
