"""Edits of a language model's activations at hook points: ablate, steer, clamp.

An ``Edit`` is a hook point plus a function on the activation tensor ``(N, T, dim)``; it is
applied through ``conceptlab.lm.model.hooked`` (hooks always removed afterwards).

* ``project_out(point, U)``: directional ablation, ``h <- h - (h U^T) U`` for orthonormal rows
  ``U`` (Ravfogel et al., ACL 2020, INLP, eq. 1; Arditi et al., 2024, "Refusal in language
  models is mediated by a single direction", eq. 4).
* ``add(point, v, coef)``: activation addition, ``h <- h + coef * v`` (Turner et al., 2023,
  "Activation addition: steering language models without optimization", eq. 1).
* ``clamp(point, neurons, values)``: set neurons to fixed values, as in the confirmation step
  of "Decoding specialised feature neurons in LLMs with the final projection layer".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from conceptlab.lm.model import EditFn, LMError


@dataclass
class Edit:
    """One change at one hook point; ``info`` describes it for reports."""

    point: str
    fn: EditFn
    info: dict[str, Any] = field(default_factory=dict)


def orthonormal(directions: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Orthonormal rows spanning ``directions`` (K x D), by QR; rejects zero or NaN rows."""
    d = torch.as_tensor(np.asarray(directions, dtype=np.float32))
    if d.ndim == 1:
        d = d[None]
    if d.ndim != 2 or d.shape[0] == 0:
        raise LMError(f"directions must be K x D with K >= 1, got shape {tuple(d.shape)}")
    if not torch.isfinite(d).all():
        raise LMError("directions contain NaN or infinity")
    q, r = torch.linalg.qr(d.double().T)
    if (r.diagonal().abs() < 1e-8 * max(1.0, float(d.norm()))).any():
        raise LMError("directions are zero or linearly dependent")
    return q.T.float()


def project_out(point: str, directions: np.ndarray | torch.Tensor) -> Edit:
    """Remove the span of ``directions`` from the activation at ``point``."""
    u = orthonormal(directions)

    def fn(h: torch.Tensor) -> torch.Tensor:
        if h.shape[-1] != u.shape[1]:
            raise LMError(f"direction of dim {u.shape[1]} at {point!r}, whose dim is "
                          f"{h.shape[-1]}")
        uu = u.to(h.device, h.dtype)
        return h - (h @ uu.T) @ uu

    return Edit(point, fn, {"kind": "project_out", "point": point, "rank": int(u.shape[0])})


def add(point: str, vector: np.ndarray | torch.Tensor, coef: float) -> Edit:
    """Add ``coef * vector`` to every position's activation at ``point``."""
    v = torch.as_tensor(np.asarray(vector, dtype=np.float32)).reshape(-1)
    if not torch.isfinite(v).all():
        raise LMError("steering vector contains NaN or infinity")

    def fn(h: torch.Tensor) -> torch.Tensor:
        if h.shape[-1] != v.shape[0]:
            raise LMError(f"vector of dim {v.shape[0]} at {point!r}, whose dim is {h.shape[-1]}")
        return h + float(coef) * v.to(h.device, h.dtype)

    return Edit(point, fn, {"kind": "add", "point": point, "coef": float(coef),
                            "norm": float(v.norm())})


def clamp(point: str, neurons: Sequence[int], values: float | Sequence[float]) -> Edit:
    """Set the given coordinates (neurons) of the activation at ``point`` to ``values``."""
    idx = torch.as_tensor([int(n) for n in neurons], dtype=torch.long)
    if idx.numel() == 0:
        raise LMError("clamp needs at least one neuron")
    vals = torch.as_tensor(np.broadcast_to(np.asarray(values, dtype=np.float32),
                                           (idx.numel(),)).copy())

    def fn(h: torch.Tensor) -> torch.Tensor:
        if int(idx.max()) >= h.shape[-1] or int(idx.min()) < 0:
            raise LMError(f"neuron index out of range 0..{h.shape[-1] - 1} at {point!r}")
        out = h.clone()
        out[..., idx.to(h.device)] = vals.to(h.device, h.dtype)
        return out

    return Edit(point, fn, {"kind": "clamp", "point": point, "neurons": idx.tolist(),
                            "values": vals.tolist()})


def describe(edits: Sequence[Edit] | Edit | None) -> list[Mapping[str, Any]]:
    if edits is None:
        return []
    return [e.info for e in ([edits] if isinstance(edits, Edit) else edits)]
