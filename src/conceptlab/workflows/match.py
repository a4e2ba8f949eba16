"""``conceptlab match``: explicit concept matching (after SESA) beside plain and dense baselines.

Steps: prepare the cached embeddings (recorded splits, validation from train only), build the
concept bank (``--concepts``, as for ``fit``), then on the same embeddings
* ``cosine``: the encoder's own cosine (no training);
* ``concept scores``: cosine of the untrained concept-score vectors ``normalize(x) . bank^T``;
* ``explicit``: :class:`~conceptlab.match.ExplicitMatcher` with the bank's concepts as its
  dimensions, trained by the pairwise ranking objective (epoch chosen on validation nDCG);
* ``explicit, random bank``: the same with the bank's directions replaced by seeded random
  unit vectors under the same names (do the names matter to the ranking?);
* ``dense``: the same layer, size and loss with no concept ties (a dense learned projection).

Held-out same-class retrieval (each test item queries the other test items): P/R/nDCG at 1, 5,
10 and mAP. The explicit matcher's units are audited (``match.audit``); ``OUT/matcher`` holds
it (safetensors + JSON), ``OUT/examples.json`` the best matches of a few test queries with the
shared concepts explaining each, ``OUT/metrics.json`` everything.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from conceptlab.bottleneck.audit import random_bank
from conceptlab.match import ExplicitMatcher, MatchConfig, audit_matcher
from conceptlab.match.ranking import cosine_matrix, retrieval_metrics
from conceptlab.runs import open_run
from conceptlab.utils.io import write_json_atomic
from conceptlab.workflows.concepts import check_concepts, concept_source, describe_source
from conceptlab.workflows.prepare import Prepared, RunConfig, prepare

ROWS = ("cosine", "concept scores", "explicit", "explicit, random bank", "dense")


def match_examples(matcher: ExplicitMatcher, prep: Prepared, n_queries: int = 5,
                   top: int = 3) -> list[dict[str, Any]]:
    """The ``top`` best test matches of the first ``n_queries`` test items, each with the
    shared concepts that explain it."""
    X, y = prep.X["test"], prep.y["test"]
    sim = matcher.similarity(X, X)
    np.fill_diagonal(sim, -np.inf)
    names = prep.class_names
    out = []
    for q in range(min(n_queries, len(X))):
        order = np.argsort(-sim[q], kind="stable")[:top]
        out.append({"query": int(q), "query_class": names[int(y[q])], "matches": [
            {"item": int(g), "class": names[int(y[g])], "cosine": float(sim[q, g]),
             "shared_concepts": matcher.shared_concepts(X[q], X[g], top=3)} for g in order]})
    return out


def fit_matchers(prep: Prepared, bank: Any, config: MatchConfig, seed: int
                 ) -> dict[str, ExplicitMatcher]:
    """The explicit matcher, its random-bank control and the dense control, one seed."""
    X, y, Xv, yv = prep.X["train"], prep.y["train"], prep.X["val"], prep.y["val"]
    return {
        "explicit": ExplicitMatcher(bank, config, seed=seed).fit(X, y, Xv, yv),
        "explicit, random bank": ExplicitMatcher(random_bank(bank, seed), config,
                                                 seed=seed).fit(X, y, Xv, yv),
        "dense": ExplicitMatcher(bank, config, tied=False, seed=seed).fit(X, y, Xv, yv),
    }


def evaluate_rows(prep: Prepared, bank: Any, matchers: dict[str, ExplicitMatcher],
                  labels: np.ndarray | None) -> dict[str, dict[str, Any]]:
    """Test retrieval metrics of every row, and the audit of each matcher's units."""
    Xt, yt = prep.X["test"], prep.y["test"]
    S = bank.scores(Xt)
    rows: dict[str, dict[str, Any]] = {
        "cosine": retrieval_metrics(cosine_matrix(Xt, Xt), yt),
        "concept scores": retrieval_metrics(cosine_matrix(S, S), yt),
    }
    for name, m in matchers.items():
        rows[name] = {**retrieval_metrics(m.similarity(Xt, Xt), yt),
                      "best_epoch": m.training_["best_epoch"],
                      "val_nDCG@10": m.training_["val_ndcg"],
                      "audit": audit_matcher(m, Xt, labels)}
    return rows


def run_match(config: RunConfig, out: str | Path, *, concepts: str = "auto",
              settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """Fit and compare matchers on one run's cached embeddings; save the explicit one."""
    check_concepts(concepts)
    match_config = MatchConfig.from_dict(dict(settings or {}))
    final = Path(out)
    with open_run("match", final) as run:
        stage = run.path()
        t0 = time.perf_counter()
        prep = prepare(config)
        src = concept_source(prep, concepts)
        matchers = fit_matchers(prep, src.bank, match_config, config.seed)
        labels = None if src.concept_labels is None else src.concept_labels["test"]
        rows = evaluate_rows(prep, src.bank, matchers, labels)
        examples = match_examples(matchers["explicit"], prep)
        matchers["explicit"].save(stage / "matcher")
        prep.write_encoder_json(stage)
        write_json_atomic(stage / "examples.json", examples)
        metrics = {"command": "match", **prep.base_metrics(), "concepts": describe_source(src),
                   "settings": asdict(match_config), "rows": rows,
                   "warnings": rows["explicit"]["audit"]["warnings"],
                   "matcher_dir": str(final / "matcher"),
                   "seconds": round(time.perf_counter() - t0, 3)}
        return run.finish(metrics)
