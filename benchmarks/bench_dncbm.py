"""DN-CBM on the offline ConSE embeddings of Fashion-MNIST (the same space and splits as the
comparison table's rows): accuracy at NEC = 5 and dense, unit-name cosines, fit time, beside a
linear probe on the same embeddings.

    flock /tmp/conceptlab-heavy.lock python benchmarks/bench_dncbm.py [--n-train 10000]

Vocabulary: the concept bank the CBM rows use (`concept_source(prep, "auto")`: the built-in
Fashion-MNIST concepts through MiniLM). Writes benchmarks/results/bench_dncbm.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-train", type=int, default=10000)
    ap.add_argument("--n-val", type=int, default=1000)
    ap.add_argument("--n-test", type=int, default=None)
    ap.add_argument("--units", type=int, default=1536, help="SAE units (4 x 384)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("CONCEPTLAB_NO_PROGRESS", "1")
    from conceptlab.discover.dncbm import fit_dncbm
    from conceptlab.workflows.baselines import probe_accuracy
    from conceptlab.workflows.concepts import concept_source
    from conceptlab.workflows.prepare import RunConfig, prepare

    cfg = RunConfig(data="fashion-mnist", encoder="conse", n_train=args.n_train,
                    n_val=args.n_val, n_test=args.n_test, seed=args.seed)
    t0 = time.perf_counter()
    prep = prepare(cfg)
    src = concept_source(prep, "auto")
    prep_s = time.perf_counter() - t0
    X, y = prep.X, prep.y
    rows = []
    acc, _ = probe_accuracy(prep)
    rows.append({"method": "linear probe (384-d ConSE embedding)", "accuracy": acc})
    for nec in (5.0, None):
        t1 = time.perf_counter()
        m = fit_dncbm(X["train"], y["train"], X["val"], y["val"],
                      n_classes=len(prep.class_names), vocab=src.bank.names,
                      vocab_embeddings=src.bank.vectors, n_concepts=args.units, nec=nec,
                      seed=args.seed)
        acc = float((m.predict(X["test"]) == y["test"]).mean())
        used = np.flatnonzero(np.abs(m.head.weight).sum(0) > 0)
        names = sorted({m.concept_names[i] for i in used})
        rows.append({"method": f"DN-CBM (SAE {args.units} units, "
                               f"{'NEC=5' if nec else 'dense'})", "accuracy": acc,
                     "nec": m.head.nec, "alive_units": m.info["alive_units"],
                     "units_used_by_head": len(used), "distinct_names_used": len(names),
                     "mean_name_cosine_used": float(m.name_scores[m.alive][used].mean()),
                     "sae_r2": m.info["sae_quality"]["r2"],
                     "sae_mean_active": m.info["sae_quality"]["mean_active"],
                     "example_names": names[:12],
                     "fit_seconds": round(time.perf_counter() - t1, 1)})
        print(rows[-1], flush=True)
    RESULTS.mkdir(exist_ok=True)
    out = {"config": cfg.__dict__, "n_vocab": len(src.bank), "prepare_seconds": round(prep_s, 1),
           "encoding": prep.encode_stats, "rows": rows}
    (RESULTS / "bench_dncbm.json").write_text(json.dumps(out, indent=2, default=str) + "\n")
    for r in rows:
        print(f"| {r['method']} | {r['accuracy']:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
