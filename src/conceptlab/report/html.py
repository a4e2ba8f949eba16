"""HTML report: one self-contained page from saved tables, figures and records.

Every image is embedded as a ``data:`` URI and the page carries its own style, so the file
opens anywhere, alone, with no network (``check_self_contained`` enforces it). It reads
results that were already saved; it never recomputes a model.
"""

from __future__ import annotations

import base64
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from conceptlab.errors import ConceptlabValueError
from conceptlab.report.plots import fmt_number
from conceptlab.utils.io import write_text_atomic


@dataclass
class Figure:
    """A PNG given as a file (``path``, read and embedded) or as bytes (``png``)."""

    path: Path | None = None
    caption: str = ""
    png: bytes | None = None


@dataclass
class Table:
    columns: list[str]
    rows: list[list[Any]]
    css: str = ""  # "notes": the third column is explanatory text


@dataclass
class Example:
    """One decision: the input (a PNG thumbnail or a text), a title, the explanation chart."""

    title: str
    correct: bool | None = None
    thumbnail: bytes | None = None
    text: str | None = None
    note: str = ""
    chart: bytes | None = None


@dataclass
class Section:
    heading: str
    text: str = ""
    table: Table | None = None
    figures: list[Figure] = field(default_factory=list)
    data: Any = None  # a record (nested dicts), shown as a key / value table
    examples: list[Example] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    half: bool = False  # drawn at half width, beside the next half-width section


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def fmt_cell(cell: Any) -> str:
    """A table cell as a person reads it: ``5`` not ``5.0000``, ``0.805`` not ``0.80512``,
    ``yes``/``no`` for booleans, lists joined by commas, ``-`` for missing values."""
    if cell is None:
        return "-"
    if isinstance(cell, bool):
        return "yes" if cell else "no"
    if isinstance(cell, float):
        if math.isnan(cell):
            return "-"
        return fmt_number(cell, 4 if abs(cell) < 1 else 3) if abs(cell) < 1e4 else f"{cell:,.0f}"
    if isinstance(cell, int):
        return f"{cell:,}" if abs(cell) >= 10_000 else str(cell)
    if isinstance(cell, list | tuple):
        return ", ".join(fmt_cell(c) for c in cell) if cell else "-"
    return str(cell)


def flatten_record(record: Any, prefix: str = "", max_list: int = 12) -> list[tuple[str, str]]:
    """``(dotted key, readable value)`` rows of a nested record; short lists of scalars stay on
    one row, long ones are summarised by their length."""
    rows: list[tuple[str, str]] = []
    if isinstance(record, Mapping):
        if not record and prefix:
            rows.append((prefix, "-"))
        for key, value in record.items():
            rows += flatten_record(value, f"{prefix}.{key}" if prefix else str(key), max_list)
    elif isinstance(record, list | tuple) and any(isinstance(v, Mapping | list | tuple)
                                                  for v in record):
        for i, value in enumerate(record[:max_list]):
            rows += flatten_record(value, f"{prefix}[{i}]", max_list)
        if len(record) > max_list:
            rows.append((prefix, f"... {len(record) - max_list} more"))
    elif isinstance(record, list | tuple) and len(record) > max_list:
        rows.append((prefix, f"{len(record)} values: {fmt_cell(list(record[:max_list]))}, ..."))
    else:
        rows.append((prefix, fmt_cell(record)))
    return rows


def _figure_src(fig: Figure) -> str:
    if fig.png is not None:
        return data_uri(fig.png)
    if fig.path is not None and Path(fig.path).is_file():
        return data_uri(Path(fig.path).read_bytes())
    return ""


_EXTERNAL = re.compile(r"""(?:src|href|action|poster|data)\s*=\s*["']?(?!data:|#)([^"'\s>]+)""",
                       re.IGNORECASE)
_CSS_URL = re.compile(r"url\(\s*['\"]?(?!data:)([^'\")]+)", re.IGNORECASE)


def external_references(html: str) -> list[str]:
    """Every attribute or CSS ``url()`` in ``html`` that points outside the page (anything but
    ``data:`` URIs and ``#anchors``): a self-contained report has none."""
    return _EXTERNAL.findall(html) + _CSS_URL.findall(html)


def check_self_contained(html: str) -> None:
    refs = external_references(html)
    if refs:
        raise ConceptlabValueError(f"report refers to {len(refs)} thing(s) outside itself, e.g. "
                                   f"{refs[0]!r}")


@dataclass
class Card:
    """One headline number at the top of the page (``bad`` draws it as a failed check)."""

    label: str
    value: Any
    bad: bool = False


def render_report(title: str, sections: list[Section], subtitle: str = "",
                  warnings: list[str] | None = None, cards: list[Card] | None = None) -> str:
    """The page as a string (see :func:`write_report`)."""
    env = Environment(loader=PackageLoader("conceptlab.report", "templates"),
                      autoescape=select_autoescape(["html"]))
    rendered = []
    for s in sections:
        figures = [{"src": src, "caption": f.caption} for f in s.figures
                   if (src := _figure_src(f))]
        table = None
        if s.table is not None:
            table = {"columns": s.table.columns, "css": s.table.css,
                     "rows": [[fmt_cell(c) for c in row] for row in s.table.rows]}
        examples = [{"title": e.title, "correct": e.correct, "note": e.note, "text": e.text,
                     "thumb": data_uri(e.thumbnail) if e.thumbnail else "",
                     "chart": data_uri(e.chart) if e.chart else ""} for e in s.examples]
        rendered.append({"heading": s.heading, "text": s.text, "table": table,
                         "figures": figures, "examples": examples, "warnings": s.warnings,
                         "half": s.half,
                         "record": flatten_record(s.data) if s.data else []})
    html = env.get_template("report.html").render(
        title=title, subtitle=subtitle, sections=rendered, warnings=warnings or [],
        cards=[{"label": c.label, "value": fmt_cell(c.value), "bad": c.bad}
               for c in cards or []])
    check_self_contained(html)
    return html


def write_report(path: str | os.PathLike[str], title: str, sections: list[Section],
                 subtitle: str = "", warnings: list[str] | None = None,
                 cards: list[Card] | None = None) -> Path:
    """Render ``sections`` to one self-contained HTML file (figures embedded as data URIs),
    written atomically; ``warnings`` become a banner and ``cards`` headline numbers at the
    top of the page."""
    html = render_report(title, sections, subtitle, warnings, cards)
    return write_text_atomic(Path(path), html)
