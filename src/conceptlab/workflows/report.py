"""``conceptlab report``: a readable, self-contained HTML page from saved run folders.

A run folder is what ``fit`` or ``demo`` (or ``probe``, ``zeroshot``, ``cms``) wrote:
``metrics.json`` always; for a concept bottleneck also ``model/`` (safetensors + JSON),
``encoder.json`` and ``explanations.json``. Everything shown is read from these files; no model
is refitted or re-run.

The inputs behind the explained decisions are re-read from the dataset spec recorded in
``metrics.json`` (``config`` + the split rule): the test split is rebuilt with the recorded
seed and sizes, and used only if its fingerprint equals the one recorded at fit time
(``splits.fingerprints.test``). If the data moved or changed, the page says so and shows the
decision without its input, rather than a wrong input. Why not store the inputs at fit time:
rebuilding costs no disk and no change to the fit, and the fingerprint makes it exact.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from conceptlab.errors import ConceptlabValueError, MissingFileError
from conceptlab.faithfulness.claims import claim_summary
from conceptlab.report.html import (
    Card,
    Example,
    Figure,
    Section,
    Table,
    fmt_cell,
    write_report,
)
from conceptlab.report.plots import (
    XAI_FIGURE_METRICS,
    accuracy_nec_figure,
    explanation_figure,
    intervention_figure,
    png_bytes,
    thumbnail_png,
    weight_heatmap_figure,
    xai_metrics_figure,
)
from conceptlab.report.run_figures import figure_sections
from conceptlab.utils.io import check_output_file, read_json

#: faithfulness fields shown beside accuracy, in this order, with what each one says
FAITHFULNESS_FIELDS: dict[str, str] = {
    "trusted": "every measured claim about the explanations passed (see the profile)",
    "unit_fidelity_median": "median correlation of each unit with its concept's encoder score",
    "name_match_rate": "share of units whose best-matching concept is their own name",
    "random_bank_accuracy": "mean accuracy with control banks (random character strings or "
                            "directions) in place of the real one",
    "random_bank_gap": "mean accuracy lost with a control bank (large = the concepts matter)",
    "random_bank_agreement": "mean share of test predictions unchanged by a control bank",
    "n_control_banks": "control banks refitted",
    "class_link_support": "how much closer each used concept's words are to the classes the "
                          "head links it with (cosine)",
    "class_link_agreement": "cosine of the head's class links with the words' (scale-free)",
    "shuffled_names_accuracy": "accuracy with shuffled class-concept associations",
    "intercept_share": "share of a decision carried by the bias, not by concepts",
    "deletion_auc": "accuracy area as top concepts are deleted (low = they matter)",
    "insertion_auc": "accuracy area as top concepts are inserted (high = they suffice)",
    "intervention_gain": "accuracy gained when every labelled concept is corrected",
    "top_unit_unused_rate": "share of decisions whose most active concept has no weight",
    "n_units_used": "units the head uses",
    "n": "test items audited",
}
#: faithfulness fields not shown (bookkeeping)
_FAITH_HIDDEN = {"warnings", "split", "claims", "findings", "required_claim",
                 "failed_controls"}
#: result fields of a metrics.json shown in the first table, in this order
RESULT_FIELDS: dict[str, str] = {
    "accuracy": "test accuracy",
    "method": "method",
    "nec": "NEC (effective concepts per class; - = dense)",
    "n_concepts": "concepts in the bottleneck",
    "mean_active_concepts": "concepts behind 90% of a decision",
    "concept_accuracy": "concept accuracy (ground truth)",
    "accuracy_zero_shot": "zero-shot accuracy",
    "accuracy_top_concept": "CMS top-concept accuracy",
    "accuracy_backbone_features": "probe accuracy on backbone features",
    "n_train": "train items", "n_val": "validation items (from train)", "n_test": "test items",
    "fit_seconds": "fit seconds", "seconds": "whole run seconds",
}
UNIT_FIDELITY_MIN = 0.5
N_RIGHT, N_WRONG = 6, 6


@dataclass
class SavedRun:
    """What one run folder holds, read from disk (nothing recomputed)."""

    path: Path
    metrics: dict[str, Any]
    model_meta: dict[str, Any] | None = None
    weights: np.ndarray | None = None  # C x K head weights per unit of raw activation
    encoder: dict[str, Any] | None = None
    explanations: list[dict[str, Any]] = field(default_factory=list)
    inputs: dict[int, Any] = field(default_factory=dict)  # test position -> PIL image or text
    input_note: str = ""
    shown_as: Path | None = None  # the folder the run becomes, when read from its staging folder

    @property
    def name(self) -> str:
        shown = self.shown_as or self.path
        return shown.name or str(shown)

    @property
    def shown_path(self) -> Path:
        """The run's folder as a reader names it (never a staging folder)."""
        return (self.shown_as or self.path).resolve()

    @property
    def faithfulness(self) -> dict[str, Any]:
        f = self.metrics.get("faithfulness")
        return f if isinstance(f, dict) else {}


