"""The command line: a thin layer that parses options, calls conceptlab.workflows, prints.

Every command has a Python twin (``conceptlab.workflows.run_*``, ``workflows.cbm.*``) and
writes ``OUT/metrics.json``; ``python -m conceptlab`` runs it too.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from conceptlab import cli_report
from conceptlab import workflows as runs
from conceptlab.cli_align import align as align_command
from conceptlab.errors import ConceptlabError, OptionError
from conceptlab.workflows import cbm
from conceptlab.workflows import demo as demo_mod

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Concept-based interpretability: concept bottleneck models and more.")
console = Console(stderr=True)

DataOpt = Annotated[str, typer.Option("--data", help="fashion-mnist | folder:PATH | csv:PATH | "
                                      "jsonl:PATH | cifar10:PATH | cifar100:PATH | cub:PATH | "
                                      "imagenet-val:PATH | places365:PATH | robots-text")]
EncoderOpt = Annotated[str | None, typer.Option(
    "--encoder", help="conse (images, default) | minilm (texts, default) | efficientnet | "
    "st:NAME | hf:NAME_OR_PATH | openclip:ARCH/TAG")]
OutOpt = Annotated[Path, typer.Option("--out", help="folder for metrics.json and artefacts")]
NTrainOpt = Annotated[int | None, typer.Option(
    "--n-train", help="train items to encode (stratified subsample, recorded); default all")]
NValOpt = Annotated[int | None, typer.Option("--n-val", help="validation items (from train)")]
NTestOpt = Annotated[int | None, typer.Option(
    "--n-test", help="test items; default the full official test split")]
SeedOpt = Annotated[int, typer.Option("--seed", help="seed for splits and training")]
CacheOpt = Annotated[Path | None, typer.Option(
    "--cache", help="activation cache folder (default $CONCEPTLAB_CACHE or ~/.cache/conceptlab)")]
SetOpt = Annotated[list[str] | None, typer.Option(
    "--encoder-option", "-E", help="encoder option KEY=VALUE (e.g. k=20, image_size=160)")]
DataSetOpt = Annotated[list[str] | None, typer.Option(
    "--data-option", "-D", help="dataset option KEY=VALUE (e.g. invert=true)")]


def _parse_options(pairs: list[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise OptionError(f"expected KEY=VALUE, got {pair!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _config(data: str, encoder: str | None, n_train: int | None, n_val: int | None,
            n_test: int | None, seed: int, cache: Path | None, enc_opts: list[str] | None,
            data_opts: list[str] | None) -> runs.RunConfig:
    return runs.RunConfig(data=data, encoder=encoder, n_train=n_train, n_val=n_val,
                          n_test=n_test, seed=seed, cache_dir=str(cache) if cache else None,
                          encoder_options=_parse_options(enc_opts),
                          data_options=_parse_options(data_opts))


def _report(metrics: dict[str, Any], keys: list[str], out: Path | None) -> None:
    table = Table(show_header=True, header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in keys:
        if key in metrics:
            value = metrics[key]
            table.add_row(key, f"{value:.4f}" if isinstance(value, float) else escape(str(value)))
    console.print(table)
    if out is not None:
        console.print(f"wrote {escape(str(out / 'metrics.json'))}", soft_wrap=True)


#: what a user's input, options or environment can raise: one "error:" line, exit code 2.
#: ConceptlabError is the root of conceptlab's own errors; the rest are the built-in types
#: that library code (and numpy, PIL, safetensors) raise for bad input.
USER_ERRORS: tuple[type[Exception], ...] = (ConceptlabError, ValueError, KeyError,
                                            RuntimeError, OSError)

T = TypeVar("T")


def _warn(warnings: list[str]) -> None:
    for w in warnings:
        console.print(f"[yellow]warning:[/yellow] {escape(w)}", soft_wrap=True)


def _fail(err: Exception) -> NoReturn:
    # escape: a message holds paths and names, never markup ('[/x]' in a path would raise);
    # soft_wrap: no line breaks inside a long path. A KeyError prints without its quotes.
    text = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
    console.print(f"[red]error:[/red] {escape(text)}", soft_wrap=True)
    if os.environ.get("CONCEPTLAB_DEBUG"):
        raise err
    raise typer.Exit(code=2)


def _call(job: Callable[[], T]) -> T:
    """Run one command's job; any user error becomes one line on stderr and exit code 2."""
    try:
        return job()
    except USER_ERRORS as err:
        _fail(err)


