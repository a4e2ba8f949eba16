"""The report's tables fit its column in a real browser (headless Debian chromium): a method
table as wide as the one a new user saw (2,526 px in a 1,180 px column) wraps or scrolls inside
its own box, and the page itself never scrolls sideways."""

from __future__ import annotations

from pathlib import Path

import pytest

from conceptlab.report.browser import chromium_path
from conceptlab.utils.io import read_json, write_json_atomic
from conceptlab.workflows.report import FAITHFULNESS_FIELDS, build_report
from tests.report.test_report import image_folder, write_run

pytest.importorskip("playwright")
if chromium_path() is None:
    pytest.skip("Debian chromium is not installed (run scripts/setup.sh --test)",
                allow_module_level=True)

from conceptlab.report.browser import launch_chromium


def test_wide_tables_stay_inside_the_column(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", image_folder(tmp_path / "images"))
    metrics = read_json(run / "metrics.json")
    faith = {k: 0.123456 for k in FAITHFULNESS_FIELDS if k != "trusted"}
    metrics["rows"] = [{"method": f"variant {i}: contrastive, embedding CBL, grounded, identity "
                                  f"init, class-row CLIP loss, lambda 1e-2",
                        "nec_requested": 5.0, "accuracy": 0.9, "mean_active_concepts": 4.2,
                        "fit_seconds": 1.5, "faithfulness": faith} for i in range(12)]
    write_json_atomic(run / "metrics.json", metrics)
    page_file = build_report([run, run], tmp_path / "wide.html")
    with launch_chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(page_file.as_uri())
        sizes = page.evaluate("""() => ({
            page: document.documentElement.scrollWidth,
            view: document.documentElement.clientWidth,
            column: document.body.clientWidth,
            boxes: [...document.querySelectorAll('.tablebox')]
                .map(b => b.getBoundingClientRect().width),
            tables: [...document.querySelectorAll('.tablebox table')].map(t => t.scrollWidth)})""")
    assert sizes["page"] <= sizes["view"], sizes  # no sideways scroll of the page
    assert max(sizes["boxes"]) <= sizes["column"] + 1, sizes  # every box fits the column
    assert max(sizes["tables"]) > 0
