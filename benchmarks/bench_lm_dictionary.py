"""A TopK SAE on SmolLM2-135M's residual stream from Debian's fortunes: trained on streamed
activations, named, audited, beside a random-direction dictionary of the same width and k
trained on the same stream, and beside the bare GEMMs of its shapes timed in the same run.

    .venv/bin/python benchmarks/bench_lm_dictionary.py [--tokens 100000] [--width 2304] \
        [--k 32] [--layer 6] [--lr 1.5e-3] [--out runs/bench-lm-dictionary]

Writes benchmarks/results/bench_lm_dictionary.json (the run's metrics.json plus the machine)
and the Markdown that docs/lm.md quotes, benchmarks/results/bench_lm_dictionary.md
(``benchmarks/lm_dictionary_tables.py``).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path

from conceptlab.utils.io import write_json_atomic, write_text_atomic
from conceptlab.workflows.lm_dictionary import run_lm_dictionary

RESULTS = Path(__file__).parent / "results"
TOPICS = "computers,food,law,love,medicine,politics,science,sports,drugs,education,pets,art"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=100_000)
    ap.add_argument("--lr", type=float, default=1.5e-3,
                    help="Adam step size (the collapse at 5e-3 and 1.5e-3 came from the "
                         "atoms' start, not the step size: see lm.dictionary.make_sae)")
    ap.add_argument("--width", type=int, default=2304)
    ap.add_argument("--k", type=int, default=32)
    ap.add_argument("--layer", type=int, default=6)
    ap.add_argument("--name-tokens", type=int, default=15_000)
    ap.add_argument("--eval-tokens", type=int, default=15_000)
    ap.add_argument("--out", default="runs/bench-lm-dictionary")
    a = ap.parse_args()
    m = run_lm_dictionary(f"fortunes:{TOPICS}", a.out, hook=f"blocks.{a.layer}.hook_resid_post",
                          method="topk", width=a.width, k=a.k, tokens=a.tokens, lr=a.lr,
                          name_tokens=a.name_tokens, eval_tokens=a.eval_tokens)
    m["machine"] = {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "note": "2 cores shared by several sessions"}
    m["argv"] = vars(a)
    write_json_atomic(RESULTS / "bench_lm_dictionary.json", m)
    sys.path.insert(0, str(Path(__file__).parent))
    from lm_dictionary_tables import tables

    write_text_atomic(RESULTS / "bench_lm_dictionary.md", tables(m, Path(a.out)))


if __name__ == "__main__":
    main()
