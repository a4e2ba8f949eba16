"""HTML report: collects saved tables and PNG figures of a run into one page.

It reads results that were already saved (metrics, PNG paths); it never recomputes a model.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from conceptlab.utils.io import write_text_atomic


@dataclass
class Figure:
    path: Path
    caption: str = ""


@dataclass
class Table:
    columns: list[str]
    rows: list[list[Any]]


@dataclass
class Section:
    heading: str
    text: str = ""
    table: Table | None = None
    figures: list[Figure] = field(default_factory=list)
    data: Any = None  # shown as pretty JSON


def _fmt(cell: Any) -> str:
    if isinstance(cell, float):
        return f"{cell:.4f}" if abs(cell) < 10 else f"{cell:.1f}"
    return "" if cell is None else str(cell)


def write_report(path: str | os.PathLike[str], title: str, sections: list[Section],
                 subtitle: str = "") -> Path:
    """Render ``sections`` to a self-contained HTML file (figures linked relatively)."""
    out = Path(path)
    env = Environment(loader=PackageLoader("conceptlab.report", "templates"),
                      autoescape=select_autoescape(["html"]))
    rendered = []
    for s in sections:
        figures = []
        for fig in s.figures:
            fpath = Path(fig.path)
            src = os.path.relpath(fpath.resolve(), out.parent.resolve()) if fpath.exists() else ""
            figures.append({"src": src, "caption": fig.caption})
        table = None
        if s.table is not None:
            table = {"columns": s.table.columns,
                     "rows": [[_fmt(c) for c in row] for row in s.table.rows]}
        rendered.append({"heading": s.heading, "text": s.text, "table": table, "figures": figures,
                         "json": json.dumps(s.data, indent=2, default=str) if s.data else ""})
    html = env.get_template("report.html").render(title=title, subtitle=subtitle,
                                                  sections=rendered)
    return write_text_atomic(out, html)
