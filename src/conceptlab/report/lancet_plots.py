"""Edit success against consistency: CoLan's transplant as one point, the fixed-strength edit
as a curve over its strengths (reads the numbers of ``workflows.lancet``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_edits(rows: dict[str, dict[str, Any]], path: str | Path, title: str = "",
               ax: Any = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    own = ax is None
    if own:
        fig, ax = plt.subplots(figsize=(4.6, 3.8))
    fixed = sorted(((float(k.split()[1]), v) for k, v in rows.items() if k.startswith("fixed")))
    ax.plot([v["consistency"] for _, v in fixed], [v["success"] for _, v in fixed], "o-",
            color="#57a", label="fixed strength (alpha sweep)")
    for a, v in fixed:
        ax.annotate(f"{a:g}", (v["consistency"], v["success"]), fontsize=7,
                    xytext=(3, 3), textcoords="offset points")
    if "transplant" in rows:
        t = rows["transplant"]
        ax.plot([t["consistency"]], [t["success"]], "*", ms=14, color="#c33",
                label="CoLan transplant")
    ax.set_xlabel("consistency (other concepts' zero-shot unchanged)")
    ax.set_ylabel("edit success (target chosen)")
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=8, loc="lower left")
    if title:
        ax.set_title(title, fontsize=9)
    if own:
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
