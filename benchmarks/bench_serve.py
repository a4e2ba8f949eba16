"""Latency of the explorer (``conceptlab serve``): sequential explain requests to a running
server, for test items (cached embeddings) and for newly uploaded images (encoding included).

Run: ``.venv/bin/python benchmarks/bench_serve.py [RUN_DIR] [--n 200]`` (default
``runs/demo``, the main job's folder: a gumbel Sparse-CBM on Fashion-MNIST through ConSE at
224 px). Prints a table and writes ``benchmarks/results/bench_serve.json`` (atomically).

Method: the server runs in its own process (``python -m conceptlab serve RUN_DIR``, uvicorn
on 127.0.0.1), the client is one ``httpx.Client`` with keep-alive sending requests one after
another (no concurrency); each latency is the client's wall time from send to parsed JSON.
10 warm-up requests of each kind are not counted. Kinds:

* ``explain test item``: ``POST /api/explain {"item": i}``, i cycling over the test split;
* ``explain + 3 concepts set``: the same with three unit values set (an intervention);
* ``upload``: ``POST /api/upload`` of a test image as PNG bytes (decode, validate, encode
  through EfficientNet-Lite0 + ConSE, explain): a new input each time; and the same image
  resized to 640 x 480 and sent as JPEG (a photo-sized upload: larger decode and resize).

For scale, the same work is timed in this process without HTTP: ``Explorer.explain`` (the
explorer's logic alone) and ``encoder.encode_images`` on one image (the network alone), so the
ratio says how much of a request is the web layer. Goals (issue 9): test items median < 20
ms and p95 < 50 ms; uploaded image median < 100 ms.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from conceptlab.utils.docblocks import markers, splice_file
from conceptlab.utils.io import read_json, write_json_atomic

RESULTS = Path(__file__).resolve().parent / "results" / "bench_serve.json"
DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
START, END = markers("serve-latency")
WARMUP = 10
GOAL_PART = re.compile(r"(median|p95) < ([0-9.]+) ms")


def goal_verdict(row: dict[str, Any]) -> str:
    """``row``'s goal with "met" or "not met (which part)", read from its text."""
    parts = GOAL_PART.findall(row["goal"])
    if not parts:
        return ""
    missed = [f"{stat} {row[f'{stat}_ms']:.3g} ms" for stat, bound in parts
              if not row[f"{stat}_ms"] < float(bound)]
    return row["goal"] + (": met" if not missed else f": not met ({', '.join(missed)})")


def docs_block(record: dict[str, Any]) -> str:
    """The latency table and the sentences under it, from ``record`` (this script's JSON)."""
    rows = record["rows"]
    lines = [START, "", f"Load average {record['machine']['load_average'][0]:.1f} at the end "
             f"of this run on {record['machine']['cpus']} cores; server ready in "
             f"{record['server_startup_s']:.1f} s.", "",
             "| kind | n | median ms | p95 ms | goal |", "|---|---|---|---|---|"]
    lines += [f"| {r['kind']} | {r['n']} | {r['median_ms']:.3g} | {r['p95_ms']:.3g} | "
              f"{goal_verdict(r)} |" for r in rows]
    by = {r["kind"]: r for r in rows}
    inproc = next(r for k, r in by.items() if k.startswith("in-process Explorer.explain"))
    http = by.get("HTTP explain test item")
    words = []
    if http:
        share = 1 - inproc["median_ms"] / http["median_ms"]
        words.append(f"Explaining a cached test item is one activation map and one C x K product "
                     f"({inproc['median_ms']:.2f} ms in process): about {share:.0%} of an HTTP "
                     f"explain request's {http['median_ms']:.2f} ms (median) is the web layer "
                     "(HTTP, routing, JSON).")
    for r in rows:
        parts = dict((stat, float(b)) for stat, b in GOAL_PART.findall(r["goal"]))
        if list(parts) == ["median"] and r["p95_ms"] >= parts["median"]:
            words.append(f"The p95 of \"{r['kind']}\" ({r['p95_ms']:.3g} ms) is above "
                         f"{parts['median']:g} ms; the goal is on the median.")
    missed = [r["kind"] for r in rows if goal_verdict(r).endswith(")")]
    words.append("Every goal is met." if not missed else
                 f"Goals not met: {', '.join(missed)}.")
    return "\n".join([*lines, "", " ".join(words), "", END])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q))


def timed(fn: Callable[[int], Any], n: int) -> list[float]:
    for i in range(WARMUP):
        fn(i)
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        fn(i)
        out.append((time.perf_counter() - t0) * 1000.0)
    return out


def summary(name: str, ms: list[float], goal: str = "") -> dict[str, Any]:
    return {"kind": name, "n": len(ms), "median_ms": statistics.median(ms),
            "p95_ms": percentile(ms, 95), "mean_ms": statistics.fmean(ms),
            "max_ms": max(ms), "goal": goal}


