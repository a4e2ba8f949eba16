"""Image-text encoders from Hugging Face transformers: CLIP and SigLIP (spec ``hf:NAME_OR_PATH``).

CLIP: Radford et al., ICML 2021, "Learning Transferable Visual Models From Natural Language
Supervision". SigLIP: Zhai et al., ICCV 2023, "Sigmoid Loss for Language Image Pre-Training".
Any checkpoint whose ``AutoModel`` has ``get_image_features`` / ``get_text_features`` works;
preprocessing is the checkpoint's own ``AutoProcessor``. SigLIP texts are padded to the
model's maximum length, as SigLIP was trained. Embeddings are L2-normalised by default.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from conceptlab.device import resolve_device
from conceptlab.encoders._common import cached_weight_hash, check_options, embedding_views
from conceptlab.encoders.base import (
    Encoder,
    EncoderError,
    Modality,
    Views,
    check_model_source,
    option_bool,
    option_int,
    register_encoder,
)
from conceptlab.encoders.efficientnet import to_pil_list
from conceptlab.encoders.sentence import check_texts, portable_name, source_key
from conceptlab.hooks import Side, find_blocks, transformer_points
from conceptlab.tap import Tap
from conceptlab.utils.hashing import hash_json
from conceptlab.utils.progress import quiet_library_progress

# Per process: loaded (model, processor) per source, device and dtype; weight hash per source.
_LOADED: dict[tuple[Any, ...], tuple[Any, Any]] = {}
_WEIGHT_HASHES: dict[tuple[Any, ...], str] = {}
_LOCK = threading.RLock()
_PAD_TO_MAX = ("siglip", "siglip2")


def _embedding(out: Any) -> torch.Tensor:
    """``get_*_features`` gives a tensor (transformers 4) or an output with ``pooler_output``."""
    if isinstance(out, torch.Tensor):
        return out
    pooled = getattr(out, "pooler_output", None)
    if isinstance(pooled, torch.Tensor):
        return pooled
    raise EncoderError(f"unexpected feature output {type(out).__name__} (no pooler_output)")


class HFClipEncoder(Encoder):
    """A transformers CLIP-like dual encoder (images and texts in one space)."""

    modalities = frozenset({"image", "text"})

    def __init__(self, name_or_path: str | Path, normalize: bool = True, batch_size: int = 32,
                 device: str | torch.device | None = None, dtype: str = "float32") -> None:
        if not str(name_or_path):
            raise EncoderError(
                "hf: needs a model name or path, e.g. 'hf:openai/clip-vit-base-patch32'")
        if dtype not in ("float32", "float16", "bfloat16"):
            raise EncoderError(f"hf: dtype must be float32, float16 or bfloat16, got {dtype!r}")
        self.name_or_path = str(name_or_path)
        self.spec = f"hf:{self.name_or_path}"
        check_model_source(self.spec, self.name_or_path)
        self.normalize = option_bool(self.spec, "normalize", normalize)
        self.batch_size = option_int(self.spec, "batch_size", batch_size)
        self.dtype = dtype
        self._device = resolve_device(device)
        self._model: Any = None
        self._processor: Any = None

    @property
    def device(self) -> torch.device:
        return self._device

    def _load(self) -> None:
        if self._model is not None:
            return
        key = (*source_key(self.name_or_path), str(self._device), self.dtype)
        with _LOCK:
            if key not in _LOADED:
                _LOADED[key] = self._load_uncached()
            self._model, self._processor = _LOADED[key]

    def _load_uncached(self) -> tuple[Any, Any]:
        quiet_library_progress()  # no hub/transformers bars in logs
        from transformers import AutoModel, AutoProcessor

        try:
            model = AutoModel.from_pretrained(self.name_or_path)
            processor = AutoProcessor.from_pretrained(self.name_or_path)
        except (OSError, ValueError, KeyError) as err:
            raise EncoderError(f"{self.spec}: could not load model or processor: {err}") from err
        if not (hasattr(model, "get_image_features") and hasattr(model, "get_text_features")):
            raise EncoderError(
                f"{self.spec}: {type(model).__name__} is not a CLIP-like dual encoder "
                "(no get_image_features / get_text_features)")
        return model.eval().to(self._device, getattr(torch, self.dtype)), processor

    @property
    def model(self) -> Any:
        """The transformers model, loaded on first use."""
        self._load()
        return self._model

    @property
    def processor(self) -> Any:
        """The checkpoint's processor (image processor + tokenizer), loaded on first use."""
        self._load()
        return self._processor

    @property
    def model_type(self) -> str:
        return str(self.model.config.model_type)

    @property
    def dim(self) -> int:
        cfg = self.model.config
        proj = getattr(cfg, "projection_dim", None)
        return int(proj) if proj else int(cfg.text_config.hidden_size)

    def _text_kwargs(self) -> dict[str, Any]:
        max_len = int(self.model.config.text_config.max_position_embeddings)
        padding = "max_length" if self.model_type in _PAD_TO_MAX else True
        return {"padding": padding, "truncation": True, "max_length": max_len}

    def fingerprint(self) -> str:
        key = (*source_key(self.name_or_path), self.dtype)
        weights = cached_weight_hash(_WEIGHT_HASHES, _LOCK, key, self.model)
        tok = self.processor.tokenizer
        return hash_json({"kind": "hf-dual-encoder", "model": portable_name(self.name_or_path),
                          "weights": weights,
                          "model_type": self.model_type, "dtype": self.dtype,
                          "image_processor": self.processor.image_processor.to_dict(),
                          "tokenizer": [type(tok).__name__, len(tok), self._text_kwargs()],
                          "normalize": self.normalize})

    def encode_batch(self, items: Sequence[Any], modality: Modality) -> Views:
        self.check_modality(modality)
        model, proc = self.model, self.processor
        if modality == "image":
            inputs = proc(images=to_pil_list(items, self.spec), return_tensors="pt")
            pixels = inputs["pixel_values"].to(self._device, getattr(torch, self.dtype))
            with torch.inference_mode():
                emb = _embedding(model.get_image_features(pixel_values=pixels))
        else:
            inputs = proc(text=check_texts(items, self.spec), return_tensors="pt",
                          **self._text_kwargs())
            inputs = {k: v.to(self._device) for k, v in inputs.items()
                      if k in ("input_ids", "attention_mask", "position_ids")}
            with torch.inference_mode():
                emb = _embedding(model.get_text_features(**inputs))
        return embedding_views(emb, self.normalize)

    def tap(self) -> Tap:
        """The vision tower opened for hooking: ``blocks.{i}.hook_resid_pre/post``,
        ``hook_attn_out``, ``hook_mlp_out``, ``mlp.hook_post`` of the vision transformer's
        layers and ``features`` (what the image projection reads: CLIP's pooled, normalised
        class token; SigLIP's attention-pooled output). Raw paths are the checkpoint's own
        module names (``vision_model.encoder.layers.1.mlp``). No class head: the model is
        a dual encoder, so discovery names concepts by their exemplars."""
        model, proc = self.model, self.processor
        blocks = find_blocks(model, "vision_model.")
        if blocks is None:
            raise EncoderError(f"{self.spec}: no vision transformer layers found to tap")
        modules = dict(model.named_modules())
        if "visual_projection" in modules:
            features: tuple[str, Side] = ("visual_projection", "input")
        elif "vision_model.head" in modules:
            features = ("vision_model.head", "output")
        else:
            features = ("vision_model.post_layernorm", "output")
        points = transformer_points(model, blocks, extra={"features": features},
                                    default="features", owner=self.spec)
        spec, device, dtype = self.spec, self._device, getattr(torch, self.dtype)

        def preprocess(items: Sequence[Any]) -> torch.Tensor:
            pixels = proc(images=to_pil_list(items, spec), return_tensors="pt")["pixel_values"]
            return pixels.to(device, dtype)

        def forward(pixels: torch.Tensor) -> torch.Tensor:
            return _embedding(model.get_image_features(pixel_values=pixels))

        return Tap(module=model, points=points, preprocess=preprocess, forward=forward,
                   name=f"hf:{portable_name(self.name_or_path)}",
                   preprocess_id={"image_processor": proc.image_processor.to_dict(),
                                  "dtype": self.dtype})

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "model": self.name_or_path, "model_type": self.model_type,
                "normalize": self.normalize}


_OPTIONS = {"normalize", "batch_size", "device", "dtype"}


@register_encoder("hf", options=_OPTIONS, arg="/models/clip-vit-base-patch32")
def _build(arg: str, options: dict[str, Any]) -> HFClipEncoder:
    check_options("hf", arg, options, _OPTIONS)
    return HFClipEncoder(arg, **options)
