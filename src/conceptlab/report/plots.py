"""PNG figures from saved results (matplotlib's Agg canvas; no display, no pyplot state).

Every function takes plain data (an explanation dict from ``ConceptBottleneckModel.explain``,
a weight matrix read from a saved model, an intervention curve) and writes one PNG atomically
(``utils.io.atomic_path``): reports read saved results and never recompute a model.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from conceptlab.utils.io import atomic_path

PathLike = str | os.PathLike[str]
_POS, _NEG = "#2b7bba", "#d7301f"


def _save(fig: Figure, path: PathLike, dpi: int = 120) -> Path:
    target = Path(path)
    if target.suffix.lower() != ".png":
        raise ValueError(f"{target}: plots are written as .png")
    FigureCanvasAgg(fig)
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    return target


def _figure(width: float, height: float) -> tuple[Figure, Any]:
    fig = Figure(figsize=(width, height))
    return fig, fig.subplots()


def _short(label: str, width: int = 48) -> str:
    return label if len(label) <= width else label[: width - 1] + "…"


def plot_explanation(explanation: Mapping[str, Any], path: PathLike, *, top: int = 15,
                     title: str | None = None) -> Path:
    """Horizontal bars of the signed contributions behind one decision (top ``top`` by |c|).

    ``explanation`` is one entry of ``ConceptBottleneckModel.explain`` (or the same dict read
    back from JSON).
    """
    concepts = list(explanation.get("concepts", []))[:top]
    if top < 1:
        raise ValueError(f"top must be >= 1, got {top}")
    fig, ax = _figure(7.5, 0.35 * max(len(concepts), 1) + 1.4)
    if concepts:
        names = [_short(str(c["concept"])) for c in concepts][::-1]
        vals = np.array([float(c["contribution"]) for c in concepts])[::-1]
        ax.barh(np.arange(len(vals)), vals, color=[_POS if v >= 0 else _NEG for v in vals])
        ax.set_yticks(np.arange(len(vals)), names, fontsize=8)
        ax.axvline(0, color="black", lw=0.8)
    else:
        ax.text(0.5, 0.5, "no concept contributes", ha="center", va="center",
                transform=ax.transAxes)
        ax.set_yticks([])
    ax.set_xlabel("contribution to the predicted class's logit (activation x weight)")
    pred = explanation.get("prediction", "?")
    prob = explanation.get("probability")
    default = f"prediction: {pred}" + (f" (p = {prob:.2f})" if prob is not None else "")
    ax.set_title(title or default, fontsize=10)
    return _save(fig, path)


def plot_weight_heatmap(weights: np.ndarray, class_names: Sequence[str],
                        concept_names: Sequence[str], path: PathLike, *,
                        max_concepts: int = 40, title: str = "class x concept weights") -> Path:
    """Class x concept weight map (diverging colours, zero = white).

    With more than ``max_concepts`` concepts, the columns with the largest total |weight| are
    shown (in their original order).
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 2 or w.shape != (len(class_names), len(concept_names)):
        raise ValueError(f"weights of shape {w.shape} do not match {len(class_names)} classes "
                         f"x {len(concept_names)} concepts")
    cols = np.arange(w.shape[1])
    if w.shape[1] > max_concepts:
        cols = np.sort(np.argsort(-np.abs(w).sum(0), kind="stable")[:max_concepts])
    sub = w[:, cols]
    vmax = float(np.abs(sub).max()) or 1.0
    fig, ax = _figure(0.28 * len(cols) + 2.5, 0.35 * len(class_names) + 2.2)
    im = ax.imshow(sub, cmap="RdBu_r", vmin=-vmax, vmax=vmax, aspect="auto",
                   interpolation="nearest")
    ax.set_xticks(np.arange(len(cols)), [_short(str(concept_names[i]), 32) for i in cols],
                  rotation=90, fontsize=7)
    ax.set_yticks(np.arange(len(class_names)), [_short(str(c), 28) for c in class_names],
                  fontsize=8)
    fig.colorbar(im, ax=ax, fraction=0.03, pad=0.02, label="weight")
    ax.set_title(title, fontsize=10)
    return _save(fig, path)


def plot_intervention_curve(curves: Sequence[Mapping[str, Any]] |
                            Mapping[str, Sequence[Mapping[str, Any]]], path: PathLike, *,
                            title: str = "test-time intervention") -> Path:
    """Accuracy vs number of corrected concepts; one line per named curve.

    ``curves`` is one curve (``[{"n_corrected", "accuracy"}, ...]`` as returned by
    ``intervention_curve``) or ``{label: curve}``.
    """
    named = dict(curves) if isinstance(curves, Mapping) else {"": curves}
    if not named or not any(len(c) for c in named.values()):
        raise ValueError("no intervention curve to plot")
    fig, ax = _figure(5.5, 3.8)
    for label, curve in named.items():
        xs = [int(p["n_corrected"]) for p in curve]
        ys = [float(p["accuracy"]) for p in curve]
        ax.plot(xs, ys, marker="o", ms=3, label=label or None)
    ax.set_xlabel("concepts corrected per example")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    if any(named):
        ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    return _save(fig, path)


def plot_saved_model_weights(folder: PathLike, path: PathLike, *, max_concepts: int = 40) -> Path:
    """Heatmap of a saved ``ConceptBottleneckModel``'s head (read from disk, no refit)."""
    from conceptlab.bottleneck.saving import read_saved_weights

    saved = read_saved_weights(folder)
    nec = saved.get("nec")
    title = f"{saved['method']} CBM head" + (f" (NEC {nec:g})" if nec else " (dense)")
    return plot_weight_heatmap(saved["weights"], saved["class_names"], saved["concept_names"],
                               path, max_concepts=max_concepts, title=title)
