"""A registered model opened for hooking: what every encoder family exposes through
``Encoder.tap()`` so that discovery, TCAV and raw-activation encoders take any model the
encoders registry builds, with no per-family class and no ``if`` on the family.

A :class:`Tap` holds the torch network (whose ``named_modules`` are the raw hook paths and
whose weights are fingerprinted), its :class:`~conceptlab.hooks.HookPoints` map (canonical
names such as ``blocks.3.hook_resid_post`` and ``features``), the preprocessing that turns
items into a batch, the call that runs the batch, and, when the family knows them, the class
names of its outputs and a cheap path from a hook point's value to those outputs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from conceptlab.hooks import HookPoints

Batch = Any  # a tensor, or a mapping of tensors passed as keyword arguments
LatentFn = Callable[[torch.Tensor], torch.Tensor]


def _no_pooled(_layer: str) -> LatentFn | None:
    return None


@dataclass
class Tap:
    """A model's network, its hook points and how to feed it (see the module docstring).

    ``pooled(point)``: the function from the value at ``point`` to the pooled features the
    output ``head`` reads, when the family knows it (None: re-run the network with the value
    swapped in); ``head``: pooled features -> logits over ``class_names``.
    """

    module: nn.Module
    points: HookPoints
    preprocess: Callable[[Sequence[Any]], Batch]
    forward: Callable[[Batch], Any]
    name: str
    preprocess_id: Any
    modality: str = "image"
    class_names: list[str] | None = None
    head: LatentFn | None = None
    pooled: Callable[[str], LatentFn | None] = field(default=_no_pooled)

    @property
    def default_point(self) -> str:
        """The point read when none is given (the family's ``features`` when it has one)."""
        if self.points.default is not None:
            return self.points.default
        names = self.points.hook_points()
        return names[-1] if names else self.points.module_paths()[-1]

    def hook_points(self) -> list[str]:
        """The canonical point names (raw module paths are accepted too)."""
        return self.points.hook_points()

    def run(self, batch: Batch) -> Any:
        """Run a preprocessed batch through the network (hooks attached by the caller act)."""
        return self.forward(batch)


def run_module(module: nn.Module) -> Callable[[Batch], Any]:
    """``batch -> module(batch)`` (or ``module(**batch)`` for a mapping)."""

    def forward(batch: Batch) -> Any:
        if isinstance(batch, dict):
            return module(**batch)
        return module(batch)

    return forward
