"""Where activations come from: a torch model tapped at a hook point, read three ways.

* ``embeddings``: one row per input (the hook's output averaged over space / tokens);
* ``spatial``: one row per position of a conv feature map (``N * h * w`` rows), so that codes
  can be drawn back onto the input as attribution maps;
* ``crops``: CRAFT's recipe (Fel et al., CVPR 2023, section 3.1): random square crops of each
  input, each resized to the model's input size, one pooled row per crop; concepts then come
  with their crops as exemplars.

``TappedModel`` splits a network at ``layer`` into input -> latent and latent -> logits (the
holistic framework's ``h = g o f`` split, Fel et al. NeurIPS 2023, section 2). It is built from
any registered encoder's tap (``Encoder.tap()``, ``conceptlab.tap``), so a new backbone needs
no code here; the layer is a canonical hook-point name (``features``,
``blocks.3.hook_resid_post``) or a raw module path (``conceptlab.hooks``). Latent -> logits
re-runs the model with the hook's output replaced (``hooks.edit``), or uses a direct ``head``
when the family knows one (EfficientNet-Lite0 at ``features`` or a block: the rest of the
network + ``_fc``, cheap enough for Sobol's many evaluations).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from conceptlab.errors import ConceptlabError, ConceptlabValueError
from conceptlab.hooks import HookError, HookPoints, Resolver, capture, edit
from conceptlab.tap import Tap
from conceptlab.utils.hashing import hash_array, hash_json, hash_module
from conceptlab.utils.progress import progress

SourceKind = Literal["embeddings", "spatial", "crops"]
SOURCES: tuple[str, ...] = ("embeddings", "spatial", "crops")


class SourceError(ConceptlabValueError):
    """Raised for an unknown source or model spec, a bad hook point or unusable inputs."""


@dataclass
class TappedModel:
    """A model, its preprocessing and a hook point; input -> latent -> logits.

    Built from any registered encoder by :func:`build_tapped` (through ``Encoder.tap()``), or
    directly from any torch module. ``points`` names the hook points (default: the module's
    raw paths); ``forward`` runs a preprocessed batch (default: ``model(x)``).
    """

    model: nn.Module
    layer: str
    preprocess: Callable[[Sequence[Any]], Any]
    name: str
    preprocess_id: Any
    class_names: list[str] | None = None
    head: Callable[[torch.Tensor], torch.Tensor] | None = None
    spec: str = ""
    #: latent -> the pooled features the output head reads (when known): lets a probe fitted on
    #: those features serve as the decision explained
    pooled: Callable[[torch.Tensor], torch.Tensor] | None = None
    options: dict[str, Any] = field(default_factory=dict)
    points: Resolver | None = None
    forward: Callable[[Any], Any] | None = None

    def __post_init__(self) -> None:
        if self.points is None:
            self.points = HookPoints(self.model)
        try:
            self.points.resolve(self.layer)
        except HookError as err:
            raise SourceError(str(err)) from err
        self.model.eval()
        self._fp: str | None = None

    @classmethod
    def from_tap(cls, tap: Tap, layer: str | None = None, spec: str = "",
                 options: dict[str, Any] | None = None) -> TappedModel:
        """A tapped model at ``layer`` (default: the tap's default point, e.g. ``features``);
        a direct head when the tap knows the path from ``layer`` to its outputs."""
        layer = layer or tap.default_point
        try:
            pooled = tap.pooled(layer)
        except HookError as err:
            raise SourceError(str(err)) from err
        head = None
        if pooled is not None and tap.head is not None:
            out = tap.head

            def head(z: torch.Tensor) -> torch.Tensor:
                assert pooled is not None
                return out(pooled(z))

        return cls(tap.module, layer, tap.preprocess, tap.name, tap.preprocess_id,
                   tap.class_names, head=head, spec=spec, pooled=pooled,
                   options=dict(options or {}), points=tap.points, forward=tap.forward)

    def _run(self, x: Any) -> Any:
        if self.forward is not None:
            return self.forward(x)
        return self.model(x)

    def fingerprint(self) -> str:
        """Weights + preprocessing + hook point."""
        if self._fp is None:
            self._fp = hash_json({"model": self.name, "weights": hash_module(self.model),
                                  "preprocess": self.preprocess_id, "layer": self.layer})
        return self._fp

    def latent(self, x: Any) -> torch.Tensor:
        """The hook's output for a preprocessed batch (no graph)."""
        assert self.points is not None
        with torch.no_grad(), capture(self.points, self.layer) as acts:
            self._run(x)
        return acts[self.layer].float()

    def logits_from_latent(self, latent: torch.Tensor, x: Any = None) -> torch.Tensor:
        """Logits with the hook's output replaced by ``latent`` (differentiable in ``latent``).

        Without a direct ``head`` the model is re-run on ``x`` (the inputs the latent belongs
        to) with the hook's output swapped in.
        """
        if self.head is not None:
            return self.head(latent)
        if x is None:
            raise SourceError(f"{self.name}@{self.layer}: no direct head; pass the inputs x")
        assert self.points is not None
        with edit(self.points, self.layer, lambda _h: latent):
            out = self._run(x)
        if not isinstance(out, torch.Tensor):
            raise SourceError(f"{self.name}: the model's output is a {type(out).__name__}, "
                              "not a tensor of logits")
        return out

    def hook_points(self) -> list[str]:
        """Canonical point names (raw module paths are accepted too)."""
        assert self.points is not None
        return self.points.hook_points()

    def describe(self) -> dict[str, Any]:
        return {"model": self.name, "spec": self.spec, "options": self.options,
                "layer": self.layer, "fingerprint": self.fingerprint()}


def build_tapped(spec: str = "efficientnet", layer: str | None = None, *,
                 image_size: int | None = None, **options: Any) -> TappedModel:
    """A ``TappedModel`` at hook point ``layer`` of any encoder the registry builds from
    ``spec`` (``efficientnet``, ``conse``, ``hf:FOLDER``, ``openclip:...``, ``linear:RUN``)
    with encoder ``options``; the default point is the family's (``features``).

    ``image_size`` is passed to families that take that option and ignored by the others
    (a Hugging Face processor fixes its own size). Other torch models: build
    ``TappedModel(model, layer, preprocess, ...)`` directly.
    """
    from conceptlab.encoders.base import build_encoder, encoder_options, known_encoders

    prefix = spec.partition(":")[0] if isinstance(spec, str) else ""
    if image_size is not None and prefix in known_encoders() and \
            "image_size" in encoder_options(prefix)[0]:
        options = {"image_size": int(image_size), **options}
    try:
        tap = build_encoder(spec, **options).tap()
    except ConceptlabError as err:  # unknown spec or option, a family with no network
        raise SourceError(str(err)) from err
    return TappedModel.from_tap(tap, layer, spec=spec, options=options)


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