# ------------------------------------------------------------------------------------------------
# reading run folders
# ------------------------------------------------------------------------------------------------


def read_run(folder: str | Path, *, with_inputs: bool = True) -> SavedRun:
    """Read a run folder; a clear error if it is not one."""
    path = Path(folder)
    if not path.is_dir():
        raise MissingFileError(f"{path}: no such folder (give a folder written by `conceptlab "
                                "fit` or `conceptlab demo`)")
    if not (path / "metrics.json").is_file():
        raise ConceptlabValueError(f"{path}: not a run folder (no metrics.json)")
    metrics = read_json(path / "metrics.json")
    if not isinstance(metrics, dict):
        raise ConceptlabValueError(f"{path / 'metrics.json'}: expected a JSON object")
    run = SavedRun(path=path, metrics=metrics)
    model_dir = path / "model"
    if (model_dir / "model.json").is_file():
        run.model_meta = read_json(model_dir / "model.json")
        run.weights = head_weights(model_dir)
    if (path / "encoder.json").is_file():
        run.encoder = read_json(path / "encoder.json")
    if (path / "explanations.json").is_file():
        exps = read_json(path / "explanations.json")
        run.explanations = [e for e in exps if isinstance(e, dict)] if isinstance(exps, list) \
            else []
    if with_inputs and run.explanations:
        wanted = [int(e["test_index"]) for e in run.explanations if "test_index" in e]
        run.inputs, run.input_note = read_test_inputs(metrics, wanted)
    return run


def head_weights(model_dir: Path) -> np.ndarray | None:
    """The saved concept model's class x concept weights (``ConceptModel.effective_head``,
    per unit of raw activation), or None when its head depends on the input (a CEM) or the
    model cannot be read (the page then says so in its vocabulary table: nothing used)."""
    from conceptlab.bottleneck.concept_model import load_concept_model
    from conceptlab.errors import ConceptlabError

    if not (model_dir / "model.safetensors").is_file():
        return None
    try:
        head = load_concept_model(model_dir).effective_head()
    except ConceptlabError:
        return None
    return None if head is None else np.asarray(head[0], dtype=np.float64)


def rebuild_test_split(metrics: Mapping[str, Any]) -> Any:
    """The run's test split, rebuilt from the recorded spec (``runs.rebuild_splits``) and
    checked by fingerprint; InputError (with the reason) when it cannot be rebuilt exactly."""
    from conceptlab.runs import rebuild_splits

    config = metrics.get("config")
    recorded = (metrics.get("splits") or {}).get("fingerprints", {}).get("test")
    if not isinstance(config, dict) or not recorded:
        raise ConceptlabValueError("the run records no data config or test fingerprint")
    return rebuild_splits(config, metrics.get("splits"), check=("test",),
                          where="the run's data").test


