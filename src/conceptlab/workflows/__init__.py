"""Whole jobs, each the Python twin of one command (the CLI only parses and prints).

Each ``run_*`` takes a ``RunConfig`` (data spec, encoder spec, split sizes, seed), prepares
cached embeddings, does one job, writes ``OUT/metrics.json`` atomically and returns it.
"""

from conceptlab.workflows.baselines import run_encode, run_probe, run_zeroshot
from conceptlab.workflows.prepare import Prepared, RunConfig, prepare

__all__ = ["Prepared", "RunConfig", "prepare", "run_encode", "run_probe", "run_zeroshot"]