@app.command()
def encode(data: DataOpt = "fashion-mnist", encoder: EncoderOpt = None,
           out: OutOpt = Path("runs/encode"),
           n_train: NTrainOpt = None, n_val: NValOpt = None, n_test: NTestOpt = None,
           seed: SeedOpt = 0, cache: CacheOpt = None, encoder_option: SetOpt = None,
           data_option: DataSetOpt = None,
           engine: Annotated[str, typer.Option(
               "--engine", help="local (this process) | ray (Ray Data pipeline)")] = "local",
           address: Annotated[str | None, typer.Option(
               "--address", help="Ray cluster address (default: start a local Ray)")] = None,
           engine_option: Annotated[list[str] | None, typer.Option(
               "--engine-option", help="ray engine option KEY=VALUE (num_cpus, num_gpus, "
               "concurrency, batch_size)")] = None) -> None:
    """Encode train/val/test into the activation cache (a second run reads it)."""
    cfg = _call(lambda: _config(data, encoder, n_train, n_val, n_test, seed, cache,
                                encoder_option, data_option))
    metrics = _call(lambda: runs.run_encode(cfg, out, engine=engine, address=address,
                                            engine_options=_parse_options(engine_option)))
    _report(metrics, ["encoder", "data", "dim", "seconds"], out)


@app.command()
def zeroshot(data: DataOpt = "fashion-mnist", encoder: EncoderOpt = None,
             out: OutOpt = Path("runs/zeroshot"), templates: Annotated[str, typer.Option(
                 "--templates", help="plain | photo | ensemble")] = "plain",
             n_test: NTestOpt = None, seed: SeedOpt = 0, cache: CacheOpt = None,
             encoder_option: SetOpt = None, data_option: DataSetOpt = None) -> None:
    """Zero-shot classification of the test split with class-name prompts."""
    cfg = _call(lambda: _config(data, encoder, None, None, n_test, seed, cache,
                                encoder_option, data_option))
    metrics = _call(lambda: runs.run_zeroshot(cfg, out, templates=templates))
    _report(metrics, ["accuracy", "n_test", "encoder", "data", "templates", "seconds"], out)


@app.command()
def probe(data: DataOpt = "fashion-mnist", encoder: EncoderOpt = None,
          out: OutOpt = Path("runs/probe"),
          n_train: NTrainOpt = None, n_val: NValOpt = None, n_test: NTestOpt = None,
          seed: SeedOpt = 0, cache: CacheOpt = None, encoder_option: SetOpt = None,
          data_option: DataSetOpt = None) -> None:
    """Linear probe on cached embeddings (and on backbone features, for ConSE)."""
    cfg = _call(lambda: _config(data, encoder, n_train, n_val, n_test, seed, cache,
                                encoder_option, data_option))
    metrics = _call(lambda: runs.run_probe(cfg, out))
    _report(metrics, ["accuracy", "accuracy_backbone_features", "n_train", "n_test", "encoder",
                      "data", "seconds"], out)


ConceptsOpt = Annotated[str, typer.Option(
    "--concepts", help="auto | a vocabulary file | a built-in name (fashion-mnist, cifar10, ...)")]
MethodOpt = Annotated[str, typer.Option(
    "--method", help=" | ".join(cbm.methods()))]
NecOpt = Annotated[float | None, typer.Option(
    "--nec", help="effective concepts per class of the final layer (default: dense)")]
InputOpt = Annotated[list[str] | None, typer.Option("--input", help="image file (or text file)")]
TextOpt = Annotated[list[str] | None, typer.Option("--text", help="a text to classify")]
HparamOpt = Annotated[list[str] | None, typer.Option(
    "--set", help="model setting KEY=VALUE: an objective, cbl., train. or head. field "
    "(e.g. tau_min=0.3, max_epochs=30, cbl.input=embedding, head.refit=false)")]


@app.command()
def fit(data: DataOpt = "fashion-mnist", encoder: EncoderOpt = None, out: OutOpt = Path("runs/fit"),
        concepts: ConceptsOpt = "auto", method: MethodOpt = "gumbel", nec: NecOpt = None,
        n_train: NTrainOpt = None, n_val: NValOpt = None, n_test: NTestOpt = None,
        seed: SeedOpt = 0, cache: CacheOpt = None, encoder_option: SetOpt = None,
        data_option: DataSetOpt = None, set_: HparamOpt = None) -> None:
    """Fit a concept bottleneck model on cached embeddings and save it to OUT/model."""
    cfg = _call(lambda: _config(data, encoder, n_train, n_val, n_test, seed, cache,
                                encoder_option, data_option))
    hparams = _call(lambda: _parse_options(set_))
    metrics = _call(lambda: cbm.run_fit(cfg, out, concepts=concepts, method=method, nec=nec,
                                        hparams=hparams))
    _report(metrics, ["accuracy", "method", "nec", "n_concepts", "mean_active_concepts",
                      "concept_accuracy", "fit_seconds", "n_train", "n_test"], out)
    faith = metrics.get("faithfulness", {})
    _report(faith, ["unit_fidelity_median", "name_match_rate", "random_bank_accuracy",
                    "random_bank_gap", "random_bank_agreement", "shuffled_names_accuracy",
                    "intercept_share", "deletion_auc", "random_deletion_auc"], None)
    _warn(faith.get("warnings", []))


