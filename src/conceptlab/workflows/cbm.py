"""Concept bottleneck workflows: fit a CBM, Concept Matrix Search, and use a saved model.

``run_fit`` writes ``OUT/metrics.json``, the model folder ``OUT/model`` (safetensors + JSON),
``OUT/encoder.json`` (how to rebuild the encoder), explanation PNGs and ``OUT/report.html``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from conceptlab.baselines.zeroshot import build_class_embeddings, get_templates, zero_shot_predict
from conceptlab.bottleneck.cms import (
    class_concept_similarities,
    cms_predict_cosine,
    cms_predict_top_concept,
    cms_reference_predict,
    cms_rowsum_predict,
)
from conceptlab.bottleneck.concept_model import (
    ConceptModel,
    check_encoder,
    intervention_rows,
    load_concept_model,
    resolve_settings,
)
from conceptlab.bottleneck.heads import HeadConfig
from conceptlab.bottleneck.model import ConceptBottleneckModel
from conceptlab.bottleneck.objectives import objective_names
from conceptlab.bottleneck.options import split_options
from conceptlab.data.base import DataError
from conceptlab.data.folder import open_image
from conceptlab.encoders.base import Encoder, build_encoder
from conceptlab.errors import (
    ConceptlabValueError,
    DivergedError,
    FormatError,
    InputError,
    MissingFileError,
)
from conceptlab.metrics import accuracy, per_class_accuracy
from conceptlab.report.plots import plot_explanation
from conceptlab.runs import open_run
from conceptlab.utils.io import check_output_dir, read_json, write_json_atomic
from conceptlab.workflows import cem, dncbm
from conceptlab.workflows.baselines import backbone_features, probe_accuracy, run_probe
from conceptlab.workflows.concepts import (
    ConceptSource,
    audit_inputs_of,
    check_concepts,
    concept_source,
    describe_source,
)
from conceptlab.workflows.prepare import Prepared, RunConfig, prepare
from conceptlab.workflows.report import build_report, pick_decisions
from conceptlab.workflows.variants import ALL_VARIANTS, Variant


def methods() -> list[str]:
    """Every ``--method`` the fit command takes: the registered objectives, DN-CBM, the
    concept embedding model, then ``probe``."""
    return [*objective_names(), dncbm.METHOD, cem.METHOD, "probe"]


def _features_for(prep: Prepared, options: dict[str, Any]) -> dict[str, np.ndarray] | None:
    if options.get("cbl.input", options.get("input")) != "features":
        return None
    F = backbone_features(prep)
    if F is None:
        raise ConceptlabValueError(f"a CBL on backbone features needs an encoder that caches them "
                         f"(conse does); {prep.config.encoder!r} does not")
    return F


def fit_cbm(prep: Prepared, src: ConceptSource, method: str, nec: float | None,
            options: dict[str, Any] | None = None, *, seed: int | None = None,
            controls: bool = True) -> tuple[ConceptBottleneckModel, dict[str, Any]]:
    """Fit one CBM on the prepared train/val embeddings, score and audit it on test.

    ``options`` are flat settings (``bottleneck.options``); ``seed`` (default: the run's)
    seeds the model, independently of the data split. ``controls`` adds the random-bank and
    shuffled-names refits to the faithfulness audit.
    """
    options = dict(options or {})
    seed = prep.config.seed if seed is None else int(seed)
    model = ConceptBottleneckModel.from_options(
        src.bank, prep.class_names, method=method, nec=nec, options=options,
        association=src.association(prep.class_names), seed=seed,
        encoder_spec=prep.config.encoder or "", encoder_fingerprint=prep.encoder.fingerprint())
    F = _features_for(prep, options)
    Ft = None if F is None else F["train"]
    Fv = None if F is None else F["val"]
    Fs = None if F is None else F["test"]
    t0 = time.perf_counter()
    labels = src.concept_labels["train"] if src.concept_labels is not None else None
    model.fit(prep.X["train"], prep.y["train"], prep.X["val"], prep.y["val"],
              concept_labels=labels, F_train=Ft, F_val=Fv)
    fit_seconds = time.perf_counter() - t0
    row: dict[str, Any] = {
        "method": method, "seed": seed,
        "accuracy": accuracy(prep.y["test"], model.predict(prep.X["test"], Fs)),
        "val_accuracy": model.metrics_["val_accuracy"],
        "nec": model.head_.nec if model.head_ is not None else None,
        "nec_requested": nec, "n_concepts": model.n_concepts,
        "mean_active_concepts": model.mean_active_concepts(prep.X["test"], F=Fs),
        "fit_seconds": round(fit_seconds, 3),
    }
    row.update(audit_fitted(model, prep, src, seed=seed, controls=controls, F=F))
    model.metrics_.update({k: v for k, v in row.items() if k != "intervention_curve"})
    return model, row


def audit_fitted(model: ConceptModel, prep: Prepared, src: ConceptSource, *,
                 seed: int, controls: bool = True, F: dict[str, np.ndarray] | None = None,
                 examples: Any = None) -> dict[str, Any]:
    """The faithfulness profile of a fitted concept model on the run's test split (``fit``
    and ``audit`` share it): ``model.audit_profile`` on ``audit_inputs_of(...)`` (for a CBM:
    control refits on the cached train/val embeddings, the encoder's text side for the
    controls and the class links, ground-truth concept labels with the concept accuracy,
    intervention curve and leakage, and ``examples``). Returns the row fields."""
    return model.audit_profile(audit_inputs_of(prep, src, seed=seed, controls=controls, F=F,
                                               examples=examples))


def save_explanations(model: ConceptBottleneckModel, prep: Prepared, out: Path,
                      n_examples: int | None = 4, top: int = 10) -> list[dict[str, Any]]:
    """Explain the first right decision of each of the first ``n_examples`` classes (all
    classes when None) and the first wrong one of each true class (at most 6): PNG bar charts
    plus ``OUT/explanations.json`` (what the report shows)."""
    explanations: list[dict[str, Any]] = []
    y = prep.y["test"]
    picks = pick_decisions(y, model.predict(prep.X["test"]), n_right=n_examples)
    for i, exp in zip(picks, model.explain(prep.X["test"][picks], top=32), strict=True):
        truth = prep.class_names[int(y[i])]
        exp = {"test_index": i, "true_class": truth, **exp}
        explanations.append(exp)
        plot_explanation(exp, out / f"explain_test{i}.png", top=top,
                         title=f"test #{i}: predicted {exp['prediction']} (true {truth})")
    write_json_atomic(out / "explanations.json", explanations)
    return explanations


def save_fitted(model: ConceptBottleneckModel, prep: Prepared, out: Path) -> None:
    """``OUT/model`` and ``OUT/encoder.json`` (how ``predict`` rebuilds the encoder)."""
    model.save(out / "model")
    prep.write_encoder_json(out)


def run_fit(config: RunConfig, out: str | Path, *, concepts: str = "auto",
            method: str = "gumbel", nec: float | None = None,
            hparams: dict[str, Any] | None = None) -> dict[str, Any]:
    """Fit a concept bottleneck model (or a linear probe: ``method='probe'``), audit and save
    it."""
    out = Path(out)
    if method == "probe":
        return run_probe(config, out)
    if method == dncbm.METHOD:
        return dncbm.run_dncbm(config, out, concepts=concepts, nec=nec, hparams=hparams)
    if method == cem.METHOD:
        return cem.run_cem(config, out, concepts=concepts, nec=nec, hparams=hparams)
    if method not in objective_names():
        raise ConceptlabValueError(f"unknown method {method!r}; choose one of "
                                   f"{', '.join(methods())}")
    check_concepts(concepts)  # before encoding: a typo must not cost an encoding pass
    split_options(method, dict(hparams or {}))  # bad settings too
    if nec is not None:
        HeadConfig(nec=nec)
    final = out
    # the whole run is built in a staging folder and swapped in at once: a failure or a kill
    # anywhere leaves the earlier run in OUT as it was, complete
    with open_run("fit", final) as run:
        out = run.path()
        t0 = time.perf_counter()
        prep = prepare(config)
        src = concept_source(prep, concepts)
        model, row = fit_cbm(prep, src, method, nec, hparams)
        save_explanations(model, prep, out)  # explanations.json and bar-chart PNGs
        metrics = {"command": "fit", **row, **prep.base_metrics(),
                   "concepts": describe_source(src), "hyper_parameters": model.hyper_parameters(),
                   "model_dir": str(final / "model"), "seconds": round(time.perf_counter() - t0, 3)}
        save_fitted(model, prep, out)
        metrics = run.finish(metrics)
        # report.html: one self-contained page, read from the saved run, named as the run
        build_report([out], shown_as=[run.out])
        return metrics


def cms_rows(prep: Prepared, src: ConceptSource, templates: str = "plain") -> list[dict[str, Any]]:
    """Zero-shot and both Concept Matrix Search rules on the test split (training-free)."""
    class_emb = build_class_embeddings(prep.encoder, prep.class_names, get_templates(templates))
    image_concept = src.bank.scores(prep.X["test"])
    class_concept = class_concept_similarities(class_emb, src.bank.vectors)
    rows = [
        {"method": "zero-shot", "accuracy": accuracy(prep.y["test"],
                                                     zero_shot_predict(prep.X["test"], class_emb))},
        {"method": "cms-cosine",
         "accuracy": accuracy(prep.y["test"], cms_predict_cosine(image_concept, class_concept))},
        {"method": "cms-top-concept",
         "accuracy": accuracy(prep.y["test"],
                              cms_predict_top_concept(image_concept, class_concept))},
    ]
    ref = cms_reference_predict(image_concept, class_concept)
    rows.append({"method": "cms (reference, column-normalised, transductive)",
                 "accuracy": accuracy(prep.y["test"], ref),
                 "mean_per_class_accuracy": float(np.nanmean(per_class_accuracy(
                     prep.y["test"], ref, len(prep.class_names)))),
                 "transductive": True})
    for rule in ("cosine", "top-concept"):
        pred = cms_rowsum_predict(image_concept, class_concept, rule=rule)
        rows.append({"method": f"cms-{rule} (reference, row-normalised)",
                     "accuracy": accuracy(prep.y["test"], pred),
                     "mean_per_class_accuracy": float(np.nanmean(per_class_accuracy(
                         prep.y["test"], pred, len(prep.class_names))))})
    for r in rows:
        r.update({"n_concepts": len(src.bank) if r["method"] != "zero-shot" else 0,
                  "fit_seconds": 0.0})
    return rows


#: ``cms --rule``: conceptlab's inductive rules, or the reference notebook's row-normalised form
CMS_RULES = ("inductive", "ref")


def run_cms(config: RunConfig, out: str | Path | None = None, *, concepts: str = "auto",
            templates: str = "plain", rule: str = "inductive") -> dict[str, Any]:
    """Concept Matrix Search (both rules) beside zero-shot; no training data is encoded.

    ``rule="ref"``: the headline numbers are the reference notebook's row-normalised form
    (``cms_rowsum_predict``; ``mean_per_class_accuracy`` is what the notebook reports)."""
    if rule not in CMS_RULES:
        raise InputError(f"--rule must be one of {', '.join(CMS_RULES)}, got {rule!r}")
    check_concepts(concepts)
    with open_run("cms", out) as run:  # --out checked before any encoding
        t0 = time.perf_counter()
        prep = prepare(config, splits_needed=("test",))
        src = concept_source(prep, concepts)
        rows = cms_rows(prep, src, templates)
        by = {r["method"]: r["accuracy"] for r in rows}
        suffix = " (reference, row-normalised)" if rule == "ref" else ""
        extra: dict[str, Any] = {}
        if rule == "ref":
            extra["mean_per_class_accuracy"] = next(
                r["mean_per_class_accuracy"] for r in rows if r["method"] == f"cms-cosine{suffix}")
        metrics = {"command": "cms", "rule": rule, "accuracy": by[f"cms-cosine{suffix}"],
                   "accuracy_top_concept": by[f"cms-top-concept{suffix}"], **extra,
                   "accuracy_zero_shot": by["zero-shot"],
                   "n_concepts": len(src.bank), **prep.base_metrics(),
                   "concepts": describe_source(src), "templates": templates,
                   "seconds": round(time.perf_counter() - t0, 3)}
        return run.finish(metrics)


# ------------------------------------------------------------------------------------------------
# using a saved model on new inputs
# ------------------------------------------------------------------------------------------------


def load_saved(model_dir: str | Path) -> tuple[ConceptModel, Encoder]:
    """A saved concept model (any registered kind) and the encoder that feeds it.

    ``encoder.json`` is checked against what the model recorded *before* the encoder is
    built (a doctored record must not make this load another model's weights), and the built
    encoder's fingerprint against the model's after."""
    run_dir = Path(model_dir)
    if not run_dir.is_dir():
        raise MissingFileError(f"{run_dir}: no such folder (give the OUT folder of `fit`)")
    if (run_dir / "model" / "model.json").is_file():
        folder = run_dir / "model"
    elif (run_dir / "model.json").is_file():
        folder = run_dir
    else:
        raise InputError(f"{run_dir}: not a saved model (no model/model.json; give the OUT "
                         "folder written by `fit`)")
    enc_file = folder.parent / "encoder.json"
    if not enc_file.is_file():
        raise MissingFileError(f"{enc_file}: missing (it records how to rebuild the encoder)")
    model = load_concept_model(folder)
    enc = _encoder_record(enc_file, model, folder.parent)
    encoder = build_encoder(enc["spec"], **enc.get("options", {}))
    check_encoder(model, encoder.fingerprint(), folder)
    return model, encoder


def _encoder_record(enc_file: Path, model: ConceptModel, run_dir: Path) -> dict[str, Any]:
    """``encoder.json``, refused unless it names the encoder the model recorded (its spec and
    fingerprint; for a model that recorded none, the run's metrics.json)."""
    try:
        enc = read_json(enc_file)
    except (ValueError, RecursionError) as err:
        raise FormatError(f"{enc_file}: not readable JSON ({str(err).splitlines()[0]})"
                          ) from None
    if not isinstance(enc, dict) or not isinstance(enc.get("spec"), str) or \
            not isinstance(enc.get("options", {}), dict):
        raise FormatError(f"{enc_file}: must hold {{\"spec\": str, \"options\": {{...}}}}")
    spec, fp = str(model.encoder_spec or ""), str(model.encoder_fingerprint or "")
    if not spec or not fp:
        metrics_file = run_dir / "metrics.json"
        try:
            metrics = read_json(metrics_file) if metrics_file.is_file() else {}
        except ValueError:
            metrics = {}
        if isinstance(metrics, dict):
            spec = spec or str(metrics.get("encoder") or "")
            fp = fp or str(metrics.get("encoder_fingerprint") or "")
    recorded_fp = str(enc.get("fingerprint") or "")
    if (spec and enc["spec"] != spec) or (fp and recorded_fp and recorded_fp != fp):
        raise FormatError(
            f"{enc_file}: names encoder {enc['spec']!r} (fingerprint {recorded_fp or 'none'}), "
            f"but the model was fitted on embeddings from {spec or 'another encoder'!r} "
            f"(fingerprint {fp or 'not recorded'}); nothing was loaded: restore the run's "
            f"encoder.json or re-fit the model")
    return enc


#: how image files start (PNG, JPEG, GIF, BMP, WebP/RIFF, TIFF): named when given to a text model
_IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM", b"RIFF", b"II*\x00", b"MM\x00*")


def read_text_file(path: str | Path, spec: str) -> list[tuple[str, str]]:
    """``(label "file:line", text)`` of each non-blank line of a UTF-8 text file; an
    InputError names the file when it is missing, an image, not UTF-8, or has no text."""
    p = Path(path)
    takes = (f"the model's encoder {spec!r} takes texts: UTF-8 text files with one text per "
             "line (--input), or --text")
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{p}: no such file") from None
    except OSError as err:
        raise InputError(f"{p}: cannot read ({err.strerror or err})") from err
    if data.startswith(_IMAGE_MAGIC):
        raise InputError(f"{p}: an image file; {takes}")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise InputError(f"{p}: not UTF-8 text (byte {err.start}); {takes}") from None
    if "\x00" in text:
        raise InputError(f"{p}: a binary file (NUL bytes); {takes}")
    rows = [(f"{p}:{n}", line) for n, line in enumerate(text.splitlines(), start=1)
            if line.strip()]
    if not rows:
        raise InputError(f"{p}: no text in the file (empty, or blank lines only)")
    return rows


def read_inputs(encoder: Encoder, inputs: Sequence[str], texts: Sequence[str] = ()
                ) -> tuple[np.ndarray, list[str]]:
    """Embeddings and a label per row: ``--input`` files first (an image file is one row
    labelled by its path; a text file one row per non-blank line, labelled ``file:line``),
    then each ``--text`` (labelled by the text). Every input is checked, and the whole
    batch read, before anything is encoded."""
    if not inputs and not texts:
        raise InputError("give at least one --input PATH (or --text for text models)")
    takes = sorted(encoder.modalities)
    if texts and "text" not in encoder.modalities:
        raise InputError(f"--text: the model's encoder {encoder.spec!r} takes "
                         f"{' and '.join(takes)}s, not texts; give files with --input")
    for i, t in enumerate(texts, start=1):
        if not str(t).strip():
            raise InputError(f"--text number {i} is empty")
    labels: list[str] = []
    parts: list[np.ndarray] = []
    if inputs and "image" in encoder.modalities:
        images = []
        for p in inputs:
            path = Path(p)
            if not path.is_file():
                raise InputError(f"{path}: no such file")
            try:
                images.append(open_image(path))
            except DataError as err:
                raise InputError(f"{err}; the model's encoder {encoder.spec!r} takes image "
                                 "files") from err
            labels.append(str(p))
        parts.append(encoder.encode_images(images))
    elif inputs:
        rows = [row for p in inputs for row in read_text_file(p, encoder.spec)]
        labels += [label for label, _ in rows]
        parts.append(encoder.encode_texts([t for _, t in rows]))
    if texts:
        labels += [str(t) for t in texts]
        parts.append(encoder.encode_texts(list(texts)))
    return np.concatenate(parts), labels


def _saved_batch(model_dir: str | Path, inputs: Sequence[str], texts: Sequence[str]
                 ) -> tuple[ConceptModel, np.ndarray, list[str]]:
    """A saved model, the embeddings of the inputs, and a label per row (see read_inputs)."""
    model, encoder = load_saved(model_dir)
    X, labels = read_inputs(encoder, inputs, texts)
    return model, X, labels


def predict_saved(model_dir: str | Path, inputs: Sequence[str], texts: Sequence[str] = ()
                  ) -> list[dict[str, Any]]:
    """Predicted class and probability for each input."""
    model, X, labels = _saved_batch(model_dir, inputs, texts)
    return [{"input": label, "prediction": model.class_names[int(p.argmax())],
             "probability": float(p.max())}
            for label, p in zip(labels, model.predict_proba(X), strict=True)]


def explain_saved(model_dir: str | Path, inputs: Sequence[str], texts: Sequence[str] = (),
                  top: int = 32, png_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """The concepts behind each input's decision (and PNG bar charts when ``png_dir``)."""
    if png_dir is not None:  # before anything is loaded or encoded
        png_dir = check_output_dir(png_dir, "--png")
    model, X, labels = _saved_batch(model_dir, inputs, texts)
    out = model.explain(X, top=top)
    for i, (label, exp) in enumerate(zip(labels, out, strict=True)):
        exp["input"] = label
        if png_dir is not None:
            exp["png"] = str(plot_explanation(exp, Path(png_dir) / f"explain_{i}.png",
                                              top=min(top, 15)))
    return out


def intervene_saved(model_dir: str | Path, inputs: Sequence[str], settings: dict[str, Any],
                    texts: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Predictions and class probabilities before and after setting named concepts
    (``present`` / ``absent``, with ``high`` / ``low`` accepted as aliases, or a number);
    every name and value is checked before the model or the encoder is used."""
    model, encoder = load_saved(model_dir)
    resolve_settings(model, settings)  # bad names and values fail before any encoding
    X, labels = read_inputs(encoder, inputs, texts)
    return intervention_rows(model, X, settings, labels)


def comparison_rows(prep: Prepared, src: ConceptSource, *,
                    variants: Sequence[Variant] = ALL_VARIANTS,
                    necs: Sequence[float | None] = (None, 5.0), templates: str = "plain",
                    progress_label: str = "", seed: int | None = None, controls: bool = True,
                    models: dict[tuple[str, float | None], ConceptBottleneckModel] | None = None
                    ) -> list[dict[str, Any]]:
    """Every method on the same cached embeddings: zero-shot, CMS (inductive rules and the
    transductive reference), the dense linear probe, and each variant with each head.

    Pass a dict as ``models`` to keep the fitted models, keyed by ``(label, nec)``.
    """
    rows = cms_rows(prep, src, templates)
    t0 = time.perf_counter()
    acc, _ = probe_accuracy(prep)
    rows.append({"method": "linear-probe", "kind": "baseline", "nec_requested": None,
                 "n_concepts": 0, "accuracy": acc,
                 "fit_seconds": round(time.perf_counter() - t0, 3)})
    for v in variants:
        for nec in necs:
            try:
                model, row = fit_cbm(prep, src, v.objective, nec, v.options, seed=seed,
                                     controls=controls)
            except DivergedError as err:
                if not v.reproduces:
                    raise
                # a reference's own procedure diverging is a result to report, not a crash
                rows.append({"method": v.label, "objective": v.objective, "kind": v.kind,
                             "is_cbm": v.is_cbm, "reproduces": v.reproduces,
                             "options": v.options, "nec_requested": nec,
                             "accuracy": float("nan"), "diverged": str(err),
                             "faithfulness": {}})
                if progress_label:
                    print(f"{progress_label} {v.label} nec={nec}: diverged ({err})",
                          flush=True)
                continue
            if models is not None:
                models[(v.label, nec)] = model
            row = {**row, "method": v.label, "objective": v.objective, "kind": v.kind,
                   "is_cbm": v.is_cbm, "reproduces": v.reproduces, "options": v.options}
            rows.append(row)
            if progress_label:
                f = row["faithfulness"]
                print(f"{progress_label} {v.label} nec={nec}: acc={row['accuracy']:.4f} "
                      f"fidelity={f['unit_fidelity_median']:.2f} "
                      f"agree={f.get('random_bank_agreement', float('nan')):.3f} "
                      f"fit={row['fit_seconds']:.1f}s", flush=True)
    return rows
