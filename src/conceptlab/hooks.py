"""One hook mechanism and one naming scheme for hook points, for vision and language models.

A *hook point* is a place in a forward pass where an activation can be read or replaced. It is
named in one of two ways:

* a **canonical name** in the style of TransformerLens (Nanda & Bloom, 2022), the same for
  every family that has the part: ``blocks.{i}.hook_resid_pre`` / ``blocks.{i}.hook_resid_post``
  (what enters / leaves block ``i``: a transformer layer, an EfficientNet MBConv block),
  ``blocks.{i}.hook_attn_out``, ``blocks.{i}.hook_mlp_out``, ``blocks.{i}.mlp.hook_post`` (the
  MLP neurons, the input of its output projection), ``features`` (what the model's own head or
  projection reads) and ``ln_final.hook_normalized`` (a language model's final norm). A
  :class:`HookPoints` map, built by each encoder family (``Encoder.tap()``) or by the causal-LM
  adapter, resolves them to a module and a side;
* a **raw torch module path** (``model.named_modules()``, e.g. ``"_blocks.15"``,
  ``"vision_model.encoder.layers.1.mlp"``), the escape hatch: the module's output.

A point reads a module's *output* (forward hook) or its *input* (forward pre-hook, for
``hook_resid_pre`` and ``mlp.hook_post``). :func:`hooked` records and/or replaces any set of
points; :func:`capture` (record, optionally reduced to one row per item) and :func:`edit`
(replace) are its two common forms. All are context managers that remove every hook they
registered when the block ends, even when it raises, so a model is never left modified.

Outputs that are tuples, lists or dicts (e.g. Hugging Face layers) are handled through their
*primary tensor*: the first tensor found (for dicts: ``last_hidden_state`` if present, else the
first tensor value).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from contextlib import contextmanager
from typing import Any, Literal, Protocol, runtime_checkable

import torch
from torch import nn

from conceptlab.errors import ConceptlabError, UnknownNameError

Reduce = Literal["none", "mean", "max", "cls", "last", "flatten"]
REDUCTIONS: tuple[str, ...] = ("none", "mean", "max", "cls", "last", "flatten")
Side = Literal["input", "output"]
EditFn = Callable[[torch.Tensor], torch.Tensor]
#: The block-level canonical kinds (``blocks.{i}.<kind>``), in forward order.
BLOCK_KINDS: tuple[str, ...] = ("hook_resid_pre", "hook_attn_out", "mlp.hook_post",
                                "hook_mlp_out", "hook_resid_post")


class HookError(ConceptlabError, ValueError):
    """Raised for an unknown hook name, an unknown reduction or an output with no tensor."""


def hook_names(model: nn.Module) -> list[str]:
    """Every raw module path of ``model`` (its ``named_modules`` paths, the root excluded)."""
    return [name for name, _ in model.named_modules() if name]


def _unknown(name: str, names: Sequence[str], owner: str, canonical: Sequence[str] = ()
             ) -> HookError:
    close = difflib.get_close_matches(name, [*canonical, *names], n=5, cutoff=0.5)
    if close:
        hint = f"; did you mean {', '.join(map(repr, close))}?"
    else:
        top = list(canonical[:8]) or [n for n in names if "." not in n]
        label = "named points" if canonical else "top-level names"
        hint = f"; {label}: {', '.join(top[:20])}{' ...' if len(top) > 20 else ''}"
    return HookError(f"no hook point {name!r} in {owner}{hint}")


def get_module(model: nn.Module, name: str) -> nn.Module:
    """The submodule at raw path ``name``; a HookError lists close matches when there is none."""
    modules = dict(model.named_modules())
    if name in modules and name:
        return modules[name]
    raise _unknown(name, [n for n in modules if n], type(model).__name__)


@runtime_checkable
class Resolver(Protocol):
    """Anything that names hook points: :class:`HookPoints`, the causal-LM adapter."""

    def resolve(self, name: str) -> tuple[nn.Module, Side]:
        """The module a point lives on, and whether it reads its input or its output."""
        ...

    def hook_points(self) -> list[str]:
        """The canonical names, in forward order."""
        ...


class HookPoints:
    """The hook points of one torch model: canonical names (``named``: name -> (raw module
    path, side)) plus every raw module path (its output) as the escape hatch.

    ``default`` is the point a command reads when none is given (e.g. ``features``).
    """

    def __init__(self, model: nn.Module, named: Mapping[str, tuple[str, Side]] | None = None,
                 default: str | None = None, owner: str | None = None) -> None:
        self.model = model
        self.owner = owner or type(model).__name__
        self._modules = dict(model.named_modules())
        self.named: dict[str, tuple[str, Side]] = {}
        for point, (path, side) in (named or {}).items():
            if path not in self._modules:
                raise HookError(f"{self.owner}: canonical point {point!r} maps to "
                                f"{path!r}, which is not a module of the model")
            if side not in ("input", "output"):
                raise HookError(f"{self.owner}: side of {point!r} must be 'input' or 'output'")
            self.named[point] = (path, side)
        if default is not None and default not in self.named and default not in self._modules:
            raise HookError(f"{self.owner}: default point {default!r} is not a hook point")
        self.default = default

    def hook_points(self) -> list[str]:
        """The canonical names, in the order given (forward order)."""
        return list(self.named)

    def module_paths(self) -> list[str]:
        """Every raw module path (also accepted as a point: the module's output)."""
        return [n for n in self._modules if n]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and bool(name) and (name in self.named
                                                         or name in self._modules)

    def module_path(self, name: str) -> tuple[str, Side]:
        """``(raw module path, side)`` of a canonical name or a raw path."""
        if name in self.named:
            return self.named[name]
        if name and name in self._modules:
            return name, "output"
        raise _unknown(name, self.module_paths(), self.owner, self.hook_points())

    def resolve(self, name: str) -> tuple[nn.Module, Side]:
        path, side = self.module_path(name)
        return self._modules[path], side


def as_resolver(target: nn.Module | Resolver) -> Resolver:
    """A module (raw paths only) or an object that already names its points."""
    if isinstance(target, nn.Module):
        return HookPoints(target)
    if isinstance(target, Resolver):
        return target
    raise HookError(f"cannot hook a {type(target).__name__}: pass a torch module or a "
                    "HookPoints map")


def block_points(blocks: str, n_blocks: int, *, attn: str | None = None,
                 mlp: str | None = None, down: str | None = None) -> dict[str, tuple[str, Side]]:
    """Canonical block points of a stack of ``n_blocks`` blocks at raw path ``blocks``.

    ``attn``, ``mlp`` and ``down`` (the MLP's output projection) are paths relative to a block;
    a CNN gives none and gets ``hook_resid_pre`` / ``hook_resid_post`` only.
    """
    out: dict[str, tuple[str, Side]] = {}
    for i in range(n_blocks):
        b = f"{blocks}.{i}"
        out[f"blocks.{i}.hook_resid_pre"] = (b, "input")
        if attn:
            out[f"blocks.{i}.hook_attn_out"] = (f"{b}.{attn}", "output")
        if down:
            out[f"blocks.{i}.mlp.hook_post"] = (f"{b}.{down}", "input")
        if mlp:
            out[f"blocks.{i}.hook_mlp_out"] = (f"{b}.{mlp}", "output")
        out[f"blocks.{i}.hook_resid_post"] = (b, "output")
    return out


def find_blocks(model: nn.Module, under: str = "") -> str | None:
    """The raw path of the longest ``nn.ModuleList`` under ``under`` (a transformer's layers)."""
    best: tuple[int, str] | None = None
    for name, module in model.named_modules():
        found = isinstance(module, nn.ModuleList) and name.startswith(under) and len(module)
        if found and (best is None or len(module) > best[0]):
            best = (len(module), name)
    return best[1] if best else None


def child_named(block: nn.Module, candidates: Sequence[str]) -> str | None:
    """The first of ``candidates`` (relative paths) that is a submodule of ``block``."""
    modules = dict(block.named_modules())
    return next((c for c in candidates if c in modules), None)


def transformer_points(model: nn.Module, blocks: str, *, extra: Mapping[str, tuple[str, Side]]
                       | None = None, default: str | None = None, owner: str | None = None
                       ) -> HookPoints:
    """The canonical points of a transformer whose blocks are the ModuleList at ``blocks``,
    finding each block's attention, MLP and MLP output projection by their usual names
    (CLIP / SigLIP / OpenCLIP / ViT / GPT-2 / Llama spellings)."""
    stack = get_module(model, blocks)
    if not isinstance(stack, nn.ModuleList) or not len(stack):
        raise HookError(f"{blocks!r} is not a non-empty ModuleList of blocks")
    first = stack[0]
    attn = child_named(first, ("self_attn", "attn", "attention", "self_attention"))
    mlp = child_named(first, ("mlp", "feed_forward", "ffn"))
    down = child_named(first, tuple(f"{mlp}.{d}" for d in ("fc2", "c_proj", "down_proj",
                                                            "dense_4h_to_h", "fc_out"))) \
        if mlp else None
    named = block_points(blocks, len(stack), attn=attn, mlp=mlp, down=down)
    named.update(extra or {})
    return HookPoints(model, named, default=default, owner=owner)


def primary_tensor(output: Any) -> torch.Tensor:
    """The tensor a hook acts on: the output itself, or the first tensor in a tuple/list/dict."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, Mapping):
        if isinstance(output.get("last_hidden_state"), torch.Tensor):
            return output["last_hidden_state"]
        output = list(output.values())
    if isinstance(output, (tuple, list)):
        for item in output:
            if isinstance(item, torch.Tensor):
                return item
    raise HookError(f"module output of type {type(output).__name__} holds no tensor")


def replace_primary(output: Any, new: torch.Tensor) -> Any:
    """``output`` with its primary tensor replaced by ``new`` (same container type)."""
    if isinstance(output, torch.Tensor):
        return new
    old = primary_tensor(output)
    if isinstance(output, MutableMapping):
        key = next(k for k, v in output.items() if v is old)
        output[key] = new  # ModelOutput and dict are mutable
        return output
    items = list(output)
    items[next(i for i, v in enumerate(items) if v is old)] = new
    if isinstance(output, tuple):
        return type(output)(*items) if hasattr(output, "_fields") else tuple(items)
    return items


_replace_primary = replace_primary  # the former name, kept for older callers


def reduce_tensor(x: torch.Tensor, reduce: Reduce | str = "mean",
                  mask: torch.Tensor | None = None) -> torch.Tensor:
    """Reduce an activation batch to one row per item.

    Shapes: ``(N, C, H, W)`` conv maps reduce over the spatial dims; ``(N, T, D)`` token
    sequences over tokens; ``(N, D)`` is returned as is (except ``flatten``).

    * ``"none"``: unchanged; ``"flatten"``: ``(N, -1)``.
    * ``"mean"`` / ``"max"``: over H, W or T. With ``mask`` (``(N, T)``, 1 = real token) the
      padding is left out, as it must be for padded text batches.
    * ``"cls"``: token 0; ``"last"``: the last real token (the last position without a mask).
    """
    if reduce not in REDUCTIONS:
        raise HookError(f"unknown reduce {reduce!r}; choose from {', '.join(REDUCTIONS)}")
    if reduce == "none":
        return x
    if reduce == "flatten":
        return x.reshape(x.shape[0], -1)
    if x.dim() <= 2:
        return x
    if x.dim() == 4:
        if reduce in ("cls", "last"):
            raise HookError(
                f"reduce={reduce!r} needs a token sequence (N, T, D), got {tuple(x.shape)}")
        return x.mean(dim=(2, 3)) if reduce == "mean" else x.amax(dim=(2, 3))
    if x.dim() != 3:
        raise HookError(f"cannot reduce an activation of shape {tuple(x.shape)}; use reduce='none'")
    if mask is not None and mask.shape != x.shape[:2]:
        raise HookError(
            f"mask shape {tuple(mask.shape)} does not match tokens {tuple(x.shape[:2])}")
    if reduce == "cls":
        return x[:, 0]
    if reduce == "last":
        if mask is None:
            return x[:, -1]
        t = torch.arange(x.shape[1], device=x.device)
        last = (mask.to(x.device).bool() * (t + 1)).argmax(dim=1)
        return x[torch.arange(x.shape[0], device=x.device), last]
    if mask is None:
        return x.mean(dim=1) if reduce == "mean" else x.amax(dim=1)
    m = mask.to(device=x.device, dtype=x.dtype).unsqueeze(-1)
    if reduce == "mean":
        return (x * m).sum(dim=1) / m.sum(dim=1).clamp_min(1)
    return x.masked_fill(m == 0, torch.finfo(x.dtype).min).amax(dim=1)


class Captured(Mapping[str, torch.Tensor]):
    """Values recorded by ``hooked`` / ``capture``: ``acts[name]`` concatenates every forward
    call along dim 0 (one call: that call's value)."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = list(names)
        self._calls: dict[str, list[torch.Tensor]] = {n: [] for n in self.names}

    def _add(self, name: str, value: torch.Tensor) -> None:
        self._calls[name].append(value)

    def calls(self, name: str) -> list[torch.Tensor]:
        """Each forward call's output at ``name``, in order."""
        return list(self._calls[name])

    def __getitem__(self, name: str) -> torch.Tensor:
        if name not in self._calls:
            raise UnknownNameError(f"{name!r} was not captured (captured: {', '.join(self.names)})")
        calls = self._calls[name]
        if not calls:
            raise HookError(f"hook point {name!r} never ran: did the forward pass reach it?")
        return calls[0] if len(calls) == 1 else torch.cat(calls, dim=0)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)

    def clear(self) -> None:
        """Drop recorded outputs (e.g. between batches) while keeping the hooks."""
        for calls in self._calls.values():
            calls.clear()


def edit_map(edits: Mapping[str, EditFn] | Sequence[Any] | None) -> dict[str, EditFn]:
    """``{point: fn}`` from a mapping or a sequence of objects with ``.point`` and ``.fn``;
    several edits at one point run in order."""
    if edits is None:
        return {}
    if isinstance(edits, Mapping):
        return dict(edits)
    if hasattr(edits, "point") and hasattr(edits, "fn"):
        edits = [edits]
    by_point: dict[str, list[EditFn]] = {}
    for e in edits:
        by_point.setdefault(e.point, []).append(e.fn)

    def chain(fns: list[EditFn]) -> EditFn:
        def fn(h: torch.Tensor) -> torch.Tensor:
            for f in fns:
                h = f(h)
            return h
        return fn

    return {p: fns[0] if len(fns) == 1 else chain(fns) for p, fns in by_point.items()}


@contextmanager
def hooked(target: nn.Module | Resolver, record: str | Sequence[str] = (),
           edits: Mapping[str, EditFn] | Sequence[Any] | None = None, *,
           reduce: Reduce | str = "none", mask: torch.Tensor | None = None,
           detach: bool = True, to_cpu: bool = False) -> Iterator[Captured]:
    """Record and/or replace hook points while the block runs (the one hook mechanism).

    ``target``: a torch module (raw module paths) or a :class:`HookPoints` / causal-LM adapter
    (canonical names too). ``edits[point](tensor) -> tensor`` replaces the activation (same
    shape; the rest of a tuple output is kept); a point both edited and recorded records the
    edited value. Recorded values are reduced (``reduce``, ``mask``: see
    :func:`reduce_tensor`), detached unless ``detach=False``, and yielded as a
    :class:`Captured`. Every name is resolved before any hook is registered, and every hook is
    removed when the block ends, even when it raises.
    """
    record = [record] if isinstance(record, str) else list(dict.fromkeys(record))
    fns = edit_map(edits)
    if reduce not in REDUCTIONS:
        raise HookError(f"unknown reduce {reduce!r}; choose from {', '.join(REDUCTIONS)}")
    resolver = as_resolver(target)
    points = list(dict.fromkeys([*fns, *record]))
    targets = {p: resolver.resolve(p) for p in points}  # every name checked first
    acts = Captured(record)

    def on_value(point: str, value: torch.Tensor) -> torch.Tensor:
        if point in fns:
            new = fns[point](value)
            if not isinstance(new, torch.Tensor) or new.shape != value.shape:
                got = tuple(new.shape) if isinstance(new, torch.Tensor) else type(new).__name__
                raise HookError(f"edit fn at {point!r} must return a tensor of shape "
                                f"{tuple(value.shape)}, got {got}")
            value = new
        if point in acts.names:
            kept = reduce_tensor(value, reduce, mask)
            if detach:
                kept = kept.detach()
            acts._add(point, kept.cpu() if to_cpu else kept)
        return value

    def make(point: str, side: Side) -> Callable[..., Any]:
        if side == "output":
            def out_hook(_m: nn.Module, _args: Any, output: Any) -> Any:
                old = primary_tensor(output)
                new = on_value(point, old)
                return None if new is old else replace_primary(output, new)
            return out_hook

        def pre_hook(_m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            if args:
                new = on_value(point, primary_tensor(args[0]))
                return (new, *args[1:]), kwargs
            key = "hidden_states" if "hidden_states" in kwargs else next(
                (k for k, v in kwargs.items() if isinstance(v, torch.Tensor)), None)
            if key is None:
                raise HookError(f"hook point {point!r}: the module got no tensor input")
            new = on_value(point, kwargs[key])
            return args, {**kwargs, key: new}
        return pre_hook

    handles: list[Any] = []
    try:
        for point in points:
            module, side = targets[point]
            fn = make(point, side)
            if side == "output":
                handles.append(module.register_forward_hook(fn))
            else:
                handles.append(module.register_forward_pre_hook(fn, with_kwargs=True))
        yield acts
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def capture(model: nn.Module | Resolver, names: str | Sequence[str],
            reduce: Reduce | str = "none", mask: torch.Tensor | None = None,
            detach: bool = True, to_cpu: bool = False) -> Iterator[Captured]:
    """Record the values at the named hook points while the block runs (``hooked`` without
    edits).

    >>> with capture(model, ["_blocks.8", "_blocks.15"], reduce="mean") as acts:
    ...     model(x)
    >>> acts["_blocks.15"].shape          # (N, 320)

    ``mask`` (``(N, T)``) makes token reductions skip padding. ``detach=False`` keeps the graph
    (for gradient-based importance). All names are checked before any hook is registered.
    """
    names = [names] if isinstance(names, str) else list(dict.fromkeys(names))
    if not names:
        raise HookError("capture needs at least one hook name")
    with hooked(model, record=names, reduce=reduce, mask=mask, detach=detach,
                to_cpu=to_cpu) as acts:
        yield acts


@contextmanager
def edit(model: nn.Module | Resolver, name: str, fn: EditFn) -> Iterator[nn.Module]:
    """Replace the value at hook point ``name`` by ``fn(value)`` while the block runs
    (``hooked`` with one edit); yields the module the point lives on.

    ``fn`` receives the primary tensor (see the module docstring) and returns a tensor of the
    same shape; the rest of a tuple output is kept. Contexts nest, so several edits combine.

    >>> with edit(model, "_blocks.15", lambda h: h * 0):   # ablate a block
    ...     logits = model(x)
    """
    module, _ = as_resolver(model).resolve(name)
    with hooked(model, edits={name: fn}):
        yield module