@app.command("cms")
def cms_command(data: DataOpt = "fashion-mnist", encoder: EncoderOpt = None,
                out: OutOpt = Path("runs/cms"), concepts: ConceptsOpt = "auto",
                templates: Annotated[str, typer.Option("--templates")] = "plain",
                rule: Annotated[str, typer.Option(
                    "--rule", help="inductive | ref (the reference notebook's row-normalised "
                    "form)")] = "inductive",
                n_test: NTestOpt = None, seed: SeedOpt = 0, cache: CacheOpt = None,
                encoder_option: SetOpt = None, data_option: DataSetOpt = None) -> None:
    """Concept Matrix Search (training-free, both rules) beside zero-shot."""
    cfg = _call(lambda: _config(data, encoder, None, None, n_test, seed, cache,
                                encoder_option, data_option))
    metrics = _call(lambda: cbm.run_cms(cfg, out, concepts=concepts, templates=templates,
                                        rule=rule))
    _report(metrics, ["accuracy", "accuracy_top_concept", "accuracy_zero_shot", "n_concepts",
                      "n_test"], out)


def _print_json(obj: Any) -> None:
    typer.echo(json.dumps(obj, indent=2, default=str))


@app.command()
def predict(model_dir: Annotated[Path, typer.Argument(help="folder written by `fit`")],
            input: InputOpt = None, text: TextOpt = None) -> None:
    """Predict classes for new inputs with a saved model."""
    rows = _call(lambda: cbm.predict_saved(model_dir, input or [], text or []))
    _print_json(rows)


@app.command()
def explain(model_dir: Annotated[Path, typer.Argument(help="folder written by `fit`")],
            input: InputOpt = None, text: TextOpt = None,
            top: Annotated[int, typer.Option("--top", help="concepts to show (<= 32)")] = 10,
            as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
            png: Annotated[Path | None, typer.Option("--png", help="folder for bar charts")] = None
            ) -> None:
    """The concepts behind each decision (activation x weight), largest first."""
    rows = _call(lambda: cbm.explain_saved(model_dir, input or [], text or [], top=top,
                                           png_dir=png))
    if rows and rows[0].get("warnings"):
        _warn(rows[0]["warnings"])
    if as_json:
        _print_json(rows)
        return
    for row in rows:
        table = Table(title=escape(f"{row['input']}: {row['prediction']} "
                                   f"(p={row['probability']:.2f})"))
        for col in ("concept", "activation", "weight", "contribution"):
            table.add_column(col, justify="left" if col == "concept" else "right")
        for c in row["concepts"]:
            table.add_row(escape(c["concept"]), f"{c['activation']:.3f}", f"{c['weight']:.3f}",
                          f"{c['contribution']:+.3f}")
        Console().print(table)


@app.command()
def intervene(model_dir: Annotated[Path, typer.Argument(help="folder written by `fit`")],
              set_: Annotated[list[str], typer.Option(
                  "--set", help="CONCEPT=VALUE (a number, 'high' or 'low')")],
              input: InputOpt = None, text: TextOpt = None) -> None:
    """Set named concepts to chosen values and predict again (before / after)."""
    settings: dict[str, Any] = {}
    for pair in set_:
        name, sep, value = pair.rpartition("=")
        if not sep or not name:
            _fail(OptionError(f"--set: expected CONCEPT=VALUE, got {pair!r}"))
        settings[name] = value
    rows = _call(lambda: cbm.intervene_saved(model_dir, input or [], settings, text or []))
    _print_json(rows)