def start_server(run_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "CONCEPTLAB_NO_PROGRESS": "1", "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1"}
    return subprocess.Popen([sys.executable, "-m", "conceptlab", "serve", str(run_dir),
                             "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def wait_ready(client: Any, proc: subprocess.Popen[bytes], timeout: float = 600.0) -> float:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise RuntimeError(f"the server exited: {err[-2000:]}")
        try:
            if client.get("/api/info").status_code == 200:
                return time.perf_counter() - t0
        except Exception:
            time.sleep(0.2)
    raise RuntimeError("the server did not start")


def png_bytes(img: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def jpeg_bytes(img: Any) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    import httpx

    from conceptlab.report.app import Explorer
    from conceptlab.workflows.cbm import load_saved
    from conceptlab.workflows.serve import explorer_data

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", nargs="?", default="runs/demo")
    parser.add_argument("--n", type=int, default=200, help="requests of each kind")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--docs-only", action="store_true",
                        help="rewrite the docs block from the saved JSON and stop")
    args = parser.parse_args(argv)
    if args.docs_only:
        splice_file(DOCS, docs_block(read_json(RESULTS)), START, END)
        return 0
    run_dir = Path(args.run_dir)
    if not (run_dir / "model" / "model.json").is_file():
        print(f"{run_dir}: no saved model; run `conceptlab demo --out {run_dir}` first",
              file=sys.stderr)
        return 2

    # in-process references: the explorer's logic and the encoder alone
    model, encoder = load_saved(run_dir)
    data = explorer_data(run_dir, encoder)
    explorer = Explorer(model, data, encoder.encode_images)
    n_test = len(data.y_test)
    images = [data.test_items[i % n_test] for i in range(args.n + WARMUP)]
    names = [c["name"] for c in explorer.info()["concepts"][:3]]
    low = {n: float(model.unit_low_[model.concept_index(n)]) for n in names}
    rows = [summary("in-process Explorer.explain (no HTTP)",
                    timed(lambda i: explorer.explain({"item": i % n_test}), args.n)),
            summary("in-process encode_images, one image (no HTTP)",
                    timed(lambda i: encoder.encode_images([images[i]]), args.n))]
    pngs = [png_bytes(im) for im in images]
    jpegs = [jpeg_bytes(im.resize((640, 480))) for im in images]

    port = free_port()
    proc = start_server(run_dir, port)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60.0) as client:
            startup = wait_ready(client, proc)

            def explain(i: int) -> None:
                r = client.post("/api/explain", json={"item": i % n_test})
                r.raise_for_status()
                r.json()

            def intervene(i: int) -> None:
                r = client.post("/api/explain", json={"item": i % n_test, "units": low})
                r.raise_for_status()
                r.json()

            def upload(i: int) -> None:
                r = client.post("/api/upload",
                                files={"file": (f"{i}.png", pngs[i], "image/png")})
                r.raise_for_status()
                r.json()

            def upload_photo(i: int) -> None:
                r = client.post("/api/upload",
                                files={"file": (f"{i}.jpg", jpegs[i], "image/jpeg")})
                r.raise_for_status()
                r.json()

            rows += [summary("HTTP explain test item", timed(explain, args.n),
                             "median < 20 ms, p95 < 50 ms"),
                     summary("HTTP explain + 3 concepts set", timed(intervene, args.n),
                             "median < 20 ms, p95 < 50 ms"),
                     summary("HTTP upload 28 x 28 PNG (decode + encode + explain)",
                             timed(upload, args.n), "median < 100 ms"),
                     summary("HTTP upload 640 x 480 JPEG (decode + encode + explain)",
                             timed(upload_photo, args.n), "median < 100 ms")]
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    options = (data.metrics.get("config") or {}).get("encoder_options", {})
    print(f"run: {run_dir} ({model.method}, {model.n_concepts} concepts, {n_test} test items, "
          f"encoder {encoder.spec} {options}); server ready in {startup:.1f} s; "
          f"load average {os.getloadavg()[0]:.1f}")
    print("| kind | n | median ms | p95 ms | mean ms | max ms | goal |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['kind']} | {r['n']} | {r['median_ms']:.2f} | {r['p95_ms']:.2f} | "
              f"{r['mean_ms']:.2f} | {r['max_ms']:.1f} | {r['goal']} |")
    record = {
        "rows": rows, "run_dir": str(run_dir), "method": model.method,
        "n_concepts": model.n_concepts, "n_test": n_test, "encoder": encoder.describe(),
        "server_startup_s": startup, "warmup": WARMUP,
        "machine": {"python": platform.python_version(), "platform": platform.platform(),
                    "cpus": os.cpu_count(), "load_average": os.getloadavg()},
    }
    write_json_atomic(args.out, record)
    if args.out == RESULTS:
        splice_file(DOCS, docs_block(record), START, END)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
