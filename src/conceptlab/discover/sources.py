"""Where activations come from: a torch model tapped at a hook point, read three ways.

* ``embeddings``: one row per input (the hook's output averaged over space / tokens);
* ``spatial``: one row per position of a conv feature map (``N * h * w`` rows), so that codes
  can be drawn back onto the input as attribution maps;
* ``crops``: CRAFT's recipe (Fel et al., CVPR 2023, section 3.1): random square crops of each
  input, each resized to the model's input size, one pooled row per crop; concepts then come
  with their crops as exemplars.

``TappedModel`` splits a network at ``layer`` into input -> latent and latent -> logits (the
holistic framework's ``h = g o f`` split, Fel et al. NeurIPS 2023, section 2). Any module of any
torch model is a hook point (``conceptlab.hooks``); latent -> logits re-runs the model with the
hook's output replaced (``hooks.edit``), or uses a direct ``head`` when one is known
(EfficientNet-Lite0 at ``features``: average pool + ``_fc``, cheap enough for Sobol's many
evaluations).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from conceptlab.errors import ConceptlabValueError
from conceptlab.hooks import HookError, capture, edit, get_module
from conceptlab.utils.hashing import hash_array, hash_json, hash_module
from conceptlab.utils.progress import progress

SourceKind = Literal["embeddings", "spatial", "crops"]
SOURCES: tuple[str, ...] = ("embeddings", "spatial", "crops")


class SourceError(ConceptlabValueError):
    """Raised for an unknown source or model spec, a bad hook point or unusable inputs."""


class EfficientNetTaps(nn.Module):
    """EfficientNet-Lite0 with one extra hook point, ``features``: the post-ReLU6 1280-channel
    last map (the modules are the loaded network's own, so other hook names are unchanged)."""

    _conv_stem: nn.Module
    _bn0: nn.Module
    _blocks: nn.Sequential
    _conv_head: nn.Module
    _bn1: nn.Module
    _avg_pooling: nn.Module
    _fc: nn.Module

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        for name, child in net.named_children():
            self.add_module(name, child)
        self.features = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.nn.functional.relu6(self._bn0(self._conv_stem(x)))
        x = self._blocks(x)
        x = self.features(torch.nn.functional.relu6(self._bn1(self._conv_head(x))))
        return self._fc(self._avg_pooling(x).flatten(1))

    def rest_from(self, layer: str) -> Callable[[torch.Tensor], torch.Tensor] | None:
        """The network from ``layer``'s output to the pooled 1280-d features, for ``features``
        and ``_blocks.N``; None for other hook points (use ``hooks.edit`` re-runs there)."""
        if layer == "features":
            return lambda z: z.mean(dim=(2, 3)) if z.dim() == 4 else z
        m = re.fullmatch(r"_blocks\.(\d+)", layer)
        if m is None:
            return None
        rest = self._blocks[int(m.group(1)) + 1:]

        def run(z: torch.Tensor) -> torch.Tensor:
            if z.dim() == 2:  # one vector per item (a concept direction): a 1 x 1 map
                z = z[:, :, None, None]
            z = torch.nn.functional.relu6(self._bn1(self._conv_head(rest(z))))
            return z.mean(dim=(2, 3))

        return run


@dataclass
class TappedModel:
    """A model, its preprocessing and a hook point; input -> latent -> logits."""

    model: nn.Module
    layer: str
    preprocess: Callable[[Sequence[Any]], torch.Tensor]
    name: str
    preprocess_id: Any
    class_names: list[str] | None = None
    head: Callable[[torch.Tensor], torch.Tensor] | None = None
    spec: str = ""
    #: latent -> the pooled features the output head reads (when known): lets a probe fitted on
    #: those features serve as the decision explained
    pooled: Callable[[torch.Tensor], torch.Tensor] | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        try:
            get_module(self.model, self.layer)
        except HookError as err:
            raise SourceError(str(err)) from err
        self.model.eval()
        self._fp: str | None = None

    def fingerprint(self) -> str:
        """Weights + preprocessing + hook point."""
        if self._fp is None:
            self._fp = hash_json({"model": self.name, "weights": hash_module(self.model),
                                  "preprocess": self.preprocess_id, "layer": self.layer})
        return self._fp

    def latent(self, x: torch.Tensor) -> torch.Tensor:
        """The hook's output for a preprocessed batch (no graph)."""
        with torch.no_grad(), capture(self.model, self.layer) as acts:
            self.model(x)
        return acts[self.layer].float()

    def logits_from_latent(self, latent: torch.Tensor, x: torch.Tensor | None = None
                           ) -> torch.Tensor:
        """Logits with the hook's output replaced by ``latent`` (differentiable in ``latent``).

        Without a direct ``head`` the model is re-run on ``x`` (the inputs the latent belongs
        to) with the hook's output swapped in.
        """
        if self.head is not None:
            return self.head(latent)
        if x is None:
            raise SourceError(f"{self.name}@{self.layer}: no direct head; pass the inputs x")
        with edit(self.model, self.layer, lambda _h: latent):
            return self.model(x)

    def describe(self) -> dict[str, Any]:
        return {"model": self.name, "spec": self.spec, "options": self.options,
                "layer": self.layer, "fingerprint": self.fingerprint()}


def build_tapped(spec: str = "efficientnet", layer: str | None = None, **options: Any
                 ) -> TappedModel:
    """A ``TappedModel`` from a spec: ``efficientnet`` (the packaged EfficientNet-Lite0;
    default layer ``features``; options ``image_size``, ``batch_size``).

    Other torch models: build ``TappedModel(model, layer, preprocess, ...)`` directly.
    """
    if spec not in ("efficientnet", "efficientnet:lite0"):
        raise SourceError(f"unknown model spec {spec!r}; known: efficientnet (or build a "
                          "TappedModel from any torch module)")
    from conceptlab.encoders.efficientnet import EfficientNetEncoder, imagenet_class_names

    unknown = set(options) - {"image_size", "batch_size"}
    if unknown:
        raise SourceError(f"efficientnet: unknown options {sorted(unknown)}; known: "
                          "image_size, batch_size")
    enc = EfficientNetEncoder(image_size=int(options.get("image_size", 224)))
    net = EfficientNetTaps(enc.model)
    layer = layer or "features"
    pooled = net.rest_from(layer)

    def head(z: torch.Tensor) -> torch.Tensor:
        assert pooled is not None
        return net._fc(pooled(z))

    return TappedModel(net, layer, enc.preprocess, f"efficientnet-lite0@{enc.image_size}",
                       enc.preprocess_config(), imagenet_class_names(),
                       head=head if pooled is not None else None, spec=spec,
                       options={"image_size": enc.image_size}, pooled=pooled)


@dataclass
class Activations:
    """Rows of activations and where each row came from.

    ``item``: the input each row belongs to; ``boxes`` (crops): ``(left, top, side)`` in the
    input's pixels; ``positions`` (spatial): ``(i, j)`` on the ``grid`` (h, w).
    """

    rows: np.ndarray
    item: np.ndarray
    kind: str
    layer: str
    boxes: np.ndarray | None = None
    positions: np.ndarray | None = None
    grid: tuple[int, int] | None = None
    provenance: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.rows)

    def maps(self) -> np.ndarray:
        """Spatial rows back as ``(N, h, w, C)``."""
        if self.kind != "spatial" or self.grid is None:
            raise SourceError("maps() needs spatial activations")
        h, w = self.grid
        return self.rows.reshape(-1, h, w, self.rows.shape[1])