def read_test_inputs(metrics: Mapping[str, Any], positions: Sequence[int]
                     ) -> tuple[dict[int, Any], str]:
    """``{position: input}`` for the given test positions, and a note when not available."""
    try:
        test = rebuild_test_split(metrics)
        return {i: test[i] for i in positions if 0 <= i < len(test)}, ""
    except Exception as err:  # any failure: show decisions without inputs, say why
        return {}, f"inputs not shown: {str(err).splitlines()[0] if str(err) else err!r}"


# ------------------------------------------------------------------------------------------------
# what the page says
# ------------------------------------------------------------------------------------------------


def trust_warnings(metrics: Mapping[str, Any]) -> list[str]:
    """Warnings for the top of the page when the audit withholds trust (``trusted`` false, or
    an old record's low unit fidelity), plus the record's own warnings (one per claim that
    failed or could not be decided)."""
    f = metrics.get("faithfulness")
    if not isinstance(f, Mapping):
        return []
    out: list[str] = []
    if f.get("trusted") is False:
        out.append("the audit of this model's concepts failed (trusted = no): read its "
                   "explanations with the warnings below")
    fid = f.get("unit_fidelity_median")
    if "claims" not in f and isinstance(fid, int | float) and fid < UNIT_FIDELITY_MIN:
        out.append(f"median unit fidelity {fid:.2f} < {UNIT_FIDELITY_MIN}: the concept units "
                   "do not track their concepts' encoder scores")
    for w in f.get("warnings") or []:
        if str(w) not in out:
            out.append(str(w))
    return out


def claim_badges(faithfulness: Mapping[str, Any]) -> list[Card]:
    """One headline badge per claim of the audit profile: its status, marked when it fails
    or is undecided."""
    return [Card(c["label"], c["status"], bad=c["status"] in ("fail", "undecided"))
            for c in claim_summary(faithfulness)]


def profile_rows(faithfulness: Mapping[str, Any]) -> list[list[Any]]:
    """``[question, status, measurement]`` per claim, in the audit's order."""
    return [[c["question"], c["status"], c["measurement"]]
            for c in claim_summary(faithfulness)]


def _nec(metrics: Mapping[str, Any]) -> Any:
    return metrics.get("nec")


def headline_cards(run: SavedRun) -> list[Card]:
    """The numbers a reader wants first: accuracy, sparsity, and the faithfulness checks."""
    m, f = run.metrics, run.faithfulness
    cards = []
    if isinstance(m.get("accuracy"), int | float):
        cards.append(Card("test accuracy", float(m["accuracy"])))
    if m.get("command") in ("fit", "demo"):
        cards.append(Card("NEC", "dense" if m.get("nec") is None else m["nec"]))
    if isinstance(m.get("mean_active_concepts"), int | float):
        cards.append(Card("concepts behind 90% of a decision", m["mean_active_concepts"]))
    names = (run.model_meta or {}).get("concept_names") or []
    if names:
        used = "" if run.weights is None else \
            f" ({int((np.abs(run.weights).sum(0) > 0).sum())} used)"
        cards.append(Card(f"concepts{used}", len(names)))
    if "trusted" in f:
        cards.append(Card("audit verdict", "trusted" if f["trusted"] else "NOT trusted",
                          bad=not f["trusted"]))
    badges = claim_badges(f)
    if badges:
        return cards + badges
    fid = f.get("unit_fidelity_median")  # a record from before the profile
    if isinstance(fid, int | float):
        cards.append(Card("unit fidelity (median)", float(fid), bad=fid < UNIT_FIDELITY_MIN))
    return cards


def result_rows(metrics: Mapping[str, Any]) -> list[list[Any]]:
    """``[label, value]`` rows of the run's results."""
    return [[label, metrics[k]] for k, label in RESULT_FIELDS.items()
            if k in metrics and not isinstance(metrics[k], dict | list)]


