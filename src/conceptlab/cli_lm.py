"""``conceptlab lm ...``: concept vectors in language models (a thin layer over workflows.lm).

Each command writes ``OUT/metrics.json`` plus PNGs and prints a short table; ``--model``
defaults to the packaged SmolLM2-135M (``smollm2``), or takes a Hugging Face name or folder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from conceptlab.errors import ConceptlabError
from conceptlab.workflows import lm as runs

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Concept vectors in language models: probe, neurons, steer, ablate, "
                  "observable.")
console = Console(stderr=True)

ModelOpt = Annotated[str, typer.Option(
    "--model", help="smollm2 (packaged, default) | Hugging Face name | local folder")]
DataListOpt = Annotated[list[str] | None, typer.Option(
    "--data", help="prompt set, repeatable: animals | sentiment | gender | gapminder | "
    "robots-text[:CONCEPT] | csv:PATH | jsonl:PATH")]
LayersOpt = Annotated[str | None, typer.Option(
    "--layers", help="comma-separated block indices (default: all, or the concept's depth)")]
SeedOpt = Annotated[int, typer.Option("--seed")]
CacheOpt = Annotated[Path | None, typer.Option("--cache", help="activation cache folder")]
ERRORS = (ConceptlabError, ValueError, RuntimeError, FileNotFoundError, OSError)


def _fail(err: Exception) -> None:
    console.print(f"[red]error:[/red] {escape(str(err))}", soft_wrap=True)
    if os.environ.get("CONCEPTLAB_DEBUG"):
        raise err
    raise typer.Exit(code=2)


def _ints(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise typer.BadParameter(f"expected comma-separated integers, got {text!r}") from None


def _floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise typer.BadParameter(f"expected comma-separated numbers, got {text!r}") from None


def _table(title: str, columns: list[str], rows: list[list[Any]], out: Path) -> None:
    table = Table(title=title)
    for c in columns:
        table.add_column(c, justify="left" if c in columns[:1] else "right")
    for r in rows:
        table.add_row(*[f"{v:.3f}" if isinstance(v, float) else escape(str(v)) for v in r])
    console.print(table)
    console.print(f"wrote {escape(str(out / 'metrics.json'))}", soft_wrap=True)


@app.command()
def probe(data: DataListOpt = None, out: Annotated[Path, typer.Option("--out")] = Path(
              "runs/lm-probe"), model: ModelOpt = "smollm2", layers: LayersOpt = None,
          folds: Annotated[int, typer.Option("--folds")] = 5,
          tol: Annotated[float, typer.Option("--tol", help="depth: within tol of best")] = 0.02,
          seed: SeedOpt = 0, cache: CacheOpt = None,
          cd_reference: Annotated[bool, typer.Option(
              "--cd-reference", help="add Concept Depth's reference rows")] = False) -> None:
    """Concept depth: a cross-validated probe per layer for each prompt set, one figure."""
    try:
        m = runs.run_lm_probe(data or list(runs.DEFAULT_CONCEPTS), out, model=model,
                              layers=_ints(layers), folds=folds, tol=tol, seed=seed,
                              cache_dir=cache, cd_reference=cd_reference)
    except ERRORS as err:
        _fail(err)
    _table("Concept depth", ["concept", "depth", "best layer", "best acc", "control acc"],
           [[c["name"], c["depth"], c["best_layer"], c["best_accuracy"],
             c["control_accuracy_mean"]] for c in m["concepts"]], out)


@app.command()
def neurons(out: Annotated[Path, typer.Option("--out")] = Path("runs/lm-neurons"),
            model: ModelOpt = "smollm2",
            word: Annotated[list[str] | None, typer.Option("--word", help="repeatable")] = None,
            k: Annotated[int, typer.Option("--k", help="top tokens per neuron")] = 10,
            no_confirm: Annotated[bool, typer.Option("--no-confirm")] = False,
            map_dir: Annotated[Path | None, typer.Option("--map", help="reuse a saved map")] = None,
            side: Annotated[str, typer.Option("--side", help="up (Davies 2025, default) | gate "
                                              "| down (value vectors)")] = "up",
            seed: SeedOpt = 0) -> None:
    """Decode every MLP neuron through the head, search words, confirm by clamping."""
    try:
        m = runs.run_lm_neurons(out, model=model, words=word or list(runs.DEFAULT_WORDS), k=k,
                                confirm=not no_confirm, seed=seed, map_dir=map_dir, side=side)
    except ERRORS as err:
        _fail(err)
    rows = []
    for w in m["words"]:
        h = w["hits"][0] if w["hits"] else None
        c = w.get("clamp", {})
        rows.append([w["word"], f"{h['layer']}.{h['neuron']}" if h else "-",
                     " ".join(h["top_tokens"][:4]) if h else "-",
                     c.get("delta_logp_tokens", "-"), c.get("delta_logp_random_tokens", "-")])
    _table("Neurons by word", ["word", "neuron", "top tokens", "clamp d logp", "random d logp"],
           rows, out)


@app.command()
def steer(data: Annotated[str, typer.Option("--data")] = "sentiment",
          out: Annotated[Path, typer.Option("--out")] = Path("runs/lm-steer"),
          model: ModelOpt = "smollm2", layers: LayersOpt = "3,8,13,18,23",
          coefs: Annotated[str, typer.Option("--coefs", help="in units of the class gap")] =
          "0.5,1,2,4,8", method: Annotated[str, typer.Option("--method")] = "mean_diff",
          seed: SeedOpt = 0, cache: CacheOpt = None) -> None:
    """Steering sweep (layers x coefficients): intended effect against side effects."""
    try:
        m = runs.run_lm_steer(data, out, model=model, layers=_ints(layers) or [],
                              coefs=_floats(coefs), method=method, seed=seed, cache_dir=cache)
    except ERRORS as err:
        _fail(err)
    _table("Steering sweep", ["layer", "coef", "intended", "KL", "ppl ratio"],
           [[r["layer"], r["coef"], r["intended"], r["kl"], r["ppl_ratio"]] for r in m["rows"]],
           out)


@app.command()
def ablate(data: DataListOpt = None, out: Annotated[Path, typer.Option("--out")] = Path(
               "runs/lm-ablate"), model: ModelOpt = "smollm2", layers: LayersOpt = None,
           method: Annotated[str, typer.Option("--method")] = "mean_diff",
           scope: Annotated[str, typer.Option(
               "--scope", help="layer | onward | all (Arditi et al.)")] = "layer",
           seed: SeedOpt = 0, cache: CacheOpt = None) -> None:
    """Project a concept direction out; probe accuracy before / after and side-effect KL."""
    try:
        m = runs.run_lm_ablate(data or list(runs.DEFAULT_CONCEPTS), out, model=model,
                               layers=_ints(layers), method=method, scope=scope, seed=seed,
                               cache_dir=cache)
    except ERRORS as err:
        _fail(err)
    rows = []
    for r in m["rows"]:
        p = r["probes"][f"layer_{r['layer']}"]
        rows.append([r["concept"], r["layer"], p["heldout_before"], p["heldout_after"],
                     p["refit_after"], r["side_effects"]["kl"], r["side_effects"]["ppl_ratio"]])
    _table("Ablation", ["concept", "layer", "probe before", "probe after", "refit after", "KL",
                        "ppl ratio"], rows, out)


@app.command()
def observable(out: Annotated[Path, typer.Option("--out")] = Path("runs/lm-observable"),
               model: ModelOpt = "smollm2",
               positive: Annotated[str, typer.Option("--positive")] = " he",
               negative: Annotated[str, typer.Option("--negative")] = " she",
               data: Annotated[str, typer.Option("--data")] = "gender",
               layers: LayersOpt = None, seed: SeedOpt = 0, cache: CacheOpt = None) -> None:
    """Feature vector of logit(positive) - logit(negative) vs learned directions, per layer."""
    try:
        m = runs.run_lm_observable(out, model=model, positive=[positive], negative=[negative],
                                   data=data, layers=_ints(layers), seed=seed, cache_dir=cache)
    except ERRORS as err:
        _fail(err)
    _table("Observable", ["layer", "cos probe", "cos mean diff", "AUC"],
           [[r["layer"], r["cos_probe"], r["cos_mean_diff"], r["auc_observable"]]
            for r in m["rows"]], out)


@app.command()
def parametric(data: Annotated[str, typer.Option("--data")] = "animals",
               out: Annotated[Path, typer.Option("--out")] = Path("runs/lm-parametric"),
               model: ModelOpt = "smollm2",
               n: Annotated[str, typer.Option("--n", help="neurons to zero, comma-separated")] =
               "10,50,200", seed: SeedOpt = 0) -> None:
    """Top value-vector zeroing (a ConceptVectors-inspired variant), measured."""
    try:
        m = runs.run_lm_parametric(data, out, model=model, n_neurons=_ints(n) or [10],
                                   seed=seed)
    except ERRORS as err:
        _fail(err)
    _table("Parametric concept vectors", ["n", "neurons", "d logp concept", "d logp neutral",
                                          "d logp contrast", "KL"],
           [[r["n"], r["neurons"], r["delta_logp_concept_on_prefixes"],
             r["delta_logp_concept_on_neutral"], r["delta_logp_contrast_on_prefixes"], r["kl"]]
            for r in m["rows"]], out)


@app.command("concept-vectors")
def concept_vectors(out: Annotated[Path, typer.Option("--out")] = Path("runs/lm-cv"),
                    model: ModelOpt = "smollm2",
                    concept: Annotated[list[str] | None, typer.Option(
                        "--concept", help="repeatable (default: every shipped concept)")] = None,
                    std: Annotated[float, typer.Option("--std")] = 0.1,
                    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens")] = 100,
                    seed: SeedOpt = 0) -> None:
    """ConceptVectors (reference protocol): perturb one down-projection column per concept."""
    try:
        m = runs.run_lm_concept_vectors(out, model=model, concepts=concept, std=std,
                                        max_new_tokens=max_new_tokens, seed=seed)
    except ERRORS as err:
        _fail(err)
    _table("ConceptVectors", ["perturbation", "own BLEU", "unrelated BLEU", "own ROUGE-L",
                              "unrelated ROUGE-L"],
           [[k, v["own_bleu"]["mean"], v["unrelated_bleu"]["mean"], v["own_rouge_l"]["mean"],
             v["unrelated_rouge_l"]["mean"]] for k, v in m["summary"].items()], out)
from conceptlab.cli_lm_dictionary import register as register_dictionary  # noqa: E402

register_dictionary(app)
