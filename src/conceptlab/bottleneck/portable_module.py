"""A fitted concept bottleneck model as a plain PyTorch module, for tools without conceptlab.

``conceptlab export RUN --what model --out FOLDER`` copies this file into FOLDER as
``cbm_module.py`` beside ``model.safetensors`` (the tensors) and ``config.json`` (names and
settings). It imports only ``json``, ``torch`` and ``safetensors``: nothing of conceptlab.

The module computes what the saved model computes on an encoder embedding ``x`` (N x D):

    x / |x|  -> (scores input only) . bank^T         (cosine with each concept's vector)
             -> concept layer  W_c ((. - in_mean) / in_std) + b_c
             -> activation map (identity; softmax(a / temperature) for Gumbel models;
                one-hot argmax for hard ones)                        = concepts(x), N x K
             -> head  W' h + b'  (the standardisation folded in)     = forward(x), N x C

Usage (five lines, see docs/formats.md)::

    import sys, torch
    sys.path.insert(0, "cbm-export")
    from cbm_module import ConceptBottleneck
    model = ConceptBottleneck.from_folder("cbm-export")
    print(model.class_names[int(model(torch.randn(1, model.in_dim)).argmax())])
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

FORMAT = "conceptlab-portable-cbm-v1"


class ConceptBottleneck(torch.nn.Module):
    """Embedding -> named concepts -> class logits, from ``config`` and ``tensors``."""

    bank: torch.Tensor
    in_mean: torch.Tensor
    in_std: torch.Tensor

    def __init__(self, config: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
        super().__init__()
        if config.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} config: {config.get('format')!r}")
        self.config = config
        self.concept_names: list[str] = list(config["concept_names"])
        self.class_names: list[str] = list(config["class_names"])
        self.input_kind: str = str(config["input"])
        self.normalise_input = bool(config.get("normalise_input", True))
        self.activation: str = str(config["activation"])
        self.temperature = float(config.get("temperature", 1.0))
        self.in_dim = int(config["embedding_dim"])
        self.register_buffer("bank", tensors["bank"].float())
        self.register_buffer("in_mean", tensors["concept_layer.in_mean"].float())
        self.register_buffer("in_std", tensors["concept_layer.in_std"].float())
        w = tensors["concept_layer.weight"].float()
        self.concept_layer = torch.nn.Linear(w.shape[1], w.shape[0])
        self.head = torch.nn.Linear(len(self.concept_names), len(self.class_names))
        with torch.no_grad():
            self.concept_layer.weight.copy_(w)
            self.concept_layer.bias.copy_(tensors.get("concept_layer.bias",
                                                      torch.zeros(w.shape[0])))
            self.head.weight.copy_(tensors["head.weight"].float())
            self.head.bias.copy_(tensors["head.bias"].float())

    @classmethod
    def from_folder(cls, folder: str | Path) -> ConceptBottleneck:
        """Load ``config.json`` + ``model.safetensors`` from ``folder`` (evaluation mode)."""
        root = Path(folder)
        config = json.loads((root / "config.json").read_text(encoding="utf-8"))
        return cls(config, load_file(str(root / "model.safetensors"))).eval()

    def concepts(self, x: torch.Tensor) -> torch.Tensor:
        """Concept activations the head reads (N x K, in ``concept_names`` order)."""
        x = x.float()
        if self.normalise_input:
            x = x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)
        if self.input_kind == "scores":
            x = x @ self.bank.T
        a = self.concept_layer((x - self.in_mean) / self.in_std)
        if self.activation == "softmax":
            return torch.softmax(a / self.temperature, dim=-1)
        if self.activation == "onehot":
            return torch.nn.functional.one_hot(a.argmax(-1), a.shape[-1]).to(a.dtype)
        return a

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (N x C, in ``class_names`` order)."""
        return self.head(self.concepts(x))
