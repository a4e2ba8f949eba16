"""Saving and loading a ``ConceptBottleneckModel``: safetensors + JSON, checked on the way in.

Every way a folder can be wrong (a missing, empty or truncated weights file; a ``model.json``
that is not an object, lacks a field or has one of the wrong type; class names that do not
match the head's rows; an encoder fingerprint or concept count the caller did not expect) is
a ``ModelFormatError`` naming the folder and the problem, never a traceback from deep inside.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.numpy import load_file

from conceptlab.bottleneck.heads import HeadConfig, LinearHead
from conceptlab.bottleneck.layers import CBLConfig, layer_from_arrays
from conceptlab.bottleneck.model import (
    INTERVENTION_PERCENTILES,
    MODEL_FORMAT,
    MODEL_META,
    MODEL_WEIGHTS,
    ConceptBottleneckModel,
    ModelFormatError,
)
from conceptlab.bottleneck.objectives import get_objective
from conceptlab.bottleneck.training import TrainConfig
from conceptlab.concepts.bank import ConceptBank
from conceptlab.errors import ConceptlabError
from conceptlab.utils.io import atomic_dir, save_tensors, write_json_atomic
from conceptlab.utils.version import package_version


def save_model(model: ConceptBottleneckModel, folder: str | Path) -> Path:
    """Write ``model.safetensors`` + ``model.json`` into ``folder`` atomically."""
    cbl, head = model._require_fitted()
    assert model.unit_low_ is not None and model.unit_high_ is not None
    tensors: dict[str, np.ndarray] = {"bank.vectors": model.bank.vectors}
    tensors.update({f"cbl.{k}": v for k, v in cbl.state_arrays().items()})
    tensors.update({f"head.{k}": v for k, v in head.state().items()})
    tensors["units.low"] = model.unit_low_
    tensors["units.high"] = model.unit_high_
    if model.association_ is not None:
        tensors["association"] = model.association_.astype(np.float32)
    tensors = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()}
    meta = {
        "format": MODEL_FORMAT, "kind": "concept_bottleneck_model",
        "method": model.method, "class_names": model.class_names,
        "concept_names": model.bank.names, "n_concepts": model.n_concepts,
        "embedding_dim": model.bank.dim, "cbl_kind": cbl.kind,
        "encoder_spec": model.encoder_spec, "encoder_fingerprint": model.encoder_fingerprint,
        "seed": model.seed, "hyper_parameters": model.hyper_parameters(),
        "association_source": model.association_source_,
        "intervention_percentiles": list(INTERVENTION_PERCENTILES),
        "bank": {"provenance": model.bank.provenance, "metadata": model.bank.metadata},
        "dropped_concepts": model.dropped_concepts_, "metrics": model.metrics_,
        "training": model.training_, "faithfulness": model.faithfulness_,
        "head_info": head.info, "torch_version": torch.__version__,
        "conceptlab_version": package_version(),
    }
    with atomic_dir(folder) as tmp:
        save_tensors(tensors, tmp / MODEL_WEIGHTS)
        write_json_atomic(tmp / MODEL_META, meta)
    return Path(folder)


def _field(meta: dict[str, Any], key: str, kind: type | tuple[type, ...], folder: Path) -> Any:
    if key not in meta:
        raise ModelFormatError(f"{folder}: model.json lacks {key!r}")
    value = meta[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ModelFormatError(f"{folder}: model.json field {key!r} has the wrong type "
                               f"({type(value).__name__})")
    return value


def _read_meta(folder: Path) -> dict[str, Any]:
    path = folder / MODEL_META
    if not path.is_file():
        raise ModelFormatError(f"{folder}: missing {MODEL_META}")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelFormatError(f"{folder}: {MODEL_META} is not readable JSON ({err})") from None
    except RecursionError:
        raise ModelFormatError(f"{folder}: {MODEL_META} is nested too deeply to read") from None
    if not isinstance(meta, dict):
        raise ModelFormatError(f"{folder}: {MODEL_META} must hold a JSON object, got "
                               f"{type(meta).__name__}")
    return meta


def _read_weights(folder: Path) -> dict[str, np.ndarray]:
    path = folder / MODEL_WEIGHTS
    if not path.is_file():
        raise ModelFormatError(f"{folder}: missing {MODEL_WEIGHTS}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise ModelFormatError(f"{folder}: {MODEL_WEIGHTS} is empty, truncated or not a "
                               f"safetensors file ({err})") from None


def _check_recorded(meta: dict[str, Any], width: int, folder: Path) -> None:
    """``embedding_dim`` must be the concept vectors' width and ``intervention_percentiles``
    two numbers ``0 <= low < high <= 100`` (each checked when recorded)."""
    if "embedding_dim" in meta:
        dim = meta["embedding_dim"]
        if isinstance(dim, bool) or not isinstance(dim, int) or dim != width:
            raise ModelFormatError(f"{folder}: model.json embedding_dim {dim!r} does not match "
                                   f"the {width}-dimensional concept vectors")
    if "intervention_percentiles" in meta:
        pct = meta["intervention_percentiles"]
        ok = (isinstance(pct, list) and len(pct) == 2
              and all(isinstance(p, int | float) and not isinstance(p, bool) for p in pct)
              and 0 <= pct[0] < pct[1] <= 100)
        if not ok:
            raise ModelFormatError(f"{folder}: model.json intervention_percentiles must be "
                                   f"[low, high] with 0 <= low < high <= 100, got {pct!r}")


def _configs(hp: dict[str, Any], method: str, folder: Path
             ) -> tuple[Any, CBLConfig, TrainConfig, HeadConfig]:
    try:
        objective = get_objective(method, **dict(hp.get("objective") or {}))
        cbl = CBLConfig(**dict(hp.get("cbl") or {}))
        train = TrainConfig(**dict(hp.get("train") or {}))
        head_params = dict(hp.get("head") or {})
        if "weight_decays" in head_params:
            head_params["weight_decays"] = tuple(head_params["weight_decays"])
        head = HeadConfig(**head_params)
    except (ConceptlabError, TypeError, ValueError) as err:
        raise ModelFormatError(f"{folder}: model.json hyper_parameters are malformed "
                               f"({err})") from None
    return objective, cbl, train, head


def load_model(folder: str | Path, expected_encoder_fingerprint: str | None = None,
               expected_n_concepts: int | None = None) -> ConceptBottleneckModel:
    """Read a model written by ``save_model``; refuse one that is malformed or unexpected."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelFormatError(f"{folder}: no such model folder")
    if not (folder / MODEL_WEIGHTS).is_file():
        raise ModelFormatError(f"{folder}: missing {MODEL_WEIGHTS}")
    meta = _read_meta(folder)
    kind = meta.get("kind")
    if kind != "concept_bottleneck_model":
        raise ModelFormatError(f"{folder}: model.json kind {kind!r} is not a concept bottleneck "
                               f"model (conceptlab.bottleneck.concept_model.load_concept_model "
                               f"reads every registered kind)")
    if meta.get("format") != MODEL_FORMAT:
        raise ModelFormatError(f"{folder}: a concept bottleneck model of format "
                               f"{meta.get('format')!r}, not {MODEL_FORMAT}; re-fit it with "
                               f"this version")
    fp = str(meta.get("encoder_fingerprint", ""))
    if expected_encoder_fingerprint is not None and fp != expected_encoder_fingerprint:
        raise ModelFormatError(
            f"{folder}: the model was fitted on embeddings from encoder fingerprint "
            f"{fp or '(none recorded)'!r} ({meta.get('encoder_spec') or 'unknown encoder'}), "
            f"but the inputs come from fingerprint {expected_encoder_fingerprint!r}; "
            f"use the same encoder or re-fit the model")
    n = _field(meta, "n_concepts", int, folder)
    if expected_n_concepts is not None and n != int(expected_n_concepts):
        raise ModelFormatError(f"{folder}: the model has {n} concepts but "
                               f"{expected_n_concepts} were expected (a different or "
                               f"filtered concept bank?)")
    names = _field(meta, "concept_names", list, folder)
    class_names = _field(meta, "class_names", list, folder)
    method = _field(meta, "method", str, folder)
    hp = _field(meta, "hyper_parameters", dict, folder)
    kind = _field(meta, "cbl_kind", str, folder)
    t = _read_weights(folder)
    required = {"bank.vectors", "cbl.weight", "cbl.in_mean", "cbl.in_std", "head.weight",
                "head.bias", "head.mean", "head.std", "units.low", "units.high"}
    missing = sorted(required - set(t))
    if missing:
        raise ModelFormatError(f"{folder}: {MODEL_WEIGHTS} lacks {missing}")
    if t["bank.vectors"].shape[0] != len(names) or len(names) != n:
        raise ModelFormatError(f"{folder}: {t['bank.vectors'].shape[0]} concept vectors, "
                               f"{len(names)} names, n_concepts={n}")
    if t["head.weight"].ndim != 2 or t["head.weight"].shape[0] != len(class_names):
        raise ModelFormatError(f"{folder}: {len(class_names)} class names but the head has "
                               f"{t['head.weight'].shape[0] if t['head.weight'].ndim else 0} "
                               f"rows")
    _check_recorded(meta, t["bank.vectors"].shape[1], folder)
    raw_bank = meta.get("bank")
    bank_meta: dict[str, Any] = raw_bank if isinstance(raw_bank, dict) else {}
    objective, cbl_cfg, train, head_cfg = _configs(hp, method, folder)
    try:
        bank = ConceptBank(vectors=t["bank.vectors"], names=[str(x) for x in names],
                           provenance=dict(bank_meta.get("provenance") or {}),
                           metadata=dict(bank_meta.get("metadata") or {}), normalize=False)
        model = ConceptBottleneckModel(
            bank, [str(c) for c in class_names], objective=objective, cbl=cbl_cfg,
            train=train, head=head_cfg, seed=int(meta.get("seed", 0)),
            encoder_spec=str(meta.get("encoder_spec", "")), encoder_fingerprint=fp)
        cbl_state = {k[len("cbl."):]: v for k, v in t.items() if k.startswith("cbl.")}
        head_state = {k[len("head."):]: v for k, v in t.items() if k.startswith("head.")}
        model.cbl_ = layer_from_arrays(kind, cbl_state)
        raw_info = meta.get("head_info")
        info: dict[str, Any] = raw_info if isinstance(raw_info, dict) else {}
        model.head_ = LinearHead.from_state(head_state, info)
    except (ConceptlabError, KeyError, TypeError, ValueError) as err:
        raise ModelFormatError(f"{folder}: malformed model ({err})") from None
    if model.cbl_.n_concepts != n or model.head_.n_features != n:
        raise ModelFormatError(f"{folder}: CBL/head sizes do not match {n} concepts")
    if t["units.low"].shape != (n,) or t["units.high"].shape != (n,):
        raise ModelFormatError(f"{folder}: unit percentiles do not match {n} concepts")
    model.unit_low_, model.unit_high_ = t["units.low"], t["units.high"]
    model.association_ = t.get("association")
    model.association_source_ = str(meta.get("association_source", "none"))
    for attr, key in (("metrics_", "metrics"), ("training_", "training"),
                      ("faithfulness_", "faithfulness")):
        value = meta.get(key)
        setattr(model, attr, value if isinstance(value, dict) else {})
    dropped = meta.get("dropped_concepts")
    model.dropped_concepts_ = dropped if isinstance(dropped, list) else []
    return model


def read_saved_weights(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """Head weights of a saved concept model of any registered kind (for reports).

    Returns ``{"weights": C x K array (W' per unit of raw activation) or None when the head
    depends on the input (a CEM), "class_names", "concept_names", "method", "nec"}``.
    """
    from conceptlab.bottleneck.concept_model import load_concept_model

    folder = Path(folder)
    model = load_concept_model(folder)
    meta = _read_meta(folder)
    head = model.effective_head()
    raw_hp = meta.get("hyper_parameters")
    hp: dict[str, Any] = raw_hp if isinstance(raw_hp, dict) else {}
    return {"weights": None if head is None else np.asarray(head[0]),
            "class_names": list(model.class_names), "concept_names": list(model.concept_names),
            "method": meta.get("method", model.kind), "nec": hp.get("nec")}
