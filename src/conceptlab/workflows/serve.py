"""``conceptlab serve``: the explorer (``conceptlab.report.app``) on a saved run folder.

The model and its encoder come from ``workflows.cbm.load_saved`` (the encoder fingerprint is
checked); the test and training items are the run's own splits, rebuilt from the spec
recorded in ``metrics.json`` and checked against the recorded fingerprints (as in
``workflows.report``), and encoded through the activation cache: the fit filled it, so this
is a read. Nothing is written to the run folder.

``serve`` binds its address first (a taken port or an unknown host is one error line before any
work), says what it is doing before the slow steps (encoding a cold cache can take minutes),
and says "ready" only once the socket is listening.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from conceptlab.errors import InputError, OptionError, OutputError
from conceptlab.report.app import ExplorerData, create_app
from conceptlab.utils.io import read_json

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


def explorer_data(run_dir: str | Path, encoder: Any,
                  say: Callable[[str], None] | None = None) -> ExplorerData:
    """Test and training embeddings, labels and raw items of a run (through the cache)."""
    from conceptlab.cache import ActivationCache
    from conceptlab.pipeline import encode_split_views
    from conceptlab.runs import rebuild_splits
    from conceptlab.workflows.report import trust_warnings

    run = Path(run_dir)
    metrics = read_json(run / "metrics.json")
    config = metrics.get("config")
    if not isinstance(config, dict):
        raise InputError(f"{run / 'metrics.json'}: no data config recorded; cannot rebuild the "
                         "run's test items")
    splits = rebuild_splits(config, metrics.get("splits"), where=str(run))
    cache = ActivationCache(config.get("cache_dir"))
    if say is not None:
        say(f"encoding the run's {len(splits.train)} training and {len(splits.test)} test "
            f"items through the activation cache (a read when the fit filled it; minutes on "
            f"a cold cache)...")
    X = {}
    for name in ("train", "test"):
        split = getattr(splits, name)
        views = encode_split_views(encoder, split, cache, desc=f"explorer: {name} embeddings")
        X[name] = np.asarray(encoder.finalize(views, split.modality), dtype=np.float32)
    title = f"conceptlab explorer: {metrics.get('method', '?')} on {metrics.get('data', '?')}"
    return ExplorerData(X_test=X["test"], y_test=splits.test.labels, X_train=X["train"],
                        y_train=splits.train.labels, modality=splits.test.modality,
                        test_items=splits.test, train_items=splits.train, title=title,
                        warnings=trust_warnings(metrics), metrics=metrics)


def build_explorer(run_dir: str | Path, *, warm_up: bool = True,
                   say: Callable[[str], None] | None = None) -> Any:
    """The explorer's FastAPI app for a run folder written by ``fit`` or ``demo`` (any
    concept model kind); ``say`` hears a line before each slow step."""
    from conceptlab.bottleneck.model import ConceptBottleneckModel
    from conceptlab.workflows.cbm import load_saved

    if say is not None:
        say(f"loading the model and its encoder from {run_dir}...")
    model, encoder = load_saved(run_dir)
    if isinstance(model, ConceptBottleneckModel) and model.cbl_input == "features":
        raise InputError(f"{run_dir}: this model's CBL reads backbone features; the explorer "
                         "serves models that read embeddings or concept scores")
    data = explorer_data(run_dir, encoder, say)
    encode = encoder.encode_images if data.modality == "image" else encoder.encode_texts
    if warm_up and data.test_items is not None and len(data.test_items):
        encode([data.test_items[0]])  # the first upload should not pay for lazy loading
    return create_app(model, data, encode)


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port``, or one clear error: a bad port, a host this
    machine cannot listen on, an address already in use."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise OptionError(f"--port must be an integer in 0..65535, got {port!r}")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as err:
        raise OptionError(f"--host {host!r}: not an address this machine can listen on "
                          f"({getattr(err, 'strerror', None) or err})") from None
    family, kind, proto, _, addr = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(128)
    except OSError as err:
        sock.close()
        why = err.strerror or str(err)
        hint = " (another explorer or server uses it: pick another --port)" \
            if err.errno in (98, 48, 10048) else ""
        raise OutputError(f"cannot listen on {host}:{port}: {why}{hint}") from None
    sock.set_inheritable(True)
    return sock


def serve(run_dir: str | Path, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
    """Serve the explorer until interrupted (bound to 127.0.0.1 unless told otherwise): the
    address is bound before any work, "ready" is printed once it listens."""
    import uvicorn

    def say(line: str) -> None:
        print(line, flush=True)

    t0 = time.perf_counter()
    sock = bind(host, port)
    try:
        app = build_explorer(run_dir, say=say)
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        actual = sock.getsockname()[1]
        say(f"explorer ready in {time.perf_counter() - t0:.1f} s: http://{host}:{actual}/")
        server.run(sockets=[sock])
    finally:
        sock.close()