def faithfulness_rows(metrics: Mapping[str, Any]) -> list[list[Any]]:
    """``[check, value, what it says]`` rows of every faithfulness field present."""
    f = metrics.get("faithfulness")
    if not isinstance(f, Mapping):
        return []
    rows: list[list[Any]] = [[k, f[k], label] for k, label in FAITHFULNESS_FIELDS.items()
                             if k in f]
    rows += [[k, v, ""] for k, v in f.items()
             if k not in FAITHFULNESS_FIELDS and k not in _FAITH_HIDDEN
             and isinstance(v, int | float | str | bool)]
    return rows


def _comparison_table(rows: Sequence[Mapping[str, Any]]) -> Table:
    faith = [k for k in FAITHFULNESS_FIELDS
             if any(isinstance(r.get("faithfulness"), Mapping) and k in r["faithfulness"]
                    for r in rows)]
    table_rows = []
    for r in rows:
        nec: Any = "-"
        if "nec_requested" in r:
            nec = "dense" if r["nec_requested"] is None else r["nec_requested"]
        raw = r.get("faithfulness")
        f: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
        table_rows.append([r.get("method", "?"), nec, r.get("accuracy"),
                           r.get("mean_active_concepts"), r.get("fit_seconds"),
                           *[f.get(k) for k in faith]])
    return Table(["method", "NEC", "test accuracy", "active concepts", "fit seconds", *faith],
                 table_rows)


def _decision_examples(run: SavedRun, n_right: int = N_RIGHT, n_wrong: int = N_WRONG,
                       top: int = 8) -> list[Example]:
    right = [e for e in run.explanations if e.get("prediction") == e.get("true_class")]
    wrong = [e for e in run.explanations if e.get("prediction") != e.get("true_class")]
    out = []
    for exp in wrong[:n_wrong] + right[:n_right]:
        i = exp.get("test_index")
        item = run.inputs.get(int(i)) if i is not None else None
        thumb, text = None, None
        if isinstance(item, str):
            text = item if len(item) <= 600 else item[:599] + "…"
        elif item is not None:
            thumb = thumbnail_png(item)
        correct = None if "true_class" not in exp else exp["prediction"] == exp["true_class"]
        prob = exp.get("probability")
        title = f"test #{i}: predicted {exp.get('prediction')}" + \
            (f" (p = {prob:.2f})" if isinstance(prob, float) else "") + \
            (f", true {exp['true_class']}" if "true_class" in exp else "")
        fig = explanation_figure(exp, top=top, title=" ", width=5.2)
        out.append(Example(title=title, correct=correct, thumbnail=thumb, text=text,
                           chart=png_bytes(fig, dpi=90)))
    return out


def removal_reason(dropped: Mapping[str, Any], meta: Mapping[str, Any]) -> tuple[str, str]:
    """``(filter, why)`` of one concept the model's unit selection removed, from what the saved
    model recorded: the objective's own selection score, the grounding cutoff on validation
    fidelity (unit k's correlation with concept k's score), or an explicit filter/reason."""
    if dropped.get("filter"):
        return str(dropped["filter"]), str(dropped.get("reason", ""))
    training = meta.get("training") if isinstance(meta.get("training"), Mapping) else {}
    rule = str(((training or {}).get("unit_selection") or {}).get("rule") or "")
    cutoff = ((training or {}).get("grounding") or {}).get("cutoff")
    fid, score = dropped.get("val_fidelity"), dropped.get("objective_score")
    if isinstance(score, int | float):
        objective = rule.split(";")[0].strip() or "the objective's unit selection"
        return (f"{meta.get('method', 'objective')} unit selection",
                f"validation score {score:.3f} fails {objective}")
    if isinstance(fid, int | float):
        why = f"validation correlation with the concept's score {fid:.3f}" + \
            (f" < cutoff {cutoff:g}" if isinstance(cutoff, int | float) else "")
        return "grounding cutoff (unit k must track concept k)", why
    return "unit selection", rule or "recorded without a reason (a model saved before reasons "\
        "were kept)"


