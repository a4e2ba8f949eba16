"""Zero-shot and linear-probe accuracy of the ConSE space against its options, measured on
the full Fashion-MNIST test split (the options act after the cached backbone, so one
encoding serves every row).

    .venv/bin/python benchmarks/bench_zeroshot.py [--n-train N]

Writes benchmarks/results/bench_zeroshot.{json,md}.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

from conceptlab.utils.io import write_json_atomic, write_text_atomic
from conceptlab.workflows.baselines import probe_accuracy, zero_shot_accuracy
from conceptlab.workflows.prepare import RunConfig, prepare

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n-train", type=int, default=None)
    ap.add_argument("--n-val", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ks", default="1,5,20,100,0", help="ConSE top-k values (0 = all 1000)")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    rows: list[dict[str, Any]] = []
    for k in [int(v) for v in args.ks.split(",")]:
        cfg = RunConfig(data="fashion-mnist", encoder="conse", n_train=args.n_train,
                        n_val=args.n_val, seed=args.seed, encoder_options={"k": k})
        prep = prepare(cfg)
        row: dict[str, Any] = {"k": "all" if k == 0 else k}
        for templates in ("plain", "photo", "ensemble"):
            row[f"zeroshot_{templates}"] = zero_shot_accuracy(prep, templates)
        t0 = time.perf_counter()
        row["probe"], _ = probe_accuracy(prep)
        row["probe_seconds"] = round(time.perf_counter() - t0, 2)
        row["n_train"], row["n_test"] = len(prep.y["train"]), len(prep.y["test"])
        rows.append(row)
        print(row, flush=True)
    md = ["| ConSE k | zero-shot plain | zero-shot photo | zero-shot ensemble | linear probe |",
          "|---|---|---|---|---|"]
    md += [f"| {r['k']} | {r['zeroshot_plain']:.4f} | {r['zeroshot_photo']:.4f} | "
           f"{r['zeroshot_ensemble']:.4f} | {r['probe']:.4f} |" for r in rows]
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_json_atomic(RESULTS / "bench_zeroshot.json", {"rows": rows, "seed": args.seed,
                                                        "n_val": args.n_val})
    write_text_atomic(RESULTS / "bench_zeroshot.md", "\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
