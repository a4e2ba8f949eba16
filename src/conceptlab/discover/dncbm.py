"""DN-CBM (Rao et al., ECCV 2024, "Discover-then-Name: Task-Agnostic Concept Bottlenecks via
Automated Concept Discovery"): a sparse autoencoder on encoder embeddings discovers concepts
(eq. 2: reconstruction + l1), each unit is named by the vocabulary entry whose text embedding
is closest to its decoder direction (section 3.2, cosine), and a sparse linear head on the unit
activations classifies (section 3.3).

Here the SAE is ``discover.sae`` (ReLU + l1 by default), the namer ``naming.name_by_text`` and
the head ``bottleneck.heads.fit_sparse_head`` at a chosen NEC (or ``fit_dense_head`` with
``nec=None``), all on the same embeddings as the other rows of a comparison. The paper trains
its SAE on CC3M embeddings (task-agnostic); offline we train it on the task's training
embeddings, which is recorded as ``sae_data = "train split"``.

Its faithfulness audit is ``discover.dncbm_audit``. ``DNCBM`` implements
``bottleneck.concept_model.ConceptModel`` (kind ``dn-cbm``): its units are the SAE codes the head
reads, named ``name (unit i)`` so that names stay distinct; "absent" is the 5th and "present"
the 95th percentile of a unit's training codes (as for a CBM's units).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file

from conceptlab.bottleneck.concept_model import (
    AuditInputs,
    ConceptModelError,
    broadcast_head,
    explain_units,
    intervention_rows,
    register_concept_model,
    softmax,
)
from conceptlab.bottleneck.heads import LinearHead, fit_dense_head, fit_sparse_head
from conceptlab.discover.base import Dictionary, DictionaryError, build_dictionary
from conceptlab.discover.metrics import dictionary_report
from conceptlab.discover.naming import name_by_text
from conceptlab.errors import ConceptlabValueError
from conceptlab.utils.io import atomic_dir, save_tensors, write_json_atomic

FORMAT = 1
KIND = "dn-cbm"
#: percentiles of a unit's training codes used as its "absent" / "present" value
UNIT_PERCENTILES = (5.0, 95.0)


@dataclass(frozen=True)
class DNCBMConfig:
    """How a DN-CBM is fitted: ``units`` SAE units (None: 4 x the embedding width; the paper's
    expansion factor is 8 on CLIP's 512/768-d), the ``dictionary`` method (``sae``,
    ``topk-sae``, ``batchtopk-sae``) and its options (``l1``, ``k``, ``epochs``, ...)."""

    units: int | None = None
    dictionary: str = "sae"
    dictionary_options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_options(cls, options: dict[str, Any] | None) -> DNCBMConfig:
        """From the flat ``--set`` settings: ``units``, ``dictionary``; any other key is an
        option of the dictionary (checked by building one, so a typo fails before any work)."""
        opts = dict(options or {})
        reserved = sorted(set(opts) & {"seed", "n_concepts"})
        if reserved:
            raise ConceptlabValueError(f"DN-CBM settings {reserved} are not settable here: the "
                                       f"seed is the run's (--seed), the SAE width is units=N")
        units = opts.pop("units", None)
        if units is not None and (isinstance(units, bool) or not isinstance(units, int)
                                  or units < 1):
            raise ConceptlabValueError(f"units must be a positive integer, got {units!r}")
        method = str(opts.pop("dictionary", "sae"))
        if not method.endswith("sae"):
            raise ConceptlabValueError(f"DN-CBM needs a sparse autoencoder dictionary (sae, "
                                       f"topk-sae, batchtopk-sae), got {method!r}")
        build_dictionary(method, 2, **opts)  # raises on an unknown method or option
        return cls(units, method, opts)


@dataclass
class DNCBM:
    """A fitted DN-CBM: SAE (``dictionary``), unit names with scores, and the head."""

    dictionary: Dictionary
    names: list[str]
    name_scores: np.ndarray
    head: LinearHead
    alive: np.ndarray  # units the head reads (those active on the training split)
    class_names: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    unit_low_: np.ndarray | None = None  # per head column: the "absent" code
    unit_high_: np.ndarray | None = None  # per head column: the "present" code
    encoder_spec: str = ""
    encoder_fingerprint: str = ""

    kind = KIND
    #: codes are ReLU outputs: a hand-set value must be >= 0
    unit_limits: tuple[float, float] = (0.0, float("inf"))

    def codes(self, Z: np.ndarray) -> np.ndarray:
        """Unit activations of embeddings ``Z`` (N x units read by the head)."""
        return self.dictionary.encode(np.asarray(Z, np.float32))[:, self.alive]

    def logits(self, Z: np.ndarray) -> np.ndarray:
        return self.head.logits(self.codes(Z))

    def predict(self, Z: Any) -> np.ndarray:
        return self.head.predict(self.codes(Z))

    def predict_proba(self, Z: Any) -> np.ndarray:
        return softmax(self.logits(Z))

    @property
    def unit_names(self) -> list[str]:
        """The vocabulary name of each head column (names may repeat across units)."""
        return [self.names[i] for i in self.alive]

    @property
    def unit_labels(self) -> list[str]:
        """``name (unit i)`` per head column: distinct even where units share a name."""
        return [f"{self.names[i]} (unit {i})" for i in self.alive]

    @property
    def concept_names(self) -> list[str]:
        """The protocol's concept names: ``unit_labels`` (distinct, so an intervention can
        name one unit)."""
        return self.unit_labels

    def unit_values(self, Z: Any) -> np.ndarray:
        return self.codes(Z)

    def activations_from_units(self, U: np.ndarray) -> np.ndarray:
        """The head reads the codes themselves."""
        return np.asarray(U, np.float32)

    def effective_head(self) -> tuple[np.ndarray, np.ndarray]:
        """``(W', b')`` with ``logits = codes . W'^T + b'`` (standardisation folded in)."""
        return self.head.folded()

    def head_at(self, Z: Any) -> tuple[np.ndarray, np.ndarray]:
        W, b = self.effective_head()
        return broadcast_head(W, b, len(np.asarray(Z)))

    def unit_range(self) -> tuple[np.ndarray, np.ndarray]:
        """Per head column the "absent" and "present" codes (NaN for a model saved without
        them: set numbers instead)."""
        k = len(self.alive)
        low = np.zeros(k, np.float32) if self.unit_low_ is None else self.unit_low_
        high = np.full(k, np.nan, np.float32) if self.unit_high_ is None else self.unit_high_
        return low, high

    def explain(self, Z: Any, top: int = 32) -> list[dict[str, Any]]:
        """The units behind each decision (``concept_model.explain_units``)."""
        return explain_units(self, Z, self.codes(Z), top=top)

    def intervene(self, Z: Any, interventions: Mapping[str, Any], *,
                  return_proba: bool = False) -> np.ndarray:
        """Predictions (or probabilities) after setting the named units' codes."""
        rows = intervention_rows(self, Z, interventions)
        if return_proba:
            return np.array([[r["probabilities_after"][c] for c in self.class_names]
                             for r in rows])
        return np.array([self.class_names.index(r["after"]) for r in rows], dtype=np.int64)

    def audit_profile(self, inputs: AuditInputs) -> dict[str, Any]:
        """``discover.dncbm_audit.audit_dncbm`` on the inputs (example sets are refused:
        DN-CBM units are judged by the labels of their names)."""
        from conceptlab.bottleneck.audit import record_fields
        from conceptlab.discover.dncbm_audit import audit_dncbm
        from conceptlab.errors import InputError

        if inputs.examples is not None:
            raise InputError("--concept-examples: DN-CBM units are judged by the labels of "
                             "their names; example sets are for CBM runs")
        labels = inputs.concept_labels
        class_emb = inputs.class_embeddings
        if class_emb is None and inputs.encoder is not None \
                and "text" in getattr(inputs.encoder, "modalities", ()):
            from conceptlab.baselines.zeroshot import build_class_embeddings

            class_emb = build_class_embeddings(inputs.encoder, self.class_names)
        record = audit_dncbm(self, inputs.X_test, inputs.y_test, vocab=list(inputs.vocab_names),
                             vocab_embeddings=inputs.vocab_vectors,
                             concept_labels_test=None if labels is None else labels["test"],
                             concept_label_names=(list(inputs.vocab_names)
                                                  if labels is not None else None),
                             class_embeddings=class_emb)
        return {"faithfulness": record_fields(record), "trusted": record["trusted"]}

    def save(self, folder: str | Path) -> Path:
        """``folder/{model.safetensors, model.json}``, atomically (never pickle)."""
        meta, arrays = self.dictionary.state()
        tensors = {f"sae.{k}": np.ascontiguousarray(v) for k, v in arrays.items()}
        tensors.update({"head.weight": self.head.weight, "head.bias": self.head.bias,
                        "head.mean": self.head.mean, "head.std": self.head.std,
                        "alive": self.alive.astype(np.int64),
                        "name_scores": self.name_scores.astype(np.float32)})
        if self.unit_low_ is not None and self.unit_high_ is not None:
            tensors["units.low"] = np.asarray(self.unit_low_, np.float32)
            tensors["units.high"] = np.asarray(self.unit_high_, np.float32)
        with atomic_dir(folder) as tmp:
            save_tensors(tensors, tmp / "model.safetensors")
            write_json_atomic(tmp / "model.json", {
                "format": FORMAT, "kind": KIND, "method": KIND, "dictionary": meta,
                "names": self.names, "class_names": self.class_names,
                "concept_names": self.unit_labels, "head_info": self.head.info,
                "hyper_parameters": {"nec": self.info.get("nec")}, "info": self.info,
                "encoder_spec": self.encoder_spec,
                "encoder_fingerprint": self.encoder_fingerprint})
        return Path(folder)

    @classmethod
    def load(cls, folder: str | Path) -> DNCBM:
        """Read a folder written by ``save``; a malformed one is a ``ConceptModelError``
        naming the folder and the problem."""
        from conceptlab.bottleneck.concept_model import read_meta

        folder = Path(folder)
        meta = read_meta(folder)
        if meta.get("kind") != KIND or meta.get("format") != FORMAT:
            raise ConceptModelError(f"{folder}: not a DN-CBM folder of format {FORMAT} "
                                    f"(kind={meta.get('kind')!r}, "
                                    f"format={meta.get('format')!r})")
        try:
            t = load_file(str(folder / "model.safetensors"))
        except (OSError, ValueError, SafetensorError) as err:
            raise ConceptModelError(f"{folder}: model.safetensors is missing, truncated or "
                                    f"not a safetensors file ({err})") from None
        try:
            sae = Dictionary.from_state(meta["dictionary"], {k[4:]: v for k, v in t.items()
                                                             if k.startswith("sae.")})
            head = LinearHead(t["head.weight"], t["head.bias"], t["head.mean"], t["head.std"],
                              info=meta.get("head_info", {}))
            names = [str(n) for n in meta["names"]]
            alive = np.asarray(t["alive"], np.int64)
            model = cls(sae, names, t["name_scores"], head, alive,
                        [str(c) for c in meta.get("class_names", [])], meta.get("info", {}),
                        t.get("units.low"), t.get("units.high"),
                        str(meta.get("encoder_spec", "")),
                        str(meta.get("encoder_fingerprint", "")))
        except (KeyError, TypeError, ValueError, IndexError) as err:
            raise ConceptModelError(f"{folder}: malformed DN-CBM ({err!r})") from None
        k = len(alive)
        if head.weight.shape != (len(model.class_names), k) or \
                (k and (alive.min() < 0 or alive.max() >= len(names))):
            raise ConceptModelError(f"{folder}: the head ({head.weight.shape}), the class "
                                    f"names and the {k} alive units do not match")
        for arr in (model.unit_low_, model.unit_high_):
            if arr is not None and arr.shape != (k,):
                raise ConceptModelError(f"{folder}: unit percentiles do not match {k} units")
        return model


