"""Sparse autoencoders in SAELens' on-disk format: ``cfg.json`` + ``sae_weights.safetensors``.

The layout is SAELens 6's (``sae_lens/saes/sae.py``: ``SAE.save_model`` writes
``self.cfg.to_dict()`` to ``cfg.json`` and the state dict to ``sae_weights.safetensors``;
``SAE.load_from_disk`` reads them back; constants in ``sae_lens/constants.py``). Tensors:
``W_enc`` (d_in, d_sae), ``b_enc`` (d_sae), ``W_dec`` (d_sae, d_in), ``b_dec`` (d_in), and for
``jumprelu`` a per-feature ``threshold`` (d_sae). With ``apply_b_dec_to_input`` SAELens
encodes ``act((x - b_dec) W_enc + b_enc)`` and decodes ``z W_dec + b_dec``.

conceptlab's SAEs (``discover.sae``) encode ``act(((x / s) - b) W + c)`` and decode
``z (s W_d) + s b``, so they map exactly: ``W_enc / s``, ``b_enc``, ``s W_d``, ``s b``; the
codes are identical. ``s`` is the activation normalisation conceptlab trained with (inputs
scaled so the mean squared distance to the mean is 1); it is folded into the weights exactly as
SAELens' own trainer folds its ``expected_average_only_in`` factor ``1 / s`` before saving
(``SAETrainer.fit`` -> ``SAE.fold_activation_norm_scaling_factor``: ``W_enc * f``,
``W_dec / f``, ``b_dec / f``, then ``normalize_activations = "none"``), so the folder says
``"none"`` and SAELens reads raw activations; the factor itself is recorded under
``metadata.conceptlab.activation_scale``. Architectures: ``sae`` -> ``standard``,
``topk-sae`` -> ``topk`` (with ``k``), ``batchtopk-sae`` -> ``jumprelu`` with every threshold
at the learnt batch threshold (what SAELens' own BatchTopK saves for inference,
``BatchTopKTrainingSAE.process_state_dict_for_saving_inference``). Loading maps back; a
``jumprelu`` SAE with one shared threshold loads as ``batchtopk-sae``. Not supported (refused by
name): per-feature JumpReLU thresholds (e.g. Gemma Scope), activation normalisation other than
``none``, ``rescale_acts_by_decoder_norm`` and ``hook_z`` reshaping.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from conceptlab.discover.base import Dictionary, build_dictionary
from conceptlab.lm.model import LMError
from conceptlab.utils.io import atomic_dir, save_tensors
from conceptlab.utils.saved import format_error, read_json_checked

SAE_WEIGHTS = "sae_weights.safetensors"
SAE_CFG = "cfg.json"
TO_SAELENS = {"sae": "standard", "topk-sae": "topk", "batchtopk-sae": "jumprelu"}


def to_saelens(d: Dictionary) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """SAELens' (config fields, tensors) for a fitted conceptlab SAE."""
    if d.name not in TO_SAELENS:
        raise LMError(f"{d.name}: only sparse autoencoders ({', '.join(TO_SAELENS)}) have a "
                      "SAELens form")
    arrays = d.arrays()
    s = float(arrays["enc.scale"][0])
    W_enc = arrays["enc.W_enc"] / s
    b_enc = arrays["enc.b_enc"]
    tensors = {"W_enc": W_enc, "b_enc": b_enc, "W_dec": arrays["dictionary"],
               "b_dec": arrays["bias"]}
    cfg: dict[str, Any] = {"architecture": TO_SAELENS[d.name]}
    if d.name == "topk-sae":
        cfg.update(k=int(d.params()["k"]), rescale_acts_by_decoder_norm=False)
    if d.name == "batchtopk-sae":
        tensors["threshold"] = np.full(d.n_concepts, float(arrays["enc.theta"][0]), np.float32)
    return cfg, {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()}


