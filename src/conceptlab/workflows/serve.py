"""``conceptlab serve``: the explorer (``conceptlab.report.app``) on a saved run folder.

The model and its encoder come from ``workflows.cbm.load_saved`` (the encoder fingerprint is
checked); the test and training items are the run's own splits, rebuilt from the spec
recorded in ``metrics.json`` and checked against the recorded fingerprints (as in
``workflows.report``), and encoded through the activation cache: the fit filled it, so this
is a read. Nothing is written to the run folder.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from conceptlab.errors import ConceptlabValueError
from conceptlab.report.app import ExplorerData, create_app
from conceptlab.utils.io import read_json

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


def explorer_data(run_dir: str | Path, encoder: Any) -> ExplorerData:
    """Test and training embeddings, labels and raw items of a run (through the cache)."""
    from conceptlab.cache import ActivationCache
    from conceptlab.data.base import build_dataset
    from conceptlab.data.splits import make_splits
    from conceptlab.pipeline import encode_split_views
    from conceptlab.workflows.report import trust_warnings

    run = Path(run_dir)
    metrics = read_json(run / "metrics.json")
    config = metrics.get("config")
    if not isinstance(config, dict):
        raise ConceptlabValueError(f"{run / 'metrics.json'}: no data config recorded; cannot "
                                   f"rebuild the "
                         "run's test items")
    dataset = build_dataset(config["data"], **(config.get("data_options") or {}))
    splits = make_splits(dataset, val_fraction=config.get("val_fraction", 0.1),
                         n_train=config.get("n_train"), n_val=config.get("n_val"),
                         n_test=config.get("n_test"), seed=config.get("seed", 0))
    recorded = (metrics.get("splits") or {}).get("fingerprints", {})
    for name in ("train", "test"):
        got = getattr(splits, name).fingerprint()
        if recorded.get(name) and recorded[name] != got:
            raise ConceptlabValueError(f"{run}: the {name} split of {config['data']!r} changed "
                                       f"since the "
                             f"run (fingerprint {got} != recorded {recorded[name]})")
    cache = ActivationCache(config.get("cache_dir"))
    X = {}
    for name in ("train", "test"):
        split = getattr(splits, name)
        views = encode_split_views(encoder, split, cache, desc=f"explorer: {name} embeddings")
        X[name] = np.asarray(encoder.finalize(views, split.modality), dtype=np.float32)
    title = f"conceptlab explorer: {metrics.get('method', '?')} on {metrics.get('data', '?')}"
    return ExplorerData(X_test=X["test"], y_test=splits.test.labels, X_train=X["train"],
                        y_train=splits.train.labels, modality=dataset.modality,
                        test_items=splits.test, train_items=splits.train, title=title,
                        warnings=trust_warnings(metrics), metrics=metrics)


def build_explorer(run_dir: str | Path, *, warm_up: bool = True) -> Any:
    """The explorer's FastAPI app for a run folder written by ``fit`` or ``demo``."""
    from conceptlab.workflows.cbm import load_saved

    model, encoder = load_saved(run_dir)
    if getattr(model, "cbl_input", None) == "features":
        raise ConceptlabValueError(f"{run_dir}: this model's CBL reads backbone features; the "
                                   f"explorer "
                         "serves models that read embeddings or concept scores")
    data = explorer_data(run_dir, encoder)
    encode = encoder.encode_images if data.modality == "image" else encoder.encode_texts
    if warm_up and data.test_items is not None and len(data.test_items):
        encode([data.test_items[0]])  # the first upload should not pay for lazy loading
    return create_app(model, data, encode)


def serve(run_dir: str | Path, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
    """Serve the explorer until interrupted (bound to 127.0.0.1 unless told otherwise)."""
    import uvicorn

    t0 = time.perf_counter()
    app = build_explorer(run_dir)
    print(f"explorer ready in {time.perf_counter() - t0:.1f} s: http://{host}:{port}/",
          flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
