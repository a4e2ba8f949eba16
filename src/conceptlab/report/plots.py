"""PNG figures from saved results (matplotlib's Agg canvas; no display, no pyplot state).

Every function takes plain data (an explanation dict from ``ConceptBottleneckModel.explain``,
a weight matrix read from a saved model, an intervention curve). The ``*_figure`` functions
return a matplotlib ``Figure``; :func:`png_bytes` renders one to PNG bytes (what the HTML
report embeds as a data URI) and the ``plot_*`` functions write one PNG atomically
(``utils.io.atomic_path``). Reports read saved results and never recompute a model.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from conceptlab.errors import ConceptlabValueError, OutputError
from conceptlab.utils.io import atomic_path, writing

PathLike = str | os.PathLike[str]
_POS, _NEG = "#2b7bba", "#d7301f"
#: the heatmap's colour scale ends at this percentile of the non-zero |weights|: one huge cell
#: must not turn every other cell white
HEATMAP_PERCENTILE = 95.0


def png_bytes(fig: Figure, dpi: int = 110) -> bytes:
    """The figure as PNG bytes (for data URIs)."""
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def save_png(fig: Figure, path: PathLike, dpi: int = 120) -> Path:
    """Write ``fig`` to ``path`` (a ``.png``) atomically; shared by every ``*_plots`` module."""
    target = Path(path)
    if target.suffix.lower() != ".png":
        raise OutputError(f"{target}: plots are written as .png")
    FigureCanvasAgg(fig)
    with writing(target), atomic_path(target) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    return target


def new_figure(width: float, height: float) -> tuple[Figure, Any]:
    """A figure of ``width`` x ``height`` inches with one axes, drawn without pyplot (no global
    state, safe in threads); shared by every ``*_plots`` module."""
    fig = Figure(figsize=(width, height))
    return fig, fig.subplots()


def shorten(label: str, width: int = 48) -> str:
    """``label`` cut to ``width`` characters with an ellipsis (axis tick labels)."""
    return label if len(label) <= width else label[: width - 1] + "…"


def fmt_number(x: float, digits: int = 3) -> str:
    """A number as a person reads it: integers without decimals, else ``digits`` significant
    figures (``5.0`` -> ``5``, ``0.80512`` -> ``0.805``, ``812.4`` -> ``812``)."""
    v = float(x)
    if not np.isfinite(v):
        return str(v)
    if v == round(v) and abs(v) < 1e15:
        return str(round(v))
    return f"{v:.{digits}g}"


# ------------------------------------------------------------------------------------------------
# one decision
# ------------------------------------------------------------------------------------------------


def explanation_figure(explanation: Mapping[str, Any], *, top: int = 15,
                       title: str | None = None, width: float = 7.5) -> Figure:
    """Horizontal bars of the signed contributions behind one decision (top ``top`` by |c|)."""
    if top < 1:
        raise ConceptlabValueError(f"top must be >= 1, got {top}")
    concepts = list(explanation.get("concepts", []))[:top]
    fig, ax = new_figure(width, 0.32 * max(len(concepts), 1) + 1.3)
    if concepts:
        names = [shorten(str(c["concept"]), 40) for c in concepts][::-1]
        vals = np.array([float(c["contribution"]) for c in concepts])[::-1]
        ax.barh(np.arange(len(vals)), vals, color=[_POS if v >= 0 else _NEG for v in vals])
        ax.set_yticks(np.arange(len(vals)), names, fontsize=8)
        ax.axvline(0, color="black", lw=0.8)
    else:
        ax.text(0.5, 0.5, "no concept contributes", ha="center", va="center",
                transform=ax.transAxes)
        ax.set_yticks([])
    ax.set_xlabel("contribution to the predicted class's logit (activation x weight)",
                  fontsize=8)
    pred = explanation.get("prediction", "?")
    prob = explanation.get("probability")
    default = f"prediction: {pred}" + (f" (p = {prob:.2f})" if prob is not None else "")
    ax.set_title(title or default, fontsize=9)
    return fig


def plot_explanation(explanation: Mapping[str, Any], path: PathLike, *, top: int = 15,
                     title: str | None = None) -> Path:
    """:func:`explanation_figure` written to ``path`` (PNG).

    ``explanation`` is one entry of ``ConceptBottleneckModel.explain`` (or the same dict read
    back from JSON).
    """
    return save_png(explanation_figure(explanation, top=top, title=title), path)


# ------------------------------------------------------------------------------------------------
# class x concept weights
# ------------------------------------------------------------------------------------------------


def used_columns(weights: np.ndarray, max_concepts: int = 40) -> np.ndarray:
    """Columns (concepts) with any non-zero weight; the ``max_concepts`` with the largest total
    |weight| when there are more (in their original order)."""
    w = np.abs(np.asarray(weights, dtype=np.float64))
    cols = np.flatnonzero(w.sum(0) > 0)
    if len(cols) > max_concepts:
        keep = np.argsort(-w[:, cols].sum(0), kind="stable")[:max_concepts]
        cols = np.sort(cols[keep])
    return cols


def robust_limit(values: np.ndarray, percentile: float = HEATMAP_PERCENTILE) -> float:
    """Symmetric colour limit: the ``percentile``-th percentile of the non-zero |values| (1.0 if
    all are zero). Cells beyond it are drawn at full colour and keep their printed value."""
    a = np.abs(np.asarray(values, dtype=np.float64))
    a = a[a > 0]
    if a.size == 0:
        return 1.0
    return float(np.percentile(a, percentile)) or float(a.max())


def weight_heatmap_figure(weights: np.ndarray, class_names: Sequence[str],
                          concept_names: Sequence[str], *, max_concepts: int = 40,
                          title: str = "class x concept weights",
                          percentile: float = HEATMAP_PERCENTILE,
                          annotate: bool | None = None) -> Figure:
    """Class x concept weight map of the concepts the head uses.

    Only columns with a non-zero weight are drawn (at most ``max_concepts``, by total
    |weight|); the diverging scale is symmetric about zero (white) and ends at a robust limit
    (:func:`robust_limit`), so one extreme cell does not wash out the others; each non-zero
    cell prints its value when the grid is small enough (``annotate=None``: automatic).
    Positive weights are blue and negative red, as in the explanation bar charts.
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 2 or w.shape != (len(class_names), len(concept_names)):
        raise ConceptlabValueError(f"weights of shape {w.shape} do not match "
                                   f"{len(class_names)} classes x {len(concept_names)} concepts")
    cols = used_columns(w, max_concepts)
    if len(cols) == 0:
        cols = np.arange(min(w.shape[1], max_concepts))
    sub = w[:, cols]
    vmax = robust_limit(sub, percentile)
    clipped = bool((np.abs(sub) > vmax * (1 + 1e-9)).any())
    fig, ax = new_figure(0.42 * len(cols) + 3.0, 0.42 * len(class_names) + 2.6)
    im = ax.imshow(sub, cmap="RdBu", vmin=-vmax, vmax=vmax, aspect="auto",
                   interpolation="nearest")
    ax.set_xticks(np.arange(len(cols)), [shorten(str(concept_names[i]), 32) for i in cols],
                  rotation=60, ha="right", rotation_mode="anchor", fontsize=7)
    ax.set_yticks(np.arange(len(class_names)), [shorten(str(c), 28) for c in class_names],
                  fontsize=8)
    if annotate is None:
        annotate = len(cols) <= 45 and len(class_names) <= 25
    if annotate:
        for r, c in zip(*np.nonzero(sub), strict=True):
            v = sub[r, c]
            ax.text(c, r, fmt_number(v, 2), ha="center", va="center", fontsize=5.5,
                    color="white" if abs(v) > 0.6 * vmax else "black")
    ax.set_xticks(np.arange(len(cols) + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(len(class_names) + 1) - 0.5, minor=True)
    ax.grid(which="minor", color="#e8e8e8", lw=0.5)
    ax.tick_params(which="minor", length=0)
    fig.colorbar(im, ax=ax, fraction=0.03, pad=0.02, extend="both" if clipped else "neither",
                 label="weight")
    shown = f"{len(cols)} of {w.shape[1]} concepts (those with a non-zero weight); colour " \
            f"scale ±{fmt_number(vmax, 2)}" + \
            (f" (the {percentile:g}th percentile of |w|; cells print their value)"
             if clipped else "")
    ax.set_title(f"{title}\n{shown}", fontsize=8)
    return fig


def plot_weight_heatmap(weights: np.ndarray, class_names: Sequence[str],
                        concept_names: Sequence[str], path: PathLike, *,
                        max_concepts: int = 40, title: str = "class x concept weights") -> Path:
    """:func:`weight_heatmap_figure` written to ``path`` (PNG)."""
    return save_png(weight_heatmap_figure(weights, class_names, concept_names,
                                       max_concepts=max_concepts, title=title), path)


# ------------------------------------------------------------------------------------------------
# curves
# ------------------------------------------------------------------------------------------------


def intervention_figure(curves: Sequence[Mapping[str, Any]] |
                        Mapping[str, Sequence[Mapping[str, Any]]], *,
                        title: str = "test-time intervention") -> Figure:
    """Accuracy vs number of corrected concepts; one line per named curve.

    ``curves`` is one curve (``[{"n_corrected", "accuracy"}, ...]`` as returned by
    ``intervention_curve``) or ``{label: curve}``.
    """
    named = dict(curves) if isinstance(curves, Mapping) else {"": curves}
    if not named or not any(len(c) for c in named.values()):
        raise ConceptlabValueError("no intervention curve to plot")
    fig, ax = new_figure(5.5, 3.8)
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
    return fig


def plot_intervention_curve(curves: Sequence[Mapping[str, Any]] |
                            Mapping[str, Sequence[Mapping[str, Any]]], path: PathLike, *,
                            title: str = "test-time intervention") -> Path:
    """:func:`intervention_figure` written to ``path`` (PNG)."""
    return save_png(intervention_figure(curves, title=title), path)


def accuracy_nec_figure(points: Sequence[Mapping[str, Any]], *,
                        title: str = "accuracy vs number of effective concepts") -> Figure:
    """One marker per run: ``{"label", "accuracy", "nec"}``; ``nec`` None (a dense head) is
    drawn hollow at ``x = n_concepts`` (every concept may count) and labelled "dense"."""
    if not points:
        raise ConceptlabValueError("no runs to plot")
    fig, ax = new_figure(6.0, 4.0)
    for p in points:
        acc = float(p["accuracy"])
        dense = p.get("nec") is None
        x = float(p.get("n_concepts") or 0) if dense else float(p["nec"])
        ax.scatter([x], [acc], s=36, facecolors="none" if dense else _POS, edgecolors=_POS)
        ax.annotate(shorten(str(p["label"]), 28) + (" (dense)" if dense else ""), (x, acc),
                    textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xlabel("NEC (effective concepts per class; dense heads at their concept count)")
    ax.set_ylabel("test accuracy")
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=10)
    return fig


#: the concept-XAI metrics a figure shows, with their axis labels (``faithfulness.xai_metrics``)
XAI_FIGURE_METRICS: dict[str, str] = {"cem@1": "CEM@1", "cem@3": "CEM@3",
                                      "clm@1,a=1": "CLM@1\nα=1", "clm@1,a=3": "CLM@1\nα=3",
                                      "clm@3,a=3": "CLM@3\nα=3"}


def _mean_half(value: Any) -> tuple[float, float]:
    if isinstance(value, list | tuple):
        return float(value[0]), float(value[1]) if len(value) > 1 else 0.0
    return float(value), 0.0


def xai_metrics_figure(models: Mapping[str, Mapping[str, Any]],
                       chance: Mapping[str, float] | None = None, *,
                       title: str = "concept existence (CEM) and location (CLM)") -> Figure:
    """Grouped bars of the concept existence and location metrics per model (a value or a
    ``[mean, half-width]`` pair, drawn with its interval), with the chance level of each
    metric (a random concept ranking; a random region of the same size) as a black tick."""
    if not models:
        raise ConceptlabValueError("no models to plot")
    keys = [k for k in XAI_FIGURE_METRICS if any(k in m for m in models.values())]
    if not keys:
        raise ConceptlabValueError("no CEM / CLM values to plot")
    fig, ax = new_figure(1.25 * len(keys) + 2.5, 3.8)
    width = 0.8 / len(models)
    x = np.arange(len(keys))
    for i, (name, m) in enumerate(models.items()):
        pairs = [_mean_half(m[k]) if k in m else (np.nan, 0.0) for k in keys]
        ax.bar(x + (i - (len(models) - 1) / 2) * width, [p[0] for p in pairs], width,
               yerr=[p[1] for p in pairs], capsize=2, label=shorten(name, 40))
    if chance:
        for j, k in enumerate(keys):
            level = chance.get("cem") if k.startswith("cem") else \
                chance.get("clm," + k.split(",", 1)[1]) if "," in k else None
            if level is not None:
                ax.hlines(level, j - 0.42, j + 0.42, colors="black", linewidth=1.5,
                          label="chance" if j == 0 else None)
    ax.set_xticks(x, [XAI_FIGURE_METRICS[k] for k in keys], fontsize=8)
    ax.set_ylim(0, 1.3)  # room for the legend above the bars
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_ylabel("share of test images")
    ax.legend(fontsize=7, loc="upper center", ncol=len(models) + 1)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(title, fontsize=10)
    return fig


def thumbnail_png(image: Any, size: int = 96) -> bytes:
    """A PIL image as a small PNG (nearest-neighbour upscaling keeps tiny images crisp)."""
    img = image.convert("RGB")
    scale = size / max(img.size)
    new = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    from PIL import Image

    img = img.resize(new, Image.Resampling.NEAREST if scale > 1 else Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def plot_saved_model_weights(folder: PathLike, path: PathLike, *, max_concepts: int = 40) -> Path:
    """Heatmap of a saved ``ConceptBottleneckModel``'s head (read from disk, no refit)."""
    from conceptlab.bottleneck.saving import read_saved_weights
    from conceptlab.errors import ConceptlabValueError

    saved = read_saved_weights(folder)
    if saved["weights"] is None:
        raise ConceptlabValueError(f"{folder}: this model's head depends on the input (a "
                                   f"concept embedding model): no class x concept table")
    nec = saved.get("nec")
    title = f"{saved['method']} CBM head" + (f" (NEC {nec:g})" if nec else " (dense)")
    return plot_weight_heatmap(saved["weights"], saved["class_names"], saved["concept_names"],
                               path, max_concepts=max_concepts, title=title)
