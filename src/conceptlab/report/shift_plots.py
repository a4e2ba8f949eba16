"""Concepts gained and lost in fine-tuning (reads ``conceptlab.shift.concept_changes``'s
record, as ``workflows.shift`` saves it in ``metrics.json``; a benchmark passes one per seed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

COLOURS = {"kept": "#4c72b0", "lost": "#c44e52", "lost, reached by its shift": "#dd8452"}


def changes_title(changes: dict[str, Any]) -> str:
    """One line: how many concepts were kept, lost (= gained) and reached, at which cosine."""
    n = len(changes["status"])
    return (f"{len(changes['kept'])} of {n} base concepts kept, {len(changes['lost'])} lost and "
            f"{len(changes['gained'])} gained; {len(changes['reached'])} of the lost reached "
            f"by their shift vector (cosine >= {changes['threshold']:g})")


def plot_shift_changes(changes: dict[str, Any], path: str | Path, title: str = "") -> None:
    """Per base concept (sorted by how far fine-tuning moved it): the cosine of its fine-tuned
    partner with the original concept (open dot) and with the shifted one (filled dot, arrow),
    the threshold below which it counts as lost and its partner as gained; dot size = share
    of the inputs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    orig = np.asarray(changes["cosine_original"], float)
    shifted = np.asarray(changes["cosine_shifted"], float)
    share = np.asarray(changes["share"], float)
    status = list(changes["status"])
    order = np.argsort(orig)
    fig, ax = plt.subplots(figsize=(6.4, 0.32 * len(order) + 2.0))
    for row, k in enumerate(order):
        colour = COLOURS.get(status[k], "#555555")
        size = 20 + 300 * share[k]
        ax.annotate("", xy=(shifted[k], row), xytext=(orig[k], row),
                    arrowprops={"arrowstyle": "->", "color": colour, "lw": 1})
        ax.scatter([orig[k]], [row], s=size, facecolors="none", edgecolors=colour)
        ax.scatter([shifted[k]], [row], s=size, color=colour)
    thr = float(changes["threshold"])
    ax.axvline(thr, color="k", ls="--", lw=0.8)
    ax.set_yticks(range(len(order)))
    ax.set_yticklabels([f"c{k} -> t{changes['partner'][k]}" for k in order], fontsize=7)
    ax.set_xlabel("cosine with the matched fine-tuned concept (open: original, filled: "
                  "shifted)", fontsize=8)
    for label, colour in COLOURS.items():
        ax.scatter([], [], color=colour, label=label)
    fig.legend(fontsize=7, loc="lower center", ncol=3, frameon=False)
    text = title or changes_title(changes)
    ax.set_title(text.replace("; ", ";\n", 1), fontsize=8)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
