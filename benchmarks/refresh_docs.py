"""Rewrite every generated block of the docs and README from the saved result files, without
rerunning any benchmark: each writer below reads only ``benchmarks/results``.

    .venv/bin/python benchmarks/refresh_docs.py

``tests/test_docs_match_results.py`` runs this on a copy of the repository's pages and checks
that nothing changes, i.e. that the committed pages say what the committed results say.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: (script, arguments): writers whose output depends only on benchmarks/results
WRITERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("faithfulness_docs.py", ()),
    ("discover_fidelity_docs.py", ()),
    ("backends_docs.py", ()),
    ("gumbel_ablation_table.py", ()),
    ("seed_systems_docs.py", ()),
    ("lm_obsprop_tables.py", ()),
    ("steer_vs_prompt_tables.py", ()),
    ("bench_vocab_size.py", ("--docs-only",)),
    ("bench_align.py", ("--docs-only",)),
    ("bench_dncbm.py", ("--docs-only",)),
    ("cbm_unit_maps.py", ("--docs-only",)),
    ("bench_discover.py", ("--docs-only",)),
    ("bench_serve.py", ("--docs-only",)),
    ("bench_lm_neurons.py", ("--docs-only",)),
    ("bench_craft_patches.py", ("--docs-only",)),
)


def main() -> int:
    for script, args in WRITERS:
        done = subprocess.run([sys.executable, str(HERE / script), *args],
                              capture_output=True, text=True, check=False)
        if done.returncode:
            print(f"{script} failed:\n{done.stderr[-2000:]}", file=sys.stderr)
            return done.returncode
    print(f"rewrote the generated blocks of {len(WRITERS)} writers")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
