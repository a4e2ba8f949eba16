"""Token activations streamed from a language model in batches, never all held in memory.

``stream_activations(lm, texts, point)`` tokenises each text (truncated to ``context``
tokens), runs batches of texts through the model and yields one ``TokenRows`` per batch: the
activation of every real token at the hook point, its token id, text index and position.
The forward pass stops at the hook point (an exception raised by the hook, caught here): the
blocks after it never run, as with TransformerLens' ``stop_at_layer``. The first position of
every text is skipped by default: its activation is the attention sink, tens of times larger
than the others, which an SAE would spend atoms on (SAELens' training excludes it too when it
prepends a BOS). For the same reason tokens whose activation norm exceeds ``max_norm_ratio``
times the batch's median are dropped (``TokenRows.dropped`` counts them): in SmolLM2 about 1%
of later tokens (spaces, quotes) are such secondary sinks, with norms 6-9x the median at
block 6, and a few of them dominate a squared reconstruction loss.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from conceptlab.lm.model import Batch, CausalLM, LMError, hooked


class _StopForward(Exception):
    """Raised by the recording hook once the activation is in hand."""


@dataclass
class TokenRows:
    """Activations of a batch's real tokens (``acts`` (n, d)) and where each came from."""

    acts: np.ndarray
    tokens: np.ndarray
    text: np.ndarray
    pos: np.ndarray
    dropped: int = 0

    def __len__(self) -> int:
        return len(self.tokens)


def tokenize(lm: CausalLM, texts: Sequence[str], context: int) -> list[list[int]]:
    """Token ids of each text, truncated to ``context`` tokens."""
    if context < 2:
        raise LMError(f"context must be >= 2 tokens, got {context}")
    return [lm.encode(t)[:context] for t in texts]


def record_point(lm: CausalLM, ids: Sequence[Sequence[int]], point: str,
                 stop: bool = True) -> tuple[torch.Tensor, Batch]:
    """``(activations (N, T, d), the right-padded batch)`` at ``point`` for token-id lists;
    with ``stop`` the forward pass ends at the point."""
    b = lm.batch(list(ids), side="right")
    got: dict[str, torch.Tensor] = {}

    def grab(h: torch.Tensor) -> torch.Tensor:
        got["h"] = h.detach()
        if stop:
            raise _StopForward
        return h

    with torch.inference_mode(), hooked(lm, edits={point: grab}), \
            contextlib.suppress(_StopForward):
        lm.forward(b)
    return got["h"].float().cpu(), b


def stream_activations(lm: CausalLM, texts: Sequence[str], point: str, *, context: int = 64,
                       batch_texts: int = 32, max_tokens: int | None = None,
                       skip_first: bool = True, order: Sequence[int] | None = None,
                       max_norm_ratio: float | None = 4.0) -> Iterator[TokenRows]:
    """Yield ``TokenRows`` batch by batch until the texts or ``max_tokens`` run out.

    ``order`` (indices into ``texts``) sets which texts are read and in which order; the
    ``text`` field of the rows holds those indices.
    """
    lm.resolve(point)
    idx = list(range(len(texts))) if order is None else [int(i) for i in order]
    seen = 0
    for s in range(0, len(idx), batch_texts):
        chunk = idx[s:s + batch_texts]
        ids = tokenize(lm, [texts[i] for i in chunk], context)
        keep = [(j, t) for j, t in enumerate(ids) if len(t) > (1 if skip_first else 0)]
        if not keep:
            continue
        h, b = record_point(lm, [t for _, t in keep], point)
        valid = b.attention_mask.bool().clone()
        if skip_first:
            valid[:, 0] = False
        dropped = 0
        if max_norm_ratio is not None:
            norms = h.norm(dim=-1)
            limit = max_norm_ratio * float(norms[valid].median()) if valid.any() else 0.0
            sink = valid & (norms > limit)
            dropped = int(sink.sum())
            valid &= ~sink
        rows, cols = torch.nonzero(valid, as_tuple=True)
        out = TokenRows(h[rows, cols].numpy(), b.input_ids[rows, cols].numpy(),
                        np.asarray([chunk[keep[r][0]] for r in rows.tolist()], np.int64),
                        cols.numpy().astype(np.int64), dropped)
        if max_tokens is not None and seen + len(out) > max_tokens:
            n = max_tokens - seen
            out = TokenRows(out.acts[:n], out.tokens[:n], out.text[:n], out.pos[:n], dropped)
        seen += len(out)
        if len(out):
            yield out
        if max_tokens is not None and seen >= max_tokens:
            return