def _vocabulary_sections(run: SavedRun) -> list[Section]:
    meta = run.model_meta or {}
    names = list(meta.get("concept_names") or [])
    raw_concepts = run.metrics.get("concepts")
    concepts: Mapping[str, Any] = raw_concepts if isinstance(raw_concepts, Mapping) else {}
    removed: list[list[Any]] = []
    for d in meta.get("dropped_concepts") or []:
        if "cos3_val" in d:
            cutoff = (meta.get("hyper_parameters") or {}).get("objective", {}).get("cutoff")
            why = f"validation cos^3 similarity {d['cos3_val']:.3f}" + \
                (f" < cutoff {cutoff:g}" if isinstance(cutoff, int | float) else "")
            removed.append([d.get("concept"), "cos3 (Label-free CBM, Sec. 3.3)", why])
        else:
            removed.append([d.get("concept"), *removal_reason(d, meta)])
    raw_filters = concepts.get("filters")
    filters: Mapping[str, Any] | None = raw_filters if isinstance(raw_filters, Mapping) \
        else None
    for step in (filters or {}).get("steps", []):
        for r in step.get("removed", []):
            removed.append([r.get("concept"), r.get("filter", step.get("filter")),
                            r.get("reason", "")])
    if not names and not removed:
        return []
    used = set()
    if run.weights is not None and run.weights.shape[1] == len(names):
        used = {names[k] for k in np.flatnonzero(np.abs(run.weights).sum(0) > 0)}
    classes = ((meta.get("bank") or {}).get("metadata") or {}).get("classes") or []
    rows = []
    for k, n in enumerate(names):
        cls = classes[k] if k < len(classes) else None
        cls_txt = cls if isinstance(cls, str) else ", ".join(cls or []) or "-"
        rows.append([n, cls_txt, "yes" if n in used else "no"])
    text = (f"{len(names)} concepts in the bottleneck ({concepts.get('origin', 'unknown origin')}"
            f"), {len(used)} used by the head.")
    warn = [str(w) for w in concepts.get("warnings") or []]
    if removed:
        text += f" {len(removed)} concept(s) were removed (next table)."
    out = [Section("Vocabulary", text=text, warnings=warn,
                   table=Table(["concept", "class association", "used by the head"], rows))]
    if removed:
        out.append(Section("Removed concepts", text="The filter each removed concept failed.",
                           table=Table(["concept", "filter", "why"], removed)))
    return out


def provenance(run: SavedRun) -> dict[str, Any]:
    """The run record a person needs to reproduce it, as a flat-ish mapping."""
    m = run.metrics
    splits = m.get("splits") or {}
    meta = run.model_meta or {}
    try:
        version = importlib.metadata.version("conceptlab")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    rec: dict[str, Any] = {
        "command": m.get("command"), "data": m.get("data"),
        "dataset": splits.get("dataset"),
        "encoder": m.get("encoder"), "encoder fingerprint": m.get("encoder_fingerprint"),
        "encoder options": (m.get("config") or {}).get("encoder_options"),
        "seed": m.get("seed"),
        "split sizes": splits.get("sizes"), "validation": splits.get("val_source"),
        "split fingerprints": splits.get("fingerprints"),
        "encoding": m.get("encoding"),
        "concepts": {k: v for k, v in (m.get("concepts") or {}).items() if k != "filters"},
        "hyper-parameters": m.get("hyper_parameters") or meta.get("hyper_parameters"),
        "conceptlab version": m.get("version") or meta.get("conceptlab_version") or
        f"not recorded by the run (this report: {version})",
        "torch version": meta.get("torch_version"),
        "folder": str(run.shown_path),
    }
    return {k: v for k, v in rec.items() if v not in (None, {}, [])}


