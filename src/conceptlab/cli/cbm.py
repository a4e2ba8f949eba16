"""Concept bottleneck models: ``fit``, ``cms``, ``predict``, ``explain``, ``intervene``,
``audit`` and ``export`` (each parses, calls one workflow function, prints its answer)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from conceptlab.cli.common import (
    TEMPLATES_HELP,
    CacheOpt,
    DataOpt,
    DataSetOpt,
    EncoderOpt,
    EncoderSetOpt,
    JsonOpt,
    NTestOpt,
    NTrainOpt,
    NValOpt,
    OutOpt,
    RunDirArg,
    SeedOpt,
    answer,
    call,
    console,
    parse_options,
    print_json,
    print_metrics,
    print_table,
    run_config,
    stdout,
    warn,
    wrote,
)
from conceptlab.errors import OptionError
from conceptlab.workflows import cbm

ConceptsOpt = Annotated[str, typer.Option(
    "--concepts", help="auto | a vocabulary file | a built-in name (fashion-mnist, cifar10, ...)")]
MethodOpt = Annotated[str, typer.Option("--method", help=" | ".join(cbm.methods()))]
NecOpt = Annotated[float | None, typer.Option(
    "--nec", help="effective concepts per class of the final layer (default: dense)")]
InputOpt = Annotated[list[str] | None, typer.Option("--input", help="image file (or text file)")]
TextOpt = Annotated[list[str] | None, typer.Option("--text", help="a text to classify")]
HparamOpt = Annotated[list[str] | None, typer.Option(
    "--set", help="model setting KEY=VALUE: an objective, cbl., train. or head. field "
    "(e.g. tau_min=0.3, max_epochs=30, cbl.input=embedding, head.refit=false)")]

FIT_KEYS = ["accuracy", "method", "nec", "n_concepts", "mean_active_concepts",
            "concept_accuracy", "fit_seconds", "n_train", "n_test"]


def fit(data: DataOpt = "fashion-mnist", encoder: EncoderOpt = None,
        out: OutOpt = Path("runs/fit"), concepts: ConceptsOpt = "auto",
        method: MethodOpt = "gumbel", nec: NecOpt = None,
        n_train: NTrainOpt = None, n_val: NValOpt = None, n_test: NTestOpt = None,
        seed: SeedOpt = 0, cache: CacheOpt = None, encoder_option: EncoderSetOpt = None,
        data_option: DataSetOpt = None, set_: HparamOpt = None,
        as_json: JsonOpt = False) -> None:
    """Fit a concept model (CBM, DN-CBM, CEM) on cached embeddings and save it to OUT/model."""
    from conceptlab.workflows.report import profile_rows

    cfg = call(lambda: run_config(data, encoder, n_train, n_val, n_test, seed, cache,
                                  encoder_option, data_option))
    hparams = call(lambda: parse_options(set_, "--set"))
    metrics = call(lambda: cbm.run_fit(cfg, out, concepts=concepts, method=method, nec=nec,
                                       hparams=hparams))
    faith = metrics.get("faithfulness", {})

    def table() -> None:
        print_metrics(metrics, FIT_KEYS)
        if faith.get("claims"):
            print_table("audit", ["claim", "status", "measurement"], profile_rows(faith))

    answer(metrics, as_json, table, out)
    warn(faith.get("warnings", []))


def cms(data: DataOpt = "fashion-mnist", encoder: EncoderOpt = None,
        out: OutOpt = Path("runs/cms"), concepts: ConceptsOpt = "auto",
        templates: Annotated[str, typer.Option(
            "--templates", help=TEMPLATES_HELP)] = "plain",
        rule: Annotated[str, typer.Option(
            "--rule", help="inductive | ref (the reference notebook's row-normalised form)")
        ] = "inductive",
        n_test: NTestOpt = None, seed: SeedOpt = 0, cache: CacheOpt = None,
        encoder_option: EncoderSetOpt = None, data_option: DataSetOpt = None,
        as_json: JsonOpt = False) -> None:
    """Concept Matrix Search (training-free, both rules) beside zero-shot."""
    cfg = call(lambda: run_config(data, encoder, None, None, n_test, seed, cache,
                                  encoder_option, data_option))
    metrics = call(lambda: cbm.run_cms(cfg, out, concepts=concepts, templates=templates,
                                       rule=rule))
    answer(metrics, as_json, lambda: print_metrics(
        metrics, ["accuracy", "accuracy_top_concept", "accuracy_zero_shot", "n_concepts",
                  "n_test"]), out)


def predict(model_dir: RunDirArg, input: InputOpt = None, text: TextOpt = None,
            as_json: JsonOpt = False) -> None:
    """Predict classes for new inputs with a saved model."""
    rows = call(lambda: cbm.predict_saved(model_dir, input or [], text or []))
    answer(rows, as_json, lambda: print_table(
        None, ["input", "prediction", "probability"],
        [[r["input"], r["prediction"], r["probability"]] for r in rows]))


def explain(model_dir: RunDirArg, input: InputOpt = None, text: TextOpt = None,
            top: Annotated[int, typer.Option("--top", min=1, max=32,
                                             help="concepts to show (<= 32)")] = 10,
            as_json: JsonOpt = False,
            png: Annotated[Path | None, typer.Option("--png", help="folder for bar charts")] = None
            ) -> None:
    """The concepts behind each decision (activation x weight), largest first."""
    rows = call(lambda: cbm.explain_saved(model_dir, input or [], text or [], top=top,
                                          png_dir=png))
    if rows and rows[0].get("warnings"):
        warn(rows[0]["warnings"])

    def tables() -> None:
        for row in rows:
            table = Table(title=escape(f"{row['input']}: {row['prediction']} "
                                       f"(p={row['probability']:.2f})"))
            for col in ("concept", "activation", "weight", "contribution"):
                table.add_column(col, justify="left" if col == "concept" else "right")
            for c in row["concepts"]:
                table.add_row(escape(c["concept"]), f"{c['activation']:.3f}",
                              f"{c['weight']:.3f}", f"{c['contribution']:+.3f}")
            stdout.print(table)

    answer(rows, as_json, tables)


def _settings(pairs: list[str]) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.rpartition("=")
        if not sep or not name:
            raise OptionError(f"--set: expected CONCEPT=VALUE, got {pair!r}")
        settings[name] = value
    return settings


def intervene(model_dir: RunDirArg,
              set_: Annotated[list[str], typer.Option(
                  "--set", help="CONCEPT=VALUE (a number, 'present' or 'absent')")],
              input: InputOpt = None, text: TextOpt = None, as_json: JsonOpt = False) -> None:
    """Set named concepts to chosen values and predict again (before / after)."""
    settings = call(lambda: _settings(set_))
    rows = call(lambda: cbm.intervene_saved(model_dir, input or [], settings, text or []))

    def table() -> None:
        columns = ["input", "before", "after"]
        extra = [k for k in ("probability_before", "probability_after") if rows and k in rows[0]]
        print_table(None, columns + [k.replace("_", " ") for k in extra],
                    [[r["input"], r["before"], r["after"], *[r[k] for k in extra]]
                     for r in rows])

    answer(rows, as_json, table)


def audit(run_dir: RunDirArg,
          concept_examples: Annotated[Path | None, typer.Option(
              "--concept-examples", help="folder of concept example sets: NAME.txt or NAME/ per "
              "concept, plus random.txt or random/ (counter-examples)")] = None,
          as_json: JsonOpt = False) -> None:
    """Audit a saved run: each claim about its concepts with its measurement, control and
    status (pass / fail / undecided / not measured), and the verdict."""
    from conceptlab.workflows.audit import run_audit
    from conceptlab.workflows.report import profile_rows

    record = call(lambda: run_audit(run_dir, concept_examples=concept_examples))
    if as_json:
        print_json(record)
        return
    colours = {"pass": "green", "fail": "red", "undecided": "yellow", "not measured": "dim"}
    table = Table(show_header=True, header_style="bold")
    for col in ("claim", "status", "measurement"):
        table.add_column(col)
    for question, status, measurement in profile_rows(record):
        table.add_row(escape(question), f"[{colours[status]}]{status}[/]", escape(measurement))
    stdout.print(table)
    verdict = "trusted" if record.get("trusted") else "NOT trusted"
    stdout.print(f"verdict: {verdict} ({record.get('n')} held-out items)")
    for f in record.get("findings", []):
        console.print(f"[cyan]finding:[/cyan] {escape(f)}", soft_wrap=True)
    warn(list(record.get("warnings", [])))


def export(run_dir: RunDirArg,
           what: Annotated[str, typer.Option(
               "--what", help="activations (per test item) | explanations | audit | metrics "
               "(one row of the run's scalars) | model (a folder: plain PyTorch module + "
               "safetensors, loads without conceptlab)")] = "activations",
           fmt: Annotated[str, typer.Option(
               "--format", help="csv | jsonl (JSON Lines) | parquet (needs pyarrow)")] = "csv",
           out: Annotated[Path, typer.Option("--out", help="file to write")] = Path("table.csv"),
           ) -> None:
    """Write a table a dataframe reads (per-item concept activations of the test split with
    labels and predictions, the saved explanations, the faithfulness audit, the run's
    metrics), or the fitted model as files that load without conceptlab."""
    from conceptlab.workflows.export import check_request, export_run

    call(lambda: check_request(what, fmt))
    path = call(lambda: export_run(run_dir, what, fmt, out))  # type: ignore[arg-type]
    wrote(path)


def register(app: typer.Typer) -> None:
    """Add the concept-model commands."""
    app.command()(fit)
    app.command()(cms)
    app.command()(predict)
    app.command()(explain)
    app.command()(intervene)
    app.command()(audit)
    app.command()(export)
