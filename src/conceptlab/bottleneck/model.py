"""``ConceptBottleneckModel``: a classifier whose decisions pass through named concepts.

Flow (all on cached embeddings ``X``, N x D, from a frozen encoder):

    S = normalize(X) . bank^T  (N x K concept scores)
      -> CBL (one unit per named concept; objective from ``objectives.OBJECTIVES``)
      -> H (N x K activations the head sees; Gumbel-Softmax relaxed for ``gumbel``)
      -> LinearHead (dense, or exactly round(nec * C) non-zero weights) -> logits

Explanations use the head re-expressed on the raw activations: the head computes
``W ((h - mu) / sigma) + b``, which equals ``W' h + b'`` with ``W' = W / sigma`` and
``b' = b - W' mu``. The *contribution* of concept k to class c is ``W'[c, k] * h_k`` (activation
x weight), and a logit is exactly ``b'[c] + sum_k contribution``; an inactive concept (h = 0)
contributes nothing. ``class_weights`` and ``explain`` report ``W'``.

A fitted model saves to a folder (``model.safetensors`` + ``model.json``, atomically; never
pickle) and loads in a new process to predict identically. Loading checks the encoder
fingerprint and the concept count the caller expects.
"""

from __future__ import annotations

import dataclasses
import difflib
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.numpy import load_file, save_file

from conceptlab import metrics
from conceptlab.bottleneck import heads
from conceptlab.bottleneck.cbl import (
    ConceptBottleneckLayer,
    TrainConfig,
    apply_cbl,
    cbl_units,
    cos3_validation_similarity,
    fit_final_head,
    train_cbl,
    units_to_activations,
)
from conceptlab.bottleneck.objectives import OBJECTIVES, Objective, get_objective
from conceptlab.concepts.bank import ConceptBank
from conceptlab.utils.io import atomic_dir, read_json, write_json_atomic

MODEL_FORMAT = 1
MODEL_WEIGHTS = "model.safetensors"
MODEL_META = "model.json"
#: explanations list at most this many concepts by default (people stop reading beyond it)
DEFAULT_EXPLAIN_TOP = 32
#: percentiles of a unit's training values used as its "absent" / "present" value
INTERVENTION_PERCENTILES = (5.0, 95.0)

_TRAIN_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}


class ModelFormatError(ValueError):
    """A saved model folder is missing, malformed, or does not match what the caller expects."""


class NotFittedError(RuntimeError):
    """A method that needs a fitted model was called before ``fit`` or ``load``."""


def _as_float_matrix(X: Any, name: str, dim: int, allow_1d: bool = False) -> np.ndarray:
    arr = np.asarray(X)
    if allow_1d and arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (N x {dim}), got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty (0 rows)")
    if arr.shape[1] != dim:
        raise ValueError(f"{name} has embedding dimension {arr.shape[1]}, but the concept bank "
                         f"lives in dimension {dim} (wrong encoder?)")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(np.float32, copy=False)
    if not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).any(axis=1).sum())
        raise ValueError(f"{name} contains NaN or infinity in {bad} row(s)")
    return arr


def _as_labels(y: Any, name: str, n: int, n_classes: int) -> np.ndarray:
    arr = np.asarray(y)
    if arr.ndim != 1 or len(arr) != n:
        raise ValueError(f"{name} must be 1-D with {n} entries (one per row), got shape "
                         f"{arr.shape}")
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all() or (arr != np.round(arr)).any():
            raise ValueError(f"{name} must hold integer class indices")
    elif not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must hold integer class indices, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if arr.min() < 0 or arr.max() >= n_classes:
        raise ValueError(f"{name} has labels in [{int(arr.min())}, {int(arr.max())}] but there "
                         f"are {n_classes} classes (valid: 0..{n_classes - 1})")
    return arr


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _unknown_name_error(kind: str, name: str, known: Sequence[str]) -> ValueError:
    close = difflib.get_close_matches(str(name), list(known), n=3)
    hint = f"; did you mean {close}?" if close else ""
    return ValueError(f"unknown {kind} {name!r}{hint} ({len(known)} known)")


