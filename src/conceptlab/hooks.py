"""Named hook points on any torch module, in the style of TransformerLens (Nanda & Bloom, 2022).

A hook point is a ``model.named_modules()`` path (``"_blocks.15"``, ``"model.layers.8.mlp"``).
``capture`` records module outputs (optionally reduced to one vector per item); ``edit``
replaces an output through a function, for ablation and steering. Both are context managers
that remove every hook they registered when the block ends, even when it raises, so a model is
never left silently modified.

Outputs that are tuples, lists or dicts (e.g. Hugging Face layers) are handled through their
*primary tensor*: the first tensor found (for dicts: ``last_hidden_state`` if present, else the
first tensor value).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from contextlib import contextmanager
from typing import Any, Literal

import torch
from torch import nn

from conceptlab.errors import ConceptlabError, UnknownNameError

Reduce = Literal["none", "mean", "max", "cls", "last", "flatten"]
REDUCTIONS: tuple[str, ...] = ("none", "mean", "max", "cls", "last", "flatten")


class HookError(ConceptlabError, ValueError):
    """Raised for an unknown hook name, an unknown reduction or an output with no tensor."""


def hook_names(model: nn.Module) -> list[str]:
    """Every hook point of ``model`` (its ``named_modules`` paths, the root excluded)."""
    return [name for name, _ in model.named_modules() if name]


def get_module(model: nn.Module, name: str) -> nn.Module:
    """The submodule at ``name``; a HookError lists close matches when there is none."""
    modules = dict(model.named_modules())
    if name in modules and name:
        return modules[name]
    names = [n for n in modules if n]
    close = difflib.get_close_matches(name, names, n=5, cutoff=0.5)
    if close:
        hint = f"; did you mean {', '.join(map(repr, close))}?"
    else:
        top = [n for n in names if "." not in n]
        hint = f"; top-level names: {', '.join(top[:20])}{' ...' if len(top) > 20 else ''}"
    raise HookError(f"no hook point {name!r} in {type(model).__name__}{hint}")


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


def _replace_primary(output: Any, new: torch.Tensor) -> Any:
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
    """Outputs recorded by ``capture``: ``acts[name]`` concatenates every call along dim 0."""

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


@contextmanager
def capture(model: nn.Module, names: str | Sequence[str], reduce: Reduce | str = "none",
            mask: torch.Tensor | None = None, detach: bool = True,
            to_cpu: bool = False) -> Iterator[Captured]:
    """Record the outputs of the named submodules while the block runs.

    >>> with capture(model, ["_blocks.8", "_blocks.15"], reduce="mean") as acts:
    ...     model(x)
    >>> acts["_blocks.15"].shape          # (N, 320)

    ``mask`` (``(N, T)``) makes token reductions skip padding. ``detach=False`` keeps the graph
    (for gradient-based importance). All names are checked before any hook is registered.
    """
    names = [names] if isinstance(names, str) else list(dict.fromkeys(names))
    if not names:
        raise HookError("capture needs at least one hook name")
    if reduce not in REDUCTIONS:
        raise HookError(f"unknown reduce {reduce!r}; choose from {', '.join(REDUCTIONS)}")
    modules = {name: get_module(model, name) for name in names}
    acts = Captured(names)
    handles = []

    def make_hook(name: str) -> Callable[..., None]:
        def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
            value = reduce_tensor(primary_tensor(output), reduce, mask)
            if detach:
                value = value.detach()
            acts._add(name, value.cpu() if to_cpu else value)

        return hook

    try:
        for name, module in modules.items():
            handles.append(module.register_forward_hook(make_hook(name)))
        yield acts
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def edit(model: nn.Module, name: str,
         fn: Callable[[torch.Tensor], torch.Tensor]) -> Iterator[nn.Module]:
    """Replace the output of submodule ``name`` by ``fn(output)`` while the block runs.

    ``fn`` receives the primary tensor (see the module docstring) and returns a tensor of the
    same shape; the rest of a tuple output is kept. Contexts nest, so several edits combine.

    >>> with edit(model, "_blocks.15", lambda h: h * 0):   # ablate a block
    ...     logits = model(x)
    """
    module = get_module(model, name)

    def hook(_module: nn.Module, _inputs: Any, output: Any) -> Any:
        old = primary_tensor(output)
        new = fn(old)
        if not isinstance(new, torch.Tensor) or new.shape != old.shape:
            got = tuple(new.shape) if isinstance(new, torch.Tensor) else type(new).__name__
            raise HookError(f"edit fn at {name!r} must return a tensor of shape "
                            f"{tuple(old.shape)}, got {got}")
        return _replace_primary(output, new)

    handle = module.register_forward_hook(hook)
    try:
        yield module
    finally:
        handle.remove()