@app.command()
def demo(out: OutOpt = Path("runs/demo"),
         n_train: Annotated[int, typer.Option("--n-train")] = demo_mod.DEMO_N_TRAIN,
         n_val: Annotated[int, typer.Option("--n-val")] = demo_mod.DEMO_N_VAL,
         n_test: Annotated[int, typer.Option("--n-test")] = demo_mod.DEMO_N_TEST,
         image_size: Annotated[int, typer.Option("--image-size")] = demo_mod.DEMO_IMAGE_SIZE,
         seed: SeedOpt = 0, cache: CacheOpt = None,
         sprites: Annotated[bool, typer.Option(
             "--sprites/--no-sprites", help="also fit a CBM on captioned shapes through a "
             "caption-trained joint space")] = True) -> None:
    """The main job on the embedded default: Sparse-CBM vs baselines on Fashion-MNIST, and a
    CBM whose concepts mean their names on captioned shapes."""
    metrics = _call(lambda: demo_mod.run_demo(out, n_train=n_train, n_val=n_val, n_test=n_test,
                                              image_size=image_size, seed=seed,
                                              cache_dir=str(cache) if cache else None,
                                              with_sprites=sprites))
    table = Table(title="Fashion-MNIST through the offline ConSE space")
    for col in ("method", "nec", "accuracy", "unit fidelity", "random-bank gap", "audit"):
        table.add_column(col, justify="left" if col == "method" else "right")
    for r in metrics["rows"]:
        nec_txt = "-" if "nec_requested" not in r else (
            "dense" if r["nec_requested"] is None else f"{r['nec_requested']:g}")
        f = r.get("faithfulness", {})
        fid, gap = f.get("unit_fidelity_median"), f.get("random_bank_gap")
        name = r["method"] if r.get("is_cbm", True) else f"{r['method']} [not a CBM]"
        verdict = "-" if "trusted" not in f else ("trusted" if f["trusted"] else "NOT trusted")
        table.add_row(escape(name), nec_txt, f"{r['accuracy']:.3f}",
                      "-" if fid is None else f"{fid:.2f}", "-" if gap is None else f"{gap:+.3f}",
                      verdict)
    Console().print(table)
    if metrics.get("idsprites_rows"):
        shapes = Table(title="Captioned shapes through a caption-trained linear map (NEC=5)")
        for col in ("model", "accuracy", "unit fidelity", "concept AUROC", "audit"):
            shapes.add_column(col, justify="left" if col == "model" else "right")
        for r in metrics["idsprites_rows"]:
            f = r["faithfulness"]
            shapes.add_row(escape(r["method"]), f"{r['accuracy']:.3f}",
                           f"{f['unit_fidelity_median']:.2f}",
                           f"{f.get('concept_auroc_mean', float('nan')):.2f}",
                           "trusted" if f.get("trusted") else "NOT trusted")
        Console().print(shapes)
    for sentence in metrics.get("story", []):
        Console().print(escape(sentence), soft_wrap=True)
    console.print(f"report: {escape(str(Path(out) / 'report.html'))}", soft_wrap=True)


@app.command("audit")
def audit_command(
        run_dir: Annotated[Path, typer.Argument(help="run folder written by `fit` (CBM or "
                                                     "DN-CBM)")],
        concept_examples: Annotated[Path | None, typer.Option(
            "--concept-examples", help="folder of concept example sets: NAME.txt or NAME/ per "
            "concept, plus random.txt or random/ (counter-examples)")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="print the profile as JSON")] = False,
) -> None:
    """Audit a saved run: each claim about its concepts with its measurement, control and
    status (pass / fail / undecided / not measured), and the verdict."""
    from conceptlab.workflows.audit import run_audit
    from conceptlab.workflows.report import profile_rows

    record = _call(lambda: run_audit(run_dir, concept_examples=concept_examples))
    if as_json:
        print(json.dumps(record, indent=2, default=str))
        return
    table = Table(show_header=True, header_style="bold")
    for col in ("claim", "status", "measurement"):
        table.add_column(col)
    colours = {"pass": "green", "fail": "red", "undecided": "yellow", "not measured": "dim"}
    for question, status, measurement in profile_rows(record):
        table.add_row(escape(question), f"[{colours[status]}]{status}[/]", escape(measurement))
    Console().print(table)
    verdict = "trusted" if record.get("trusted") else "NOT trusted"
    Console().print(f"verdict: {verdict} ({record.get('n')} held-out items)")
    for f in record.get("findings", []):
        console.print(f"[cyan]finding:[/cyan] {escape(f)}", soft_wrap=True)
    _warn(list(record.get("warnings", [])))


app.command("align")(align_command)

from conceptlab.cli_lm import app as lm_app  # noqa: E402  (language-model commands)

app.add_typer(lm_app, name="lm")

cli_report.register(app)

from conceptlab import cli_discover  # noqa: E402  (concept discovery: its own module)

app.command("discover")(cli_discover.discover)

from conceptlab import cli_cab, cli_lancet, cli_match  # noqa: E402  (seed systems)

app.command("match")(cli_match.match)
app.command("lancet")(cli_lancet.lancet)
app.command("cab")(cli_cab.cab)
app.command("importance")(cli_discover.importance)
app.add_typer(cli_discover.concepts_app, name="concepts")

from conceptlab.cli_export import export as export_command  # noqa: E402  (tables to take away)

app.command("export")(export_command)
from conceptlab.cli_tcav import tcav as tcav_command  # noqa: E402  (TCAV: its own module)

app.command("tcav")(tcav_command)


def main() -> None:  # pragma: no cover - console entry (`python -m conceptlab`)
    app(sys.argv[1:], prog_name="conceptlab")
