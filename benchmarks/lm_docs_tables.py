"""Markdown tables for docs/lm.md from the metrics that benchmarks/lm_docs.sh wrote.

    .venv/bin/python benchmarks/lm_docs_tables.py [runs/lm]

Reads OUT/<job>/metrics.json only (never a model) and prints the tables; with --figures,
redraws depth.png and observable.png into docs/lm/ from the same (relabelled) rows.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from conceptlab.lm.probing import concept_depth


def _load(root: Path, job: str) -> dict[str, Any] | None:
    path = root / job / "metrics.json"
    return relabel(json.loads(path.read_text())) if path.is_file() else None


def _f(x: float, nd: int = 3) -> str:
    return f"{x:.{nd}f}"


def _layer(row: dict[str, Any]) -> int:
    return int(str(row["point"]).split(".")[1])


def relabel(m: dict[str, Any], tol: float = 0.02) -> dict[str, Any]:
    """Rows ordered and labelled by their recorded hook point, depth recomputed (rule: the
    first layer whose 95% interval overlaps the best layer's, ``probing.concept_depth``). Runs
    made before the cache-order fix (commit "Fix:
    cached LM activations come back in hook-point order") listed layers as blocks.0, 1, 10, 11,
    ...; their rows still name their true point, so this recovers them; later runs are
    unchanged by it."""
    for c in m.get("concepts", []):
        rows = sorted(c["layers"], key=_layer)
        for r in rows:
            r["layer"] = _layer(r)
        acc = [r["accuracy"]["value"] for r in rows]
        best = max(acc)
        c["layers"] = rows
        c["depth_index"] = concept_depth(acc, [r["accuracy"]["lo"] for r in rows],
                                         [r["accuracy"]["hi"] for r in rows], tol)
        c["depth"] = rows[c["depth_index"]]["layer"]
        c["best_layer"] = rows[acc.index(best)]["layer"]
    if m.get("command") == "lm observable":
        m["rows"] = sorted(m["rows"], key=_layer)
        for r in m["rows"]:
            r["layer"] = _layer(r)
    return m


def probe(m: dict[str, Any]) -> list[str]:
    out = ["| concept | n | chance (majority class) | depth (first layer whose 95% interval "
           "overlaps the best's) | best layer | best accuracy [95% CI] | accuracy at depth | "
           "AUC at depth | control task (mean over layers) | selectivity at best layer |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for c in m["concepts"]:
        best = max(c["layers"], key=lambda r: r["accuracy"]["value"])
        at = c["layers"][c["depth_index"]]
        sel = best.get("selectivity")
        out.append(f"| {c['name']} | {c['prompts']['n']} | {_f(c.get('chance', 0.5))} | "
                   f"{c['depth']} | {c['best_layer']} | "
                   f"{_f(best['accuracy']['value'])} [{_f(best['accuracy']['lo'])}, "
                   f"{_f(best['accuracy']['hi'])}] | {_f(at['accuracy']['value'])} | "
                   f"{_f(at['auc']['value'])} | {_f(c['control_accuracy_mean'])} | "
                   f"{_f(sel) if sel is not None else '-'} |")
    out += ["", "Accuracy per layer (every 3rd layer shown; all 30 in metrics.json):", ""]
    layers = list(range(0, len(m["concepts"][0]["layers"]), 3))
    out.append("| concept | " + " | ".join(f"L{i}" for i in layers) + " |")
    out.append("|---|" + "---|" * len(layers))
    for c in m["concepts"]:
        out.append(f"| {c['name']} | " + " | ".join(
            _f(c["layers"][i]["accuracy"]["value"], 2) for i in layers) + " |")
    refs = [c for c in m["concepts"] if c.get("reference_cd")]
    if refs:
        out += ["", "Concept Depth's reference protocol beside it (`--cd-reference`: the MLP-input "
                "norm's output at the last token, one 60/40 item split with random_state 42, "
                "sklearn's default L2 logistic regression, no interval):", "",
                "| concept | " + " | ".join(f"L{i}" for i in layers) + " | best layer | "
                "best accuracy |", "|---|" + "---|" * (len(layers) + 2)]
        for c in refs:
            rows = c["reference_cd"]["layers"]
            out.append(f"| {c['name']} | " + " | ".join(
                _f(rows[i]["accuracy"], 2) for i in layers) +
                f" | {c['reference_cd']['best_layer']} | "
                f"{_f(c['reference_cd']['best_accuracy'])} |")
    out += ["", probe_sentence(m)]
    return out


def probe_sentence(m: dict[str, Any]) -> str:
    """One sentence per concept, from the numbers: depth, best layer, and how far apart."""
    parts = []
    for c in m["concepts"]:
        best = max(c["layers"], key=lambda r: r["accuracy"]["value"])
        at = c["layers"][c["depth_index"]]
        parts.append(f"{c['name']} is readable at layer {c['depth']} at "
                     f"{_f(at['accuracy']['value'])}, which the data cannot tell from its best "
                     f"layer {c['best_layer']} ({_f(best['accuracy']['value'])}, interval from "
                     f"{_f(best['accuracy']['lo'])})")
    return "By the interval rule, " + "; ".join(parts) + "."


def neurons(m: dict[str, Any]) -> list[str]:
    out = [f"Side `{m.get('side', m['map'].get('side', 'down'))}` ({m['map']['method']}):", "",
           "| word | best neuron (layer.index) | its top tokens | score (z) | clamp value "
           "(sign kept) | d log P(its top-5 tokens) | same, 5 random neurons of its layer "
           "(mean) | beats every control neuron | d log P(5 random tokens) | prompts raised |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for w in m["words"]:
        if not w["hits"]:
            out.append(f"| {w['word']} | none in any neuron's top-{m['k']} | | | | | | | | |")
            continue
        h, c = w["hits"][0], w.get("clamp", {})
        toks = ", ".join(repr(t) for t in h["top_tokens"][:5])
        ctrl = c.get("delta_logp_tokens_control_mean")
        out.append(f"| {w['word']} | {h['layer']}.{h['neuron']} | {toks} | {h['score']} | "
                   f"{c.get('clamp_value', '')} | {_f(c.get('delta_logp_tokens', 0))} | "
                   f"{_f(ctrl) if ctrl is not None else '-'} | "
                   f"{'yes' if c.get('beats_every_control') else 'no'} | "
                   f"{_f(c.get('delta_logp_random_tokens', 0))} | "
                   f"{c.get('prompts_raised', '')}/{c.get('n_prompts', '')} |")
    out += ["", neurons_sentence(m)]
    return out


def neurons_sentence(m: dict[str, Any]) -> str:
    clamped = [w for w in m["words"] if w.get("clamp")]
    first = [w["word"] for w in m["words"] if w["hits"] and w["hits"][0]["rank_of_word"] == 0]
    beat = [w["word"] for w in clamped if w["clamp"].get("beats_every_control")]
    return (f"Of {len(m['words'])} words, {len(first)} ({', '.join(first) or 'none'}) are the "
            f"top token of some neuron on this side; clamping the best hit raised its tokens "
            f"more than every layer-matched random neuron for {len(beat)} of {len(clamped)} "
            f"({', '.join(beat) or 'none'}).")


def ablate(m: dict[str, Any]) -> list[str]:
    out = [f"Scope `{m['scope']}`, method `{m['method']}`:", "",
           "All probe numbers are AUROC on held-out prompts only (0.5 = chance).", "",
           "| concept | layer | probe held-out before | after | refit probe before | after | "
           "last-layer refit after | KL on unrelated text (nats/token) | perplexity ratio |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in m["rows"]:
        p = r["probes"][f"layer_{r['layer']}"]
        last = [v for k, v in r["probes"].items() if k != f"layer_{r['layer']}"]
        la = _f(last[0]["refit_after"]) if last else "-"
        se = r["side_effects"]
        out.append(f"| {r['concept']} | {r['layer']} | {_f(p['heldout_before'])} | "
                   f"{_f(p['heldout_after'])} | {_f(p['refit_before'])} | "
                   f"{_f(p['refit_after'])} | {la} | {_f(se['kl'], 4)} | "
                   f"{_f(se['ppl_ratio'])} |")
    out += ["", ablate_sentence(m)]
    return out


def ablate_sentence(m: dict[str, Any]) -> str:
    parts = []
    for r in m["rows"]:
        p = r["probes"][f"layer_{r['layer']}"]
        last = [v for k, v in r["probes"].items() if k != f"layer_{r['layer']}"]
        tail = (f", a probe refitted at the last layer {_f(last[0]['refit_after'])}"
                if last else "")
        parts.append(f"{r['concept']} at layer {r['layer']}: the same probe "
                     f"{_f(p['heldout_before'])} -> {_f(p['heldout_after'])}, a refitted one "
                     f"{_f(p['refit_before'])} -> {_f(p['refit_after'])}{tail}")
    return "Held-out AUROC before -> after: " + "; ".join(parts) + "."


def concept_vectors(m: dict[str, Any]) -> list[str]:
    out = [f"{len(m['rows'])} concepts, noise std {m['std']}, {m['max_new_tokens']} new "
           "tokens per answer; mean over concepts [95% t-interval]; 1.0 = answers unchanged:",
           "", "| perturbation | column | BLEU own questions | BLEU unrelated | ROUGE-L own | "
           "ROUGE-L unrelated |", "|---|---|---|---|---|---|"]

    def ci(d: dict[str, float]) -> str:
        return f"{_f(d['mean'])} [{_f(d['lo'])}, {_f(d['hi'])}]"

    for key, v in m["summary"].items():
        mode, target = key.split("_")
        out.append(f"| {mode} | {'concept' if target == 'concept' else 'random, same layer'} | "
                   f"{ci(v['own_bleu'])} | {ci(v['unrelated_bleu'])} | "
                   f"{ci(v['own_rouge_l'])} | {ci(v['unrelated_rouge_l'])} |")
    out += ["", "Located columns: " + ", ".join(
        f"{r['concept']} {r['layer']}.{r['dim']} (z {r['z']:.1f})" for r in m["rows"]) + ".",
        "", concept_vectors_sentence(m)]
    return out


def concept_vectors_sentence(m: dict[str, Any]) -> str:
    out = []
    for mode in ("noise", "zero"):
        c, r = m["summary"][f"{mode}_concept"], m["summary"][f"{mode}_control"]
        gap = c["unrelated_bleu"]["mean"] - c["own_bleu"]["mean"]
        sep = c["own_bleu"]["hi"] < c["unrelated_bleu"]["lo"]
        ctrl = c["own_bleu"]["hi"] < r["own_bleu"]["lo"]
        out.append(f"{'Noise' if mode == 'noise' else 'Zeroing'} on the concept's column leaves "
                   f"its own answers at BLEU {_f(c['own_bleu']['mean'])} and unrelated ones at "
                   f"{_f(c['unrelated_bleu']['mean'])} (difference {gap:+.3f}; the intervals "
                   f"{'do not overlap' if sep else 'overlap'}), against "
                   f"{_f(r['own_bleu']['mean'])} for the same perturbation of a random column "
                   f"of the same layer (the concept column's interval "
                   f"{'lies below it' if ctrl else 'does not lie below it'})")
    return ". ".join(out) + "."


def steer(m: dict[str, Any]) -> list[str]:
    coefs = sorted({r["coef"] for r in m["rows"]})
    out = ["Intended effect (change in log P(positive words) - change in log P(negative words) on "
           "neutral prompts, nats) / KL on unrelated text (nats per token):", "",
           "| layer | " + " | ".join(f"coef {c:g}" for c in coefs) + " |",
           "|---|" + "---|" * len(coefs)]
    for layer in m["layers"]:
        cells = []
        for c in coefs:
            r = next(x for x in m["rows"] if x["layer"] == layer and x["coef"] == c)
            cells.append(f"{r['intended']:+.2f} / {r['kl']:.3f}")
        out.append(f"| {layer} | " + " | ".join(cells) + " |")
    b = m["best"]
    out += ["", f"Best with KL < 1: layer {b['layer']}, coef {b['coef']:g} (intended "
            f"{b['intended']:+.2f}, KL {b['kl']:.3f}, perplexity x{b['ppl_ratio']:.2f}). "
            "Greedy samples there:", ""]
    out += [f"- coef {s['coef']:+g}: {s['text']!r}" for s in m["samples"]]
    return out


def observable(m: dict[str, Any]) -> list[str]:
    out = [f"Observable accuracy on the prompts (sign of logit({m['positive'][0]!r}) - "
           f"logit({m['negative'][0]!r})): {_f(m['observable_accuracy'])}", "",
           "| layer | cos(f, probe) | cos(f, mean diff) | AUC of the projection on f |",
           "|---|---|---|---|"]
    for r in m["rows"][::3] + ([m["rows"][-1]] if (len(m["rows"]) - 1) % 3 else []):
        out.append(f"| {r['layer']} | {_f(r['cos_probe'])} | {_f(r['cos_mean_diff'])} | "
                   f"{_f(r['auc_observable'])} |")
    return out


def parametric(m: dict[str, Any]) -> list[str]:
    out = ["| n zeroed | which | d log P(concept) on concept prefixes | on neutral prompts | "
           "d log P(contrast words) on prefixes | KL unrelated | ppl ratio |",
           "|---|---|---|---|---|---|---|"]
    for r in m["rows"]:
        out.append(f"| {r['n']} | {r['neurons']} | {_f(r['delta_logp_concept_on_prefixes'])} | "
                   f"{_f(r['delta_logp_concept_on_neutral'])} | "
                   f"{_f(r['delta_logp_contrast_on_prefixes'])} | {_f(r['kl'], 4)} | "
                   f"{_f(r['ppl_ratio'])} |")
    return out


def main() -> None:
    args = [a for a in sys.argv[1:] if a != "--figures"]
    root = Path(args[0] if args else "runs/lm")
    if "--figures" in sys.argv:
        from conceptlab.report import lm_plots

        docs = Path(__file__).resolve().parents[1] / "docs" / "lm"
        pm, om = _load(root, "probe"), _load(root, "observable")
        if pm is not None:
            lm_plots.plot_depth([{**c, "depth": c["depth_index"]} for c in pm["concepts"]],
                                docs / "depth.png")
        if om is not None:
            lm_plots.plot_observable(om["rows"], docs / "observable.png")
    jobs = [("probe", probe), ("neurons", neurons), ("ablate", ablate),
            ("ablate-onward", ablate), ("ablate-all", ablate),
            ("concept-vectors", concept_vectors), ("steer-sentiment", steer),
            ("steer-animals", steer),
            ("observable", observable), ("parametric-animals", parametric),
            ("parametric-sentiment", parametric)]
    for job, fn in jobs:
        m = _load(root, job)
        print(f"\n### {job}\n")
        if m is None:
            print("(no metrics.json)")
            continue
        print("\n".join(fn(m)))
        print(f"\n({m.get('seconds', '?')} s)")


if __name__ == "__main__":
    main()
