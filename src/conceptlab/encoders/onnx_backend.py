"""Inference backends for the packaged encoders: eager torch or ONNX Runtime.

ONNX Runtime runs the same network from a graph exported once by ``torch.onnx.export``
(TorchScript exporter, ``dynamo=False``, opset 17) and fuses BatchNorm, activations and
padding into its convolution kernels; ``benchmarks/bench_backends.py`` compares the two on
the same batch and threads (docs/benchmarks.md).

* :func:`resolve_backend` turns ``backend=auto|onnx|torch`` into the backend that will run:
  ``auto`` (the default) is ``$CONCEPTLAB_BACKEND`` if set, else :data:`MEASURE` when both
  backends can run (the encoder then times both on its own model once and keeps the faster:
  ``encoders/backend_choice.py``); a missing ``onnxruntime`` falls back to torch with one line
  on stderr saying so.
* :func:`ensure_export` exports a network once per identity (weights hash + input shape +
  exporter version) into ``<cache>/onnx/`` (beside the activation cache, or
  ``$CONCEPTLAB_ONNX_DIR``), atomically and under a file lock, so concurrent processes export it
  once and a crash never leaves a truncated model.
* :class:`OrtSession` wraps an ``InferenceSession`` with the thread count torch would use.

The backend is part of each encoder's *cache* fingerprint (rows computed by different
backends never share a cache entry) but not of its full ``fingerprint()``: both backends
compute the same function (outputs agree within 1e-4), so a model fitted on one backend's
embeddings loads and predicts on the other.
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from conceptlab.cache import default_cache_dir
from conceptlab.encoders.base import EncoderError
from conceptlab.utils.hashing import hash_json

BACKENDS = ("torch", "onnx")
#: what :func:`resolve_backend` returns for ``auto`` when both backends can run: the encoder
#: measures both on its model (``backend_choice.choose_backend``) before its first batch
MEASURE = "measure"
#: bumped whenever the export code changes what a graph computes (old exports are not reused)
EXPORT_VERSION = 1
OPSET = 17

_NOTED: set[str] = set()
_LOCK = threading.Lock()


def onnxruntime_available() -> bool:
    """True when ``onnxruntime`` can be imported (without importing it)."""
    return importlib.util.find_spec("onnxruntime") is not None


def note_once(message: str) -> None:
    with _LOCK:
        if message not in _NOTED:
            _NOTED.add(message)
            print(message, file=sys.stderr)


def resolve_backend(requested: str | None, spec: str,
                    device: str | torch.device = "cpu") -> str:
    """The backend that will run for ``requested`` (``None``/``"auto"``: ``$CONCEPTLAB_BACKEND``
    if set, else :data:`MEASURE`: the faster of the two on this model, timed by the encoder).

    ``auto`` on a CUDA device is torch (the CPU onnxruntime wheel has no CUDA kernels). A
    request for ONNX without ``onnxruntime`` installed falls back to torch with one line on
    stderr (once per process); an unknown name is an EncoderError.
    """
    name = "auto" if requested is None else str(requested).strip().lower()
    if name == "auto" and os.environ.get("CONCEPTLAB_BACKEND"):
        name = os.environ["CONCEPTLAB_BACKEND"].strip().lower()
    if name not in (*BACKENDS, "auto"):
        raise EncoderError(f"{spec}: unknown backend {requested!r}; choose auto, onnx or torch")
    if name == "torch" or (name == "auto" and torch.device(device).type != "cpu"):
        return "torch"
    if onnxruntime_available():
        return "onnx" if name == "onnx" else MEASURE
    note_once(f"{spec}: onnxruntime is not installed, using the torch backend "
               "(pip install onnxruntime for ~2.5x faster encoding)")
    return "torch"


def export_dir() -> Path:
    """Where exported graphs live: ``$CONCEPTLAB_ONNX_DIR``, else ``<activation cache>/onnx``."""
    env = os.environ.get("CONCEPTLAB_ONNX_DIR")
    return Path(env) if env else default_cache_dir() / "onnx"


def ensure_export(name: str, identity: Mapping[str, Any],
                  export: Callable[[Path], None]) -> Path:
    """Path of the graph ``name`` for ``identity``, calling ``export(tmp_path)`` if missing.

    One exporter per graph at a time (flock); the file is renamed into place only once it is
    complete (and passes onnx's checker when ``onnx`` is installed), so a reader never sees
    a partial graph.
    """
    root = export_dir()
    root.mkdir(parents=True, exist_ok=True)
    digest = hash_json({"identity": dict(identity), "version": EXPORT_VERSION, "opset": OPSET})
    path = root / f"{name}-{digest}.onnx"
    if path.is_file():
        return path
    with open(root / f".{path.name}.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if path.is_file():
                return path
            tmp = root / f".{path.name}.{os.getpid()}.tmp"
            try:
                export(tmp)
                if importlib.util.find_spec("onnx") is not None:
                    import onnx

                    onnx.checker.check_model(str(tmp))
                os.replace(tmp, path)
            finally:
                if tmp.exists():
                    tmp.unlink()
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return path


def torch_export(module: torch.nn.Module, args: tuple[torch.Tensor, ...], path: Path, *,
                 input_names: list[str], output_names: list[str],
                 dynamic_axes: dict[str, dict[int, str]]) -> None:
    """``torch.onnx.export`` with the settings every conceptlab export uses (eval, no grad)."""
    import warnings

    module = module.eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about python ints in shapes
        torch.onnx.export(module, args, str(path), opset_version=OPSET, dynamo=False,
                          input_names=input_names, output_names=output_names,
                          dynamic_axes=dynamic_axes, do_constant_folding=True)


class OrtSession:
    """An ONNX Runtime session on CPU (or CUDA when asked and available)."""

    def __init__(self, path: str | Path, *, threads: int | None = None,
                 device: str | torch.device = "cpu") -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(threads or torch.get_num_threads())
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        providers = ["CPUExecutionProvider"]
        if torch.device(device).type == "cuda":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise EncoderError("onnx backend on cuda needs onnxruntime-gpu; use backend=torch")
            providers.insert(0, "CUDAExecutionProvider")
        self.path = Path(path)
        self.session = ort.InferenceSession(str(path), opts, providers=providers)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the graph; outputs by name."""
        outs = self.session.run(self.output_names, {k: feeds[k] for k in self.input_names})
        return dict(zip(self.output_names, outs, strict=True))
