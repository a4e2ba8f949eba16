"""The explorer against hostile requests (issue 19, item 7): a chunked body past the limit is
refused while it arrives (never read whole), and extreme slider values or deeply nested JSON
get a 400 with a message, never a 500."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from conceptlab.report.app import MAX_UPLOAD_BYTES, create_app
from tests.report.tiny_explorer import fit_tiny

MB = 1024 * 1024


@pytest.fixture(scope="module")
def tiny() -> tuple[Any, Any, Any]:
    return fit_tiny()


@pytest.fixture(scope="module")
def app(tiny: tuple[Any, Any, Any]) -> Any:
    model, data, encode = tiny
    return create_app(model, data, encode)


def _post_chunked(app: Any, path: str, pieces: list[bytes],
                  content_type: bytes = b"application/json") -> tuple[int, dict[str, Any], int]:
    """POST ``pieces`` to ``path`` as a chunked body (no Content-Length), straight through
    ASGI, so that each piece arrives as its own message; returns (status, JSON answer,
    pieces the server asked for)."""
    pulled = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        if pulled >= len(pieces):
            await asyncio.sleep(0)
            return {"type": "http.disconnect"}
        pulled += 1
        return {"type": "http.request", "body": pieces[pulled - 1],
                "more_body": pulled < len(pieces)}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": path, "raw_path": path.encode(),
             "root_path": "", "query_string": b"", "server": ("testserver", 80),
             "client": ("127.0.0.1", 5000), "state": {},
             "headers": [(b"host", b"testserver"), (b"transfer-encoding", b"chunked"),
                         (b"content-type", content_type)]}

    async def run() -> None:
        async with app.router.lifespan_context(app):
            await app(scope, receive, send)

    asyncio.run(run())
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], json.loads(body), pulled


HEAD = (b'--B\r\nContent-Disposition: form-data; name="file"; filename="x.png"\r\n'
        b"Content-Type: image/png\r\n\r\n")


@pytest.mark.parametrize(("path", "first", "content_type"), [
    ("/api/explain", b" ", b"application/json"),
    ("/api/upload", HEAD, b"multipart/form-data; boundary=B"),
])
def test_a_chunked_body_past_the_limit_is_refused_while_it_arrives(
        app: Any, path: str, first: bytes, content_type: bytes) -> None:
    pieces = [first] + [b"x" * MB] * 60  # 60 MB, no Content-Length
    status, answer, pulled = _post_chunked(app, path, pieces, content_type)
    assert status == 413 and "too large" in answer["error"], answer
    # it stopped reading just past the limit (8 MB and a little slack), not at 60 MB
    assert pulled <= MAX_UPLOAD_BYTES // MB + 2
    # a chunked body within the limit is read and answered as usual
    status, answer, _ = _post_chunked(app, "/api/explain", [b'{"item": ', b"1}"])
    assert status == 200 and "prediction" in answer


def test_a_huge_chunked_body_through_the_test_client_is_a_413(app: Any) -> None:
    client = TestClient(app)

    def body() -> Any:
        for _ in range(12):
            yield b" " * MB

    r = client.post("/api/explain", content=body(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and "too large" in r.json()["error"]
    assert client.post("/api/explain", json={"item": 1}).status_code == 200


@pytest.mark.parametrize("value", [1e308, -1e308, 1e300])
@pytest.mark.parametrize("path", ["/api/explain", "/api/neighbours"])
def test_an_extreme_slider_value_is_a_400_with_the_allowed_range(tiny: Any, app: Any,
                                                                 path: str, value: float
                                                                 ) -> None:
    model = tiny[0]
    client = TestClient(app)
    name = model.concept_names[0]
    r = client.post(path, json={"item": 1, "units": {name: value}})
    assert r.status_code == 400, r.text
    assert "must lie in" in r.json()["error"] and name in r.json()["error"]
    # JSON's 1e999 parses to infinity: refused as not finite
    r = client.post(path, content=(f'{{"item": 1, "units": {{"{name}": 1e999}}}}').encode(),
                    headers={"content-type": "application/json"})
    assert r.status_code == 400 and "finite number" in r.json()["error"], r.text
    compare = client.post("/api/compare", json={"a": {"item": 1, "units": {name: value}},
                                                "b": {"item": 2}})
    assert compare.status_code == 400 and "must lie in" in compare.json()["error"]


@pytest.mark.parametrize("path", ["/api/explain", "/api/neighbours", "/api/compare"])
def test_json_nested_100k_deep_is_a_400(app: Any, path: str) -> None:
    client = TestClient(app)
    deep = b"[" * 100_000 + b"]" * 100_000
    for body in (deep, b'{"item": ' + deep + b"}"):
        r = client.post(path, content=body, headers={"content-type": "application/json"})
        assert r.status_code == 400, r.text[:200]
        assert "nested too deeply" in r.json()["error"]
    assert client.post("/api/explain", json={"item": 1}).status_code == 200
