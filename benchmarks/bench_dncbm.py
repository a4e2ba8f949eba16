"""DN-CBM beside the faithfulness table's rows: the same offline ConSE embeddings of
Fashion-MNIST, the same splits (10,000 train / 1,000 val carved from train / the full official
test), the same vocabulary (the built-in Fashion-MNIST concepts through MiniLM, as the CBM rows
name theirs), the same audit columns, seeds 0, 1, 2 (mean ± 95% t-interval).

    python benchmarks/bench_dncbm.py [--n-train 10000] [--seeds 0 1 2] [--units 1536]

Each row is ``workflows.dncbm.fit_dncbm_row`` (what ``conceptlab fit --method dncbm`` runs),
at NEC = 5 and with a dense head, audited by ``discover.dncbm_audit`` (with its
shuffled-name fidelity null).
Writes benchmarks/results/bench_dncbm.{json,md}.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_faithfulness import FAITH_COLUMNS, fmt, interval, markdown, summarize

RESULTS = Path(__file__).resolve().parent / "results"
EXTRA = ("shuffled_name_fidelity", "name_cosine_mean", "distinct_names_used", "n_units_used")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n-train", type=int, default=10000)
    ap.add_argument("--n-val", type=int, default=1000)
    ap.add_argument("--n-test", type=int, default=None)
    ap.add_argument("--units", type=int, default=1536, help="SAE units (4 x 384)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("CONCEPTLAB_NO_PROGRESS", "1")
    from conceptlab.utils.io import write_json_atomic, write_text_atomic
    from conceptlab.workflows.baselines import probe_accuracy
    from conceptlab.workflows.concepts import concept_source
    from conceptlab.workflows.dncbm import fit_dncbm_row
    from conceptlab.workflows.prepare import RunConfig, prepare

    cfg = RunConfig(data="fashion-mnist", encoder="conse", n_train=args.n_train,
                    n_val=args.n_val, n_test=args.n_test, seed=0)
    prep = prepare(cfg)
    src = concept_source(prep, "auto")
    per_seed: dict[int, list[dict[str, Any]]] = {}
    acc, _ = probe_accuracy(prep)  # deterministic: the same for every seed
    for seed in args.seeds:
        rows: list[dict[str, Any]] = [{"method": "linear-probe", "nec_requested": None,
                                       "accuracy": acc}]
        for nec in (5.0, None):
            t0 = time.perf_counter()
            _, row = fit_dncbm_row(prep, src, nec, {"units": args.units}, seed=seed)
            row = {**row, "method": f"DN-CBM (SAE {args.units} units)", "kind": "reference",
                   "is_cbm": True, "seconds_with_audit": round(time.perf_counter() - t0, 1)}
            rows.append(row)
            f = row["faithfulness"]
            print(f"seed {seed} nec={nec}: acc={row['accuracy']:.4f} "
                  f"fidelity={f['unit_fidelity_median']:.2f} "
                  f"name_match={f['name_match_rate']:.2f} "
                  f"agree={f['random_bank_agreement']:.3f} "
                  f"({row['seconds_with_audit']:.0f} s)", flush=True)
        per_seed[seed] = rows
    summary = summarize(per_seed)
    for e in summary:  # the DN-CBM-only columns
        rows = [r for rs in per_seed.values() for r in rs if r["method"] == e["method"]
                and r.get("nec_requested") == e["nec"]]
        for col in EXTRA:
            vals = [r.get("faithfulness", {}).get(col) for r in rows]
            if all(v is not None for v in vals) and vals:
                e[col] = interval([float(v) for v in vals])
        if rows and "dncbm" in rows[0]:
            e["sae_r2"] = interval([r["dncbm"]["sae_quality"]["r2"] for r in rows])
            e["alive_units"] = interval([float(r["dncbm"]["alive_units"]) for r in rows])
    md = (f"DN-CBM, Fashion-MNIST, offline ConSE ({len(prep.y['train'])} train / "
          f"{len(prep.y['val'])} val from train / {len(prep.y['test'])} test), "
          f"{len(src.bank)}-concept vocabulary, seeds {args.seeds}\n\n"
          + markdown(summary, FAITH_COLUMNS[:8]) + "\n\n"
          + "| head | alive units | units used | distinct names used | mean name cosine "
            "| fidelity to a shuffled name | SAE R² |\n|---|---|---|---|---|---|---|\n"
          + "\n".join(f"| {'dense' if e['nec'] is None else 'NEC=5'} | "
                      f"{fmt(e['alive_units'])} | {fmt(e['n_units_used'])} | "
                      f"{fmt(e['distinct_names_used'])} | {fmt(e['name_cosine_mean'])} | "
                      f"{fmt(e['shuffled_name_fidelity'])} | {fmt(e['sae_r2'])} |"
                      for e in summary if "sae_r2" in e) + "\n")
    print(md)
    RESULTS.mkdir(exist_ok=True)
    write_json_atomic(RESULTS / "bench_dncbm.json", {
        "config": cfg.__dict__, "splits": prep.splits.record, "n_vocab": len(src.bank),
        "units": args.units, "seeds": args.seeds, "per_seed": per_seed, "summary": summary,
        "command": "python benchmarks/bench_dncbm.py " + " ".join(sys.argv[1:])})
    write_text_atomic(RESULTS / "bench_dncbm.md", md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
