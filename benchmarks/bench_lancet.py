"""Concept Lancet on idsprites through a caption-trained map: presence and edits, 3 seeds.

Seed s renders idsprites with data seed s (new images), fits the caption map on them
(``conceptlab align``, seed s, method chosen on validation captions) unless ``MAP_ROOT/seed{s}``
holds one already, then runs ``workflows.lancet.run_lancet``: the sparsity is chosen on
validation presence AUROC; on test, presence AUROC of the coefficients against the cosine of
the same concept vectors, and replace edits over every ordered colour pair and shape pair
(CoLan transplant vs a fixed-strength direction at alpha in 0.05..1.2): success (zero-shot
choice within the group becomes the target) and consistency (every other group's zero-shot
choice unchanged).

    python benchmarks/bench_lancet.py --map-root runs/lancet-maps [--seeds 0 1 2]

Writes benchmarks/results/bench_lancet.{json,md} and bench_lancet.png.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path
from typing import Any

from conceptlab.align.evaluate import mean_interval
from conceptlab.utils.io import write_json_atomic, write_text_atomic
from conceptlab.workflows.align import AlignConfig, run_align
from conceptlab.workflows.lancet import DEFAULT_ALPHAS, run_lancet
from conceptlab.workflows.prepare import RunConfig

RESULTS = Path(__file__).parent / "results"


def one_seed(seed: int, map_root: Path) -> dict[str, Any]:
    folder = map_root / f"seed{seed}"
    if not (folder / "map.json").is_file():
        run_align(AlignConfig(data="idsprites", data_options={"seed": seed}, seed=seed), folder)
    cfg = RunConfig(data="idsprites", encoder=f"linear:{folder}", data_options={"seed": seed},
                    seed=seed)
    m = run_lancet(cfg, None)
    return {"seed": seed, "map": str(folder), "lam": m["lam"],
            "lam_validation_auroc": m["lam_validation_auroc"],
            "presence_auroc_mean": m["presence_auroc_mean"],
            "cosine_auroc_mean": m["cosine_auroc_mean"], "presence": m["presence"],
            "active_per_input": m["active_per_input"], "edits": m["edits"],
            "n_test": m["n_test"], "encoder_fingerprint": m["encoder_fingerprint"]}


def summarise(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    keys = list(per_seed[0]["edits"]["rows"])
    edits = {k: {f: mean_interval([p["edits"]["rows"][k][f] for p in per_seed])
                 for f in ("success", "consistency", "both")} for k in keys}
    best_fixed = max((k for k in keys if k.startswith("fixed")),
                     key=lambda k: edits[k]["both"][0])
    return {"presence_auroc": mean_interval([p["presence_auroc_mean"] for p in per_seed]),
            "cosine_auroc": mean_interval([p["cosine_auroc_mean"] for p in per_seed]),
            "paired_presence_minus_cosine": mean_interval(
                [p["presence_auroc_mean"] - p["cosine_auroc_mean"] for p in per_seed]),
            "active_per_input": mean_interval([p["active_per_input"] for p in per_seed]),
            "edits": edits, "best_fixed_by_test_both": best_fixed,
            "paired_transplant_minus_best_fixed_both": mean_interval(
                [p["edits"]["rows"]["transplant"]["both"] - p["edits"]["rows"][best_fixed]["both"]
                 for p in per_seed])}


def fmt(pair: Any) -> str:
    return f"{pair[0]:.3f} ± {pair[1]:.3f}"


def table(result: dict[str, Any]) -> str:
    s = result["summary"]
    lines = [f"idsprites through a caption-trained map, seeds {result['seeds']} (data and map "
             f"seed), {result['per_seed'][0]['n_test']} test images, "
             f"{result['n_dictionary']} dictionary concepts x 5 stimulus texts.", "",
             "| presence (mean AUROC over the 18 ground-truth concepts) | value |", "|---|---|",
             f"| CoLan coefficient | {fmt(s['presence_auroc'])} |",
             f"| cosine with the same concept vector | {fmt(s['cosine_auroc'])} |",
             f"| paired difference | {fmt(s['paired_presence_minus_cosine'])} |",
             f"| active concepts per image | {fmt(s['active_per_input'])} |", "",
             "| replace edit (colour and shape pairs) | success | consistency | both |",
             "|---|---|---|---|"]
    for k, v in s["edits"].items():
        lines.append(f"| {k} | {fmt(v['success'])} | {fmt(v['consistency'])} | "
                     f"{fmt(v['both'])} |")
    d = s["paired_transplant_minus_best_fixed_both"]
    lines += ["", f"Transplant minus the best fixed strength ({s['best_fixed_by_test_both']}, "
              f"picked on test, so favoured), share of edits both successful and consistent: "
              f"{d[0]:+.3f} ± {d[1]:.3f}."]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--map-root", type=Path, default=Path("runs/lancet-maps"))
    args = ap.parse_args()
    t0 = time.perf_counter()
    per_seed = [one_seed(s, args.map_root) for s in args.seeds]
    from conceptlab.lancet.dictionary import parse_dictionary, sprite_dictionary_texts

    result = {"benchmark": "bench_lancet", "seeds": args.seeds, "alphas": list(DEFAULT_ALPHAS),
              "n_dictionary": len(parse_dictionary(sprite_dictionary_texts()).names),
              "per_seed": per_seed, "summary": summarise(per_seed),
              "seconds": time.perf_counter() - t0,
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
              "command": f"python benchmarks/bench_lancet.py --map-root {args.map_root}"}
    RESULTS.mkdir(exist_ok=True)
    write_json_atomic(RESULTS / "bench_lancet.json", result)
    md = table(result)
    write_text_atomic(RESULTS / "bench_lancet.md", md + "\n")
    from conceptlab.report.lancet_plots import plot_edits

    rows = {k: {f: v[f][0] for f in v} for k, v in result["summary"]["edits"].items()}
    plot_edits(rows, RESULTS / "bench_lancet.png",
               title="idsprites (caption map): replace edits, mean of 3 seeds")
    print(md)


if __name__ == "__main__":
    main()
