"""``ConceptBottleneckModel``: a classifier whose decisions pass through named concepts.

Flow (all on cached embeddings ``X``, N x D, from a frozen encoder):

    S = normalize(X) . bank^T  (N x K concept scores: what each named concept means)
      -> CBL (one unit per named concept; ``layers``: reads S, the embedding or features;
              objective from ``objectives.OBJECTIVES``; grounded to S when it does not read S)
      -> H (N x K activations the head sees; Gumbel-Softmax relaxed for ``gumbel``)
      -> LinearHead (dense, or exactly round(nec * C) non-zero weights) -> logits

The bank is in every model's data path or in its loss: unit k reads concept k's score, or is
trained to match it. ``audit`` (``bottleneck.audit``) measures on held-out data whether it
does, and the model carries the verdict (``faithfulness_``) into its explanations.

Explanations use the head re-expressed on the raw activations: the head computes
``W ((h - mu) / sigma) + b``, which equals ``W' h + b'`` with ``W' = W / sigma`` and
``b' = b - W' mu``. The *contribution* of concept k to class c is ``W'[c, k] * h_k``, and a
logit is exactly ``b'[c] + sum_k contribution``.

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

from conceptlab import metrics
from conceptlab.bottleneck import heads
from conceptlab.bottleneck.concept_model import (
    MAX_UNIT_MAGNITUDE,
    AuditInputs,
    ConceptModelError,
    concept_state,
    register_concept_model,
)
from conceptlab.bottleneck.heads import HeadConfig, LinearHead
from conceptlab.bottleneck.layers import (
    DEFAULT_CUTOFF,
    DEFAULT_GROUNDING,
    CBLConfig,
    ConceptBottleneckLayer,
    Grounding,
)
from conceptlab.bottleneck.objectives import Objective, get_objective
from conceptlab.bottleneck.objectives.base import InputKind
from conceptlab.bottleneck.options import split_options
from conceptlab.bottleneck.training import (
    TrainConfig,
    TrainData,
    activations_from_units,
    train_cbl,
    unit_values,
)
from conceptlab.concepts.bank import ConceptBank
from conceptlab.errors import ConceptlabError, ConceptlabValueError
from conceptlab.faithfulness import column_correlations
from conceptlab.utils.arrays import as_labels, as_matrix
from conceptlab.utils.threads import threads_for, torch_threads

MODEL_FORMAT = 2
MODEL_WEIGHTS = "model.safetensors"
MODEL_META = "model.json"
#: explanations list at most this many concepts by default (people stop reading beyond it)
DEFAULT_EXPLAIN_TOP = 32
#: percentiles of a unit's training values used as its "absent" / "present" value
INTERVENTION_PERCENTILES = (5.0, 95.0)
#: validation share carved from the training data when ``fit`` gets no validation split
DEFAULT_VAL_FRACTION = 0.1


class ModelFormatError(ConceptModelError):
    """A saved model folder is missing, malformed, or does not match what the caller expects
    (a ``FormatError`` and a ``ConceptModelError``, so every loader's errors are caught
    alike)."""


class NotFittedError(ConceptlabError, RuntimeError):
    """A method that needs a fitted model was called before ``fit`` or ``load``."""


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def unknown_name_error(kind: str, name: str, known: Sequence[str]) -> ConceptlabValueError:
    close = difflib.get_close_matches(str(name), list(known), n=3)
    hint = f"; did you mean {close}?" if close else ""
    return ConceptlabValueError(f"unknown {kind} {name!r}{hint} ({len(known)} known)")


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


def carve_validation(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded stratified (train, validation) row indices of one labelled array."""
    if not 0 < fraction < 1:
        raise ConceptlabValueError(f"val_fraction must be in (0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    val: list[np.ndarray] = []
    for c in np.unique(y):
        rows = np.flatnonzero(y == c)
        take = round(len(rows) * fraction)
        take = min(max(take, 1), len(rows) - 1) if len(rows) > 1 else 0
        val.append(rng.permutation(rows)[:take])
    v = np.sort(np.concatenate(val)) if val else np.zeros(0, np.int64)
    if len(v) == 0:
        raise ConceptlabValueError("too few training rows to carve a validation split")
    t = np.setdiff1d(np.arange(len(y)), v)
    return t, v


class ConceptBottleneckModel:
    """Sparse concept bottleneck model (Semenov et al. 2024) over a ``ConceptBank``.

    ``objective``: a name in ``objectives.OBJECTIVES`` (``gumbel`` default, ``l1``,
    ``contrastive``, ``cos3``, ``supervised``) or an ``Objective`` instance carrying its
    hyper-parameters. ``cbl``: a ``CBLConfig`` (what the CBL reads, grounding, cutoff).
    ``train``: a ``TrainConfig`` (optimiser, epochs, sparse fine-tuning). ``head``: a
    ``HeadConfig`` (``nec=None`` dense, else exactly ``round(nec * C)`` non-zero weights).
    ``association``: C x K 0/1 array or ``{class: [concepts]}`` (default: the bank's
    ``metadata["classes"]``, else estimated from training data). ``encoder_spec`` /
    ``encoder_fingerprint`` default to the bank's provenance.

    Implements ``bottleneck.concept_model.ConceptModel`` (kind ``concept_bottleneck_model``).
    """

    #: ``model.json``'s kind (the ``ConceptModel`` registry key)
    kind = "concept_bottleneck_model"
    #: any hand-set unit value must lie here (``concept_model.check_unit_value``)
    unit_limits: tuple[float, float] = (-MAX_UNIT_MAGNITUDE, MAX_UNIT_MAGNITUDE)

    def __init__(self, bank: ConceptBank, class_names: Sequence[str], *,
                 objective: str | Objective = "gumbel", cbl: CBLConfig | None = None,
                 train: TrainConfig | None = None, head: HeadConfig | None = None,
                 association: np.ndarray | Mapping[str, Sequence[str]] | None = None,
                 seed: int = 0, encoder_spec: str = "", encoder_fingerprint: str = "") -> None:
        if not isinstance(bank, ConceptBank):
            raise TypeError(f"bank must be a ConceptBank, got {type(bank).__name__}")
        names = [str(c) for c in class_names]
        if len(names) < 2:
            raise ConceptlabValueError(f"a classifier needs at least 2 class names, got {names}")
        if len(set(names)) != len(names):
            dupes = sorted({n for n in names if names.count(n) > 1})
            raise ConceptlabValueError(f"duplicate class names: {dupes}")
        for value, kind, cls in ((cbl, "cbl", CBLConfig), (train, "train", TrainConfig),
                                 (head, "head", HeadConfig)):
            if value is not None and not isinstance(value, cls):
                raise TypeError(f"{kind} must be a {cls.__name__}, got {type(value).__name__}")
        self.objective: Objective = (get_objective(objective) if isinstance(objective, str)
                                     else objective)
        if not isinstance(self.objective, Objective):
            raise TypeError(f"objective must be a name or an Objective, got {objective!r}")
        self.cbl_config = cbl or CBLConfig()
        self.cbl_input: InputKind = self.cbl_config.input or self.objective.default_input
        self.objective.check_input(self.cbl_input)
        self.train_config = train or TrainConfig(**self.objective.train_defaults)
        self.head_config = head or HeadConfig(**self.objective.head_defaults)
        self.bank = bank  # after unit selection: the kept concepts only
        self._input_bank = bank  # every fit starts from the full bank
        self.class_names = names
        self.seed = int(seed)
        prov = bank.provenance or {}
        self.encoder_spec = encoder_spec or str(prov.get("encoder", ""))
        self.encoder_fingerprint = encoder_fingerprint or str(prov.get("encoder_fingerprint", ""))
        self._association_arg = association
        # fitted state
        self.cbl_: ConceptBottleneckLayer | None = None
        self.head_: LinearHead | None = None
        self.association_: np.ndarray | None = None
        self.association_source_: str = "none"
        self.unit_low_: np.ndarray | None = None
        self.unit_high_: np.ndarray | None = None
        self.metrics_: dict[str, Any] = {}
        self.training_: dict[str, Any] = {}
        self.dropped_concepts_: list[dict[str, Any]] = []
        self.faithfulness_: dict[str, Any] = {}

    @classmethod
    def from_options(cls, bank: ConceptBank, class_names: Sequence[str], *,
                     method: str = "gumbel", nec: float | None = None,
                     options: Mapping[str, Any] | None = None, **kwargs: Any
                     ) -> ConceptBottleneckModel:
        """Build from flat ``KEY=VALUE`` settings (the command line's ``--set``): each key names
        a field of the objective, ``CBLConfig``, ``TrainConfig`` or ``HeadConfig``, optionally
        prefixed (``objective.``, ``cbl.``, ``train.``, ``head.``); unknown or ambiguous keys
        raise an error naming the valid ones."""
        parts = split_options(method, dict(options or {}))
        head = dataclasses.replace(parts.head, nec=nec) if nec is not None else parts.head
        return cls(bank, class_names, objective=get_objective(method, **parts.objective),
                   cbl=parts.cbl, train=parts.train, head=head, **kwargs)

    def clone(self, bank: ConceptBank | None = None,
              association: np.ndarray | Mapping[str, Sequence[str]] | None = None
              ) -> ConceptBottleneckModel:
        """An unfitted model with this configuration (on ``bank`` when given)."""
        return ConceptBottleneckModel(
            bank or self._input_bank, self.class_names,
            objective=get_objective(self.objective.name, **self.objective.params()),
            cbl=self.cbl_config, train=self.train_config, head=self.head_config,
            association=self._association_arg if association is None else association,
            seed=self.seed, encoder_spec=self.encoder_spec,
            encoder_fingerprint=self.encoder_fingerprint)

    # ------------------------------------------------------------------------------------------
    # properties and checks
    # ------------------------------------------------------------------------------------------

    @property
    def method(self) -> str:
        return self.objective.name

    @property
    def nec(self) -> float | None:
        return self.head_config.nec

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
    def classes_(self) -> np.ndarray:
        """Class names in label order (scikit-learn's ``classes_``)."""
        return np.asarray(self.class_names)

    @property
    def is_fitted(self) -> bool:
        return self.cbl_ is not None and self.head_ is not None

    @property
    def grounding(self) -> Grounding:
        """The grounding this model trains with (resolved from ``CBLConfig`` and the kind)."""
        if self.objective.grounds_units or self.objective.reference:
            return Grounding(0.0, self.cbl_config.cutoff)
        weight = self.cbl_config.grounding
        weight = DEFAULT_GROUNDING if weight is None else float(weight)
        cutoff = self.cbl_config.cutoff
        if cutoff is None and self.cbl_input != "scores":
            cutoff = DEFAULT_CUTOFF
        return Grounding(weight, cutoff)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The configuration as a dict (scikit-learn's ``get_params``)."""
        del deep
        return {"objective": self.objective.name, **self.hyper_parameters(),
                "seed": self.seed, "association": self._association_arg}

    @property
    def input_bank(self) -> ConceptBank:
        """The bank every fit starts from (``bank`` holds the kept concepts after unit
        selection); control refits replace this one."""
        return self._input_bank

    def check_fitted(self) -> None:
        """Raise ``NotFittedError`` unless the model is fitted."""
        self._require_fitted()

    def check_inputs(self, X: Any, name: str = "X") -> np.ndarray:
        """``X`` as an N x D float matrix in the bank's space, or a clear error naming it."""
        return self._check_X(X, name)

    def _require_fitted(self) -> tuple[ConceptBottleneckLayer, LinearHead]:
        if self.cbl_ is None or self.head_ is None:
            raise NotFittedError("this ConceptBottleneckModel is not fitted; call fit() or load()")
        return self.cbl_, self.head_

    def _check_X(self, X: Any, name: str = "X", allow_1d: bool = False) -> np.ndarray:
        return as_matrix(X, name, self.bank.dim, allow_1d=allow_1d)

    def _features(self, F: Any, n: int, name: str = "F") -> np.ndarray | None:
        if self.cbl_input != "features":
            if F is not None:
                raise ConceptlabValueError(f"{name} given, but this model's CBL reads "
                                           f"{self.cbl_input!r}, not features")
            return None
        if F is None:
            raise ConceptlabValueError(f"this model's CBL reads backbone features: pass {name}")
        arr = as_matrix(F, name, None if self.cbl_ is None else self.cbl_.in_dim, allow_1d=True)
        if len(arr) != n:
            raise ConceptlabValueError(f"{name} has {len(arr)} rows but X has {n}")
        return arr

    def _cbl_inputs(self, X: np.ndarray, F: np.ndarray | None,
                    bank: ConceptBank | None = None) -> np.ndarray:
        if self.cbl_input == "scores":
            return (bank or self.bank).scores(X)
        if self.cbl_input == "features":
            assert F is not None
            return F
        if not self.objective.normalises_embedding:
            return X
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
                    raise unknown_name_error("class", cls, self.class_names)
                for concept in concepts:
                    if concept not in bank.names:
                        raise unknown_name_error("concept", concept, bank.names)
                    A[self.class_names.index(cls), bank.names.index(concept)] = 1.0
            return A, "given"
        A = np.asarray(arg, dtype=np.float32)
        if A.shape != (c, k):
            raise ConceptlabValueError(f"association must be C x K = ({c}, {k}), got shape "
                                       f"{A.shape}")
        if not np.isin(A, (0.0, 1.0)).all():
            raise ConceptlabValueError("association must hold only 0 and 1")
        return A, "given"

    def _check_concept_labels(self, concept_labels: Any, n: int) -> np.ndarray | None:
        if not self.objective.needs_concept_labels:
            return None
        if concept_labels is None:
            raise ConceptlabValueError(f"method {self.method!r} needs concept_labels "
                                       f"(N_train x K)")
        labels = np.asarray(concept_labels, dtype=np.float32)
        k = len(self._input_bank)
        if labels.shape != (n, k):
            raise ConceptlabValueError(f"concept_labels must be ({n}, {k}) (rows of X_train x "
                                       f"bank concepts), got {labels.shape}")
        if not np.isin(labels, (0.0, 1.0)).all():
            raise ConceptlabValueError("concept_labels must hold only 0 and 1")
        return labels

    # ------------------------------------------------------------------------------------------
    # fitting
    # ------------------------------------------------------------------------------------------

    def fit(self, X_train: Any, y_train: Any, X_val: Any = None, y_val: Any = None, *,
            concept_labels: Any | None = None, F_train: Any = None, F_val: Any = None,
            val_fraction: float = DEFAULT_VAL_FRACTION) -> ConceptBottleneckModel:
        """Train the CBL (and a joint linear layer), select units, then fit the final head.

        ``X_val``/``y_val`` drive model selection, early stopping, unit selection and the
        head's regularisation; they must come from the training split, never from test. When
        they are not given, a stratified ``val_fraction`` of the training rows is carved off
        (seeded by the model's seed, recorded in ``training_["validation"]``).
        ``concept_labels`` (N_train x K, 0/1, bank order) are required by ``supervised``.
        ``F_train`` / ``F_val``: backbone features, for a CBL that reads ``"features"``.
        """
        start = time.perf_counter()
        bank = self._input_bank
        Xt = self._check_X(X_train, "X_train")
        yt = as_labels(y_train, "y_train", len(Xt), self.n_classes)
        labels = self._check_concept_labels(concept_labels, len(Xt))
        Ft = self._features(F_train, len(Xt), "F_train")
        if (X_val is None) != (y_val is None):
            raise ConceptlabValueError("give both X_val and y_val, or neither")
        validation: dict[str, Any] = {"carved_from_train": X_val is None}
        if X_val is None:
            if F_val is not None:
                raise ConceptlabValueError("F_val given without X_val")
            tr, va = carve_validation(yt, val_fraction, self.seed)
            Xv, yv, Xt, yt = Xt[va], yt[va], Xt[tr], yt[tr]
            Fv = None if Ft is None else Ft[va]
            Ft = None if Ft is None else Ft[tr]
            labels = None if labels is None else labels[tr]
            validation.update({"fraction": val_fraction, "seed": self.seed, "n_val": len(va)})
        else:
            Xv = self._check_X(X_val, "X_val")
            yv = as_labels(y_val, "y_val", len(Xv), self.n_classes)
            Fv = self._features(F_val, len(Xv), "F_val")
            validation["n_val"] = len(Xv)
        if len(np.unique(yt)) < 2:
            raise ConceptlabValueError("y_train holds fewer than 2 distinct classes")
        objective = self.objective
        grounding = self.grounding

        St, Sv = bank.scores(Xt), bank.scores(Xv)
        A, source = self._resolve_association(bank)
        bank, St, Sv, A, labels, predropped = self._preselect(bank, St, Sv, A, labels)
        inputs_t, inputs_v = self._cbl_inputs(Xt, Ft, bank), self._cbl_inputs(Xv, Fv, bank)
        if A is None and objective.needs_association:
            A, source = association_from_scores(St, yt, self.n_classes), "data"
        data = TrainData(inputs_t, yt, St, inputs_v, yv, Sv, association=A,
                         concept_labels=labels)
        if objective.reference:  # the reference's own loop (``references``)
            rows = min(self.train_config.batch_size, len(inputs_t))
            macs = rows * inputs_t.shape[1] * St.shape[1]
            threads = self.train_config.num_threads or threads_for(macs)
            with torch_threads(threads):
                fit = objective.train_reference(
                    data, kind=self.cbl_input, n_classes=self.n_classes,
                    config=self.train_config, seed=self.seed, desc=f"fit CBL ({self.method})")
        else:
            fit = train_cbl(objective, data, kind=self.cbl_input, n_classes=self.n_classes,
                            grounding=grounding, config=self.train_config, seed=self.seed,
                            desc=f"fit CBL ({self.method})")
        cbl = fit.cbl
        keep, selection = self._select_units(cbl, inputs_v, Sv, bank)
        dropped = predropped + [
            {"concept": bank.names[i], **selection.get("per_concept", {}).get(i, {})}
            for i in np.setdiff1d(np.arange(len(bank)), keep)]
        if len(keep) == 0:
            raise ConceptlabValueError(
                f"unit selection dropped every concept ({selection.get('rule', '')}); lower "
                f"the cutoff or check that the bank matches the embeddings")
        if len(keep) < len(bank):
            cbl = cbl.select(keep)
            bank = bank.select(keep)
            A = None if A is None else A[:, keep]
            data = TrainData(inputs_t, yt, St[:, keep], inputs_v, yv, Sv[:, keep],
                             association=A,
                             concept_labels=None if labels is None else labels[:, keep])
        Ut = unit_values(cbl, inputs_t)
        Ht = activations_from_units(objective, Ut)
        Hv = activations_from_units(objective, unit_values(cbl, inputs_v))
        if objective.final_joint_head and self.nec is None and fit.joint_head is not None:
            head = self._joint_head(fit.joint_head, keep, Hv, yv)
        else:
            head = heads.fit_head(Ht, yt, Hv, yv, n_classes=self.n_classes, seed=self.seed,
                                  config=self.head_config)
        finetune: dict[str, Any] = {}
        if (self.nec is not None and objective.joint_head and not objective.reference
                and self.train_config.finetune_epochs):
            cbl, head, finetune = self._sparse_finetune(cbl, head, data, grounding)
            Ut = unit_values(cbl, inputs_t)
            Ht = activations_from_units(objective, Ut)
            Hv = activations_from_units(objective, unit_values(cbl, inputs_v))

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
            "nec": head.nec, "n_concepts": len(bank), "n_concepts_dropped": len(dropped),
            "n_train": len(Xt), "n_val": len(Xv),
            "cbl_seconds": fit.seconds, "fit_seconds": time.perf_counter() - start,
        }
        self.training_ = {"cbl": fit.summary(), "parameters_moved": fit.moved,
                          "unit_selection": {k: v for k, v in selection.items()
                                             if k != "per_concept"},
                          "grounding": dataclasses.asdict(grounding),
                          "validation": validation, "sparse_finetune": finetune}
        self.faithfulness_ = {}
        return self

    def _preselect(self, bank: ConceptBank, St: np.ndarray, Sv: np.ndarray,
                   A: np.ndarray | None, labels: np.ndarray | None
                   ) -> tuple[ConceptBank, np.ndarray, np.ndarray, np.ndarray | None,
                              np.ndarray | None, list[dict[str, Any]]]:
        """The objective's filter before training (LF-CBM's ``clip_cutoff``): the kept
        concepts' bank, scores, association and labels, and a record of each dropped one."""
        keep, record = self.objective.preselect_units(St)
        if len(keep) == len(bank):
            return bank, St, Sv, A, labels, []
        if len(keep) == 0:
            best = max(record.get("scores") or [float("nan")])
            raise ConceptlabValueError(
                f"{self.method}: the filter before training ({record.get('rule', '')}) drops "
                f"every concept (highest: {best:.3f}); lower it with --set "
                f"{record.get('setting', 'the cutoff')}=VALUE")
        scores = record.get("scores") or [float("nan")] * len(bank)
        dropped = [{"concept": bank.names[i], "preselection_score": float(scores[i]),
                    "rule": record.get("rule", "")}
                   for i in np.setdiff1d(np.arange(len(bank)), keep)]
        return (bank.select(keep), St[:, keep], Sv[:, keep],
                None if A is None else A[:, keep],
                None if labels is None else labels[:, keep], dropped)

    def _joint_head(self, joint: Any, keep: np.ndarray, Hv: np.ndarray, yv: np.ndarray
                    ) -> LinearHead:
        """The jointly trained head as the final layer (a reference evaluated as its code
        evaluates it): its weight on the kept units, its bias (zero if it has none), no
        standardisation."""
        W = joint.weight.detach().numpy().astype(np.float32)[:, keep]
        b = (np.zeros(W.shape[0], np.float32) if joint.bias is None
             else joint.bias.detach().numpy().astype(np.float32))
        head = LinearHead(W, b, np.zeros(W.shape[1], np.float32),
                          np.ones(W.shape[1], np.float32),
                          info={"kind": "joint", "solver": "trained jointly with the CBL",
                                "dense": True, "n_features": int(W.shape[1]),
                                "n_classes": int(W.shape[0])})
        head.info["val_accuracy"] = metrics.accuracy(yv, head.predict(Hv))
        return head

    def _select_units(self, cbl: ConceptBottleneckLayer, inputs_v: np.ndarray, Sv: np.ndarray,
                      bank: ConceptBank) -> tuple[np.ndarray, dict[str, Any]]:
        """The objective's unit selection, then the grounding cutoff on validation fidelity."""
        Uv = unit_values(cbl, inputs_v)
        keep, record = self.objective.select_units(Uv, Sv)
        per: dict[int, dict[str, Any]] = {}
        scores = record.get("scores")
        if scores is not None:
            for i in np.setdiff1d(np.arange(len(bank)), keep):
                per[int(i)] = {"objective_score": float(scores[i])}
        rules = [record["rule"]] if record.get("rule") else []
        cutoff = self.grounding.cutoff
        fidelity = column_correlations(Uv, Sv)
        if cutoff is not None:
            passed = np.flatnonzero(fidelity >= cutoff)
            for i in np.setdiff1d(keep, passed):
                per.setdefault(int(i), {})["val_fidelity"] = float(fidelity[i])
            keep = np.intersect1d(keep, passed)
            rules.append(f"validation correlation with the concept's score >= {cutoff}")
        for i in per:
            per[i].setdefault("val_fidelity", float(fidelity[i]))
        return keep, {"rule": "; ".join(rules) or "none", "per_concept": per,
                      "n_kept": len(keep), "n_dropped": int(len(bank) - len(keep))}

    def _sparse_finetune(self, cbl: ConceptBottleneckLayer, head: LinearHead, data: TrainData,
                         grounding: Grounding
                         ) -> tuple[ConceptBottleneckLayer, LinearHead, dict[str, Any]]:
        """Train the CBL with the sparse head's zero pattern fixed (its NEC stays exact);
        keep the result only if validation accuracy does not drop."""
        w, b = head.folded()
        mask = (head.weight != 0).astype(np.float32)
        objective = self.objective

        def val_accuracy(layer: ConceptBottleneckLayer, h: LinearHead) -> float:
            acts = activations_from_units(objective, unit_values(layer, data.inputs_val))
            return metrics.accuracy(data.y_val, h.predict(acts))

        before = val_accuracy(cbl, head)
        cfg = dataclasses.replace(self.train_config, max_epochs=self.train_config.finetune_epochs)
        fit = train_cbl(objective, data, kind=self.cbl_input, n_classes=self.n_classes,
                        grounding=Grounding(grounding.weight, None), config=cfg,
                        seed=self.seed + 1, desc=f"sparse fine-tune ({self.method})",
                        init_cbl=cbl, init_head=(w, b), head_mask=mask)
        assert fit.joint_head is not None
        W = fit.joint_head.weight.detach().numpy().astype(np.float32) * mask
        tuned = LinearHead(weight=W, bias=fit.joint_head.bias.detach().numpy().copy(),
                           mean=np.zeros(W.shape[1], np.float32),
                           std=np.ones(W.shape[1], np.float32),
                           info={**head.info, "sparse_finetune": True})
        after = val_accuracy(fit.cbl, tuned)
        report = {"val_accuracy_before": before, "val_accuracy_after": after,
                  "epochs": fit.best_epoch, "kept": after >= before}
        if after >= before:
            return fit.cbl, tuned, report
        return cbl, head, report

    # ------------------------------------------------------------------------------------------
    # inference
    # ------------------------------------------------------------------------------------------

    def unit_values(self, X: Any, F: Any = None, *, allow_1d: bool = False) -> np.ndarray:
        """CBL unit values ``a`` (N x K) before the activation map; interventions act here.

        Equal to ``concept_activations`` for every method but ``gumbel``, whose head sees
        ``softmax(a / tau_min)``. ``allow_1d``: accept one embedding as a 1-D array.
        """
        cbl, _ = self._require_fitted()
        Xc = self._check_X(X, allow_1d=allow_1d)
        return unit_values(cbl, self._cbl_inputs(Xc, self._features(F, len(Xc))))

    def concept_activations(self, X: Any, F: Any = None) -> np.ndarray:
        """Activations the head sees (N x K, in ``concept_names`` order)."""
        return self.activations_from_units(self.unit_values(X, F))

    def activations_from_units(self, U: np.ndarray) -> np.ndarray:
        """The evaluation-mode activation map applied to unit values (N x K)."""
        return activations_from_units(self.objective, U)

    def predict_from_units(self, U: np.ndarray) -> np.ndarray:
        return self.predict_from_activations(self.activations_from_units(U))

    def effective_head(self) -> tuple[np.ndarray, np.ndarray]:
        """``(W', b')`` with ``logits = H W'^T + b'`` on raw activations (see module doc)."""
        _, head = self._require_fitted()
        return head.folded()

    def head_at(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        """The effective head at each input of ``X`` (N x C x K, N x C): the same for every
        input (``ConceptModel``'s per-input form of ``effective_head``)."""
        n = len(self._check_X(X, allow_1d=True))
        W, b = self.effective_head()
        return np.broadcast_to(W, (n, *W.shape)), np.broadcast_to(b, (n, *b.shape))

    def unit_range(self) -> tuple[np.ndarray, np.ndarray]:
        """Per concept the unit value meaning "absent" and the one meaning "present" (the
        ``INTERVENTION_PERCENTILES`` of the unit on the training data)."""
        self._require_fitted()
        if self.unit_low_ is None or self.unit_high_ is None:
            nan = np.full(self.n_concepts, np.nan, np.float32)
            return nan, nan.copy()
        return self.unit_low_, self.unit_high_

    def audit_profile(self, inputs: AuditInputs) -> dict[str, Any]:
        """The faithfulness profile (``bottleneck.audit.audit_inputs``): the row fields a run
        records (``faithfulness``, ``trusted``, and with concept labels ``concept_accuracy``
        and ``intervention_curve``)."""
        from conceptlab.bottleneck.audit import audit_inputs

        return audit_inputs(self, inputs)

    def predict_from_activations(self, H: np.ndarray) -> np.ndarray:
        _, head = self._require_fitted()
        return head.predict(H)

    def predict_proba_from_activations(self, H: np.ndarray) -> np.ndarray:
        _, head = self._require_fitted()
        return _softmax(head.logits(H).astype(np.float64))

    def predict(self, X: Any, F: Any = None) -> np.ndarray:
        """Predicted class index per row (N,)."""
        return self.predict_from_activations(self.concept_activations(X, F))

    def predict_proba(self, X: Any, F: Any = None) -> np.ndarray:
        """Class probabilities (N x C), softmax of the head's logits."""
        return self.predict_proba_from_activations(self.concept_activations(X, F))

    def score(self, X: Any, y: Any, F: Any = None) -> float:
        """Accuracy on ``(X, y)`` (scikit-learn's ``score``)."""
        pred = self.predict(X, F)
        return metrics.accuracy(as_labels(y, "y", len(pred), self.n_classes), pred)

    def _contributions_from_acts(self, H: np.ndarray,
                                 classes: np.ndarray | None = None) -> np.ndarray:
        _, head = self._require_fitted()
        w, _ = self.effective_head()
        cls = head.predict(H) if classes is None else np.asarray(classes, dtype=np.int64)
        return w[cls] * H

    def contributions(self, X: Any, classes: Any | None = None, F: Any = None) -> np.ndarray:
        """Per-example concept contributions to the predicted (or given) class: ``W'[c] * h``."""
        H = self.concept_activations(X, F)
        if classes is not None:
            classes = as_labels(classes, "classes", len(H), self.n_classes)
        return self._contributions_from_acts(H, classes)

    def mean_active_concepts(self, X: Any, mass: float = 0.9, F: Any = None) -> float:
        """Mean over examples of the concepts holding ``mass`` of |contributions| (metrics)."""
        return metrics.mean_active_concepts(self.contributions(X, F=F), mass)

    @property
    def warnings(self) -> list[str]:
        """The audit's warnings about this model's concept names (empty before an audit)."""
        return list(self.faithfulness_.get("warnings", []))

    @property
    def trusted(self) -> bool | None:
        """The audit's verdict: False when the concept names are not to be trusted; None
        when the model has not been audited."""
        value = self.faithfulness_.get("trusted")
        return None if value is None else bool(value)

    def explain(self, X: Any, top: int = DEFAULT_EXPLAIN_TOP, F: Any = None
                ) -> list[dict[str, Any]]:
        """The concepts behind each decision, largest |contribution| first (at most ``top``).

        One dict per row: ``prediction`` (class name), ``class_index``, ``probability``,
        ``logit``, ``intercept`` (``b'[c]``; ``logit = intercept + sum of all contributions``),
        ``n_active`` (effective count of the contributions), ``concepts``: a list of
        ``{"concept", "activation", "weight", "contribution", "unit", "state"}`` (contribution =
        activation x weight for the predicted class; zero contributions left out; ``state``:
        ``present`` / ``absent``, whichever recorded value the unit is nearer), and
        ``warnings`` when the audit found the concept names untrustworthy. ``X`` may be one
        embedding (1-D).
        """
        if not isinstance(top, int) or isinstance(top, bool) or top < 1:
            raise ConceptlabValueError(f"top must be a positive int, got {top!r}")
        _, head = self._require_fitted()
        U = self.unit_values(X, F, allow_1d=True)
        H = self.activations_from_units(U)
        low, high = self.unit_range()
        w, b = self.effective_head()
        logits = head.logits(H)
        proba = _softmax(logits.astype(np.float64))
        pred = logits.argmax(axis=1)
        contrib = w[pred] * H
        active = metrics.effective_count(contrib)
        warnings = self.warnings if self.trusted is False else []
        out = []
        for i in range(len(H)):
            c = int(pred[i])
            ranked = np.argsort(-np.abs(contrib[i]), kind="stable")
            order = [int(k) for k in ranked if contrib[i, k] != 0][:top]
            row = {
                "prediction": self.class_names[c], "class_index": c,
                "probability": float(proba[i, c]), "logit": float(logits[i, c]),
                "intercept": float(b[c]), "n_active": int(active[i]),
                "concepts": [{"concept": self.bank.names[k], "activation": float(H[i, k]),
                              "weight": float(w[c, k]), "contribution": float(contrib[i, k]),
                              "unit": float(U[i, k]),
                              "state": concept_state(float(U[i, k]), float(low[k]),
                                                     float(high[k]))}
                             for k in order],
            }
            if warnings:
                row["warnings"] = warnings
            out.append(row)
        return out

    def class_weights(self, class_name: str, *, include_zero: bool = False
                      ) -> list[tuple[str, float]]:
        """``(concept, weight)`` of one class, largest |weight| first (non-zero only by
        default); weights are per unit of raw activation (``W'``, see module doc)."""
        self._require_fitted()
        if class_name not in self.class_names:
            raise unknown_name_error("class", class_name, self.class_names)
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
                raise unknown_name_error("concept", name, self.bank.names)
            out.append(self.bank.names.index(name))
        return out

    def intervene(self, X: Any, interventions: Mapping[str, Any], *,
                  return_proba: bool = False, F: Any = None) -> np.ndarray:
        """Predictions after replacing the named CBL units with values, then re-applying the
        activation map and the head (Koh et al. 2020, Sec. 6).

        ``interventions`` maps a concept name to a unit value (a number, or one per row), in
        the space of ``unit_values``: for ``gumbel`` the pre-softmax unit, so an intervened
        example stays on the simplex. Typical values: ``unit_high_`` / ``unit_low_`` (the 95th
        / 5th percentile of the unit on training data: "present" / "absent").
        """
        if not isinstance(interventions, Mapping) or not interventions:
            raise ConceptlabValueError("interventions must be a non-empty {concept name: value} "
                                       "mapping")
        H = self.unit_values(X, F).copy()
        for k, (name, value) in zip(self._unit_indices(list(interventions)),
                                    interventions.items(), strict=True):
            try:  # float64 first: a value beyond float32 must be refused, not overflow
                v = np.asarray(value, dtype=np.float64)
            except (TypeError, ValueError):
                raise ConceptlabValueError(f"value for {name!r} must be a number, got "
                                           f"{value!r}") from None
            if v.ndim > 1 or (v.ndim == 1 and len(v) != len(H)):
                raise ConceptlabValueError(f"value for {name!r} must be a number or {len(H)} "
                                           f"numbers, got shape {v.shape}")
            if not np.isfinite(v).all():
                raise ConceptlabValueError(f"value for {name!r} is not finite")
            if (np.abs(v) > MAX_UNIT_MAGNITUDE).any():
                raise ConceptlabValueError(f"value for {name!r} must lie in "
                                           f"[{-MAX_UNIT_MAGNITUDE:g}, {MAX_UNIT_MAGNITUDE:g}]")
            H[:, k] = v.astype(np.float32)
        acts = self.activations_from_units(H)
        if return_proba:
            return self.predict_proba_from_activations(acts)
        return self.predict_from_activations(acts)

    # ------------------------------------------------------------------------------------------
    # save / load
    # ------------------------------------------------------------------------------------------

    def hyper_parameters(self) -> dict[str, Any]:
        return {"objective": self.objective.params(), "cbl": self.cbl_config.params(),
                "cbl_input": self.cbl_input, "train": self.train_config.params(),
                "head": self.head_config.params(), "nec": self.nec}

    def save(self, folder: str | Path) -> Path:
        """Write ``model.safetensors`` + ``model.json`` into ``folder`` atomically."""
        from conceptlab.bottleneck.saving import save_model

        return save_model(self, folder)

    @classmethod
    def load(cls, folder: str | Path, expected_encoder_fingerprint: str | None = None,
             expected_n_concepts: int | None = None) -> ConceptBottleneckModel:
        """Read a model written by ``save``; refuse one that does not match expectations."""
        from conceptlab.bottleneck.saving import load_model

        return load_model(folder, expected_encoder_fingerprint, expected_n_concepts)


def _load_cbm(folder: Path) -> ConceptBottleneckModel:
    from conceptlab.bottleneck.saving import load_model

    return load_model(folder)


register_concept_model(ConceptBottleneckModel.kind, _load_cbm)


__all__ = [
    "DEFAULT_EXPLAIN_TOP",
    "INTERVENTION_PERCENTILES",
    "MODEL_FORMAT",
    "MODEL_META",
    "MODEL_WEIGHTS",
    "ConceptBottleneckModel",
    "ModelFormatError",
    "NotFittedError",
    "association_from_scores",
    "carve_validation",
]
