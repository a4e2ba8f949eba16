"""PNG figures for discovered concepts: a gallery (top crops + names + scores), importance bars,
attribution overlays and fidelity curves. They take saved arrays and images; nothing is fitted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from conceptlab.report.plots import PathLike, new_figure, save_png, shorten


def plot_concept_gallery(rows: Sequence[Mapping[str, Any]], path: PathLike, *,
                         title: str = "discovered concepts") -> Path:
    """One line per concept: its label text and its top crops (``rows[k]["crops"]``: a list of
    H x W (x 3) uint8 arrays, ``rows[k]["label"]``: text)."""
    from matplotlib.figure import Figure

    n = max(len(rows), 1)
    m = max((len(r["crops"]) for r in rows), default=1) or 1
    fig = Figure(figsize=(1.1 * m + 3.6, 1.15 * n + 0.6))
    axes = fig.subplots(n, m + 1, squeeze=False)
    for i, r in enumerate(rows):
        ax = axes[i, 0]
        ax.axis("off")
        ax.text(0, 0.5, str(r["label"]), fontsize=7, va="center", ha="left", wrap=True,
                transform=ax.transAxes)
        for j in range(m):
            ax = axes[i, j + 1]
            ax.axis("off")
            if j < len(r["crops"]):
                ax.imshow(np.asarray(r["crops"][j]), cmap="gray", interpolation="nearest")
    fig.suptitle(title, fontsize=10)
    return save_png(fig, path, dpi=90)


def plot_importance_bars(values: Mapping[str, np.ndarray], names: Sequence[str], path: PathLike,
                         *, title: str = "concept importance") -> Path:
    """Grouped horizontal bars: one group per concept, one bar per method (each method's
    values scaled to a maximum |value| of 1 so that they share an axis)."""
    methods = list(values)
    k = len(names)
    fig, ax = new_figure(7.5, 0.32 * k * max(len(methods), 1) / 2 + 1.6)
    h = 0.8 / max(len(methods), 1)
    for i, mname in enumerate(methods):
        v = np.nan_to_num(np.asarray(values[mname], np.float64))
        scale = np.abs(v).max() or 1.0
        ax.barh(np.arange(k) + i * h, v / scale, height=h, label=mname)
    ax.set_yticks(np.arange(k) + h * (len(methods) - 1) / 2, [shorten(n, 40) for n in names],
                  fontsize=7)
    ax.invert_yaxis()
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlabel("importance (each method scaled to max 1)")
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title(title, fontsize=10)
    return save_png(fig, path)


def plot_overlays(images: Sequence[np.ndarray], maps: np.ndarray, concept_names: Sequence[str],
                  path: PathLike, *, title: str = "where each concept is") -> Path:
    """A grid: one row per input image, first the image, then each concept's map over it.

    ``maps``: ``(N, K, H, W)`` at the images' size (``importance.attribution.concept_maps``).
    """
    from matplotlib.figure import Figure

    n, k = maps.shape[:2]
    fig = Figure(figsize=(1.3 * (k + 1), 1.4 * n + 0.5))
    axes = fig.subplots(n, k + 1, squeeze=False)
    vmax = np.abs(maps).max(axis=(0, 2, 3))  # one colour scale per concept (column)
    vmax[vmax == 0] = 1.0
    for i in range(n):
        axes[i, 0].imshow(images[i], cmap="gray")
        axes[i, 0].axis("off")
        for j in range(k):
            ax = axes[i, j + 1]
            ax.imshow(images[i], cmap="gray")
            ax.imshow(maps[i, j], cmap="jet", alpha=0.5, vmin=0, vmax=float(vmax[j]))
            ax.axis("off")
            if i == 0:
                ax.set_title(shorten(concept_names[j], 18), fontsize=6)
    fig.suptitle(title, fontsize=9)
    return save_png(fig, path, dpi=90)


def plot_fidelity_curves(curves: Mapping[str, np.ndarray], path: PathLike, *,
                         title: str = "concept deletion") -> Path:
    """Mean output vs fraction of concepts removed (or inserted), one line per order."""
    fig, ax = new_figure(5.0, 3.6)
    for name, c in curves.items():
        c = np.asarray(c)
        ax.plot(np.linspace(0, 1, len(c)), c, marker="o", ms=2, label=name)
    ax.set_xlabel("fraction of concepts changed")
    ax.set_ylabel("target probability")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=10)
    return save_png(fig, path)