def crop_boxes(sizes: Sequence[tuple[int, int]], n_crops: int, min_frac: float,
               max_frac: float, seed: int) -> list[np.ndarray]:
    """Seeded random square crops per input: ``(left, top, side)``, side in
    ``[min_frac, max_frac] * min(w, h)``."""
    if n_crops < 1 or not 0 < min_frac <= max_frac <= 1:
        raise SourceError(f"need n_crops >= 1 and 0 < min_frac <= max_frac <= 1, got "
                          f"{n_crops}, {min_frac}, {max_frac}")
    rng = np.random.default_rng(seed)
    out = []
    for w, h in sizes:
        side = np.maximum(1, np.round(rng.uniform(min_frac, max_frac, n_crops) * min(w, h)))
        left = np.floor(rng.uniform(0, 1, n_crops) * (w - side + 1))
        top = np.floor(rng.uniform(0, 1, n_crops) * (h - side + 1))
        out.append(np.stack([left, top, side], 1).astype(np.int64))
    return out


def _batched(tapped: TappedModel, images: Sequence[Any], batch_size: int, desc: str
             ) -> list[torch.Tensor]:
    parts = []
    starts = range(0, len(images), batch_size)
    for s in progress(starts, total=len(starts), desc=desc):
        parts.append(tapped.latent(tapped.preprocess(images[s:s + batch_size])))
    return parts


