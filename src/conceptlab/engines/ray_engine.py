"""The Ray Data engine: extraction as a ``map_batches`` pipeline over a Ray cluster.

Each worker is an actor of a callable class that builds the encoder once (from its spec and
options: networks and ONNX sessions are not shipped) and checks that its cache fingerprint
equals the driver's, so rows computed anywhere are exactly the rows the local engine would
write under that key. Items are loaded on the workers (``split[i]``), so on a real cluster
the data must be readable at the same path on every node (a shared filesystem); the driver
only streams the results back, in order, into the activation cache it writes alone.

Resources per actor: ``num_cpus`` (default 1, also the torch / ONNX Runtime thread count of
that actor) and ``num_gpus`` (default 0); ``concurrency`` actors (default: as many as the
cluster's CPUs allow). Without ``address`` a local Ray is started on this machine
(``num_cpus`` = the CPUs of this machine unless ``local_cpus`` says otherwise) and stopped by
:meth:`RayEngine.close`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from conceptlab.data.base import DataSplit
from conceptlab.encoders.base import Encoder, Views
from conceptlab.errors import ComputeError, ConceptlabValueError

_VIEW = "view."


def import_ray() -> Any:
    """``ray`` with Ray Data, or a one-line error saying how to install it."""
    try:
        import ray
        import ray.data
    except ImportError as err:
        raise ComputeError("the ray engine needs Ray Data: pip install 'conceptlab[ray]' "
                           "(or pip install 'ray[data]')") from err
    return ray


class EncodeActor:
    """One worker: builds the encoder once, then encodes batches of row positions."""

    def __init__(self, spec: str, options: dict[str, Any], split: DataSplit,
                 expected_fingerprint: str, threads: int) -> None:
        import torch

        from conceptlab.encoders.base import build_encoder

        torch.set_num_threads(max(1, threads))
        self.encoder = build_encoder(spec, **options)
        self.split = split
        got = self.encoder.cache_fingerprint(split.modality)
        if got != expected_fingerprint:
            raise ComputeError(f"worker built encoder {spec!r} with cache fingerprint {got}, "
                               f"driver expects {expected_fingerprint} (different weights, "
                               "options or backend on this node)")

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        pos = np.asarray(batch["pos"], dtype=np.int64)
        items = [self.split[int(i)] for i in pos]
        views = self.encoder.encode_batch(items, self.split.modality)
        return {"pos": pos, **{_VIEW + k: np.ascontiguousarray(v) for k, v in views.items()}}


class RayEngine:
    """Encode with a Ray Data ``map_batches`` pipeline (one encoder per actor)."""

    name = "ray"

    def __init__(self, encoder_spec: str, encoder_options: dict[str, Any], *,
                 address: str | None = None, num_cpus: float = 1.0, num_gpus: float = 0.0,
                 concurrency: int | None = None, batch_size: int | None = None,
                 local_cpus: int | None = None) -> None:
        if num_cpus <= 0 or num_gpus < 0:
            raise ConceptlabValueError(f"ray engine: num_cpus must be > 0 and num_gpus >= 0, "
                             f"got {num_cpus}, {num_gpus}")
        self.spec = encoder_spec
        self.options = dict(encoder_options)
        self.address = address
        self.num_cpus = float(num_cpus)
        self.num_gpus = float(num_gpus)
        self.concurrency = concurrency
        self.batch_size = batch_size
        self.local_cpus = local_cpus
        self._started_here = False

    def _init(self) -> Any:
        ray = import_ray()
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                      "configure_logging": False}
            if self.address is None:
                kwargs["num_cpus"] = self.local_cpus or os.cpu_count() or 1
            ray.init(address=self.address, **kwargs)
            self._started_here = True
        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True
        ctx.enable_progress_bars = False
        return ray

    def actors(self) -> int:
        """How many encoder actors run: ``concurrency``, else the cluster's CPUs / num_cpus."""
        if self.concurrency is not None:
            return max(1, int(self.concurrency))
        ray = self._init()
        cpus = float(ray.cluster_resources().get("CPU", 1.0))
        return max(1, int(cpus // self.num_cpus))

    def rows(self, encoder: Encoder, split: DataSplit, positions: np.ndarray
             ) -> Iterator[Views]:
        positions = np.asarray(positions, dtype=np.int64)
        if not len(positions):
            return
        ray = self._init()
        n_actors = self.actors()
        batch = int(self.batch_size or encoder.batch_size)
        # several blocks per actor, so that every actor gets work and results stream back
        n_blocks = max(1, min(-(-len(positions) // batch), 4 * n_actors))
        ds = ray.data.from_numpy(np.array_split(positions, n_blocks)).rename_columns(
            {"data": "pos"})
        ds = ds.map_batches(
            EncodeActor, batch_size=batch, batch_format="numpy", concurrency=n_actors,
            num_cpus=self.num_cpus, num_gpus=self.num_gpus or None,
            fn_constructor_kwargs={"spec": self.spec, "options": self.options, "split": split,
                                   "expected_fingerprint": encoder.cache_fingerprint(
                                       split.modality),
                                   "threads": max(1, int(self.num_cpus))})
        done = 0
        for out in ds.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=1):
            pos = np.asarray(out["pos"], dtype=np.int64)
            if not np.array_equal(pos, positions[done:done + len(pos)]):
                raise ComputeError("ray engine: rows came back out of order")
            done += len(pos)
            yield {k[len(_VIEW):]: np.asarray(v) for k, v in out.items() if k.startswith(_VIEW)}
        if done != len(positions):
            raise ComputeError(f"ray engine: {done} of {len(positions)} rows came back")

    def close(self) -> None:
        """Stop the local Ray this engine started (a cluster given by address is left alone)."""
        if self._started_here:
            import ray

            ray.shutdown()
            self._started_here = False
