"""Figures from the objects the API returns: the same figures the report draws.

Each function returns a matplotlib ``Figure`` (Agg canvas, no pyplot state: works in a
notebook, a script or a server) and takes what a call of the library gave you:

* :func:`explanation` - ``model.explain(X)`` (one row, or the list: its first row);
* :func:`weights` - a fitted ``ConceptBottleneckModel`` (its head per standard deviation of each
  activation, as in the report), or a ``(C x K)`` array with class and concept names;
* :func:`intervention` - ``intervention_curve(...)`` (one curve, or ``{label: curve}``);
* :func:`depth` - ``run_lm_probe(...)`` (its metrics, or their ``concepts`` list).

Save with ``fig.savefig("x.png")``; in Jupyter a returned Figure displays itself. The drawing is
``conceptlab.report.plots`` / ``report.lm_plots``: one implementation for the report and here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from conceptlab.errors import ConceptlabValueError
from conceptlab.report.lm_plots import depth_figure
from conceptlab.report.plots import (
    explanation_figure,
    intervention_figure,
    weight_heatmap_figure,
)

__all__ = ["depth", "explanation", "intervention", "weights"]


def explanation(explained: Mapping[str, Any] | Sequence[Mapping[str, Any]], *, top: int = 15,
                title: str | None = None) -> Figure:
    """Signed contributions (activation x weight) behind one decision, largest |c| first.

    ``explained``: one row of ``model.explain(X)`` or the whole list (its first row is drawn).
    """
    row = explained if isinstance(explained, Mapping) else (explained[0] if explained else None)
    if not isinstance(row, Mapping) or "concepts" not in row:
        raise ConceptlabValueError("explanation: give a row of model.explain(X) (a dict with "
                                   "'concepts'), or the list it returned")
    return explanation_figure(row, top=top, title=title)


def weights(model: Any, class_names: Sequence[str] | None = None,
            concept_names: Sequence[str] | None = None, *, max_concepts: int = 40,
            title: str = "class x concept weights") -> Figure:
    """Class x concept weight map of the concepts the head uses (blue for, red against).

    ``model``: a fitted ``ConceptBottleneckModel``, or a C x K array (then give the names).
    """
    head = getattr(model, "head_", None)
    if head is not None:
        w = np.asarray(head.weight, dtype=np.float64)
        class_names = list(model.class_names) if class_names is None else class_names
        concept_names = list(model.concept_names) if concept_names is None else concept_names
    elif hasattr(model, "head_"):
        raise ConceptlabValueError("weights: the model is not fitted yet")
    else:
        w = np.asarray(model, dtype=np.float64)
        if class_names is None or concept_names is None:
            raise ConceptlabValueError("weights: an array needs class_names and concept_names")
    return weight_heatmap_figure(w, class_names, concept_names, max_concepts=max_concepts,
                                 title=title)


def intervention(curves: Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Mapping[str, Any]]],
                 *, title: str = "test-time intervention") -> Figure:
    """Accuracy as more concepts are set to their true values: ``intervention_curve(...)``'s
    output, or ``{label: curve}`` for several lines."""
    return intervention_figure(curves, title=title)


def depth(probe: Mapping[str, Any] | Sequence[Mapping[str, Any]], *,
          title: str = "Concept depth: probe accuracy per layer") -> Figure:
    """Probe accuracy per layer for each concept (95% band, dotted shuffled-label control, depth
    marked). ``probe``: what ``run_lm_probe`` returned, or its ``concepts`` list."""
    concepts = probe.get("concepts") if isinstance(probe, Mapping) else probe
    if not isinstance(concepts, Sequence) or not concepts:
        raise ConceptlabValueError("depth: give run_lm_probe(...)'s result (with 'concepts')")
    rows = []
    for c in concepts:
        if not isinstance(c, Mapping) or "layers" not in c or "depth" not in c:
            raise ConceptlabValueError("depth: each concept needs 'name', 'depth' and 'layers'")
        # the probe records depth as a layer id and its position as depth_index; the figure
        # marks a position
        rows.append({**c, "depth": c.get("depth_index", c["depth"])})
    return depth_figure(rows, title)
