"""The concept embedding model as a ``fit`` method (``conceptlab fit --method cem``), on the
run's cached embeddings and the data's ground-truth concept labels (idsprites, robot texts,
CUB), scored beside the same numbers the joint CBM reports: task accuracy, concept accuracy
(p >= 0.5 against the labels), the intervention curve (true labels set in a seeded random
order) and the leakage measures of ``faithfulness.leakage`` (soft vs hard concepts, oracle
impurity).

Writes ``OUT/metrics.json`` (with the CEM's faithfulness profile, ``bottleneck.cem_audit``),
``OUT/model`` (safetensors + JSON), ``OUT/encoder.json`` and ``OUT/report.html``, all at once.
The CEM is a ``ConceptModel``: ``predict``, ``explain``, ``intervene``, ``serve``, ``report``
and ``audit`` read the run like any other.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from conceptlab.bottleneck.cem import CEMConfig, CEMError, ConceptEmbeddingModel
from conceptlab.errors import OptionError
from conceptlab.faithfulness.leakage import leakage_columns
from conceptlab.metrics import accuracy
from conceptlab.runs import open_run
from conceptlab.workflows.concepts import (
    ConceptSource,
    audit_inputs_of,
    check_concepts,
    concept_source,
    describe_source,
)
from conceptlab.workflows.prepare import Prepared, RunConfig, prepare
from conceptlab.workflows.report import build_report

METHOD = "cem"


def fit_cem_row(prep: Prepared, src: ConceptSource, options: dict[str, Any] | None = None, *,
                seed: int | None = None) -> tuple[ConceptEmbeddingModel, dict[str, Any]]:
    """Fit one CEM on train (best validation epoch), score it on test."""
    if src.concept_labels is None:
        raise CEMError(f"--method cem needs ground-truth concept labels; {prep.config.data} has "
                       "none (use idsprites, robots-text or cub:PATH)")
    seed = prep.config.seed if seed is None else int(seed)
    cfg = CEMConfig.from_options(options)
    names = list(src.bank.names)
    C = src.concept_labels
    t0 = time.perf_counter()
    model = ConceptEmbeddingModel(names, prep.class_names, cfg, seed,
                                  encoder_spec=prep.config.encoder or "",
                                  encoder_fingerprint=prep.encoder.fingerprint()).fit(
        prep.X["train"], prep.y["train"], C["train"], prep.X["val"], prep.y["val"])
    fit_seconds = time.perf_counter() - t0
    Xt, yt = prep.X["test"], prep.y["test"]
    P = model.concept_probs(Xt)
    per = ((P >= 0.5) == (C["test"] >= 0.5)).mean(axis=0)
    row: dict[str, Any] = {
        "method": METHOD, "seed": seed, "accuracy": accuracy(yt, model.predict(Xt)),
        "val_accuracy": model.training_["val_accuracy"], "n_concepts": len(names),
        "concept_accuracy": float(per.mean()),
        "intervention_curve": model.intervention_curve(Xt, yt, C["test"], seed=seed),
        "leakage": leakage_columns(model.concept_probs(prep.X["train"]), prep.y["train"], P, yt,
                                  C["test"], seed),
        "epochs": model.training_["epochs"], "fit_seconds": round(fit_seconds, 3),
        "hyper_parameters": cfg.__dict__.copy()}
    audited = model.audit_profile(audit_inputs_of(prep, src, seed=seed))
    row.update(faithfulness=audited["faithfulness"], trusted=audited["trusted"])
    return model, row


def run_cem(config: RunConfig, out: str | Path, *, concepts: str = "auto",
            nec: float | None = None, hparams: dict[str, Any] | None = None) -> dict[str, Any]:
    """``conceptlab fit --method cem``: fit, score and save one CEM."""
    if nec is not None:
        raise OptionError("--nec: a CEM's head reads concept embeddings; it has no sparse "
                          "head at a NEC (leave --nec out)")
    check_concepts(concepts)
    CEMConfig.from_options(hparams)  # bad settings fail before any encoding
    final = Path(out)
    with open_run("fit", final) as run:
        staged = run.path()
        t0 = time.perf_counter()
        prep = prepare(config)
        src = concept_source(prep, concepts)
        model, row = fit_cem_row(prep, src, hparams)
        model.save(staged / "model")
        prep.write_encoder_json(staged)
        metrics = {"command": "fit", **row, **prep.base_metrics(),
                   "concepts": describe_source(src), "model_dir": str(final / "model"),
                   "seconds": round(time.perf_counter() - t0, 3)}
        metrics = run.finish(metrics)
        build_report([staged], shown_as=[run.out])  # report.html: accuracy beside the audit profile
        return metrics
