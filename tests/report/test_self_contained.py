"""The report's self-containment check reads the page's tags, not its text: a concept or class
name such as ``src=x.png`` (escaped in a cell) is text and must not fail the report (issue 19:
it used to cost the whole ``fit``), while a real outside reference in a tag or style is caught."""

from __future__ import annotations

from pathlib import Path

import pytest

from conceptlab.errors import ConceptlabError
from conceptlab.report.html import (
    Section,
    Table,
    check_self_contained,
    external_references,
    render_report,
)
from conceptlab.utils.io import read_json, write_json_atomic
from conceptlab.workflows.report import build_report
from tests.report.test_report import image_folder, write_run
from tests.report.tiny_explorer import CLASSES

ODD = ["src=evil.png", "href=https://e.org", "data=x.swf", "action=/post", "poster=p.jpg",
       'a "quoted" src=\'y.png\'', "<img src=z.png>", "url(pic.png)"]


def test_names_that_look_like_attributes_are_text() -> None:
    html = render_report("t", [Section("names", table=Table(["concept"], [[n] for n in ODD]),
                                       text=" ".join(ODD))])
    assert external_references(html) == []
    assert "&lt;img src=z.png&gt;" in html  # escaped: the browser shows it, fetches nothing


@pytest.mark.parametrize(("page", "ref"), [
    ('<img src="x.png">', "x.png"),
    ("<a href='https://e.org'>a</a>", "https://e.org"),
    ("<form action=/post></form>", "/post"),
    ('<video poster="p.jpg"></video>', "p.jpg"),
    ('<object data="x.swf"></object>', "x.swf"),
    ('<img srcset="a.png 1x, data:image/png;base64,AA 2x">', "a.png"),
    ("<style>b{background:url(pic.png)}</style>", "pic.png"),
    ("<style>@import 'x.css';</style>", "x.css"),
    ('<div style="background: url(&quot;q.png&quot;)"></div>', "q.png"),
])
def test_real_outside_references_are_caught(page: str, ref: str) -> None:
    assert external_references(page) == [ref]
    with pytest.raises(ConceptlabError, match="outside itself"):
        check_self_contained(page)


def test_local_references_pass() -> None:
    page = ('<img src="data:image/png;base64,AAAA"><a href="#top">t</a>'
            "<style>p{background:url(data:image/png;base64,AA)}</style>")
    assert external_references(page) == []


def test_a_run_whose_names_look_like_attributes_gets_its_report(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", image_folder(tmp_path / "images"))
    meta_path = run / "model" / "model.json"
    meta = read_json(meta_path)
    k = len(meta["concept_names"])
    meta["concept_names"] = [ODD[i % len(ODD)] + f" {i}" for i in range(k)]
    meta["class_names"] = [f"poster=c{i}.jpg" for i in range(len(meta["class_names"]))]
    write_json_atomic(meta_path, meta)
    rename = {c: f"poster=c{i}.jpg" for i, c in enumerate(CLASSES)}
    exps = read_json(run / "explanations.json")
    for e in exps:
        e["prediction"], e["true_class"] = rename[e["prediction"]], rename[e["true_class"]]
    write_json_atomic(run / "explanations.json", exps)
    html = build_report([run], tmp_path / "r.html").read_text()
    assert "src=evil.png 0" in html and "poster=c0.jpg" in html
    assert external_references(html) == []
