"""End to end: the explorer driven in a real headless browser (Playwright for Python on
Debian's chromium, never ``playwright install``). What the page shows after picking an input
and moving a concept slider must equal what the Python API returns for the same
intervention; a malformed upload must show a clear error, and the next request must work.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from conceptlab.report.browser import chromium_path
from tests.report.tiny_explorer import fit_tiny, png, solid

pytest.importorskip("playwright")
if chromium_path() is None:  # scripts/setup.sh --test installs it; say so rather than pass
    pytest.skip("Debian chromium is not installed (run scripts/setup.sh --test)",
                allow_module_level=True)

import uvicorn

from conceptlab.report.app import create_app
from conceptlab.report.browser import launch_chromium

TIMEOUT_MS = 20_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, Any, Any]]:
    model, data, encode = fit_tiny()
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(create_app(model, data, encode), host="127.0.0.1",
                                        port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the explorer did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", model, data
    srv.should_exit = True
    thread.join(timeout=10)


def shown_decision(page: Any) -> tuple[str, float, dict[str, float]]:
    pred = page.locator("#prediction")
    rows = page.locator("#contrib tbody tr")
    contrib = {rows.nth(i).get_attribute("data-concept"):
               float(rows.nth(i).get_attribute("data-contribution"))
               for i in range(rows.count())}
    return pred.get_attribute("data-class"), float(pred.get_attribute("data-probability")), \
        contrib


def api_decision(model: Any, x: np.ndarray, units: dict[str, float]
                 ) -> tuple[str, float, np.ndarray]:
    proba = model.intervene(x, units, return_proba=True)[0] if units else \
        model.predict_proba(x)[0]
    U = model.unit_values(x).copy()
    for name, v in units.items():
        U[:, model.concept_index(name)] = v
    c = int(proba.argmax())
    w, _ = model.effective_head()
    return model.class_names[c], float(proba[c]), w[c] * model.activations_from_units(U)[0]


def assert_same(page: Any, model: Any, x: np.ndarray, units: dict[str, float]) -> str:
    cls, p, contrib = api_decision(model, x, units)
    got_cls, got_p, got = shown_decision(page)
    assert got_cls == cls
    assert got_p == pytest.approx(p, abs=1e-6)
    assert got, "no contribution shown"
    for name, value in got.items():
        assert value == pytest.approx(float(contrib[model.concept_index(name)]), rel=1e-5, abs=1e-6)
    # the rows are the largest contributions, largest first
    top = sorted((abs(float(v)) for v in contrib if v != 0), reverse=True)[:len(got)]
    assert [abs(v) for v in got.values()] == pytest.approx(top, abs=1e-6)
    return cls


def wait_settled(page: Any) -> None:
    page.wait_for_selector("#prediction[data-pending='0'][data-class]:not([data-class=''])",
                           timeout=TIMEOUT_MS)


def test_pick_slide_and_upload_in_a_browser(server: tuple[str, Any, Any], tmp_path: Any) -> None:
    url, model, data = server
    i = int(np.flatnonzero(model.predict(data.X_test) == data.y_test)[0])
    x = data.X_test[i:i + 1]
    with launch_chromium() as browser:
        page = browser.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(url)
        page.wait_for_selector("body[data-ready='1']")
        # pick an input
        page.click(f"#items li[data-index='{i}']")
        wait_settled(page)
        assert assert_same(page, model, x, {}) == model.class_names[int(data.y_test[i])]
        p_before = shown_decision(page)[1]
        # move the slider of the concept that carries the decision to its lowest value
        slider = page.locator("#sliders input[type=range]").first
        name = slider.get_attribute("data-concept")
        slider.focus()
        slider.press("Home")
        page.wait_for_function(
            "name => name in JSON.parse(document.querySelector('#prediction')"
            ".getAttribute('data-set'))", arg=name)
        wait_settled(page)
        value = float(slider.input_value())
        assert value == pytest.approx(float(slider.get_attribute("min")))
        shown_set = json.loads(page.locator("#prediction").get_attribute("data-set"))
        assert shown_set == {name: pytest.approx(value)}
        assert_same(page, model, x, {name: value})
        assert shown_decision(page)[1] < p_before - 1e-3  # the top concept removed: less sure
        # and a few steps up: every change is re-explained
        for _ in range(3):
            slider.press("ArrowRight")
        page.wait_for_function(
            "([name, v]) => JSON.parse(document.querySelector('#prediction')"
            ".getAttribute('data-set'))[name] > v", arg=[name, value])
        wait_settled(page)
        stepped = float(slider.input_value())
        assert stepped > value
        assert_same(page, model, x, {name: stepped})

        # a malformed upload: a clear error, and the next request still works
        bad = tmp_path / "broken.png"
        bad.write_bytes(b"\x89PNG but not really an image")
        page.set_input_files("#file", str(bad))
        page.click("#submit")
        page.wait_for_function("document.querySelector('#error').textContent.length > 0")
        assert "cannot read the uploaded file as an image" in page.text_content("#error")
        good = tmp_path / "green.png"
        good.write_bytes(png(solid(1, 48)))
        page.set_input_files("#file", str(good))
        page.click("#submit")
        page.wait_for_function("document.querySelector('#error').textContent === ''")
        wait_settled(page)
        assert page.get_attribute("#prediction", "data-class") == "dog"
        assert page.locator("#preview img").get_attribute("src").startswith("/api/input/upload/")
        # browsing keeps working after both
        j = int(np.flatnonzero(data.y_test != data.y_test[i])[0])
        page.click(f"#items li[data-index='{j}']")
        page.wait_for_function("document.querySelector('#prediction').getAttribute('data-set')"
                               " === '{}'")
        wait_settled(page)
        assert_same(page, model, data.X_test[j:j + 1], {})
        # nearest training examples and the comparison of two profiles are shown
        page.wait_for_selector("#neighbours .nb")
        page.click("#set-a")
        page.click(f"#items li[data-index='{i}']")
        wait_settled(page)
        page.click("#set-b")
        page.wait_for_selector("#compare [data-similarity]")
        sim = float(page.get_attribute("#compare [data-similarity]", "data-similarity"))
        assert -1.0 <= sim < 0.99
