"""PNG of a caption-fitted space's concept AUROC (from ``conceptlab align``'s metrics)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from conceptlab.errors import ConceptlabValueError
from conceptlab.report.plots import PathLike, _figure, _save


def plot_concept_auroc(auroc: Mapping[str, Mapping[str, float]], path: PathLike,
                       title: str = "concept text score vs ground truth (held-out images)"
                       ) -> Path:
    """Grouped bars: per concept (x), one bar per space or method (``auroc[method][concept]``),
    with chance (0.5) and 0.9 marked."""
    methods = list(auroc)
    if not methods:
        raise ConceptlabValueError("no AUROC values to plot")
    names = list(auroc[methods[0]])
    fig, ax = _figure(max(6.0, 0.6 * len(names) + 2), 4.2)
    width = 0.8 / len(methods)
    x = np.arange(len(names))
    for j, m in enumerate(methods):
        vals = [auroc[m].get(n, float("nan")) for n in names]
        ax.bar(x + (j - (len(methods) - 1) / 2) * width, vals, width, label=m)
    ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax.axhline(0.9, color="green", lw=0.8, ls=":")
    ax.set_xticks(x, names, rotation=60, ha="right", fontsize=8)
    ax.set_ylim(0.0, 1.02)
    ax.set_ylabel("AUROC")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return _save(fig, path)
