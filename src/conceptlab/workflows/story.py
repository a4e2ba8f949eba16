"""Sentences that state results, computed from the rows (the demo, its report and the CLI
print these; none is written by hand). A test swaps the numbers and sees the words change."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from conceptlab.errors import ConceptlabValueError
from conceptlab.faithfulness.claims import LABELS


def paired_difference(correct_a: Sequence[bool], correct_b: Sequence[bool], *,
                      n_boot: int = 1000, seed: int = 0) -> tuple[float, float, float]:
    """Accuracy of A minus accuracy of B on the same items, with a paired item-bootstrap 95%
    percentile interval."""
    a = np.asarray(correct_a, dtype=np.float64)
    b = np.asarray(correct_b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ConceptlabValueError("paired correctness vectors must be equal-length and non-empty")
    d = a - b
    rng = np.random.default_rng(seed)
    reps = d[rng.integers(0, len(d), (n_boot, len(d)))].mean(axis=1)
    return float(d.mean()), float(np.quantile(reps, 0.025)), float(np.quantile(reps, 0.975))


def comparison_sentence(what: str, other: str, diff: tuple[float, float, float],
                        nec: float | None) -> str:
    """"WHAT beat OTHER by X [lo, hi] points at NEC = n", or "did not beat" when the interval
    holds zero, or "lost to" when it lies below."""
    mean, lo, hi = (100 * v for v in diff)
    at = "" if nec is None else f" at NEC = {nec:g}"
    span = f"{abs(mean):.1f} points (95% interval {lo:+.1f} to {hi:+.1f})"
    if lo > 0:
        return f"{what} beat {other} by {span}{at}."
    if hi < 0:
        return f"{what} lost to {other} by {span}{at}."
    return f"{what} did not beat {other} ({mean:+.1f} points, 95% interval {lo:+.1f} to " \
           f"{hi:+.1f}){at}."


def verdict_sentence(label: str, faithfulness: Mapping[str, Any]) -> str:
    """What the audit concluded about one model, with the claims behind it."""
    claims = faithfulness.get("claims") or {}
    failed = [LABELS.get(n, n) for n, c in claims.items()
              if isinstance(c, Mapping) and c.get("status") in ("fail", "undecided")
              and n != "decisions_need_concepts"]
    passed = [LABELS.get(n, n) for n, c in claims.items()
              if isinstance(c, Mapping) and c.get("status") == "pass"]
    nec = claims.get("decisions_need_concepts") or {}
    if faithfulness.get("trusted"):
        text = f"{label}: the audit trusts its concepts ({', '.join(passed) or 'no claim'} " \
               f"passed)."
    else:
        why = ", ".join(failed) or ("decisions need these concepts"
                                     if nec.get("status") == "fail" else "the required claim")
        text = f"{label}: the audit does not trust its concepts (failed or undecided: {why})."
    if nec.get("status") == "undecided":
        text += " Random directions would do as well for accuracy (a finding, not a verdict)."
    return text


def demo_story(fashion: Mapping[str, Any], shapes: Sequence[Mapping[str, Any]],
               shapes_diff: tuple[float, float, float] | None) -> list[str]:
    """The main job's story: the shapes CBM (real names) and the Fashion-MNIST CBM, each
    with its verdict, and real names against nonsense on the shapes."""
    out = []
    if shapes:
        out.append(verdict_sentence("Shapes through the caption-trained map",
                                    shapes[0].get("faithfulness") or {}))
        if len(shapes) > 1:
            out.append(verdict_sentence("The same shapes CBM under nonsense names",
                                        shapes[1].get("faithfulness") or {}))
    out.append(verdict_sentence("Fashion-MNIST through ConSE",
                                fashion.get("faithfulness") or {}))
    if shapes_diff is not None:
        out.append("On the shapes, " + comparison_sentence(
            "the real concept names", "random letter strings", shapes_diff,
            shapes[0].get("nec_requested") if shapes else None))
    return out