def no_intervention_note(metrics: Mapping[str, Any]) -> str:
    """Why a CBM run has no intervention curve (said on the page instead of a missing plot)."""
    origin = (metrics.get("concepts") or {}).get("origin") if isinstance(
        metrics.get("concepts"), Mapping) else None
    if origin != "ground-truth":
        return (f"No intervention curve: it sets concepts to their true values, and "
                f"{metrics.get('data', 'this data')!r} has no ground-truth concept labels "
                f"(concepts here: {origin or 'not recorded'}). Data with them: robots-text, "
                "idsprites, cub:PATH (with --concepts auto).")
    return ("No intervention curve: this model's CBL reads backbone features, and the curve "
            "is measured on embedding-fed models only.")


def xai_section(record: Any, prefix: str = "") -> Section | None:
    """The concept existence and location metrics (``faithfulness.xai_metrics``) of a record
    ``{"models": {name: {metric: value or [mean, half-width]}}, "chance": {...}}`` as a figure
    and a table; None when the run has none."""
    if not isinstance(record, Mapping) or not isinstance(record.get("models"), Mapping) or \
            not record["models"]:
        return None
    models: Mapping[str, Mapping[str, Any]] = record["models"]
    keys = [k for k in ("cgim1", "cgim2", "cgim3", *XAI_FIGURE_METRICS)
            if any(k in v for v in models.values())]
    rows = [[name, *(fmt_interval(v.get(k)) for k in keys)] for name, v in models.items()]
    chance = record.get("chance") if isinstance(record.get("chance"), Mapping) else None
    text = ("Aysel et al. 2025 (arXiv:2501.19271). CGIM: cosine, per concept, of the head's "
            "weights (1), the mean activation of correct decisions (2) or both (3) with how "
            "often the concept occurs in each class (ground truth). CEM@l: share of the l "
            "concepts most important for the predicted class that are present in the image. "
            "CLM@l, α: share that also lie inside the α/12 most activated part of their concept "
            "activation map. Black ticks: chance (a random ranking; a random region).")
    if record.get("note"):
        text += " " + str(record["note"])
    return Section(f"{prefix}Concept existence and location", text=text,
                   table=Table(["model", *[k.upper() for k in keys]], rows),
                   figures=[Figure(png=png_bytes(xai_metrics_figure(models, chance)))])


def fmt_interval(value: Any) -> Any:
    """``[mean, half]`` as ``0.912 ± 0.014``; a plain value as itself."""
    if isinstance(value, list | tuple) and len(value) == 2:
        return f"{fmt_cell(float(value[0]))} ± {fmt_cell(float(value[1]))}"
    return value


