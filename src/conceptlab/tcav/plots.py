"""The TCAV figure: per layer, each concept's mean score (with its spread over the random runs)
beside the random CAVs' score distribution, significant results marked."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def plot_tcav(rows: Sequence[Mapping[str, Any]], path: str | Path, *, title: str) -> Path:
    """Grouped bars (layer groups, one bar per concept, error bar = std over random runs) and
    each layer's random scores as grey dots with their mean as a dashed line; '*' marks a
    Holm-significant concept."""
    from matplotlib.figure import Figure

    layers = list(dict.fromkeys(r["layer"] for r in rows))
    concepts = list(dict.fromkeys(r["concept"] for r in rows))
    by = {(r["layer"], r["concept"]): r for r in rows}
    width = 0.8 / (len(concepts) + 1)
    fig = Figure(figsize=(max(5.0, 1.6 + 1.4 * len(layers) * (len(concepts) + 1) / 3), 3.6))
    ax = fig.subplots()
    for j, concept in enumerate(concepts):
        xs, means, stds = [], [], []
        for i, layer in enumerate(layers):
            r = by.get((layer, concept))
            if r is None:
                continue
            xs.append(i + j * width)
            means.append(r["mean"])
            stds.append(r["std"])
        bars = ax.bar(xs, means, width, yerr=stds, capsize=2, label=concept)
        for x, m, layer in zip(xs, means, layers, strict=False):
            if by[(layer, concept)]["significant"]:
                ax.text(x, min(m + 0.06, 1.02), "*", ha="center", fontsize=11,
                        color=bars.patches[0].get_facecolor())
    k = len(concepts)
    for i, layer in enumerate(layers):
        r0 = next(r for r in rows if r["layer"] == layer)
        rand = np.asarray(r0["random_scores"], float)
        x = i + k * width
        ax.scatter(np.full(len(rand), x), rand, s=10, color="0.5", zorder=3,
                   label="random CAVs" if i == 0 else None)
        ax.plot([x - width / 2, x + width / 2], [rand.mean()] * 2, "--", color="0.3", lw=1)
    ax.set_xticks(np.arange(len(layers)) + k * width / 2, layers, fontsize=8)
    ax.set_ylim(0, 1.08)
    ax.set_ylabel("TCAV score")
    ax.axhline(0.5, color="0.8", lw=0.6, zorder=0)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    return out


def table_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    """One line per (layer, concept): score mean +- std, random mean, p, Holm p, verdict."""
    lines = ["| layer | concept | TCAV score | random CAVs | p | p (Holm) | significant | "
             "CAV accuracy |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['layer']} | {r['concept']} | {r['mean']:.3f} ± {r['std']:.3f} | "
                     f"{r['random_mean']:.3f} ± {r['random_std']:.3f} | {r['p']:.2g} | "
                     f"{r['p_holm']:.2g} | {'yes' if r['significant'] else 'no'} | "
                     f"{r['cav_accuracy']:.2f} |")
    return "\n".join(lines) + "\n"
