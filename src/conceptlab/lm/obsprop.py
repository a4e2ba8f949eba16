"""Observable propagation (ObsProp) as Dunefsky & Cohan (2024) define it, for Llama-family LMs.

"Observable Propagation: A Data-Efficient Approach to Uncover Feature Vectors in Transformers".
An *observable* is a linear functional ``n`` of the logits (e.g. ``logit(" she") -
logit(" he")``). Its feature vector is carried backwards along a *path* of components, each
step mapping the feature vector ``y`` at a component's output to the one at its input residual
stream (reference: jacobdunefsky/ObservablePropagation, ``ObsPropCode.ipynb``):

* unembedding: ``W_U^T n`` (``make_range_normal``);
* attention head ``h`` of layer ``l`` through its OV circuit, attention pattern held fixed:
  ``W_V,h^T W_O,h^T y`` (``get_attn_normal``; grouped-query heads use their shared V rows);
* MLP, first order (``get_normal_for_path``, the ``mlp`` branch): the gradient of
  ``y . MLP(u)`` at the point ``u0`` where the segment between a positive and a negative
  example's MLP inputs crosses ``y . MLP(u) = 0`` (``domain_boundary_intersection`` finds it
  with Adam on ``t``; here a grid then bisection on the same segment and objective) and
  ``get_tangent_plane_given_point`` (the gradient there);
* every norm in front of a component, the paper's LayerNorm argument
  (``propagate_normal_through_LayerNorm``): the norm's Jacobian keeps a feature vector's
  direction up to the gain, so ``y -> sqrt(d) / mean ||x|| * g * y`` (``ln="paper"``);
  ``ln="exact"`` applies the RMSNorm Jacobian itself, so the argument can be checked
  (``norm_agreement``).

Where this departs from the reference code, and why:

* norms: ``get_normal_for_path`` sets ``use_ln_1 = True`` in its ``mlp`` branch only, so
  ``propagate_normal_through_LayerNorm`` scales an MLP's vector by ``ln_1`` (the *attention's*
  input norm, at ``ln_1_in``) and a head's by ``ln_2`` (the MLP's); here each component's
  vector goes through the norm it actually reads through (``input_layernorm`` for heads,
  ``post_attention_layernorm`` for MLPs), as the paper's LayerNorm argument states it;
* the final norm: the reference's notebooks take the exact gradient of ``n . W_U ln_f(x)`` at
  the point of ``{n . W_U ln_f(x) = 0}`` nearest one prompt's ``ln_f`` input
  (``get_normal_and_affine``, MDMM); here ``final_feature`` applies the LayerNorm rule
  (``ln="paper"``) or the mean Jacobian over the prompts (``ln="exact"``);
* nonlinearities are linearised between the *mean* positive and the *mean* negative input of
  the given prompts; the reference uses one prompt of each side (``embeddings_A[0]``,
  ``embeddings_B[0]``) and, for the LayerNorm scale, the norm of the positive prompt's input at
  the path node's token (``token=cur_token``); with one prompt per side the two agree.

The *coupling coefficient* between feature vectors (``coupling_coeff``) is
``C(y1, y2) = y1 . y2 / ||y1||^2``: the expected score on ``y2`` of an input scoring 1 on ``y1``.
Component attributions (``attributions``) are the reference's per-head / per-MLP contributions
(``get_head_token_contribs_for_layer``, ``get_mlp_contribs``): ``y . (component output)`` at the
last token, positive prompts minus negative prompts. The residual-only vector
``g * W_U^T n`` lives on as ``lm.observables.direct_path_vector``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from conceptlab.lm.model import CausalLM, LMError

LNMode = Literal["paper", "exact"]


@dataclass(frozen=True)
class Node:
    """One step of a path: an attention head (``kind="attn"``) or an MLP of a block."""

    kind: Literal["attn", "mlp"]
    layer: int
    head: int = -1

    @property
    def name(self) -> str:
        return f"L{self.layer}.H{self.head}" if self.kind == "attn" else f"L{self.layer}.MLP"


@dataclass
class Trace:
    """Activations of some prompts at one position each (``(N, d)`` rows per layer).

    ``resid_pre[l]`` enters block ``l`` (the input norm's input), ``resid_mid[l]`` enters its
    MLP norm, ``z[l]`` is the heads' concatenated output before ``o_proj``, ``final`` enters
    the final norm.
    """

    resid_pre: torch.Tensor  # (L, N, d)
    resid_mid: torch.Tensor  # (L, N, d)
    z: torch.Tensor  # (L, N, H * head_dim)
    final: torch.Tensor  # (N, d)

    def take(self, rows: Sequence[int] | np.ndarray) -> Trace:
        idx = torch.as_tensor(np.asarray(rows, dtype=np.int64))
        return Trace(self.resid_pre[:, idx], self.resid_mid[:, idx], self.z[:, idx],
                     self.final[idx])


def _check(lm: CausalLM) -> None:
    if lm.arch.family != "llama":
        raise LMError(f"ObsProp is implemented for the Llama family (pre-norm RMSNorm blocks); "
                      f"got {lm.arch.family!r}")


def _block(lm: CausalLM, layer: int) -> Any:
    if not 0 <= layer < lm.n_layers:
        raise LMError(f"layer {layer} out of range 0..{lm.n_layers - 1}")
    return lm.blocks[layer]


def _heads(lm: CausalLM) -> tuple[int, int, int]:
    cfg: Any = lm.model.config
    n_heads = int(cfg.num_attention_heads)
    n_kv = int(getattr(cfg, "num_key_value_heads", None) or n_heads)
    head_dim = int(getattr(cfg, "head_dim", None) or lm.d_model // n_heads)
    return n_heads, n_kv, head_dim


def observable(lm: CausalLM, positive: Sequence[str], negative: Sequence[str] = ()
               ) -> torch.Tensor:
    """``n`` over the vocabulary: ``+1/|P|`` on each positive word's first token, ``-1/|N|``
    on each negative one's (the reference's ``make_lm_head_normal`` with ``take_first_token``
    puts +1 / -1 on each: the same up to scale when ``|P| = |N|``, as in all its experiments)."""
    if not positive:
        raise LMError("an observable needs at least one positive token")
    n = torch.zeros(lm.vocab_size)
    for words, sign in ((positive, 1.0), (negative, -1.0)):
        for t in lm.token_ids(list(words)):
            n[t] += sign / len(words)
    if float(n.abs().sum()) == 0:
        raise LMError("the observable is zero (same tokens on both sides?)")
    return n


def trace(lm: CausalLM, texts: Sequence[str], positions: Sequence[int] | None = None,
          batch_size: int = 16) -> Trace:
    """Record the activations ObsProp needs at one position per prompt (default: last token)."""
    _check(lm)
    if positions is not None and len(positions) != len(texts):
        raise LMError(f"{len(positions)} positions for {len(texts)} texts")
    L = lm.n_layers
    pre_pts = [f"blocks.{i}.hook_resid_pre" for i in range(L)]
    att_pts = [f"blocks.{i}.hook_attn_out" for i in range(L)]
    final_pt = f"blocks.{L - 1}.hook_resid_post"
    pre, mid, zs, fin = [], [], [], []
    for s in range(0, len(texts), batch_size):
        chunk = list(texts[s:s + batch_size])
        got: dict[int, torch.Tensor] = {}
        handles = []
        for i in range(L):
            def hook(_m: Any, args: tuple[Any, ...], i: int = i,
                     got: dict[int, torch.Tensor] = got) -> None:
                got[i] = args[0].detach()
            handles.append(_block(lm, i).self_attn.o_proj.register_forward_pre_hook(hook))
        try:
            _, acts, b = lm.run(chunk, record=[*pre_pts, *att_pts, final_pt])
        finally:
            for h in handles:
                h.remove()
        rows = torch.arange(len(chunk))
        pos = b.last_index() if positions is None else torch.as_tensor(
            [int(p) for p in positions[s:s + batch_size]])
        pre.append(torch.stack([acts[p][rows, pos] for p in pre_pts]).float())
        mid.append(torch.stack([(acts[p][rows, pos] + acts[a][rows, pos])
                                for p, a in zip(pre_pts, att_pts, strict=True)]).float())
        zs.append(torch.stack([got[i][rows, pos] for i in range(L)]).float())
        fin.append(acts[final_pt][rows, pos].float())
    return Trace(torch.cat(pre, 1), torch.cat(mid, 1), torch.cat(zs, 1), torch.cat(fin))


def through_norm(norm: Any, y: torch.Tensor, xs: torch.Tensor, ln: LNMode = "paper",
                 offset: float = 0.0) -> torch.Tensor:
    """Carry ``y`` from a norm's output back to its input, at inputs ``xs`` ``(N, d)``.

    ``paper``: ``sqrt(d) / mean_i ||x_i|| * g * y`` (the reference's
    ``propagate_normal_through_LayerNorm``). ``exact``: the mean over inputs of the RMSNorm
    Jacobian transposed, ``(g*y)/r - x (x.(g*y)) / (d r^3)``, ``r = sqrt(mean x^2 + eps)``.
    """
    g = norm.weight.detach().float() + offset
    gy = g * y
    xs = xs.float().reshape(-1, xs.shape[-1])
    d = xs.shape[-1]
    if ln == "paper":
        return float(np.sqrt(d)) / xs.norm(dim=1).mean() * gy
    if ln != "exact":
        raise LMError(f"ln must be 'paper' or 'exact', got {ln!r}")
    eps = float(getattr(norm, "variance_epsilon", getattr(norm, "eps", 1e-6)))
    r = (xs.pow(2).mean(1, keepdim=True) + eps).sqrt()
    grads = gy / r - xs * (xs @ gy).unsqueeze(1) / (d * r ** 3)
    return grads.mean(0)


def final_feature(lm: CausalLM, n: torch.Tensor, tr: Trace, ln: LNMode = "paper"
                  ) -> torch.Tensor:
    """The observable's feature vector at the final norm's input: ``W_U^T n`` through the norm."""
    _check(lm)
    y = lm.unembed_weight().float().T @ n.float()
    return through_norm(lm.final_norm_module(), y, tr.final, ln, lm.arch.norm_offset)


def head_ov(lm: CausalLM, layer: int, head: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(W_V,h (head_dim, d), W_O,h (d, head_dim))`` of one head (its shared KV group's V)."""
    n_heads, n_kv, hd = _heads(lm)
    if not 0 <= head < n_heads:
        raise LMError(f"head {head} out of range 0..{n_heads - 1}")
    attn = _block(lm, layer).self_attn
    kv = head // (n_heads // n_kv)
    W_V = attn.v_proj.weight.detach().float()[kv * hd:(kv + 1) * hd]
    W_O = attn.o_proj.weight.detach().float()[:, head * hd:(head + 1) * hd]
    return W_V, W_O


