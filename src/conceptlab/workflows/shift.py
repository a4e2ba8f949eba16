"""``run_shift``: fine-tuning shift vectors as a whole job (twin of ``conceptlab shift``).

Reads the hidden states of the same inputs before and after fine-tuning (arrays, or ``.npy``
/ ``.safetensors`` files), computes the base concepts, each concept's shift vector, the
shifted concepts and their recovery of the fine-tuned concepts (``conceptlab.shift``), and
writes ``OUT/shift.safetensors``, ``OUT/metrics.json`` (with the concepts kept, lost and
gained, ``conceptlab.shift.concept_changes``) and ``OUT/shift.png`` (the concepts gained and
lost, when matplotlib is installed), whole or not at all.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from conceptlab.errors import InputError
from conceptlab.runs import open_run
from conceptlab.shift import concept_changes, concept_shift
from conceptlab.utils.io import save_tensors, write_json_atomic
from conceptlab.utils.version import package_version

States = np.ndarray | str | Path


def load_states(source: States, what: str) -> np.ndarray:
    """An (N, D) float32 array from an array, a ``.npy`` file (no pickle) or a
    ``.safetensors`` file holding one tensor (or one named ``states``)."""
    if isinstance(source, np.ndarray):
        return source.astype(np.float32)
    path = Path(source)
    if not path.is_file():
        raise InputError(f"{what}: no file {path}")
    if path.suffix == ".npy":
        try:
            return np.load(path, allow_pickle=False).astype(np.float32)
        except ValueError as err:
            raise InputError(f"{what}: {path} is not a plain .npy array ({err})") from err
    if path.suffix == ".safetensors":
        from safetensors.numpy import load_file

        tensors = load_file(str(path))
        if "states" in tensors:
            return tensors["states"].astype(np.float32)
        if len(tensors) == 1:
            return next(iter(tensors.values())).astype(np.float32)
        raise InputError(f"{what}: {path} holds {sorted(tensors)}; name the states 'states'")
    raise InputError(f"{what}: {path} must be a .npy or .safetensors file")


def run_shift(base: States, tuned: States, out: str | Path, *, k: int = 10,
              method: str = "kmeans", seed: int = 0, alpha: float = 1.0,
              threshold: float = 0.5) -> dict[str, Any]:
    """Shift vectors of ``k`` base concepts between ``base`` and ``tuned`` states; returns and
    writes the metrics (recovery per concept, shift norms, consistency, and the concepts kept,
    lost and gained at cosine ``threshold``)."""
    t0 = time.perf_counter()
    A = load_states(base, "base states")
    B = load_states(tuned, "fine-tuned states")
    with open_run("shift", Path(out)) as run:
        stage = run.path()
        s = concept_shift(A, B, k, method=method, seed=seed, alpha=alpha)
        save_tensors({"concepts": s.concepts, "shifts": s.shifts, "shifted": s.shifted,
                   "tuned_concepts": s.tuned_concepts,
                   "matching": s.matching.astype(np.int64),
                   "assignment": s.assignment.astype(np.int64)},
                     stage / "shift.safetensors")
        metrics = {"command": "shift", "method": method, "k": k, "seed": seed,
                   "n_inputs": len(A), "dim": int(A.shape[1]), **s.summary(),
                   "consistency": s.consistency(A, B),
                   "mean_state_change": float(np.linalg.norm(B - A, axis=1).mean()),
                   "changes": concept_changes(s, threshold),
                   "seconds": round(time.perf_counter() - t0, 2), "version": package_version()}
        try:
            from conceptlab.report.shift_plots import plot_shift_changes
        except ImportError:  # pragma: no cover - matplotlib is a core dependency
            pass
        else:
            plot_shift_changes(metrics["changes"], stage / "shift.png")
        write_json_atomic(stage / "metrics.json", metrics)
    return metrics
