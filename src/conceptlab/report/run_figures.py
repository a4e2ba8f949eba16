"""The figures a command saves in its run folder, shown in that run's report.

Some commands answer with a figure a person would rather look at than read: ``cab`` (the
association bias against the association strength), ``lancet`` (edit success against
consistency) and ``shift`` (the concepts fine-tuning kept, lost and gained). Each saves it
beside its ``metrics.json``; :func:`figure_sections` puts it in the report, or says why a
section is empty. A new command with a figure is one entry in :data:`RUN_FIGURES`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conceptlab.report.html import Figure, Section


@dataclass(frozen=True)
class RunFigure:
    """A figure file a command writes into its run folder, with the words around it."""

    file: str
    heading: str
    text: str


RUN_FIGURES: dict[str, list[RunFigure]] = {
    "cab": [RunFigure("cab.png", "Concept association bias against association strength",
                      "Share of answers that take the other object's colour (CAB, against "
                      "one-object images) at each share of red circles in the training "
                      "captions.")],
    "lancet": [RunFigure("edits.png", "Edit success against consistency",
                         "Transplant edits (the strength the decomposition measured) beside "
                         "fixed-strength edits over a strength sweep: success = the edited "
                         "representation chosen as the target, consistency = the other "
                         "concepts' choices unchanged.")],
    "shift": [RunFigure("shift.png", "Concepts gained and lost in fine-tuning",
                        "Each base concept's matched fine-tuned concept: its cosine with the "
                        "original concept (open dot) and with the shifted one (filled dot); "
                        "below the dashed line the base concept counts as lost and its partner "
                        "as gained. Dot size: share of the inputs.")],
}


def figure_sections(path: Path, metrics: Mapping[str, Any], prefix: str = "") -> list[Section]:
    """One section per figure the run's command saves: the figure, or a sentence saying that
    the run folder lacks it and how to get it."""
    out = []
    for fig in RUN_FIGURES.get(str(metrics.get("command")), []):
        png = path / fig.file
        if png.is_file():
            text = fig.text
            title = (metrics.get("changes") or {}) if fig.file == "shift.png" else {}
            if title.get("status"):
                from conceptlab.report.shift_plots import changes_title

                text = f"{changes_title(dict(title))}. {text}"
            out.append(Section(prefix + fig.heading, text=text, figures=[Figure(path=png)]))
        else:
            out.append(Section(prefix + fig.heading,
                               text=f"No figure: this run folder has no {fig.file} (the "
                                    f"`{metrics.get('command')}` command writes it when "
                                    "matplotlib is installed; rerun it to draw it)."))
    return out