def run_sections(run: SavedRun, prefix: str = "") -> list[Section]:
    """The sections of one run's page (headings prefixed by ``prefix`` on a comparison page)."""
    m = run.metrics
    faith = faithfulness_rows(m)
    sections = [Section(f"{prefix}Result", table=Table(["metric", "value"], result_rows(m)),
                        half=True),
                Section(f"{prefix}Faithfulness: do the concepts mean their names?",
                        table=Table(["check", "value", "what it says"], faith, css="notes") if faith
                        else None, half=True,
                        text="" if faith else "No faithfulness record in this run's "
                                              "metrics.json: the explanations are unchecked.")]
    profile = profile_rows(m.get("faithfulness") or {})
    if profile:
        findings = (m.get("faithfulness") or {}).get("findings") or []
        sections.insert(0, Section(
            f"{prefix}Audit profile: each claim, its measurement and its status",
            table=Table(["claim", "status", "measurement"], profile, css="notes"),
            text=" ".join(f"Finding: {f}" for f in findings)))
    if m.get("note"):
        sections.insert(0, Section(f"{prefix}About this run", text=str(m["note"])))
    if isinstance(m.get("rows"), list) and m["rows"]:
        sections.append(Section(f"{prefix}Every method on the same cached embeddings",
                                table=_comparison_table(m["rows"])))
    for extra in m.get("extra_sections") or []:  # tables a workflow adds (the demo's shapes)
        if isinstance(extra, dict) and extra.get("columns") and extra.get("rows"):
            sections.append(Section(f"{prefix}{extra.get('heading', '')}",
                                    text=str(extra.get("text", "")),
                                    table=Table(list(extra["columns"]), list(extra["rows"]))))
    sections += figure_sections(run.path, m, prefix)  # what cab, lancet, shift drew
    meta = run.model_meta or {}
    if run.weights is not None and meta.get("class_names") and meta.get("concept_names"):
        nec = meta.get("hyper_parameters", {}).get("nec")
        title = f"{meta.get('method', '?')} CBM head" + \
            (f", NEC {nec:g}" if isinstance(nec, int | float) else ", dense") + \
            " (weights per unit of activation)"
        fig = weight_heatmap_figure(run.weights, meta["class_names"], meta["concept_names"],
                                    title=title)
        sections.append(Section(f"{prefix}Class x concept weights",
                                figures=[Figure(png=png_bytes(fig))]))
    if run.explanations:
        n_wrong = sum(e.get("prediction") != e.get("true_class") for e in run.explanations)
        text = (f"{len(run.explanations)} explained test decisions saved with the run "
                f"({n_wrong} wrong); wrong ones first. Bars: activation x weight for the "
                f"predicted class (blue for, red against).")
        if run.input_note:
            text += " " + run.input_note
        sections.append(Section(f"{prefix}Concepts behind single decisions", text=text,
                                examples=_decision_examples(run)))
    elif run.model_meta is not None:
        sections.append(Section(f"{prefix}Concepts behind single decisions",
                                text="No explained decisions: this run folder has no "
                                     "explanations.json (`fit` writes it; `conceptlab explain "
                                     "RUN --input FILE` explains new inputs)."))
    curve = m.get("intervention_curve")
    if isinstance(curve, list) and curve:
        fig = intervention_figure({str(m.get("method", "")): curve})
        sections.append(Section(f"{prefix}Test-time intervention",
                                text="Accuracy as the true value of more concepts is set "
                                     "(ground-truth concepts).",
                                figures=[Figure(png=png_bytes(fig))]))
    elif run.model_meta is not None:
        sections.append(Section(f"{prefix}Test-time intervention", text=no_intervention_note(m)))
    xai = xai_section(m.get("xai_metrics"), prefix)
    if xai is not None:
        sections.append(xai)
    for vocab in _vocabulary_sections(run):
        vocab.heading = prefix + vocab.heading
        sections.append(vocab)
    sections.append(Section(f"{prefix}Provenance", data=provenance(run)))
    return sections


def comparison_sections(runs: Sequence[SavedRun]) -> list[Section]:
    """Side-by-side table of several runs and an accuracy vs NEC plot."""
    faith = [k for k in FAITHFULNESS_FIELDS if any(k in r.faithfulness for r in runs)]
    rows = []
    points = []
    for r in runs:
        m = r.metrics
        nec = m.get("nec")
        rows.append([r.name, m.get("command"), m.get("method"), m.get("data"),
                     "dense" if nec is None and m.get("command") in ("fit", "demo") else nec,
                     m.get("accuracy"), m.get("mean_active_concepts"), m.get("n_concepts"),
                     *[r.faithfulness.get(k) for k in faith]])
        if isinstance(m.get("accuracy"), int | float) and m.get("command") in ("fit", "demo"):
            points.append({"label": r.name, "accuracy": m["accuracy"], "nec": nec,
                           "n_concepts": m.get("n_concepts") or
                           len((r.model_meta or {}).get("concept_names") or [])})
    table = Table(["run", "command", "method", "data", "encoder", "NEC", "test accuracy",
                   "active concepts", "concepts", *faith],
                  [[*row[:4], r.metrics.get("encoder"), *row[4:]]
                   for row, r in zip(rows, runs, strict=True)])
    figures = [Figure(png=png_bytes(accuracy_nec_figure(points)))] if points else []
    return [Section("Runs side by side", table=table, figures=figures,
                    warnings=comparability_warnings(runs))]


