"""Directional ablation judged on held-out prompts only, by AUROC; its edits at one layer,
onward, or everywhere (Arditi et al. 2024).

Why held-out and AUROC: projecting out a mean-difference direction fitted on the training
prompts makes the training classes' means equal along every direction, so a probe
cross-validated on those same prompts learns the left-over, mirrored offset and scores *below*
chance (a measurement artifact, not evidence of removal); and a probe that answers one class
for every prompt after the edit has accuracy 0.5 whatever its scores, where AUROC reads the
order of its scores. So every number here is an AUROC on prompts the direction never saw:

* ``heldout_before`` / ``heldout_after``: the probe fitted on unedited training prompts
  (standardised with their statistics), scored on held-out prompts without / with the edit;
* ``refit_before`` / ``refit_after``: a fresh probe fitted on the (unedited / edited) training
  prompts and scored on the (unedited / edited) held-out prompts: is the concept still linearly
  readable some other way (Ravfogel et al., 2020)?

Scopes: ``layer`` (``h <- h - (h.v) v`` at ``blocks.L.hook_resid_post``), ``onward`` (every
block output from L on) and ``all``: Arditi et al. (2024, "Refusal in language models is
mediated by a single direction", section 2.4 "directional ablation") zero the direction out of
every residual-stream activation at every layer and position, done here, as in their code, on
each block's input and on what every attention and MLP sub-layer writes, so the stream never
holds the direction anywhere.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.linear_model import LogisticRegression

from conceptlab.lm.datasets import PromptSet
from conceptlab.lm.edits import Edit, project_out
from conceptlab.lm.model import CausalLM, Edits, LMError

SCOPES = ("layer", "onward", "all")


def ablation_edits(lm: CausalLM, direction: np.ndarray, layer: int, scope: str) -> list[Edit]:
    """The projection edits for ``scope`` (see the module docstring)."""
    if scope == "layer":
        return [project_out(f"blocks.{layer}.hook_resid_post", direction)]
    if scope == "onward":
        return [project_out(f"blocks.{t}.hook_resid_post", direction)
                for t in range(layer, lm.n_layers)]
    if scope == "all":
        pts = [f"blocks.{i}.{k}" for i in range(lm.n_layers)
               for k in ("hook_resid_pre", "hook_attn_out", "hook_mlp_out")]
        return [project_out(p, direction) for p in pts]
    raise LMError(f"scope must be one of {', '.join(SCOPES)}, got {scope!r}")


def auroc(y: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC of binary labels against scores (ties count one half)."""
    from conceptlab.lm.probing import binary_scores

    return float(binary_scores(y, score, 0)["auc"]["value"])


def _fit(X: np.ndarray, y: np.ndarray, seed: int
         ) -> tuple[LogisticRegression, np.ndarray, np.ndarray]:
    mu, sd = X.mean(0), X.std(0) + 1e-6
    clf = LogisticRegression(solver="liblinear", max_iter=2000, random_state=seed)
    return clf.fit((X - mu) / sd, y), mu, sd


def judge(base: np.ndarray, edited: np.ndarray, y: np.ndarray, train: np.ndarray,
          test: np.ndarray, seed: int = 0) -> dict[str, float]:
    """The four held-out AUROCs of the module docstring, from unedited and edited activations
    of the same prompts (rows aligned with ``y``)."""
    B, A = np.asarray(base, dtype=np.float64), np.asarray(edited, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    if len(np.unique(y[train])) < 2 or len(np.unique(y[test])) < 2:
        raise LMError("train and held-out prompts each need both classes")
    clf, mu, sd = _fit(B[train], y[train], seed)
    out = {"heldout_before": auroc(y[test], clf.decision_function((B[test] - mu) / sd)),
           "heldout_after": auroc(y[test], clf.decision_function((A[test] - mu) / sd))}
    for name, X in (("refit_before", B), ("refit_after", A)):
        c, m, s = _fit(X[train], y[train], seed)
        out[name] = auroc(y[test], c.decision_function((X[test] - m) / s))
    out["heldout_accuracy_after"] = float(
        (clf.predict((A[test] - mu) / sd) == y[test]).mean())
    return out


def probe_after_edit(lm: CausalLM, prompts: PromptSet, points: Sequence[str], edits: Edits,
                     train: np.ndarray, test: np.ndarray, seed: int = 0,
                     base: dict[str, np.ndarray] | None = None) -> dict[str, dict[str, float]]:
    """``judge`` at each of ``points`` (one edited forward pass for all); ``base`` passes
    cached unedited activations."""
    prompts.require_binary("ablation")
    points = list(points)
    if base is None:
        base = lm.activations(prompts.texts, points, desc="activations")
    edited = lm.activations(prompts.texts, points, edits=edits, desc="edited activations")
    return {p: {**judge(base[p], edited[p], prompts.labels, train, test, seed),
                "measure": "auroc_heldout"}  # type: ignore[dict-item]
            for p in points}
