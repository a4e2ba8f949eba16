"""Headless Debian chromium through Playwright (screenshots, end-to-end tests).

Never ``playwright install``: the browser is the system's ``/usr/bin/chromium`` (Debian
package ``chromium``, installed by ``scripts/setup.sh --test``), launched with the flags
that keep it off the network and off the GPU.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from conceptlab.errors import ComputeError

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync")


def chromium_path() -> Path | None:
    """``$CONCEPTLAB_CHROMIUM``, else Debian's ``/usr/bin/chromium``, else one on PATH."""
    for cand in (os.environ.get("CONCEPTLAB_CHROMIUM"), "/usr/bin/chromium",
                 shutil.which("chromium")):
        if cand and Path(cand).is_file():
            return Path(cand)
    return None


@contextmanager
def launch_chromium() -> Iterator[Any]:
    """A Playwright ``Browser`` on the system chromium (closed on exit)."""
    from playwright.sync_api import sync_playwright

    exe = chromium_path()
    if exe is None:
        raise ComputeError("no chromium found: install Debian's `chromium` package "
                           "(scripts/setup.sh --test does) or set CONCEPTLAB_CHROMIUM")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(exe), headless=True,
                                     args=list(CHROMIUM_FLAGS))
        try:
            yield browser
        finally:
            browser.close()