def save_saelens(d: Dictionary, path: str | Path, *, hook_name: str, model_name: str,
                 context_size: int | None = None, dataset_path: str | None = None,
                 extra: dict[str, Any] | None = None) -> Path:
    """Write ``path/cfg.json`` and ``path/sae_weights.safetensors`` (atomically, together)."""
    arch, tensors = to_saelens(d)
    d_sae, d_in = tensors["W_dec"].shape
    cfg = {"d_in": int(d_in), "d_sae": int(d_sae), "dtype": "float32", "device": "cpu",
           "apply_b_dec_to_input": True, "normalize_activations": "none",
           "reshape_activations": "none", **arch,
           "metadata": {"model_name": model_name, "hook_name": hook_name,
                        "hook_head_index": None, "prepend_bos": False,
                        "context_size": context_size, "dataset_path": dataset_path,
                        "conceptlab": {"method": d.name, "params": d.params(),
                                       "activation_scale": float(d.arrays()["enc.scale"][0]),
                                       **(extra or {})}}}
    with atomic_dir(Path(path)) as tmp:
        save_tensors(tensors, tmp / SAE_WEIGHTS)
        (tmp / SAE_CFG).write_text(json.dumps(cfg, indent=2) + "\n")
    return Path(path)


def load_saelens(path: str | Path) -> tuple[Dictionary, dict[str, Any]]:
    """A conceptlab dictionary and SAELens' config from a SAELens folder.

    The folder keeps SAELens' own layout (``cfg.json`` + ``sae_weights.safetensors``, no
    ``kind`` / ``format``: SAELens writes and reads it), so it is not a ``utils.saved`` kind;
    its files are still read by the same checked readers (one ``LMError`` line naming the
    file for bad, deeply nested or non-object JSON and for truncated tensors)."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    path = Path(path)
    if not (path / SAE_CFG).is_file() or not (path / SAE_WEIGHTS).is_file():
        raise LMError(f"{path}: not a SAELens folder (needs {SAE_CFG} and {SAE_WEIGHTS})")
    cfg = read_json_checked(path / SAE_CFG, LMError)
    try:
        t = load_file(str(path / SAE_WEIGHTS))
    except (SafetensorError, OSError, ValueError) as err:
        raise format_error(LMError)(f"{path / SAE_WEIGHTS}: unreadable tensors: empty, "
                                    f"truncated or not a safetensors file ({err})") from None
    missing = [k for k in ("W_enc", "b_enc", "W_dec", "b_dec") if k not in t]
    if missing:
        raise LMError(f"{path / SAE_WEIGHTS}: no tensor {', '.join(missing)}")
    arch = cfg.get("architecture", "standard")
    for key, ok in (("normalize_activations", "none"), ("reshape_activations", "none")):
        if cfg.get(key, "none") != ok:
            raise LMError(f"{path}: {key}={cfg[key]!r} is not supported (only {ok!r})")
    if cfg.get("rescale_acts_by_decoder_norm"):
        raise LMError(f"{path}: rescale_acts_by_decoder_norm is not supported")
    W_enc, b_enc = t["W_enc"].astype(np.float32), t["b_enc"].astype(np.float32)
    W_dec, b_dec = t["W_dec"].astype(np.float32), t["b_dec"].astype(np.float32)
    d_sae, d_in = W_dec.shape
    if W_enc.shape != (d_in, d_sae) or b_enc.shape != (d_sae,) or b_dec.shape != (d_in,):
        raise LMError(f"{path}: tensor shapes disagree (W_enc {W_enc.shape}, W_dec "
                      f"{W_dec.shape}, b_enc {b_enc.shape}, b_dec {b_dec.shape})")
    if not cfg.get("apply_b_dec_to_input", True):  # fold: (x - b) W + (c + b W) = x W + c
        b_enc = b_enc + b_dec @ W_enc
    extra: dict[str, np.ndarray] = {}
    if arch == "standard":
        d = build_dictionary("sae", d_sae)
    elif arch == "topk":
        d = build_dictionary("topk-sae", d_sae, k=int(cfg.get("k", 100)))
    elif arch == "jumprelu":
        thr = t.get("threshold")
        if thr is None or np.ptp(thr) > 1e-6 * max(1.0, float(np.abs(thr).max())):
            raise LMError(f"{path}: JumpReLU with per-feature thresholds is not supported yet "
                          "(one shared threshold loads as batchtopk-sae)")
        d = build_dictionary("batchtopk-sae", d_sae)
        extra["enc.theta"] = np.array([float(thr[0])], np.float32)
    else:
        raise LMError(f"{path}: SAELens architecture {arch!r} is not supported "
                      f"(standard, topk, jumprelu)")
    d.load_arrays({"dictionary": W_dec, "bias": b_dec, "enc.W_enc": W_enc, "enc.b_enc": b_enc,
                   "enc.b_dec": b_dec, "enc.scale": np.ones(1, np.float32), **extra})
    return d, cfg