def extract(tapped: TappedModel, images: Sequence[Any], kind: str = "crops", *,
            n_crops: int = 8, min_frac: float = 0.3, max_frac: float = 0.6, seed: int = 0,
            batch_size: int = 32, boxes: list[np.ndarray] | None = None) -> Activations:
    """Activations of ``images`` (PIL) at ``tapped.layer``, read as ``kind`` (see module doc).

    ``boxes`` (crops only): per input, the ``(left, top, side)`` crops to use instead of
    random ones (recursive refinement re-reads a concept's crops at an earlier layer).
    """
    if kind not in SOURCES:
        raise SourceError(f"unknown activation source {kind!r}; choose from {', '.join(SOURCES)}")
    if len(images) == 0:
        raise SourceError("no inputs to extract activations from")
    prov = {**tapped.describe(), "source": kind,
            "data_fingerprint": images_fingerprint(images)}
    if kind == "crops":
        if boxes is None:
            boxes = crop_boxes([im.size for im in images], n_crops, min_frac, max_frac, seed)
            prov.update(n_crops=n_crops, min_frac=min_frac, max_frac=max_frac, crop_seed=seed)
        elif len(boxes) != len(images):
            raise SourceError(f"{len(boxes)} box lists for {len(images)} inputs")
        crops = [im.crop((int(x), int(y), int(x + s), int(y + s)))
                 for im, bx in zip(images, boxes, strict=True) for x, y, s in bx]
        if not crops:
            raise SourceError("no crops to extract")
        lat = torch.cat(_batched(tapped, crops, batch_size, f"crops @ {tapped.layer}"))
        rows = _pool(lat)
        item = np.concatenate([np.full(len(bx), i) for i, bx in enumerate(boxes)])
        return Activations(rows, item, kind, tapped.layer, boxes=np.concatenate(boxes),
                           provenance=prov)
    lat = torch.cat(_batched(tapped, images, batch_size, f"{kind} @ {tapped.layer}"))
    if kind == "embeddings":
        return Activations(_pool(lat), np.arange(len(images)), kind, tapped.layer,
                           provenance=prov)
    if lat.dim() != 4:
        raise SourceError(f"spatial rows need a conv map (N, C, h, w) at {tapped.layer!r}, got "
                          f"shape {tuple(lat.shape)}")
    n, c, h, w = lat.shape
    rows = lat.permute(0, 2, 3, 1).reshape(-1, c).numpy().astype(np.float32)
    ii, jj = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    pos = np.tile(np.stack([ii.ravel(), jj.ravel()], 1), (n, 1))
    return Activations(rows, np.repeat(np.arange(n), h * w), kind, tapped.layer,
                       positions=pos, grid=(h, w), provenance=prov)


def _pool(lat: torch.Tensor) -> np.ndarray:
    if lat.dim() == 4:
        lat = lat.mean(dim=(2, 3))
    elif lat.dim() == 3:
        lat = lat.mean(dim=1)
    return lat.reshape(lat.shape[0], -1).numpy().astype(np.float32)


def images_fingerprint(images: Sequence[Any]) -> str:
    """Identity of a list of PIL images (their pixels and sizes)."""
    return hash_json([hash_array(np.asarray(im.convert("RGB"))) for im in images])