def head_backward(lm: CausalLM, node: Node, y: torch.Tensor, tr: Trace,
                  ln: LNMode = "paper") -> torch.Tensor:
    """``y`` at a head's output -> at its block's input: ``LN1^T W_V,h^T W_O,h^T y``."""
    W_V, W_O = head_ov(lm, node.layer, node.head)
    u = W_V.T @ (W_O.T @ y.float())
    return through_norm(_block(lm, node.layer).input_layernorm, u, tr.resid_pre[node.layer], ln,
                        lm.arch.norm_offset)


def boundary_point(f: Any, u_pos: torch.Tensor, u_neg: torch.Tensor, steps: int = 64,
                   iters: int = 40) -> torch.Tensor:
    """The point on ``[u_neg, u_pos]`` where ``f`` (scalar) crosses zero; where it does not
    cross, the point of least ``|f|`` on a grid (the reference minimises ``f^2`` over ``t``)."""
    ts = torch.linspace(0, 1, steps + 1)
    with torch.no_grad():
        vals = torch.stack([f((1 - t) * u_neg + t * u_pos) for t in ts])
    sign = torch.sign(vals)
    cross = torch.nonzero(sign[:-1] * sign[1:] <= 0).flatten()
    if len(cross) == 0:
        t = ts[int(vals.abs().argmin())]
        return (1 - t) * u_neg + t * u_pos
    lo, hi = float(ts[int(cross[0])]), float(ts[int(cross[0]) + 1])
    f_lo = float(vals[int(cross[0])])
    with torch.no_grad():
        for _ in range(iters):
            m = 0.5 * (lo + hi)
            fm = float(f((1 - m) * u_neg + m * u_pos))
            if (fm > 0) == (f_lo > 0):
                lo, f_lo = m, fm
            else:
                hi = m
    mid = 0.5 * (lo + hi)
    return (1 - mid) * u_neg + mid * u_pos


