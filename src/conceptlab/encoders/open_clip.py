"""OpenCLIP image-text encoders (spec ``openclip:ARCH/TAG`` or ``openclip:hf-hub:ORG/REPO``).

OpenCLIP: Ilharco et al. 2021 (software), scaling study in Cherti et al., CVPR 2023,
"Reproducible scaling laws for contrastive language-image learning". ``ARCH/TAG`` are names
from ``open_clip.list_pretrained()``, e.g. ``openclip:ViT-B-32/laion2b_s34b_b79k``.

``open-clip-torch`` is an optional extra: it imports torchvision, which must match the
installed torch. Missing or broken, it gives an EncoderError saying how to install it.
"""

from __future__ import annotations

import importlib
import importlib.util
import threading
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import torch

from conceptlab.device import resolve_device
from conceptlab.encoders._common import cached_weight_hash, check_options, embedding_views
from conceptlab.encoders.base import (
    Encoder,
    EncoderError,
    Modality,
    Views,
    option_bool,
    option_int,
    register_encoder,
)
from conceptlab.encoders.efficientnet import to_pil_list
from conceptlab.encoders.sentence import check_texts
from conceptlab.hooks import HookPoints, Side, find_blocks, transformer_points
from conceptlab.tap import Tap
from conceptlab.utils.hashing import hash_json
from conceptlab.utils.progress import quiet_library_progress

INSTALL_HINT = ("pip install open-clip-torch (or conceptlab[openclip]); it needs a torchvision "
                "built for your torch version (e.g. pip install torchvision==<match> from the same "
                "index as torch)")
_WEIGHT_HASHES: dict[str, str] = {}
_LOCK = threading.Lock()


def _open_clip_available() -> bool:
    try:
        return importlib.util.find_spec("open_clip") is not None
    except (ImportError, ValueError):
        return False


def import_open_clip() -> ModuleType:
    """Import ``open_clip`` or raise an EncoderError with install instructions."""
    try:
        return importlib.import_module("open_clip")
    except ImportError as err:
        raise EncoderError(
            f"openclip encoders need open_clip, which is not installed: {INSTALL_HINT}") from err
    except Exception as err:  # e.g. RuntimeError "operator torchvision::nms does not exist"
        raise EncoderError(
            f"open_clip is installed but failed to import ({type(err).__name__}: {err}); "
            f"this is usually a torchvision/torch mismatch: {INSTALL_HINT}") from err


def parse_spec(arg: str) -> tuple[str, str | None]:
    """``ARCH/TAG`` -> (arch, tag); ``hf-hub:ORG/REPO`` -> (that name, None)."""
    if arg.startswith("hf-hub:"):
        if arg.count("/") != 1:
            raise EncoderError(f"openclip:{arg}: expected 'openclip:hf-hub:ORG/REPO'")
        return arg, None
    arch, _, tag = arg.partition("/")
    if not arch or not tag or "/" in tag:
        raise EncoderError(f"openclip:{arg}: expected 'openclip:ARCH/TAG', "
                           "e.g. 'openclip:ViT-B-32/laion2b_s34b_b79k'")
    return arch, tag


class OpenClipEncoder(Encoder):
    """An OpenCLIP model as an image-text encoder (normalised embeddings)."""

    modalities = frozenset({"image", "text"})

    def __init__(self, arg: str, normalize: bool = True, batch_size: int = 32,
                 device: str | torch.device | None = None) -> None:
        self.arch, self.tag = parse_spec(arg)
        self.spec = f"openclip:{arg}"
        if not _open_clip_available():
            raise EncoderError(f"{self.spec}: open_clip is not installed: {INSTALL_HINT}")
        self.normalize = option_bool(self.spec, "normalize", normalize)
        self.batch_size = option_int(self.spec, "batch_size", batch_size)
        self._device = resolve_device(device)
        self._model: Any = None
        self._preprocess: Any = None
        self._tokenizer: Any = None

    @property
    def device(self) -> torch.device:
        return self._device

    def _load(self) -> None:
        quiet_library_progress()  # no hub/transformers bars in logs
        if self._model is not None:
            return
        oc = import_open_clip()
        try:
            model, _, preprocess = oc.create_model_and_transforms(
                self.arch, pretrained=self.tag, device=self._device)
            tokenizer = oc.get_tokenizer(self.arch)
        except (RuntimeError, OSError, ValueError) as err:
            raise EncoderError(f"{self.spec}: could not load: {err}") from err
        self._model, self._preprocess, self._tokenizer = model.eval(), preprocess, tokenizer

    @property
    def model(self) -> Any:
        """The OpenCLIP model, loaded on first use."""
        self._load()
        return self._model

    @property
    def dim(self) -> int:
        proj = getattr(self.model, "text_projection", None)
        if isinstance(proj, torch.Tensor):
            return int(proj.shape[-1])
        with torch.inference_mode():
            return int(self.model.encode_text(self._tokenizer(["a"]).to(self._device)).shape[-1])

    def fingerprint(self) -> str:
        self._load()
        weights = cached_weight_hash(_WEIGHT_HASHES, _LOCK, self.spec, self._model)
        return hash_json({"kind": "open_clip", "arch": self.arch, "tag": self.tag,
                          "weights": weights,
                          "preprocess": repr(self._preprocess), "normalize": self.normalize})

    def encode_batch(self, items: Sequence[Any], modality: Modality) -> Views:
        self.check_modality(modality)
        self._load()
        with torch.inference_mode():
            if modality == "image":
                x = torch.stack([self._preprocess(im) for im in to_pil_list(items, self.spec)])
                emb = self._model.encode_image(x.to(self._device))
            else:
                tokens = self._tokenizer(check_texts(items, self.spec)).to(self._device)
                emb = self._model.encode_text(tokens)
        return embedding_views(emb, self.normalize)

    def tap(self) -> Tap:
        """The image tower opened for hooking: ``features`` (the output of ``visual.ln_post``,
        what the projection reads) and, for a batch-first vision transformer, the block points
        of ``visual.transformer.resblocks`` (a sequence-first one would mix items under token
        reductions, so only raw paths are offered there). Raw paths are OpenCLIP's names."""
        self._load()
        model, spec, device, pre = self._model, self.spec, self._device, self._preprocess
        modules = dict(model.named_modules())
        extra: dict[str, tuple[str, Side]] = {}
        if "visual.ln_post" in modules:
            extra["features"] = ("visual.ln_post", "output")
        blocks = find_blocks(model, "visual.")
        batch_first = bool(getattr(modules.get("visual.transformer"), "batch_first", False))
        points = (transformer_points(model, blocks, extra=extra, owner=spec)
                  if blocks and batch_first else HookPoints(model, extra, owner=spec))
        points.default = "features" if extra else None

        def preprocess(items: Sequence[Any]) -> torch.Tensor:
            return torch.stack([pre(im) for im in to_pil_list(items, spec)]).to(device)

        return Tap(module=model, points=points, preprocess=preprocess,
                   forward=model.encode_image, name=spec,
                   preprocess_id={"preprocess": repr(pre)})


_OPTIONS = {"normalize", "batch_size", "device"}


@register_encoder("openclip", options=_OPTIONS, arg="ViT-B-32/laion2b_s34b_b79k")
def _build(arg: str, options: dict[str, Any]) -> OpenClipEncoder:
    check_options("openclip", arg, options, _OPTIONS)
    return OpenClipEncoder(arg, **options)
