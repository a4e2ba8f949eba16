"""``conceptlab lm ...``: concepts in language models (a thin layer over workflows.lm).

Each command writes ``OUT/metrics.json`` plus PNGs and prints a short table; ``--model``
defaults to the packaged SmolLM2-135M (``smollm2``), or takes a Hugging Face name or folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from conceptlab.cli.common import (
    JsonOpt,
    OutOpt,
    SeedOpt,
    answer,
    call,
    names_help,
    parse_floats,
    parse_ints,
    print_table,
)
from conceptlab.lm.datasets import prompt_set_specs
from conceptlab.lm.dictionary import METHODS as SAE_METHODS
from conceptlab.lm.directions import ESTIMATORS
from conceptlab.lm.model import MODEL_TYPES
from conceptlab.workflows import lm as runs

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Concepts in language models: probe, neurons, steer, ablate, "
                  "observable, parametric, concept-vectors, dictionary.")

ModelOpt = Annotated[str, typer.Option(
    "--model", help="smollm2 (packaged, default) | Hugging Face name | local folder, of a "
    "registered model type: " + names_help(sorted(MODEL_TYPES)))]
#: the registered prompt sets (``conceptlab.lm.datasets.PROMPT_SETS``)
PROMPTS_HELP = "prompt set: " + names_help(prompt_set_specs())
DataListOpt = Annotated[list[str] | None, typer.Option(
    "--data", help=PROMPTS_HELP + " (repeatable)")]
DataOpt = Annotated[str, typer.Option("--data", help=PROMPTS_HELP)]
#: the registered direction estimators (``conceptlab.lm.directions.ESTIMATORS``)
DirectionOpt = Annotated[str, typer.Option(
    "--method", help="direction estimator: " + names_help(ESTIMATORS.names()))]
LayersOpt = Annotated[str | None, typer.Option(
    "--layers", help="comma-separated block indices (default: all, or the concept's depth)")]
CacheOpt = Annotated[Path | None, typer.Option("--cache", help="activation cache folder")]


@app.command()
def probe(data: DataListOpt = None,
          out: OutOpt = Path("runs/lm-probe"),
          model: ModelOpt = "smollm2", layers: LayersOpt = None,
          folds: Annotated[int, typer.Option("--folds", min=2)] = 5,
          tol: Annotated[float, typer.Option("--tol", min=0.0,
                                             help="depth: within tol of best")] = 0.02,
          seed: SeedOpt = 0, cache: CacheOpt = None,
          cd_reference: Annotated[bool, typer.Option(
              "--cd-reference", help="add Concept Depth's reference rows")] = False,
          as_json: JsonOpt = False) -> None:
    """Concept depth: a cross-validated probe per layer for each prompt set, one figure."""
    layer_list = call(lambda: parse_ints(layers, "--layers"))
    m = call(lambda: runs.run_lm_probe(data or list(runs.DEFAULT_CONCEPTS), out, model=model,
                                       layers=layer_list, folds=folds, tol=tol, seed=seed,
                                       cache_dir=cache, cd_reference=cd_reference))
    answer(m, as_json, lambda: print_table(
        "Concept depth", ["concept", "depth", "best layer", "best acc", "control acc"],
        [[c["name"], c["depth"], c["best_layer"], c["best_accuracy"],
          c["control_accuracy_mean"]] for c in m["concepts"]]), out)


@app.command()
def neurons(out: OutOpt = Path("runs/lm-neurons"),
            model: ModelOpt = "smollm2",
            word: Annotated[list[str] | None, typer.Option("--word", help="repeatable")] = None,
            k: Annotated[int, typer.Option("--k", min=1, help="top tokens per neuron")] = 10,
            no_confirm: Annotated[bool, typer.Option("--no-confirm")] = False,
            map_dir: Annotated[Path | None, typer.Option("--map", help="reuse a saved map")] = None,
            side: Annotated[str, typer.Option("--side", help="up (Davies 2025, default) | gate "
                                              "| down (value vectors)")] = "up",
            seed: SeedOpt = 0, as_json: JsonOpt = False) -> None:
    """Decode every MLP neuron through the head, search words, confirm by clamping."""
    m = call(lambda: runs.run_lm_neurons(out, model=model,
                                         words=word or list(runs.DEFAULT_WORDS), k=k,
                                         confirm=not no_confirm, seed=seed, map_dir=map_dir,
                                         side=side))

    def table() -> None:
        rows = []
        for w in m["words"]:
            h = w["hits"][0] if w["hits"] else None
            c = w.get("clamp", {})
            rows.append([w["word"], f"{h['layer']}.{h['neuron']}" if h else "-",
                         " ".join(h["top_tokens"][:4]) if h else "-",
                         c.get("delta_logp_tokens"), c.get("delta_logp_random_tokens")])
        print_table("Neurons by word", ["word", "neuron", "top tokens", "clamp d logp",
                                        "random d logp"], rows)

    answer(m, as_json, table, out)


@app.command()
def steer(data: DataOpt = "sentiment",
          out: OutOpt = Path("runs/lm-steer"),
          model: ModelOpt = "smollm2", layers: LayersOpt = "3,8,13,18,23",
          coefs: Annotated[str, typer.Option("--coefs", help="in units of the class gap")] =
          "0.5,1,2,4,8", method: DirectionOpt = "mean_diff",
          seed: SeedOpt = 0, cache: CacheOpt = None,
          control_vector: Annotated[Path | None, typer.Option(
              "--control-vector", help="also write the best setting as a llama.cpp control "
              "vector (.gguf)")] = None,
          as_json: JsonOpt = False) -> None:
    """Steering sweep (layers x coefficients): intended effect against side effects."""
    layer_list = call(lambda: parse_ints(layers, "--layers")) or []
    coef_list = call(lambda: parse_floats(coefs, "--coefs"))
    m = call(lambda: runs.run_lm_steer(data, out, model=model, layers=layer_list,
                                       coefs=coef_list, method=method, seed=seed,
                                       cache_dir=cache, control_vector=control_vector))
    answer(m, as_json, lambda: print_table(
        "Steering sweep", ["layer", "coef", "intended", "KL", "ppl ratio"],
        [[r["layer"], r["coef"], r["intended"], r["kl"], r["ppl_ratio"]] for r in m["rows"]]),
        out)


@app.command()
def ablate(data: DataListOpt = None,
           out: OutOpt = Path("runs/lm-ablate"),
           model: ModelOpt = "smollm2", layers: LayersOpt = None,
           method: DirectionOpt = "mean_diff",
           scope: Annotated[str, typer.Option(
               "--scope", help="layer | onward | all (Arditi et al.)")] = "layer",
           seed: SeedOpt = 0, cache: CacheOpt = None, as_json: JsonOpt = False) -> None:
    """Project a concept direction out; probe accuracy before / after and side-effect KL."""
    layer_list = call(lambda: parse_ints(layers, "--layers"))
    m = call(lambda: runs.run_lm_ablate(data or list(runs.DEFAULT_CONCEPTS), out, model=model,
                                        layers=layer_list, method=method, scope=scope,
                                        seed=seed, cache_dir=cache))

    def table() -> None:
        rows = []
        for r in m["rows"]:
            p = r["probes"][f"layer_{r['layer']}"]
            rows.append([r["concept"], r["layer"], p["heldout_before"], p["heldout_after"],
                         p["refit_after"], r["side_effects"]["kl"],
                         r["side_effects"]["ppl_ratio"]])
        print_table("Ablation", ["concept", "layer", "probe before", "probe after",
                                 "refit after", "KL", "ppl ratio"], rows)

    answer(m, as_json, table, out)


@app.command()
def observable(out: OutOpt = Path("runs/lm-observable"),
               model: ModelOpt = "smollm2",
               positive: Annotated[str, typer.Option("--positive")] = " he",
               negative: Annotated[str, typer.Option("--negative")] = " she",
               data: DataOpt = "gender",
               layers: LayersOpt = None, seed: SeedOpt = 0, cache: CacheOpt = None,
               as_json: JsonOpt = False) -> None:
    """Feature vector of logit(positive) - logit(negative) vs learned directions, per layer."""
    layer_list = call(lambda: parse_ints(layers, "--layers"))
    m = call(lambda: runs.run_lm_observable(out, model=model, positive=[positive],
                                            negative=[negative], data=data, layers=layer_list,
                                            seed=seed, cache_dir=cache))
    answer(m, as_json, lambda: print_table(
        "Observable", ["layer", "cos probe", "cos mean diff", "AUC"],
        [[r["layer"], r["cos_probe"], r["cos_mean_diff"], r["auc_observable"]]
         for r in m["rows"]]), out)


@app.command()
def parametric(data: DataOpt = "animals",
               out: OutOpt = Path("runs/lm-parametric"),
               model: ModelOpt = "smollm2",
               n: Annotated[str, typer.Option("--n", help="neurons to zero, comma-separated")] =
               "10,50,200", seed: SeedOpt = 0, as_json: JsonOpt = False) -> None:
    """Top value-vector zeroing (a ConceptVectors-inspired variant), measured."""
    counts = call(lambda: parse_ints(n, "--n")) or [10]
    m = call(lambda: runs.run_lm_parametric(data, out, model=model, n_neurons=counts,
                                            seed=seed))
    answer(m, as_json, lambda: print_table(
        "Parametric concept vectors", ["n", "neurons", "d logp concept", "d logp neutral",
                                       "d logp contrast", "KL"],
        [[r["n"], r["neurons"], r["delta_logp_concept_on_prefixes"],
          r["delta_logp_concept_on_neutral"], r["delta_logp_contrast_on_prefixes"], r["kl"]]
         for r in m["rows"]]), out)


@app.command("concept-vectors")
def concept_vectors(out: OutOpt = Path("runs/lm-cv"),
                    model: ModelOpt = "smollm2",
                    concept: Annotated[list[str] | None, typer.Option(
                        "--concept", help="repeatable (default: every shipped concept)")] = None,
                    std: Annotated[float, typer.Option("--std", min=0.0)] = 0.1,
                    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", min=1)
                                              ] = 100,
                    seed: SeedOpt = 0, as_json: JsonOpt = False) -> None:
    """ConceptVectors (reference protocol): perturb one down-projection column per concept."""
    m = call(lambda: runs.run_lm_concept_vectors(out, model=model, concepts=concept, std=std,
                                                 max_new_tokens=max_new_tokens, seed=seed))
    answer(m, as_json, lambda: print_table(
        "ConceptVectors", ["perturbation", "own BLEU", "unrelated BLEU", "own ROUGE-L",
                           "unrelated ROUGE-L"],
        [[k, v["own_bleu"]["mean"], v["unrelated_bleu"]["mean"], v["own_rouge_l"]["mean"],
          v["unrelated_rouge_l"]["mean"]] for k, v in m["summary"].items()]), out)


@app.command()
def dictionary(
    corpus: Annotated[str, typer.Option(
        "--corpus", help="fortunes[:CAT,...] | prompts:NAME | text:PATH | csv:PATH")] =
    "fortunes",
    out: OutOpt = Path("runs/lm-dictionary"),
    model: ModelOpt = "smollm2",
    hook: Annotated[str, typer.Option("--hook")] = "blocks.6.hook_resid_post",
    method: Annotated[str, typer.Option("--method", help=names_help(SAE_METHODS))] = "topk",
    k: Annotated[int, typer.Option("--k", min=1, help="active features per token")] = 32,
    width: Annotated[int, typer.Option("--width", min=1, help="number of features")] = 2304,
    l1: Annotated[float, typer.Option("--l1", min=0.0, help="relu only")] = 1.0,
    tokens: Annotated[int, typer.Option("--tokens", min=1, help="training token budget")] =
    100_000,
    context: Annotated[int, typer.Option("--context", min=2)] = 64,
    seed: SeedOpt = 0, as_json: JsonOpt = False,
) -> None:
    """Sparse autoencoder on streamed activations: trained, named, audited, saved in
    SAELens' format beside a random-direction baseline."""
    from conceptlab.workflows.lm_dictionary import run_lm_dictionary

    m = call(lambda: run_lm_dictionary(corpus, out, model=model, hook=hook, method=method, k=k,
                                       width=width, l1=l1, tokens=tokens, context=context,
                                       seed=seed))

    def table() -> None:
        nan = float("nan")
        rows = []
        for name, r in m["results"].items():
            a = r["naming_audit"]
            rows.append([name, r["fve"], r["l0"], r["dead_rate"], r["dense_rate"],
                         r["ce_increase"], a.get("n_named", 0), a.get("auroc_mean", nan),
                         a.get("shuffled_auroc_mean", nan)])
        print_table("Dictionary", ["dictionary", "FVE", "L0", "dead", "dense", "CE increase",
                                   "named", "AUROC", "shuffled AUROC"], rows)

    answer(m, as_json, table, out)


def register(root: typer.Typer) -> None:
    """Add the ``lm`` group."""
    root.add_typer(app, name="lm")


__all__ = ["app", "register"]
