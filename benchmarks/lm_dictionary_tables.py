"""Markdown tables and sentences for docs/lm.md from a ``conceptlab lm dictionary`` run
(``metrics.json`` and ``features.json``): every number and every comparison word is read from
them, so a changed run changes the words.

    .venv/bin/python benchmarks/lm_dictionary_tables.py runs/bench-lm-dictionary
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def _cmp(a: float, b: float, more: str, less: str) -> str:
    return more if a > b else less


def tables(m: dict[str, Any], run: Path | None = None) -> str:
    r, rnd = m["results"]["sae"], m["results"]["random"]
    t = m["training"]
    sae_t = t["dictionaries"]["sae"]
    lines = [f"Model {m['model']['name']} ({m['model'].get('n_layers')} blocks), hook "
             f"`{m['hook']}`, method `{m['method']}`, width {m['width']}, k {m['k']}; corpus "
             f"`{m['corpus']['name']}` ({m['corpus']['n_texts']} texts, digest "
             f"{m['corpus']['digest']}), {m['n_train_texts']} for training / "
             f"{m['n_heldout_texts']} held out; {t['tokens']} training tokens from "
             f"{t['texts']} texts ({t['sink_tokens_dropped']} sink tokens dropped), "
             f"{r['heldout_tokens']} held-out tokens; whole run {m['seconds']:.0f} s.", "",
             "| dictionary | FVE (held-out) | L0 | dead | dense (>10%) | CE clean | CE spliced "
             "| CE increase | loss recovered | topic-named features | their AUROC | shuffled "
             "names |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    ce = m["loss"]
    for name, label in (("sae", "trained SAE"), ("random", "random directions, same k")):
        x = m["results"][name]
        a = x["naming_audit"]
        lines.append(
            f"| {label} | {x['fve']:.3f} | {x['l0']:.1f} | {x['dead_rate']:.3f} | "
            f"{x['dense_rate']:.3f} | {ce['ce_clean']:.3f} | {ce[f'ce_{name}']:.3f} | "
            f"+{x['ce_increase']:.3f} | {x['loss_recovered']:.3f} | {a.get('n_named', 0)} | "
            f"{a.get('auroc_mean', float('nan')):.3f} | "
            f"{a.get('shuffled_auroc_mean', float('nan')):.3f} ± "
            f"{a.get('shuffled_auroc_sd', float('nan')):.3f} |")
    lines += ["", f"Zero-ablating the activation gives CE {ce['ce_zero']:.3f}.", "",
              "| | tokens/s | bare GEMM bound, same shapes (tokens/s) | bound / measured |",
              "|---|---|---|---|",
              f"| model forward to the hook | {t['model_tokens_per_s']:.0f} | - | - |",
              f"| SAE training step | {sae_t['tokens_per_s']:.0f} | "
              f"{sae_t['gemm_bound_tokens_per_s']:.0f} | {sae_t['ratio_to_bound']:.2f} |",
              "", f"Training loss (squared error in units of the centred variance, mean per "
              f"chunk of {t['chunk_rows']} tokens): first chunk "
              f"{sae_t['loss_per_chunk'][0]:.3f}, last {sae_t['loss_per_chunk'][-1]:.3f} "
              f"(random dictionary: {t['dictionaries']['random']['loss_per_chunk'][0]:.3f}, "
              f"{t['dictionaries']['random']['loss_per_chunk'][-1]:.3f}).",
              "", f"Memory (RSS, MB) after each chunk of {t['chunk_rows']} tokens: first "
              f"{t['memory_mb'][0][1]:.0f}, last {t['memory_mb'][-1][1]:.0f}, max "
              f"{max(v for _, v in t['memory_mb']):.0f}.", ""]
    fve_word = _cmp(r["fve"], rnd["fve"], "more", "less")
    ce_word = _cmp(rnd["ce_increase"], r["ce_increase"], "less", "more")
    ra, na = r["naming_audit"], rnd["naming_audit"]
    lines.append(
        f"Read it plainly: the trained SAE explains {fve_word} held-out variance than random "
        f"directions with the same k ({r['fve']:.3f} vs {rnd['fve']:.3f}) and raises the "
        f"model's loss {ce_word} when spliced in (+{r['ce_increase']:.3f} vs "
        f"+{rnd['ce_increase']:.3f} nats/token). {ra.get('n_named', 0)} of its features are "
        f"named after a topic (at least half of their top contexts from one fortune file); on "
        f"held-out texts their mean AUROC for that topic is "
        f"{ra.get('auroc_mean', float('nan')):.3f} against "
        f"{ra.get('shuffled_auroc_mean', float('nan')):.3f} with the names shuffled "
        f"(random dictionary: {na.get('n_named', 0)} named, "
        f"{na.get('auroc_mean', float('nan')):.3f} vs "
        f"{na.get('shuffled_auroc_mean', float('nan')):.3f}).")
    if run is not None and (run / "features.json").is_file():
        feats = json.loads((run / "features.json").read_text())["sae"]
        audit = {f["feature"]: f["auroc"] for f in feats["audit"]}
        best = sorted(audit, key=lambda k: -audit[k])[:6]
        lines += ["", "Best-audited topic features (top context, token in [[ ]]):", "",
                  "| feature | name | logit lens | held-out AUROC | top context |",
                  "|---|---|---|---|---|"]
        for k in best:
            n = feats["names"][k]
            ctx = n["contexts"][0]["text"].replace("|", "/").replace("\n", " ") \
                if n["contexts"] else ""
            lines.append(f"| {k} | {n['name']} | {' '.join(repr(s) for s in n['logit_lens'][:3])}"
                         f" | {audit[k]:.3f} | {ctx} |")
    return "\n".join(lines) + "\n"


def figure(m: dict[str, Any], path: Path) -> Path:
    """Training loss per chunk of the trained SAE and of the random-direction baseline (left)
    and their held-out quality (right), from the run's metrics only."""
    from matplotlib.figure import Figure

    from conceptlab.report.plots import save_png

    fig = Figure(figsize=(9.0, 3.4))
    ax, bx = fig.subplots(1, 2)
    labels = {"sae": "trained SAE", "random": "random directions, same k"}
    for name, label in labels.items():
        loss = m["training"]["dictionaries"][name]["loss_per_chunk"]
        ax.plot(range(1, len(loss) + 1), loss, marker="o", ms=3, label=label)
    ax.set_xlabel(f"training chunk ({m['training']['chunk_rows']} tokens)")
    ax.set_ylabel("loss (scaled inputs)")
    ax.set_title("training loss per chunk")
    ax.legend(frameon=False, fontsize=8)
    keys = [("fve", "FVE (held-out)"), ("loss_recovered", "loss recovered"),
            ("dead_rate", "dead share")]
    width = 0.38
    for i, (name, label) in enumerate(labels.items()):
        vals = [float(m["results"][name][k]) for k, _ in keys]
        bx.bar([j + (i - 0.5) * width for j in range(len(keys))], vals, width, label=label)
    bx.set_xticks(range(len(keys)), [lbl for _, lbl in keys])
    bx.axhline(0, color="black", lw=0.6)
    bx.set_title("held-out quality")
    fig.tight_layout()
    return save_png(fig, path)


if __name__ == "__main__":
    run = Path(sys.argv[1])
    metrics = json.loads((run / "metrics.json").read_text())
    if "--figure" in sys.argv:
        print(figure(metrics, Path(sys.argv[sys.argv.index("--figure") + 1])))
    else:
        print(tables(metrics, run))
