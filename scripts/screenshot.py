"""Regenerate ``docs/report-screenshot.png``: the first screen of a run's HTML report.

Usage: ``python scripts/screenshot.py [RUN_DIR_OR_REPORT_HTML] [--out docs/report-screenshot.png]``
(default ``runs/demo``, the main job's folder). A run folder gets its report rebuilt from its
saved results first (``conceptlab.workflows.report.build_report``). The page is opened in
Debian's chromium through Playwright (never ``playwright install``), 1280 x 900 pixels.
The page's widths are measured first: a page that scrolls sideways (wider than the window)
is refused (exit 1, no screenshot written), so the README never shows one.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from conceptlab.report.browser import launch_chromium
from conceptlab.workflows.report import build_report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", nargs="?", default="runs/demo",
                        help="a run folder or a report .html file")
    parser.add_argument("--out", default="docs/report-screenshot.png")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=900)
    args = parser.parse_args(argv)
    src = Path(args.source)
    with tempfile.TemporaryDirectory() as tmp:
        page_file = src if src.suffix == ".html" else build_report([src],
                                                                   Path(tmp) / "report.html")
        if not page_file.is_file():
            print(f"{page_file}: no such report", file=sys.stderr)
            return 2
        with launch_chromium() as browser:
            page = browser.new_page(viewport={"width": args.width, "height": args.height})
            page.goto(page_file.resolve().as_uri())
            page_w, view_w = page.evaluate("() => [document.documentElement.scrollWidth, "
                                           "document.documentElement.clientWidth]")
            print(f"page width {page_w} px, window {view_w} px")
            if page_w > view_w:
                print(f"{page_file}: the page scrolls sideways ({page_w} > {view_w} px); "
                      "no screenshot written", file=sys.stderr)
                return 1
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=args.out, full_page=False)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
