"""``conceptlab lancet``: Concept Lancet on cached representations: presence and edits.

Steps: prepare the cached embeddings (recorded splits, validation from train only); build the
concept dictionary (``auto`` for idsprites, or a ``[group/concept]`` file) and encode its
stimulus texts with the run's text side; choose the sparsity ``lam`` on validation (the best
mean presence AUROC against the data's ground-truth concepts, or the given one); then on test
* presence: each concept's coefficient against its ground-truth label (AUROC), beside the
  plain cosine score of the concept's vector;
* edits: for every ordered pair (source, target) of concepts of one group that the data shows
  (e.g. red -> blue), on the test inputs that hold the source: CoLan's transplant and the
  fixed-strength direction at each ``alpha``; *success* = the zero-shot choice within the
  group becomes the target, *consistency* = the zero-shot choices of every other audited group
  (those with ground truth) stay what they were before the edit.
Writes ``OUT/metrics.json`` and ``OUT/edits.png`` (success against consistency).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from conceptlab.faithfulness.units import concept_auroc
from conceptlab.lancet.decompose import Lancet
from conceptlab.lancet.dictionary import (
    SPRITE_TRUTH,
    ConceptDictionary,
    DictionaryError,
    parse_dictionary,
    read_dictionary,
    sprite_dictionary_texts,
)
from conceptlab.lancet.edit import fixed_edit, group_predictions, transplant
from conceptlab.runs import Run, open_run
from conceptlab.workflows.prepare import Prepared, RunConfig, prepare

DEFAULT_ALPHAS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.8, 1.2)
DEFAULT_LAMS = (0.005, 0.01, 0.02, 0.05)


def load_dictionary(spec: str, data: str) -> ConceptDictionary:
    if spec == "auto":
        if data.partition(":")[0] != "idsprites":
            raise DictionaryError(f"--dictionary auto exists for idsprites only; give a "
                                  f"[group/concept] file for {data}")
        return parse_dictionary(sprite_dictionary_texts(), source="auto:idsprites")
    return read_dictionary(spec)


def truth_columns(prep: Prepared, dictionary: ConceptDictionary) -> dict[int, int]:
    """Dictionary row -> ground-truth concept column, by name (idsprites' names mapped)."""
    names = list(prep.splits.test.concept_names or [])
    out: dict[int, int] = {}
    for col, name in enumerate(names):
        word = SPRITE_TRUTH.get(name, name)
        if word in dictionary.names:
            out[dictionary.index(word)] = col
    return out


def presence_auroc(W: np.ndarray, labels: np.ndarray, truth: dict[int, int]) -> dict[str, float]:
    rows = sorted(truth)
    auc = concept_auroc(W[:, rows], labels[:, [truth[k] for k in rows]])
    return {str(k): float(a) for k, a in zip(rows, auc, strict=True)}


def choose_lam(prep: Prepared, dictionary: ConceptDictionary, truth: dict[int, int],
               lams: tuple[float, ...]) -> tuple[float, dict[str, float]]:
    labels = prep.splits.val.concept_labels
    if not truth or labels is None:
        return lams[0], {}
    scores = {}
    for lam in lams:
        lancet = Lancet.fit(dictionary, prep.X["train"], lam)
        auc = presence_auroc(lancet.coefficients(prep.X["val"]), np.asarray(labels), truth)
        scores[str(lam)] = float(np.nanmean(list(auc.values())))
    best = max(lams, key=lambda v: scores[str(v)])
    return best, scores


def edit_pairs(dictionary: ConceptDictionary, truth: dict[int, int], group: str
               ) -> list[tuple[int, int]]:
    shown = [k for k in dictionary.group_members(group) if k in truth]
    return [(s, t) for s in shown for t in shown if s != t]


def evaluate_edits(lancet: Lancet, X: np.ndarray, labels: np.ndarray, truth: dict[int, int],
                   groups: list[str], alphas: tuple[float, ...]) -> dict[str, Any]:
    """Success and consistency of transplant and fixed edits, pooled over every pair of every
    edited group (each pair weighted by its number of source inputs)."""
    D = lancet.dictionary
    audited = [g for g in dict.fromkeys(D.groups) if any(k in truth for k in D.group_members(g))]
    members = {g: [k for k in D.group_members(g) if k in truth] for g in audited}
    before = {g: group_predictions(lancet, X, members[g]) for g in audited}
    W = lancet.coefficients(X)
    tallies: dict[str, list[float]] = {}

    def tally(key: str, Xe: np.ndarray, rows: np.ndarray, t: int, group: str) -> None:
        ok = group_predictions(lancet, Xe, members[group]) == t
        keep = np.ones(len(rows), bool)
        for g in audited:
            if g != group:
                keep &= group_predictions(lancet, Xe, members[g]) == before[g][rows]
        acc = tallies.setdefault(key, [0.0, 0.0, 0.0, 0.0])
        acc[0] += ok.sum()
        acc[1] += keep.sum()
        acc[2] += (ok & keep).sum()
        acc[3] += len(rows)

    n_pairs = 0
    for group in groups:
        for s, t in edit_pairs(D, truth, group):
            rows = np.flatnonzero(labels[:, truth[s]] == 1)
            if not len(rows):
                continue
            n_pairs += 1
            Xs = X[rows]
            tally("transplant", transplant(lancet, Xs, "replace", D.names[s], D.names[t],
                                           W=W[rows]), rows, t, group)
            for a in alphas:
                tally(f"fixed {a:g}", fixed_edit(lancet, Xs, "replace", a, D.names[s],
                                                 D.names[t]), rows, t, group)
    out = {key: {"success": v[0] / v[3], "consistency": v[1] / v[3], "both": v[2] / v[3],
                 "n": int(v[3])} for key, v in tallies.items()}
    return {"rows": out, "n_pairs": n_pairs, "groups": groups, "audited_groups": audited,
            "source_detected_rate": float(np.mean([W[labels[:, truth[s]] == 1, s].mean() > 0
                                                   for g in groups
                                                   for s, _ in edit_pairs(D, truth, g)]))
            if n_pairs else float("nan")}


def run_lancet(config: RunConfig, out: str | Path | None, *, dictionary: str = "auto",
               lam: float | None = None, edit_groups: tuple[str, ...] = ("colour", "shape"),
               alphas: tuple[float, ...] = DEFAULT_ALPHAS) -> dict[str, Any]:
    """Decompose, read presence, edit; see the module docstring."""
    dictionary_obj = load_dictionary(dictionary, config.data)
    bad = [g for g in edit_groups if g not in dictionary_obj.groups]
    if bad:
        raise DictionaryError(f"edit group(s) {bad} are not in the dictionary (groups: "
                              f"{', '.join(dict.fromkeys(dictionary_obj.groups))})")

    def job(run: Run) -> dict[str, Any]:
        stage = run.dir  # None: nothing is written
        t0 = time.perf_counter()
        prep = prepare(config)
        dictionary_obj.encode(prep.encoder.encode_texts)
        truth = truth_columns(prep, dictionary_obj)
        lam_used, lam_scores = (lam, {}) if lam is not None else choose_lam(
            prep, dictionary_obj, truth, DEFAULT_LAMS)
        lancet = Lancet.fit(dictionary_obj, prep.X["train"], lam_used)
        Xt = prep.X["test"]
        metrics: dict[str, Any] = {
            "command": "lancet", **prep.base_metrics(), "dictionary": dictionary,
            "n_dictionary": len(dictionary_obj.names), "lam": lam_used,
            "lam_validation_auroc": lam_scores}
        labels = prep.splits.test.concept_labels
        if truth and labels is not None:
            lab = np.asarray(labels)
            W = lancet.coefficients(Xt)
            rows = sorted(truth)
            cos = Xt / np.maximum(np.linalg.norm(Xt, axis=1, keepdims=True), 1e-12) @ \
                dictionary_obj.vectors[rows].T
            auc_w = presence_auroc(W, lab, truth)
            auc_c = concept_auroc(cos, lab[:, [truth[k] for k in rows]])
            metrics["presence"] = {
                dictionary_obj.names[k]: {"coefficient_auroc": auc_w[str(k)],
                                          "cosine_auroc": float(c)}
                for k, c in zip(rows, auc_c, strict=True)}
            metrics["presence_auroc_mean"] = float(np.nanmean(list(auc_w.values())))
            metrics["cosine_auroc_mean"] = float(np.nanmean(auc_c))
            metrics["active_per_input"] = float((W > 0).sum(1).mean())
            metrics["edits"] = evaluate_edits(lancet, Xt, lab, truth, list(edit_groups),
                                              alphas)
        metrics["seconds"] = round(time.perf_counter() - t0, 3)
        if stage is not None and "edits" in metrics:
            from conceptlab.report.lancet_plots import plot_edits

            plot_edits(metrics["edits"]["rows"], stage / "edits.png",
                       title=f"{config.data}: edit success vs consistency (test)")
        return run.finish(metrics)

    with open_run("lancet", out) as run:
        return job(run)
