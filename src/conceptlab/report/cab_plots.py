"""The concept association bias against the association strength in the training captions
(reads the rows of ``workflows.cab``; several runs are drawn as mean and spread)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

SERIES = (("cab", "CAB: other object's colour - single-object baseline"),
          ("other_rate_assoc", "other's colour, when the other is a red circle"),
          ("fill_rate", "'red' for a non-red circle, no red in view"),
          ("fill_rate_single", "same, circle alone"))


def plot_cab(runs: list[list[dict[str, Any]]], path: str | Path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.6, 3.8))
    levels = [r["association"] for r in runs[0]]
    for key, label in SERIES:
        vals = np.array([[r.get(key, np.nan) for r in rows] for rows in runs], dtype=float)
        mean = np.nanmean(vals, axis=0)
        ax.plot(levels, mean, "o-", label=label)
        if len(runs) > 1:
            ax.fill_between(levels, np.nanmin(vals, axis=0), np.nanmax(vals, axis=0), alpha=0.2)
    ax.set_xlabel("share of training circles that are red")
    ax.set_ylabel("share of answers")
    ax.set_ylim(-0.05, 1.0)
    ax.legend(fontsize=7)
    ax.set_title(title or "concept association bias vs association", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
