"""Export a fitted ``ConceptBottleneckModel`` as files other tools read without conceptlab.

:func:`export_portable` writes a folder: ``cbm_module.py`` (a copy of
:mod:`conceptlab.bottleneck.portable_module`: a plain ``torch.nn.Module`` that imports only
torch and safetensors), ``model.safetensors`` (the tensors it needs, float32) and
``config.json`` (concept and class names, the input kind, the activation map, the encoder that
makes its inputs). Why a copied source file rather than TorchScript or a pickled module: it is
readable, diffable, never unpickles anything, and keeps working across torch versions.

Before anything is written the export is checked: the module, built from the tensors about to
be saved, must give the model's own logits on random embeddings (within 1e-4); a model it
cannot express (a CBL reading backbone features, an objective whose activation map it does
not know) is refused in one :class:`~conceptlab.errors.OptionError` line.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file

from conceptlab.bottleneck import portable_module
from conceptlab.bottleneck.model import ConceptBottleneckModel
from conceptlab.errors import OptionError
from conceptlab.utils.io import atomic_dir

MODULE_FILE = "cbm_module.py"


def _activation(model: ConceptBottleneckModel) -> dict[str, Any]:
    obj = model.objective
    hard = bool(getattr(obj, "hard", False) or getattr(obj, "eval_hard", False))
    if hasattr(obj, "tau_min"):
        return {"activation": "onehot"} if hard else {"activation": "softmax",
                                                     "temperature": float(obj.tau_min)}
    return {"activation": "identity"}


def portable_parts(model: ConceptBottleneckModel) -> tuple[dict[str, Any],
                                                           dict[str, torch.Tensor]]:
    """The config and tensors of the portable module for ``model`` (checked, not written)."""
    if not isinstance(model, ConceptBottleneckModel):
        raise OptionError(f"--what model exports concept bottleneck models; this run holds a "
                          f"{type(model).__name__}")
    model.check_fitted()
    cbl, head = model.cbl_, model.head_
    assert cbl is not None and head is not None
    if model.cbl_input == "features":
        raise OptionError("this model's concept layer reads backbone features, which a portable "
                          "module cannot compute; refit with --set cbl.input=scores or embedding")
    W, b = head.folded()
    state = cbl.state_arrays()
    tensors = {"bank": model.bank.vectors if model.cbl_input == "scores"
               else np.zeros((0, model.bank.dim), np.float32),
               "concept_layer.weight": state["weight"], "concept_layer.in_mean": state["in_mean"],
               "concept_layer.in_std": state["in_std"], "head.weight": W, "head.bias": b}
    if "bias" in state:
        tensors["concept_layer.bias"] = state["bias"]
    out = {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32))
           for k, v in tensors.items()}
    config = {"format": portable_module.FORMAT, "concept_names": model.concept_names,
              "class_names": model.class_names, "input": model.cbl_input,
              "normalise_input": model.cbl_input == "scores"
              or model.objective.normalises_embedding,
              "embedding_dim": int(model.bank.dim), "method": model.method,
              "encoder_spec": model.encoder_spec,
              "encoder_fingerprint": model.encoder_fingerprint, **_activation(model)}
    _check(model, config, out)
    return config, out


def _check(model: ConceptBottleneckModel, config: dict[str, Any],
           tensors: dict[str, torch.Tensor]) -> None:
    net = portable_module.ConceptBottleneck(config, tensors).eval()
    X = np.random.default_rng(0).standard_normal((16, int(model.bank.dim))).astype(np.float32)
    with torch.no_grad():
        got = net(torch.from_numpy(X)).numpy()
    assert model.head_ is not None
    want = model.head_.logits(model.concept_activations(X))
    if not np.allclose(got, want, atol=1e-4, rtol=1e-4):
        raise OptionError(f"the portable module cannot express this {model.method} model "
                          f"(logits differ by {float(np.abs(got - want).max()):.2g}); "
                          "not exported")


def export_portable(model: ConceptBottleneckModel, folder: str | Path) -> Path:
    """Write ``cbm_module.py`` + ``model.safetensors`` + ``config.json`` into ``folder``,
    whole or not at all."""
    config, tensors = portable_parts(model)
    target = Path(folder)
    if target.exists() and not target.is_dir():
        raise OptionError(f"--out {target}: a file; give a folder for --what model")
    with atomic_dir(target) as tmp:
        shutil.copyfile(portable_module.__file__, tmp / MODULE_FILE)
        save_file(tensors, str(tmp / "model.safetensors"),
                  metadata={"format": portable_module.FORMAT})
        (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return target
