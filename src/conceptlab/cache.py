"""Fingerprinted, sharded activation store on disk.

It knows arrays, not models: an entry is keyed by fingerprints of (what encoded: weights +
preprocessing + hook point) and (what was encoded: dataset content + split + order), so a
changed model, transform or file never reuses a stale entry, and the same inputs are read
instead of recomputed. Entries are written shard by shard into a hidden temporary folder
that is renamed into place only when complete, so memory stays bounded by one shard
whatever the dataset size, and an interrupted run leaves no corrupt entry (finished shards of
an interrupted run are kept and resumed).
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

from conceptlab.errors import ConceptlabError
from conceptlab.utils.hashing import hash_json
from conceptlab.utils.io import read_json, write_json_atomic

CACHE_FORMAT = 1
DEFAULT_SHARD_ROWS = 2048


class CacheError(ConceptlabError, RuntimeError):
    """Raised for a corrupt or mismatched cache entry."""


def default_cache_dir() -> Path:
    """``$CONCEPTLAB_CACHE`` if set, else ``~/.cache/conceptlab/activations``."""
    env = os.environ.get("CONCEPTLAB_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "conceptlab" / "activations"


@dataclass(frozen=True)
class CacheKey:
    """What identifies an entry; ``digest`` names its folder."""

    encoder: str  # fingerprint of the cached stage (weights + preprocessing + hook point)
    data: str  # fingerprint of the items (content, split, order)
    extra: str = ""

    @property
    def digest(self) -> str:
        return hash_json({"format": CACHE_FORMAT, "encoder": self.encoder, "data": self.data,
                          "extra": self.extra}, length=24)


class ActivationCache:
    """A folder of entries ``<digest>/{meta.json, shard-00000.safetensors, ...}``."""

    def __init__(self, root: str | os.PathLike[str] | None = None,
                 shard_rows: int = DEFAULT_SHARD_ROWS) -> None:
        if shard_rows < 1:
            raise ValueError("shard_rows must be >= 1")
        self.root = Path(root) if root is not None else default_cache_dir()
        self.shard_rows = shard_rows

    def path(self, key: CacheKey) -> Path:
        return self.root / key.digest

    def has(self, key: CacheKey) -> bool:
        """True when a complete entry exists for ``key``."""
        return (self.path(key) / "meta.json").is_file()

    def meta(self, key: CacheKey) -> dict[str, Any]:
        meta = read_json(self.path(key) / "meta.json")
        if meta.get("format") != CACHE_FORMAT:
            raise CacheError(f"{self.path(key)}: unsupported cache format {meta.get('format')!r}")
        if meta.get("key") != {"encoder": key.encoder, "data": key.data, "extra": key.extra}:
            raise CacheError(f"{self.path(key)}: entry was written for another key")
        return meta

    def load(self, key: CacheKey, views: list[str] | None = None) -> dict[str, np.ndarray]:
        """Read every shard of an entry and return each view as one ``(N, ...)`` array.

        Outputs are allocated once and filled shard by shard, so reading needs the result's
        memory plus one shard, not two copies.
        """
        meta = self.meta(key)
        names = views or meta["views"]
        unknown = sorted(set(names) - set(meta["views"]))
        if unknown:
            raise CacheError(f"entry has no view(s) {unknown}; it has {meta['views']}")
        out: dict[str, np.ndarray] = {}
        for shard in meta["shards"]:
            for view, arr in self._read_shard(self.path(key) / shard["file"], names).items():
                if view not in out:
                    out[view] = np.empty((meta["rows"], *arr.shape[1:]), dtype=arr.dtype)
                if len(arr) != shard["stop"] - shard["start"]:
                    raise CacheError(f"{self.path(key) / shard['file']}: {len(arr)} rows, "
                                     f"expected {shard['stop'] - shard['start']}")
                out[view][shard["start"]:shard["stop"]] = arr
        if meta["rows"] and set(out) != set(names):
            missing = sorted(set(names) - set(out))
            raise CacheError(f"{self.path(key)}: shards lack view(s) {missing}")
        return out

    def iter_shards(self, key: CacheKey, views: list[str] | None = None
                    ) -> Iterator[dict[str, np.ndarray]]:
        """Yield an entry shard by shard (bounded memory for very large entries)."""
        meta = self.meta(key)
        for shard in meta["shards"]:
            yield self._read_shard(self.path(key) / shard["file"], views or meta["views"])

    @staticmethod
    def _read_shard(path: Path, views: list[str]) -> dict[str, np.ndarray]:
        try:
            with safe_open(str(path), framework="numpy") as fh:
                return {v: fh.get_tensor(v) for v in views}
        except Exception as err:  # safetensors raises several types for truncated files
            raise CacheError(f"{path}: unreadable cache shard ({err})") from err

    def ensure(self, key: CacheKey, n_rows: int,
               compute: Callable[[int, int], dict[str, np.ndarray]],
               *, info: dict[str, Any] | None = None,
               on_progress: Callable[[int], None] | None = None) -> bool:
        """Make sure the entry exists (computing it if needed) without reading it back.

        Returns True when it was already there. Memory stays bounded by one shard.
        """
        if self.has(key):
            return True
        self.write(key, n_rows, compute, info=info, on_progress=on_progress)
        return False

    def get_or_compute(self, key: CacheKey, n_rows: int,
                       compute: Callable[[int, int], dict[str, np.ndarray]],
                       *, info: dict[str, Any] | None = None,
                       on_progress: Callable[[int], None] | None = None) -> dict[str, np.ndarray]:
        """Return the entry for ``key``, computing missing rows shard by shard if needed.

        ``compute(start, stop)`` must return views with ``stop - start`` rows each; it is
        called once per shard in order. ``on_progress(rows_done)`` is called after each shard.
        """
        self.ensure(key, n_rows, compute, info=info, on_progress=on_progress)
        return self.load(key)

    def write(self, key: CacheKey, n_rows: int,
              compute: Callable[[int, int], dict[str, np.ndarray]],
              *, info: dict[str, Any] | None = None,
              on_progress: Callable[[int], None] | None = None) -> Path:
        """Compute and store an entry; finished shards of an interrupted run are reused."""
        final = self.path(key)
        self.root.mkdir(parents=True, exist_ok=True)
        # One writer per key at a time: a second process waits, then finds the entry done.
        with open(self.root / f".{key.digest}.lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                if self.has(key):
                    return final
                return self._write_locked(key, n_rows, compute, info, on_progress)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _write_locked(self, key: CacheKey, n_rows: int,
                      compute: Callable[[int, int], dict[str, np.ndarray]],
                      info: dict[str, Any] | None,
                      on_progress: Callable[[int], None] | None) -> Path:
        final = self.path(key)
        partial = self.root / f".{key.digest}.partial"
        partial.mkdir(parents=True, exist_ok=True)
        shards: list[dict[str, Any]] = []
        view_names: list[str] | None = None
        for i, start in enumerate(range(0, n_rows, self.shard_rows)):
            stop = min(start + self.shard_rows, n_rows)
            name = f"shard-{i:05d}.safetensors"
            shard_path = partial / name
            done = partial / f"{name}.done"
            marker = read_json(done) if shard_path.is_file() and done.is_file() else None
            if marker is not None and (marker.get("start"), marker.get("stop")) == (start, stop):
                names = sorted(marker["views"])
            else:
                views = {k: np.ascontiguousarray(v) for k, v in compute(start, stop).items()}
                self._check_views(views, stop - start)
                tmp = partial / f".{name}.tmp"
                save_file(views, str(tmp))
                os.replace(tmp, shard_path)
                write_json_atomic(done, {"views": sorted(views), "start": start, "stop": stop})
                names = sorted(views)
                del views
            if view_names is None:
                view_names = names
            elif names != view_names:
                raise CacheError(f"shard {i} has views {names}, expected {view_names}")
            shards.append({"file": name, "start": start, "stop": stop})
            if on_progress is not None:
                on_progress(stop)
        write_json_atomic(partial / "meta.json", {
            "format": CACHE_FORMAT,
            "key": {"encoder": key.encoder, "data": key.data, "extra": key.extra},
            "rows": n_rows, "views": view_names or [], "shards": shards, "info": info or {},
        })
        for done_file in partial.glob("*.done"):
            done_file.unlink()
        if final.exists():  # another process finished first: keep theirs
            shutil.rmtree(partial, ignore_errors=True)
        else:
            os.replace(partial, final)
        return final

    @staticmethod
    def _check_views(views: dict[str, np.ndarray], rows: int) -> None:
        if not views:
            raise CacheError("compute returned no views")
        for name, arr in views.items():
            if arr.shape[:1] != (rows,):
                raise CacheError(f"view {name!r} has shape {arr.shape}, expected {rows} rows")

    def entries(self) -> list[dict[str, Any]]:
        """Summaries of complete entries (for `conceptlab cache ls`)."""
        out = []
        if self.root.is_dir():
            for meta_path in sorted(self.root.glob("*/meta.json")):
                meta = read_json(meta_path)
                out.append({"digest": meta_path.parent.name, "rows": meta["rows"],
                            "views": meta["views"], "info": meta.get("info", {})})
        return out
