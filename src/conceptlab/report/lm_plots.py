"""PNG figures for language-model concepts, drawn from saved results (plain dicts and lists).

``plot_depth``: probe accuracy per layer for every concept (95% band, shuffled control dashed,
depth marked); ``plot_sweep``: intended effect against side effect for a layers x coefficients
steering sweep; ``plot_clamps``: the clamping confirmations of decoded neurons;
``plot_observable``: cosine of an observable's feature vector with data-learned directions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from conceptlab.report.plots import PathLike, new_figure, save_png


def plot_depth(concepts: Sequence[Mapping[str, Any]], path: PathLike,
               title: str = "Concept depth: probe accuracy per layer") -> Path:
    """:func:`depth_figure` written to ``path`` (PNG)."""
    return save_png(depth_figure(concepts, title), path)


def depth_figure(concepts: Sequence[Mapping[str, Any]],
                 title: str = "Concept depth: probe accuracy per layer") -> Figure:
    """``concepts``: dicts with ``name``, ``depth`` and ``layers`` (rows from ``probe_layers``)."""
    fig, ax = new_figure(8, 4.5)
    colors = [f"C{i}" for i in range(10)]
    for c, col in zip(concepts, colors * 10, strict=False):
        acc = np.array([r["accuracy"]["value"] for r in c["layers"]])
        lo = np.array([r["accuracy"]["lo"] for r in c["layers"]])
        hi = np.array([r["accuracy"]["hi"] for r in c["layers"]])
        x = np.arange(len(acc))
        ax.plot(x, acc, color=col, label=f"{c['name']} (depth {c['depth']})")
        ax.fill_between(x, lo, hi, color=col, alpha=0.15, linewidth=0)
        if all("control" in r for r in c["layers"]):
            ctrl = [r["control"]["accuracy"]["value"] for r in c["layers"]]
            ax.plot(x, ctrl, color=col, linestyle=":", linewidth=1)
        ax.plot([c["depth"]], [acc[c["depth"]]], marker="o", color=col)
        chance = float(c.get("chance", 0.5))
        if abs(chance - 0.5) > 1e-9:  # an imbalanced or multi-class set: its own chance line
            ax.axhline(chance, color=col, linewidth=0.8, linestyle="--")
    chances = [float(c.get("chance", 0.5)) for c in concepts]
    if any(abs(x - 0.5) <= 1e-9 for x in chances):
        ax.axhline(0.5, color="grey", linewidth=0.8)
    warn = [c["name"] for c in concepts if c.get("warning")]
    if warn:
        ax.text(0.01, 0.02, "imbalanced: " + ", ".join(warn) + " (dashed: majority-class rate)",
                transform=ax.transAxes, fontsize=7, color="darkred")
    ax.set_xlabel("layer (output of block)")
    ax.set_ylabel("cross-validated probe accuracy")
    ax.set_ylim(min(0.3, min(chances) - 0.05), 1.02)
    ax.set_title(title + " (dotted: control task)")
    ax.legend(loc="lower right", fontsize=8)
    return fig


def plot_sweep(rows: Sequence[Mapping[str, Any]], path: PathLike, intended: str = "intended",
               side: str = "kl", title: str = "Steering: intended effect vs side effect") -> Path:
    """One line per layer through its coefficients (labelled), x = side effect, y = intended."""
    fig, ax = new_figure(7, 4.5)
    layers = sorted({int(r["layer"]) for r in rows})
    for i, layer in enumerate(layers):
        rr = sorted((r for r in rows if int(r["layer"]) == layer), key=lambda r: r["coef"])
        xs, ys = [r[side] for r in rr], [r[intended] for r in rr]
        ax.plot(xs, ys, marker="o", color=f"C{i % 10}", label=f"layer {layer}")
        for r, x, y in zip(rr, xs, ys, strict=True):
            ax.annotate(f"{r['coef']:g}", (x, y), fontsize=6, xytext=(2, 2),
                        textcoords="offset points")
    ax.set_xscale("symlog", linthresh=1e-3)
    ax.set_xlabel(f"side effect: {side} on unrelated text")
    ax.set_ylabel(f"intended effect: {intended}")
    ax.set_title(title)
    ax.legend(fontsize=7)
    return save_png(fig, path)


def plot_clamps(rows: Sequence[Mapping[str, Any]], path: PathLike,
                title: str = "Clamping decoded neurons on neutral prompts") -> Path:
    """Bars: change in log P(the neuron's top tokens) vs random tokens, per searched word."""
    fig, ax = new_figure(max(5.0, 0.9 * len(rows) + 2), 4)
    x = np.arange(len(rows))
    ax.bar(x - 0.27, [r["delta_logp_tokens"] for r in rows], 0.27, label="its top tokens")
    ax.bar(x, [r.get("delta_logp_tokens_control_mean", np.nan) for r in rows], 0.27,
           label="same tokens, random neurons of its layer")
    ax.bar(x + 0.27, [r["delta_logp_random_tokens"] for r in rows], 0.27,
           label="random tokens")
    ax.set_xticks(x, [f"{r['word']}\nL{r['layer']}.{r['neuron']}" for r in rows], fontsize=7)
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set_ylabel("change in log probability (nats)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return save_png(fig, path)


def plot_observable(rows: Sequence[Mapping[str, Any]], path: PathLike,
                    title: str = "Observable feature vector vs learned directions") -> Path:
    """Per layer: cosine of the observable's feature vector with probe and mean-diff directions."""
    fig, ax = new_figure(7, 4)
    x = [r["layer"] for r in rows]
    for key, label in (("cos_probe", "probe direction"), ("cos_mean_diff", "mean difference"),
                       ("auc_observable", "AUC of the observable's projection")):
        if key in rows[0]:
            ax.plot(x, [r[key] for r in rows], marker=".", label=label)
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set_xlabel("layer (output of block)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return save_png(fig, path)


def plot_ablation(rows: Sequence[Mapping[str, Any]], path: PathLike,
                  title: str = "Ablating concept directions") -> Path:
    """Per concept: held-out probe AUROC before / after, the refit probe after, and KL."""
    fig, ax = new_figure(max(5.0, 1.4 * len(rows) + 2), 4)
    x = np.arange(len(rows))
    probes = [r["probes"][f"layer_{r['layer']}"] for r in rows]
    ax.bar(x - 0.27, [p["heldout_before"] for p in probes], 0.27, label="probe, before")
    ax.bar(x, [p["heldout_after"] for p in probes], 0.27, label="same probe, after")
    ax.bar(x + 0.27, [p["refit_after"] for p in probes], 0.27, label="refit probe, after")
    ax.axhline(0.5, color="grey", linewidth=0.8)
    ax.set_xticks(x, [f"{r['concept']}\nL{r['layer']}, KL {r['side_effects']['kl']:.3f}"
                      for r in rows], fontsize=7)
    ax.set_ylabel("held-out AUROC")
    ax.set_ylim(0, 1.05)
    ax.set_title(title)
    ax.legend(fontsize=7, loc="lower right")
    return save_png(fig, path)


def plot_parametric(rows: Sequence[Mapping[str, Any]], path: PathLike,
                    title: str = "Zeroing parametric concept vectors") -> Path:
    """Change in log P(concept tokens) on concept prefixes vs number of neurons zeroed."""
    fig, ax = new_figure(6, 4)
    for kind, style in (("concept", "-"), ("random", "--")):
        rr = sorted((r for r in rows if r["neurons"] == kind), key=lambda r: r["n"])
        ns = [r["n"] for r in rr]
        ax.plot(ns, [r["delta_logp_concept_on_prefixes"] for r in rr], style, marker="o",
                color="C0", label=f"{kind} neurons: concept prefixes")
        ax.plot(ns, [r["delta_logp_concept_on_neutral"] for r in rr], style, marker="s",
                color="C1", label=f"{kind} neurons: neutral prompts")
    ax.set_xscale("log")
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set_xlabel("neurons zeroed")
    ax.set_ylabel("change in log P(concept tokens)")
    ax.set_title(title)
    ax.legend(fontsize=7)
    return save_png(fig, path)