def comparability_warnings(runs: Sequence[SavedRun]) -> list[str]:
    """Warnings when runs shown side by side do not share their data, their test split or their
    encoder: their accuracies are then not comparable, whatever one chart suggests."""
    out = []
    for key, what in (("data", "data"), ("encoder", "encoder")):
        values = {str(r.metrics.get(key)) for r in runs}
        if len(values) > 1:
            out.append(f"these runs do not share their {what} ({', '.join(sorted(values))}): "
                       "their numbers are not comparable with each other")
    tests = {str(((r.metrics.get("splits") or {}).get("fingerprints") or {}).get("test"))
             for r in runs if r.metrics.get("splits")}
    if len(tests) > 1 and not out:
        out.append("these runs were tested on different test items (test split fingerprints "
                   "differ): their accuracies are not comparable")
    return out


def build_report(folders: Sequence[str | Path], out: str | Path | None = None, *,
                 shown_as: Sequence[str | Path | None] | None = None) -> Path:
    """Write one self-contained HTML report for one or several run folders.

    ``out`` defaults to ``FOLDER/report.html`` for one folder and is required for several.
    ``shown_as``: the folder each run becomes, when it is read from its staging folder
    (``runs.open_run``), so the page names the run and not the staging folder.
    """
    if not folders:
        raise ConceptlabValueError("give at least one run folder")
    if out is None and len(folders) > 1:
        raise ConceptlabValueError("several run folders: give --out FILE for the comparison report")
    if out is not None:  # a bad --out fails before the runs are read and drawn
        if Path(out).suffix.lower() not in (".html", ".htm"):
            raise ConceptlabValueError(f"{out}: the report is an .html file")
        check_output_file(out)
    runs = [read_run(f) for f in folders]
    for r, shown in zip(runs, shown_as or [None] * len(runs), strict=True):
        r.shown_as = Path(shown) if shown is not None else None
    target = Path(out) if out is not None else runs[0].path / "report.html"
    if target.suffix.lower() not in (".html", ".htm"):
        raise ConceptlabValueError(f"{target}: the report is an .html file")
    warnings: list[str] = []
    for r in runs:
        warnings += [(f"{r.name}: {w}" if len(runs) > 1 else w) for w in trust_warnings(r.metrics)]
    if len(runs) == 1:
        r = runs[0]
        m = r.metrics
        title = f"conceptlab {m.get('command', 'run')}: {m.get('method', '')} on " \
                f"{m.get('data', '?')}".replace(":  on", ": on")
        sub = (f"{r.shown_path} · seed {m.get('seed', '?')} · "
               f"{m.get('n_train', '?')} train / {m.get('n_val', '?')} val / "
               f"{m.get('n_test', '?')} test items")
        return write_report(target, title, run_sections(r), subtitle=sub, warnings=warnings,
                            cards=headline_cards(r))
    sections = comparison_sections(runs)
    for r in runs:
        sections += run_sections(r, prefix=f"{r.name}: ")
    return write_report(target, f"conceptlab: {len(runs)} runs compared", sections,
                        subtitle=", ".join(str(r.shown_as or r.path) for r in runs),
                        warnings=warnings)


def pick_decisions(y_true: np.ndarray, y_pred: np.ndarray, n_right: int | None = None,
                   n_wrong: int = N_WRONG) -> list[int]:
    """Test positions to explain in a run: the first right decision of each class (at most
    ``n_right``; None = every class) and the first wrong decision of each true class (at most
    ``n_wrong``), so a report shows both. Deterministic (no random draw)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    right, wrong = [], []
    for c in np.unique(y_true):
        ok = np.flatnonzero((y_true == c) & (y_pred == c))
        bad = np.flatnonzero((y_true == c) & (y_pred != c))
        if len(ok):
            right.append(int(ok[0]))
        if len(bad):
            wrong.append(int(bad[0]))
    right = right if n_right is None else right[:n_right]
    return sorted(right + wrong[:n_wrong])