def association_from_scores(scores: np.ndarray, y: np.ndarray, n_classes: int,
                            per_class: int | None = None) -> np.ndarray:
    """A class-concept association estimated from training data (fallback, C x K 0/1).

    For each class, the ``per_class`` concepts (default ``max(1, round(K / C))``) with the
    highest mean standardised score over that class's training examples. Used only when the
    vocabulary gives no association; recorded as ``association_source = "data"``.
    """
    s = np.asarray(scores, dtype=np.float64)
    k = s.shape[1]
    per = max(1, round(k / n_classes)) if per_class is None else int(per_class)
    z = (s - s.mean(0)) / np.where(s.std(0) < 1e-12, 1.0, s.std(0))
    out = np.zeros((n_classes, k), dtype=np.float32)
    for c in range(n_classes):
        mask = y == c
        if not mask.any():
            continue
        top = np.argsort(-z[mask].mean(0), kind="stable")[:per]
        out[c, top] = 1.0
    return out


class ConceptBottleneckModel:
    """Sparse concept bottleneck model (Semenov et al. 2024) over a ``ConceptBank``.

    Parameters: ``bank`` (K named unit directions in the encoder's space), ``class_names``,
    ``method`` (a name in ``objectives.OBJECTIVES``: ``gumbel`` default, ``l1``,
    ``contrastive``, ``cos3``, ``supervised``), ``nec`` (``None``: dense head; a number: exactly
    ``round(nec * C)`` non-zero head weights), ``association`` (C x K 0/1 array, or
    ``{class name: [concept names]}``; default: the bank's ``metadata["classes"]``, else
    estimated from training data), ``cbl_input`` (``"scores"``/``"embedding"``; default: the
    objective's), ``head_kwargs`` (passed to the head fit), ``seed``, ``encoder_spec`` /
    ``encoder_fingerprint`` (default: the bank's provenance), and hyper-parameters: any field
    of ``cbl.TrainConfig`` (``lr``, ``batch_size``, ``max_epochs``, ``patience``,
    ``weight_decay``, ``show_progress``) or of the chosen objective (e.g. ``tau_min``,
    ``lam``, ``cutoff``).
    """

    def __init__(self, bank: ConceptBank, class_names: Sequence[str], *,
                 method: str = "gumbel", nec: float | None = None,
                 association: np.ndarray | Mapping[str, Sequence[str]] | None = None,
                 cbl_input: str | None = None, head_kwargs: Mapping[str, Any] | None = None,
                 seed: int = 0, encoder_spec: str = "", encoder_fingerprint: str = "",
                 **hparams: Any) -> None:
        if not isinstance(bank, ConceptBank):
            raise TypeError(f"bank must be a ConceptBank, got {type(bank).__name__}")
        names = [str(c) for c in class_names]
        if len(names) < 2:
            raise ValueError(f"a classifier needs at least 2 class names, got {names}")
        if len(set(names)) != len(names):
            dupes = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"duplicate class names: {dupes}")
        if method not in OBJECTIVES:
            raise ValueError(f"unknown method {method!r}; choose one of {sorted(OBJECTIVES)}")
        if nec is not None and not (isinstance(nec, int | float) and not isinstance(nec, bool)
                                    and np.isfinite(nec) and nec > 0):
            raise ValueError(f"nec must be None (dense head) or a positive number, got {nec!r}")
        train_params = {k: v for k, v in hparams.items() if k in _TRAIN_FIELDS}
        objective_params = {k: v for k, v in hparams.items() if k not in _TRAIN_FIELDS}
        obj_fields = {f.name for f in dataclasses.fields(OBJECTIVES[method])}
        unknown = sorted(set(objective_params) - obj_fields)
        if unknown:
            raise ValueError(f"unknown hyper-parameter(s) {unknown} for method {method!r}; "
                             f"valid: {sorted(_TRAIN_FIELDS | obj_fields)}")
        self.train_config = TrainConfig(**train_params)
        self.objective: Objective = get_objective(method, **objective_params)
        kind = cbl_input or self.objective.input_kind
        if kind not in ("scores", "embedding"):
            raise ValueError(f"cbl_input must be 'scores' or 'embedding', got {kind!r}")
        if method == "cos3" and kind != "embedding":
            raise ValueError("cos3 fits the CBL from the embedding; cbl_input must be "
                             "'embedding'")
        self.bank = bank  # after a cos3 fit: the kept concepts only
        self._input_bank = bank  # every fit starts from the full bank
        self.class_names = names
        self.method = method
        self.nec = None if nec is None else float(nec)
        self.cbl_input = kind
        self.head_kwargs = dict(head_kwargs or {})
        self.seed = int(seed)
        prov = bank.provenance or {}
        self.encoder_spec = encoder_spec or str(prov.get("encoder", ""))
        self.encoder_fingerprint = encoder_fingerprint or str(prov.get("encoder_fingerprint", ""))
        self._association_arg = association
        # fitted state
        self.cbl_: ConceptBottleneckLayer | None = None
        self.head_: heads.LinearHead | None = None
        self.association_: np.ndarray | None = None
        self.association_source_: str = "none"
        self.unit_low_: np.ndarray | None = None
        self.unit_high_: np.ndarray | None = None
        self.metrics_: dict[str, Any] = {}
        self.training_: dict[str, Any] = {}
        self.dropped_concepts_: list[dict[str, Any]] = []

    # ------------------------------------------------------------------------------------------
    # properties and checks
    # ------------------------------------------------------------------------------------------

    @property
    def concept_names(self) -> list[str]:
        return list(self.bank.names)

    @property
    def n_concepts(self) -> int:
        return len(self.bank)

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def is_fitted(self) -> bool:
        return self.cbl_ is not None and self.head_ is not None

    def _require_fitted(self) -> tuple[ConceptBottleneckLayer, heads.LinearHead]:
        if self.cbl_ is None or self.head_ is None:
            raise NotFittedError("this ConceptBottleneckModel is not fitted; call fit() or load()")
        return self.cbl_, self.head_

    def _check_X(self, X: Any, name: str = "X", allow_1d: bool = False) -> np.ndarray:
        return _as_float_matrix(X, name, self.bank.dim, allow_1d=allow_1d)

    def _cbl_inputs(self, X: np.ndarray, bank: ConceptBank | None = None) -> np.ndarray:
        if self.cbl_input == "scores":
            return (bank or self.bank).scores(X)
        return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)

    def _resolve_association(self, bank: ConceptBank) -> tuple[np.ndarray | None, str]:
        arg, k, c = self._association_arg, len(bank), self.n_classes
        if arg is None:
            per_concept = (bank.metadata or {}).get("classes")
            if per_concept is None:
                return None, "none"
            A = np.zeros((c, k), dtype=np.float32)
            index = {n: i for i, n in enumerate(self.class_names)}
            for j, entry in enumerate(per_concept):
                for cls in [entry] if isinstance(entry, str) else list(entry or []):
                    if cls in index:
                        A[index[cls], j] = 1.0
            if not A.any():
                return None, "none"
            return A, "bank.metadata.classes"
        if isinstance(arg, Mapping):
            A = np.zeros((c, k), dtype=np.float32)
            for cls, concepts in arg.items():
                if cls not in self.class_names:
                    raise _unknown_name_error("class", cls, self.class_names)
                for concept in concepts:
                    if concept not in bank.names:
                        raise _unknown_name_error("concept", concept, bank.names)
                    A[self.class_names.index(cls), bank.names.index(concept)] = 1.0
            return A, "given"
        A = np.asarray(arg, dtype=np.float32)
        if A.shape != (c, k):
            raise ValueError(f"association must be C x K = ({c}, {k}), got shape {A.shape}")
        if not np.isin(A, (0.0, 1.0)).all():
            raise ValueError("association must hold only 0 and 1")
        return A, "given"

    # ------------------------------------------------------------------------------------------
    # fitting
    # ------------------------------------------------------------------------------------------

    def fit(self, X_train: Any, y_train: Any, X_val: Any, y_val: Any,
            concept_labels: Any | None = None) -> ConceptBottleneckModel:
        """Train the CBL (and a joint linear layer), then (re)fit the final head.

        ``X_val``/``y_val`` must be carved from the training split by the caller (never the
        test split): they drive model selection, early stopping and the head's regularisation.
        ``concept_labels`` (N_train x K, 0/1, columns in bank order) are required by
        ``supervised`` and ignored otherwise.
        """
        start = time.perf_counter()
        bank = self._input_bank
        Xt = self._check_X(X_train, "X_train")
        Xv = self._check_X(X_val, "X_val")
        yt = _as_labels(y_train, "y_train", len(Xt), self.n_classes)
        yv = _as_labels(y_val, "y_val", len(Xv), self.n_classes)
        if len(np.unique(yt)) < 2:
            raise ValueError("y_train holds fewer than 2 distinct classes")
        objective = self.objective
        labels = None
        if objective.needs_concept_labels:
            if concept_labels is None:
                raise ValueError(f"method {self.method!r} needs concept_labels (N_train x K)")
            labels = np.asarray(concept_labels, dtype=np.float32)
            if labels.shape != (len(Xt), len(bank)):
                raise ValueError(f"concept_labels must be ({len(Xt)}, {len(bank)}) "
                                 f"(rows of X_train x bank concepts), got {labels.shape}")
            if not np.isin(labels, (0.0, 1.0)).all():
                raise ValueError("concept_labels must hold only 0 and 1")

        St, Sv = bank.scores(Xt), bank.scores(Xv)
        inputs_t, inputs_v = self._cbl_inputs(Xt, bank), self._cbl_inputs(Xv, bank)
        A, source = self._resolve_association(bank)
        if A is None and objective.needs_association:
            A, source = association_from_scores(St, yt, self.n_classes), "data"

        fit = train_cbl(objective, inputs_t, yt, inputs_v, yv, n_classes=self.n_classes,
                        association=A, concept_labels=labels, targets_train=St,
                        targets_val=Sv, n_concepts=len(bank),
                        config=self.train_config, seed=self.seed,
                        desc=f"fit CBL ({self.method})", input_kind=self.cbl_input)
        cbl = fit.cbl
        dropped: list[dict[str, Any]] = []
        cos3_val: dict[str, float] = {}
        if self.method == "cos3":
            sims = cos3_validation_similarity(cbl, inputs_v, Sv)
            cutoff = float(self.objective.cutoff)  # type: ignore[attr-defined]
            keep = np.flatnonzero(sims >= cutoff)
            cos3_val = {n: float(s) for n, s in zip(bank.names, sims, strict=True)}
            dropped = [{"concept": bank.names[i], "cos3_val": float(sims[i])}
                       for i in np.flatnonzero(sims < cutoff)]
            if len(keep) == 0:
                raise ValueError(f"cos3 filter dropped every concept (best validation cos3 "
                                 f"{float(sims.max()):.3f} < cutoff {cutoff}); lower the "
                                 f"cutoff or check that the bank matches the embeddings")
            if len(keep) < len(bank):
                cbl = cbl.select(keep)
                bank = bank.select(keep)
                if A is not None:
                    A = A[:, keep]
        # the cos3 filter only removes output units: the CBL inputs are unchanged
        Ut = cbl_units(cbl, inputs_t)
        Ht = units_to_activations(objective, Ut)
        Hv = apply_cbl(cbl, objective, inputs_v)
        head = fit_final_head(Ht, yt, Hv, yv, n_classes=self.n_classes, nec=self.nec,
                              seed=self.seed, **self.head_kwargs)
        finetune: dict[str, Any] = {}
        if self.nec is not None and objective.joint_head and self.train_config.finetune_epochs:
            cbl, head, finetune = self._sparse_finetune(
                cbl, head, inputs_t, yt, inputs_v, yv, A, labels, St, Sv)
            Ut = cbl_units(cbl, inputs_t)
            Ht = units_to_activations(objective, Ut)
            Hv = apply_cbl(cbl, objective, inputs_v)

        self.bank, self.cbl_, self.head_ = bank, cbl, head
        self.association_, self.association_source_ = A, source
        lo, hi = INTERVENTION_PERCENTILES
        self.unit_low_ = np.percentile(Ut, lo, axis=0).astype(np.float32)
        self.unit_high_ = np.percentile(Ut, hi, axis=0).astype(np.float32)
        self.dropped_concepts_ = dropped
        contrib_v = self._contributions_from_acts(Hv)
        self.metrics_ = {
            "train_accuracy": metrics.accuracy(yt, head.predict(Ht)),
            "val_accuracy": metrics.accuracy(yv, head.predict(Hv)),
            "joint_val_score": fit.best_score,
            "val_mean_active_concepts": metrics.mean_active_concepts(contrib_v),
            "val_mean_active_activations": float(metrics.effective_count(Hv).mean()),
            "nec": head.nec,
            "n_concepts": len(bank),
            "n_train": len(Xt), "n_val": len(Xv),
            "cbl_seconds": fit.seconds,
            "fit_seconds": time.perf_counter() - start,
        }
        self.training_ = {"cbl": fit.summary(), "parameters_moved": fit.moved,
                          "cos3_val_similarity": cos3_val, "sparse_finetune": finetune}
        return self

    def _sparse_finetune(self, cbl: ConceptBottleneckLayer, head: heads.LinearHead,
                         inputs_t: np.ndarray, yt: np.ndarray, inputs_v: np.ndarray,
                         yv: np.ndarray, A: np.ndarray | None, labels: np.ndarray | None,
                         St: np.ndarray, Sv: np.ndarray
                         ) -> tuple[ConceptBottleneckLayer, heads.LinearHead, dict[str, Any]]:
        """Train the CBL with the sparse head's zero pattern fixed (its NEC stays exact);
        keep the result only if validation accuracy does not drop."""
        w = (head.weight / head.std).astype(np.float32)
        b = (head.bias - w @ head.mean).astype(np.float32)
        mask = (head.weight != 0).astype(np.float32)
        before = metrics.accuracy(yv, head.predict(apply_cbl(cbl, self.objective, inputs_v)))
        cfg = dataclasses.replace(self.train_config, max_epochs=self.train_config.finetune_epochs)
        fit = train_cbl(self.objective, inputs_t, yt, inputs_v, yv, n_classes=self.n_classes,
                        association=A, concept_labels=labels, targets_train=St,
                        targets_val=Sv, n_concepts=cbl.n_concepts, config=cfg,
                        seed=self.seed + 1, desc=f"sparse fine-tune ({self.method})",
                        init_cbl=cbl, init_head=(w, b), head_mask=mask,
                        input_kind=self.cbl_input)
        assert fit.joint_head is not None
        W = fit.joint_head.weight.detach().numpy().astype(np.float32) * mask
        tuned = heads.LinearHead(weight=W, bias=fit.joint_head.bias.detach().numpy().copy(),
                                 mean=np.zeros(W.shape[1], np.float32),
                                 std=np.ones(W.shape[1], np.float32),
                                 info={**head.info, "sparse_finetune": True})
        after = metrics.accuracy(yv, tuned.predict(apply_cbl(fit.cbl, self.objective, inputs_v)))
        report = {"val_accuracy_before": before, "val_accuracy_after": after,
                  "epochs": fit.best_epoch, "kept": after >= before}
        if after >= before:
            return fit.cbl, tuned, report
        return cbl, head, report

    # ------------------------------------------------------------------------------------------
    # inference
    # ------------------------------------------------------------------------------------------

    def concept_activations(self, X: Any) -> np.ndarray:
        """Activations the head sees (N x K, in ``concept_names`` order)."""
        return self.activations_from_units(self.unit_values(X))

    def unit_values(self, X: Any) -> np.ndarray:
        """CBL unit values ``a`` (N x K) before the activation map; interventions act here.

        Equal to ``concept_activations`` for every method but ``gumbel``, whose head sees
        ``softmax(a / tau_min)``.
        """
        cbl, _ = self._require_fitted()
        Xc = self._check_X(X)
        return cbl_units(cbl, self._cbl_inputs(Xc))

    def activations_from_units(self, U: np.ndarray) -> np.ndarray:
        """The evaluation-mode activation map applied to unit values (N x K)."""
        return units_to_activations(self.objective, U)

    def predict_from_units(self, U: np.ndarray) -> np.ndarray:
        return self.predict_from_activations(self.activations_from_units(U))

    def effective_head(self) -> tuple[np.ndarray, np.ndarray]:
        """``(W', b')`` with ``logits = H W'^T + b'`` on raw activations (see module doc)."""
        _, head = self._require_fitted()
        w = head.weight / head.std
        b = head.bias - w @ head.mean
        return w.astype(np.float32), b.astype(np.float32)

    def predict_from_activations(self, H: np.ndarray) -> np.ndarray:
        _, head = self._require_fitted()
        return head.predict(H)

    def predict_proba_from_activations(self, H: np.ndarray) -> np.ndarray:
        _, head = self._require_fitted()
        return _softmax(head.logits(H).astype(np.float64))

    def predict(self, X: Any) -> np.ndarray:
        """Predicted class index per row (N,)."""
        return self.predict_from_activations(self.concept_activations(X))

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (N x C), softmax of the head's logits."""
        return self.predict_proba_from_activations(self.concept_activations(X))

    def _contributions_from_acts(self, H: np.ndarray,
                                 classes: np.ndarray | None = None) -> np.ndarray:
        _, head = self._require_fitted()
        w, _ = self.effective_head()
        cls = head.predict(H) if classes is None else np.asarray(classes, dtype=np.int64)
        return w[cls] * H

    def contributions(self, X: Any, classes: Any | None = None) -> np.ndarray:
        """Per-example concept contributions to the predicted (or given) class: ``W'[c] * h``."""
        H = self.concept_activations(X)
        if classes is not None:
            classes = _as_labels(classes, "classes", len(H), self.n_classes)
        return self._contributions_from_acts(H, classes)

    def mean_active_concepts(self, X: Any, mass: float = 0.9) -> float:
        """Mean over examples of the concepts holding ``mass`` of |contributions| (metrics)."""
        return metrics.mean_active_concepts(self.contributions(X), mass)

    def explain(self, X: Any, top: int = DEFAULT_EXPLAIN_TOP) -> list[dict[str, Any]]:
        """The concepts behind each decision, largest |contribution| first (at most ``top``).

        One dict per row: ``prediction`` (class name), ``class_index``, ``probability``,
        ``logit``, ``intercept`` (``b'[c]``; ``logit = intercept + sum of all contributions``),
        ``n_active`` (effective count of the contributions), and ``concepts``: a list of
        ``{"concept", "activation", "weight", "contribution"}`` with contribution =
        activation x weight for the predicted class. Concepts with zero contribution are left
        out. ``X`` may be one embedding (1-D) or a batch.
        """
        if not isinstance(top, int) or isinstance(top, bool) or top < 1:
            raise ValueError(f"top must be a positive int, got {top!r}")
        cbl, head = self._require_fitted()
        Xc = self._check_X(X, allow_1d=True)
        H = apply_cbl(cbl, self.objective, self._cbl_inputs(Xc))
        w, b = self.effective_head()
        logits = head.logits(H)
        proba = _softmax(logits.astype(np.float64))
        pred = logits.argmax(axis=1)
        contrib = w[pred] * H
        active = metrics.effective_count(contrib)
        out = []
        for i in range(len(H)):
            c = int(pred[i])
            order = np.argsort(-np.abs(contrib[i]), kind="stable")
            order = [k for k in order if contrib[i, k] != 0][:top]
            out.append({
                "prediction": self.class_names[c], "class_index": c,
                "probability": float(proba[i, c]), "logit": float(logits[i, c]),
                "intercept": float(b[c]), "n_active": int(active[i]),
                "concepts": [{"concept": self.bank.names[k], "activation": float(H[i, k]),
                              "weight": float(w[c, k]), "contribution": float(contrib[i, k])}
                             for k in order],
            })
        return out

    def class_weights(self, class_name: str, *, include_zero: bool = False
                      ) -> list[tuple[str, float]]:
        """``(concept, weight)`` of one class, largest |weight| first (non-zero only by
        default); weights are per unit of raw activation (``W'``, see module doc)."""
        self._require_fitted()
        if class_name not in self.class_names:
            raise _unknown_name_error("class", class_name, self.class_names)
        w, _ = self.effective_head()
        row = w[self.class_names.index(class_name)]
        order = np.argsort(-np.abs(row), kind="stable")
        return [(self.bank.names[k], float(row[k])) for k in order
                if include_zero or row[k] != 0]

    def concept_index(self, name: str) -> int:
        """Position of a concept unit by name (a clear error listing close names if unknown)."""
        return self._unit_indices([name])[0]

    def _unit_indices(self, names: Sequence[str]) -> list[int]:
        out = []
        for name in names:
            if name not in self.bank.names:
                raise _unknown_name_error("concept", name, self.bank.names)
            out.append(self.bank.names.index(name))
        return out

    def intervene(self, X: Any, interventions: Mapping[str, Any], *,
                  return_proba: bool = False) -> np.ndarray:
        """Predictions after replacing the named CBL units with values, then re-applying the
        activation map and the head (Koh et al. 2020, Sec. 6).

        ``interventions`` maps a concept name to a unit value (a number, or one per row), in
        the space of ``unit_values``: for ``gumbel`` the pre-softmax unit, so an intervened
        example stays on the simplex. Unknown names raise ``ValueError``. Typical values:
        ``unit_high_`` / ``unit_low_`` (the 95th / 5th percentile of the unit on training data:
        "present" / "absent").
        """
        if not isinstance(interventions, Mapping) or not interventions:
            raise ValueError("interventions must be a non-empty {concept name: value} mapping")
        H = self.unit_values(X).copy()
        for k, (name, value) in zip(self._unit_indices(list(interventions)),
                                    interventions.items(), strict=True):
            v = np.asarray(value, dtype=np.float32)
            if v.ndim > 1 or (v.ndim == 1 and len(v) != len(H)):
                raise ValueError(f"value for {name!r} must be a number or {len(H)} numbers, "
                                 f"got shape {v.shape}")
            if not np.isfinite(v).all():
                raise ValueError(f"value for {name!r} is not finite")
            H[:, k] = v
        acts = self.activations_from_units(H)
        if return_proba:
            return self.predict_proba_from_activations(acts)
        return self.predict_from_activations(acts)

    # ------------------------------------------------------------------------------------------
    # save / load
    # ------------------------------------------------------------------------------------------

    def hyper_parameters(self) -> dict[str, Any]:
        return {"train": self.train_config.params(), "objective": self.objective.params(),
                "nec": self.nec, "cbl_input": self.cbl_input, "head_kwargs": self.head_kwargs}

    def save(self, folder: str | Path) -> Path:
        """Write ``model.safetensors`` + ``model.json`` into ``folder`` atomically."""
        cbl, head = self._require_fitted()
        assert self.unit_low_ is not None and self.unit_high_ is not None
        tensors: dict[str, np.ndarray] = {"bank.vectors": self.bank.vectors}
        tensors.update({f"cbl.{k}": v for k, v in cbl.state_arrays().items()})
        tensors.update({f"head.{k}": v for k, v in head.state().items()})
        tensors["units.low"] = self.unit_low_
        tensors["units.high"] = self.unit_high_
        if self.association_ is not None:
            tensors["association"] = self.association_.astype(np.float32)
        tensors = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()}
        meta = {
            "format": MODEL_FORMAT, "kind": "concept_bottleneck_model",
            "method": self.method, "class_names": self.class_names,
            "concept_names": self.bank.names, "n_concepts": self.n_concepts,
            "embedding_dim": self.bank.dim, "encoder_spec": self.encoder_spec,
            "encoder_fingerprint": self.encoder_fingerprint, "seed": self.seed,
            "hyper_parameters": self.hyper_parameters(),
            "association_source": self.association_source_,
            "intervention_percentiles": list(INTERVENTION_PERCENTILES),
            "bank": {"provenance": self.bank.provenance, "metadata": self.bank.metadata},
            "dropped_concepts": self.dropped_concepts_, "metrics": self.metrics_,
            "training": self.training_, "head_info": head.info,
            "torch_version": torch.__version__,
        }
        with atomic_dir(folder) as tmp:
            save_file(tensors, str(tmp / MODEL_WEIGHTS))
            write_json_atomic(tmp / MODEL_META, meta)
        return Path(folder)

    @classmethod
    def load(cls, folder: str | Path, expected_encoder_fingerprint: str | None = None,
             expected_n_concepts: int | None = None) -> ConceptBottleneckModel:
        """Read a model written by ``save``; refuse one that does not match expectations."""
        folder = Path(folder)
        if not folder.is_dir():
            raise ModelFormatError(f"{folder}: no such model folder")
        meta_path, weights_path = folder / MODEL_META, folder / MODEL_WEIGHTS
        if not weights_path.is_file():
            raise ModelFormatError(f"{folder}: missing {MODEL_WEIGHTS}")
        meta = read_json(meta_path)
        if meta.get("format") != MODEL_FORMAT or meta.get("kind") != "concept_bottleneck_model":
            raise ModelFormatError(f"{folder}: not a conceptlab concept bottleneck model of "
                                   f"format {MODEL_FORMAT} (format={meta.get('format')!r})")
        fp = str(meta.get("encoder_fingerprint", ""))
        if expected_encoder_fingerprint is not None and fp != expected_encoder_fingerprint:
            raise ModelFormatError(
                f"{folder}: the model was fitted on embeddings from encoder fingerprint "
                f"{fp or '(none recorded)'!r} ({meta.get('encoder_spec') or 'unknown encoder'}), "
                f"but the inputs come from fingerprint {expected_encoder_fingerprint!r}; "
                f"use the same encoder or re-fit the model")
        n = int(meta.get("n_concepts", -1))
        if expected_n_concepts is not None and n != int(expected_n_concepts):
            raise ModelFormatError(f"{folder}: the model has {n} concepts but "
                                   f"{expected_n_concepts} were expected (a different or "
                                   f"filtered concept bank?)")
        t = load_file(str(weights_path))
        names = list(meta["concept_names"])
        if t["bank.vectors"].shape[0] != len(names) or len(names) != n:
            raise ModelFormatError(f"{folder}: {t['bank.vectors'].shape[0]} concept vectors, "
                                   f"{len(names)} names, n_concepts={n}")
        bank_meta = meta.get("bank", {})
        bank = ConceptBank(vectors=t["bank.vectors"], names=names,
                           provenance=bank_meta.get("provenance", {}),
                           metadata=bank_meta.get("metadata", {}), normalize=False)
        hp = meta["hyper_parameters"]
        model = cls(bank, meta["class_names"], method=meta["method"], nec=hp.get("nec"),
                    cbl_input=hp.get("cbl_input"), head_kwargs=hp.get("head_kwargs"),
                    seed=meta.get("seed", 0), encoder_spec=meta.get("encoder_spec", ""),
                    encoder_fingerprint=fp, **hp.get("train", {}), **hp.get("objective", {}))
        model.encoder_fingerprint = fp
        model.bank = model._input_bank = bank
        try:
            cbl_state = {k[len("cbl."):]: v for k, v in t.items() if k.startswith("cbl.")}
            head_state = {k[len("head."):]: v for k, v in t.items() if k.startswith("head.")}
            model.cbl_ = ConceptBottleneckLayer.from_arrays(cbl_state)
            model.head_ = heads.LinearHead.from_state(head_state, meta.get("head_info", {}))
            model.unit_low_, model.unit_high_ = t["units.low"], t["units.high"]
        except (KeyError, ValueError) as err:
            raise ModelFormatError(f"{folder}: malformed weights ({err})") from err
        if model.cbl_.n_concepts != n or model.head_.n_features != n:
            raise ModelFormatError(f"{folder}: CBL/head sizes do not match {n} concepts")
        model.association_ = t.get("association")
        model.association_source_ = meta.get("association_source", "none")
        model.metrics_ = meta.get("metrics", {})
        model.training_ = meta.get("training", {})
        model.dropped_concepts_ = meta.get("dropped_concepts", [])
        return model


def read_saved_weights(folder: str | Path) -> dict[str, Any]:
    """Effective head weights of a saved model without rebuilding it (for reports).

    Returns ``{"weights": C x K array (W'), "class_names", "concept_names", "method", "nec"}``.
    """
    folder = Path(folder)
    meta = read_json(folder / MODEL_META)
    t = load_file(str(folder / MODEL_WEIGHTS))
    w = t["head.weight"] / t["head.std"]
    return {"weights": w, "class_names": meta["class_names"],
            "concept_names": meta["concept_names"], "method": meta["method"],
            "nec": meta.get("hyper_parameters", {}).get("nec")}