register_concept_model(KIND, DNCBM.load)


def fit_dncbm(Z_train: np.ndarray, y_train: np.ndarray, Z_val: np.ndarray, y_val: np.ndarray,
              *, n_classes: int, vocab: list[str], vocab_embeddings: np.ndarray,
              n_concepts: int | None = None, nec: float | None = 5.0, seed: int = 0,
              method: str = "sae", sae_options: dict[str, Any] | None = None,
              head_options: dict[str, Any] | None = None,
              class_names: list[str] | None = None) -> DNCBM:
    """Fit DN-CBM on embeddings (see the module docstring).

    Units never active on the training split are dropped before the head.
    ``vocab_embeddings``: the vocabulary through the text side of the same joint space.
    """
    Z_train = np.asarray(Z_train, np.float32)
    k = int(n_concepts or 4 * Z_train.shape[1])
    sae = build_dictionary(method, k, seed=seed, **(sae_options or {})).fit(Z_train)
    U_train = sae.encode(Z_train)
    named = name_by_text(sae.dictionary, vocab_embeddings, vocab, top=3)
    alive = np.flatnonzero((U_train > 0).any(0))
    if len(alive) == 0:
        raise DictionaryError("DN-CBM: every SAE unit is dead on the training split; lower l1")
    U_val = sae.encode(np.asarray(Z_val, np.float32))
    opts = dict(head_options or {})
    if nec is None:
        head = fit_dense_head(U_train[:, alive], y_train, U_val[:, alive], y_val,
                              n_classes=n_classes, seed=seed, **opts)
    else:
        head = fit_sparse_head(U_train[:, alive], y_train, U_val[:, alive], y_val,
                               n_classes=n_classes, nec=nec, seed=seed, **opts)
    quality = dictionary_report(Z_train, U_train, sae.decode(U_train))
    info = {"method": KIND, "sae": {"method": method, **sae.params()}, "nec": nec,
            "units": k, "alive_units": len(alive), "sae_data": "train split",
            "sae_quality": quality, "seed": seed,
            "sae_options": dict(sae_options or {}), "head_options": opts}
    low, high = (np.percentile(U_train[:, alive], q, axis=0).astype(np.float32)
                 for q in UNIT_PERCENTILES)
    return DNCBM(sae, [n["name"] for n in named], np.array([n["score"] for n in named]),
                 head, alive, list(class_names or [f"class {i}" for i in range(n_classes)]),
                 info, low, high)