def mlp_backward(lm: CausalLM, node: Node, y: torch.Tensor, pos: Trace, neg: Trace,
                 ln: LNMode = "paper") -> torch.Tensor:
    """``y`` at an MLP's output -> at its norm's input, to first order (the reference's rule).

    The MLP is linearised at the zero crossing of ``y . MLP(u)`` between the mean positive and
    the mean negative MLP input, ``u = LN2(resid_mid)``; its gradient there is carried through
    the MLP's norm at the positive prompts' inputs (as the reference does).
    """
    block = _block(lm, node.layer)
    norm, mlp = block.post_attention_layernorm, block.mlp
    x_pos = pos.resid_mid[node.layer].mean(0)
    x_neg = neg.resid_mid[node.layer].mean(0)
    y = y.float()
    with torch.no_grad():
        u_pos, u_neg = norm(x_pos).float(), norm(x_neg).float()

    def value(u: torch.Tensor) -> torch.Tensor:
        return (mlp(u.unsqueeze(0))[0].float() * y).sum()

    u0 = boundary_point(value, u_pos, u_neg).detach().requires_grad_(True)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(value(u0), u0)
    return through_norm(norm, grad.detach(), pos.resid_mid[node.layer], ln, lm.arch.norm_offset)


def backward(lm: CausalLM, node: Node, y: torch.Tensor, pos: Trace, neg: Trace,
             ln: LNMode = "paper") -> torch.Tensor:
    if node.kind == "attn":
        return head_backward(lm, node, y, pos, ln)
    if node.kind == "mlp":
        return mlp_backward(lm, node, y, pos, neg, ln)
    raise LMError(f"unknown component kind {node.kind!r}")


