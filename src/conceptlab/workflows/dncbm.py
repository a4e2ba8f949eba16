"""DN-CBM as a ``fit`` method (``conceptlab fit --method dncbm``): on the run's cached
embeddings, with the run's concept vocabulary as the namer's vocabulary, audited like every CBM.

Writes ``OUT/metrics.json`` (accuracy beside the faithfulness record), ``OUT/model`` (the SAE,
unit names and head: safetensors + JSON), ``OUT/encoder.json`` and ``OUT/report.html``, all at
once.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from conceptlab.baselines.zeroshot import build_class_embeddings
from conceptlab.bottleneck.audit import text_encoder_of
from conceptlab.bottleneck.heads import HeadConfig
from conceptlab.discover.dncbm import DNCBM, DNCBMConfig, fit_dncbm
from conceptlab.discover.dncbm_audit import audit_dncbm
from conceptlab.metrics import accuracy, mean_active_concepts
from conceptlab.runs import open_run
from conceptlab.workflows.concepts import (
    ConceptSource,
    check_concepts,
    concept_source,
    describe_source,
)
from conceptlab.workflows.prepare import Prepared, RunConfig, prepare
from conceptlab.workflows.report import build_report

METHOD = "dncbm"


def fit_dncbm_row(prep: Prepared, src: ConceptSource, nec: float | None,
                  options: dict[str, Any] | None = None, *, seed: int | None = None
                  ) -> tuple[DNCBM, dict[str, Any]]:
    """Fit DN-CBM on the prepared train/val embeddings, score and audit it on test (the row
    has the keys of ``workflows.cbm.fit_cbm``'s; its controls need no refit, see
    ``discover.dncbm_audit``)."""
    cfg = DNCBMConfig.from_options(options)
    seed = prep.config.seed if seed is None else int(seed)
    X, y = prep.X, prep.y
    vocab, E = list(src.bank.names), src.bank.vectors
    t0 = time.perf_counter()
    model = fit_dncbm(X["train"], y["train"], X["val"], y["val"],
                      n_classes=len(prep.class_names), vocab=vocab, vocab_embeddings=E,
                      n_concepts=cfg.units, nec=nec, seed=seed, method=cfg.dictionary,
                      sae_options=cfg.dictionary_options, class_names=prep.class_names)
    model.encoder_spec = prep.config.encoder or ""
    model.encoder_fingerprint = prep.encoder.fingerprint()
    fit_seconds = time.perf_counter() - t0
    codes = model.codes(X["test"])
    pred = model.head.predict(codes)
    W, _ = model.effective_head()
    labels = src.concept_labels
    faith = audit_dncbm(
        model, X["test"], y["test"], vocab=vocab, vocab_embeddings=E,
        concept_labels_test=None if labels is None else labels["test"],
        concept_label_names=vocab if labels is not None else None,
        class_embeddings=class_embeddings_of(prep.encoder, prep.class_names))
    row: dict[str, Any] = {
        "method": METHOD, "seed": seed, "accuracy": accuracy(y["test"], pred),
        "val_accuracy": model.head.info.get("val_accuracy"), "nec": model.head.nec,
        "nec_requested": nec, "n_concepts": len(model.alive),
        "mean_active_concepts": mean_active_concepts(W[pred] * codes),
        "fit_seconds": round(fit_seconds, 3), "dncbm": model.info,
        "faithfulness": faith, "trusted": faith["trusted"],
    }
    return model, row


def class_embeddings_of(encoder: Any, class_names: list[str]) -> np.ndarray | None:
    """The class names through the encoder's text side (None for an encoder without one)."""
    text = text_encoder_of(encoder)
    return None if text is None else build_class_embeddings(text, class_names)


def run_dncbm(config: RunConfig, out: str | Path, *, concepts: str = "auto",
              nec: float | None = None, hparams: dict[str, Any] | None = None
              ) -> dict[str, Any]:
    """``conceptlab fit --method dncbm``: fit, audit and save one DN-CBM."""
    check_concepts(concepts)
    DNCBMConfig.from_options(hparams)  # bad settings fail before any encoding
    if nec is not None:
        HeadConfig(nec=nec)
    final = Path(out)
    with open_run("fit", final) as run:
        staged = run.path()
        t0 = time.perf_counter()
        prep = prepare(config)
        src = concept_source(prep, concepts)
        model, row = fit_dncbm_row(prep, src, nec, hparams)
        model.save(staged / "model")
        prep.write_encoder_json(staged)
        used = np.flatnonzero((model.head.weight != 0).any(axis=0))
        metrics = {"command": "fit", **row, **prep.base_metrics(), "concepts": describe_source(src),
                   "units_used": [{"unit": int(model.alive[i]), "name": model.unit_names[i],
                                   "name_cosine": float(model.name_scores[model.alive[i]])}
                                  for i in used],
                   "model_dir": str(final / "model"),
                   "seconds": round(time.perf_counter() - t0, 3)}
        metrics = run.finish(metrics)
        # report.html: accuracy beside the audit, the head weights
        build_report([staged], shown_as=[run.out])
        return metrics