def path_feature(lm: CausalLM, n: torch.Tensor, path: Sequence[Node], pos: Trace, neg: Trace,
                 ln: LNMode = "paper") -> torch.Tensor:
    """The feature vector of ``n`` along ``path`` (listed from the output backwards; each node's
    layer below the previous one's), at the input residual stream of the path's last node."""
    y = final_feature(lm, n, pos, ln)
    # forward order inside a block: heads, then the MLP; a backward path goes strictly earlier
    order = lm.n_layers * 2
    for node in path:
        here = node.layer * 2 + (1 if node.kind == "mlp" else 0)
        if here >= order:
            raise LMError(f"a path goes backwards through the model; {node.name} cannot "
                          f"follow a component at or below it")
        y = backward(lm, node, y, pos, neg, ln)
        order = here
    return y


def all_nodes(lm: CausalLM) -> list[Node]:
    n_heads, _, _ = _heads(lm)
    return [node for layer in range(lm.n_layers)
            for node in (*[Node("attn", layer, h) for h in range(n_heads)], Node("mlp", layer))]


def component_features(lm: CausalLM, n: torch.Tensor, pos: Trace, neg: Trace,
                       ln: LNMode = "paper") -> dict[str, np.ndarray]:
    """Every head's and MLP's one-step feature vector (``[component]`` paths), by name."""
    y = final_feature(lm, n, pos, ln)
    return {node.name: backward(lm, node, y, pos, neg, ln).numpy().astype(np.float32)
            for node in all_nodes(lm)}


def attributions(lm: CausalLM, n: torch.Tensor, pos: Trace, neg: Trace) -> dict[str, float]:
    """Each component's direct contribution to the observable at the last token, positive
    prompts' mean minus negative prompts' mean (``y . W_O,h z_h`` for heads, ``y . MLP`` out)."""
    n_heads, _, hd = _heads(lm)
    out: dict[str, float] = {}
    for layer in range(lm.n_layers):
        block = _block(lm, layer)
        # the observable is linear in the final norm's output; the norm's scale at each prompt
        # is applied as the paper's LN rule does, through ``final_feature`` at that prompt set
        for node in (*[Node("attn", layer, h) for h in range(n_heads)], Node("mlp", layer)):
            vals = []
            for tr in (pos, neg):
                y = final_feature(lm, n, tr, "paper")
                contrib: torch.Tensor
                if node.kind == "attn":
                    W_O = block.self_attn.o_proj.weight.detach().float()
                    zh = tr.z[layer][:, node.head * hd:(node.head + 1) * hd]
                    contrib = zh @ (W_O[:, node.head * hd:(node.head + 1) * hd].T @ y)
                else:
                    with torch.no_grad():
                        outp = block.mlp(block.post_attention_layernorm(tr.resid_mid[layer]))
                    contrib = outp.float() @ y
                vals.append(float(contrib.mean()))
            out[node.name] = vals[0] - vals[1]
    return out


def coupling_coeff(y1: np.ndarray | torch.Tensor, y2: np.ndarray | torch.Tensor) -> float:
    """``C(y1, y2) = y1 . y2 / ||y1||^2`` (the paper's coupling coefficient, ``coupling_coeff``)."""
    a = np.asarray(y1, dtype=np.float64)
    b = np.asarray(y2, dtype=np.float64)
    den = float(a @ a)
    if den == 0:
        raise LMError("coupling coefficient of a zero feature vector")
    return float(a @ b / den)


def cosine(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> float:
    x, z = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(x @ z / (np.linalg.norm(x) * np.linalg.norm(z) + 1e-12))


def norm_agreement(lm: CausalLM, n: torch.Tensor, pos: Trace, neg: Trace,
                   nodes: Sequence[Node]) -> dict[str, float]:
    """Cosine between the paper's LayerNorm rule and the exact Jacobian, per one-step path
    (the paper's appendix E check: the norm hardly turns a feature vector)."""
    out = {"final": cosine(final_feature(lm, n, pos, "paper"), final_feature(lm, n, pos, "exact"))}
    for node in nodes:
        out[node.name] = cosine(path_feature(lm, n, [node], pos, neg, "paper"),
                                path_feature(lm, n, [node], pos, neg, "exact"))
    return out
