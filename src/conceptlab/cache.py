"""Fingerprinted, sharded activation store on disk.

It knows arrays, not models: an entry is keyed by fingerprints of (what encoded: weights +
preprocessing + hook point) and (what was encoded: dataset content + split + order), so a
changed model, transform or file never reuses a stale entry, and the same inputs are read
instead of recomputed. Entries are written shard by shard into a hidden temporary folder
that is renamed into place only when complete, so memory stays bounded by one shard
whatever the dataset size, and an interrupted run leaves no corrupt entry (finished shards of
an interrupted run are kept and resumed).

Incremental: an entry written by :meth:`ActivationCache.ensure_rows` also stores one 16-byte
content key per row (``item-keys.safetensors``). When a new entry is written for the same
encoder, rows whose content key is already in a complete entry are copied from it and only
the rest are computed, so growing a subsample from 2,000 to 4,000 items, or a second dataset
that shares items, encodes only what is new. Entries stay self-contained (a copied row is
stored again; deleting an old entry never breaks a newer one), and still only complete
entries (those with ``meta.json``) are ever read, so a row can never come from a partial or
mismatched write.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import safe_open

from conceptlab.errors import ConceptlabError, ConceptlabValueError, OutputError
from conceptlab.utils.hashing import hash_json
from conceptlab.utils.io import (
    check_output_dir,
    probe_writable,
    read_json,
    save_tensors,
    write_json_atomic,
)

CACHE_FORMAT = 1
DEFAULT_SHARD_ROWS = 2048
#: bytes per row content key (see ``ensure_rows``)
ITEM_KEY_BYTES = 16
KEYS_FILE = "item-keys.safetensors"

Views = dict[str, np.ndarray]
#: ``compute(positions)`` yields views for exactly those rows, in order, in chunks of any size
RowsCompute = Callable[[np.ndarray], Iterable[Views]]


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


@dataclass
class WriteReport:
    """What one ``ensure_rows`` call did: rows read from the entry, computed, copied, resumed."""

    hit: bool = False
    computed: int = 0
    reused: int = 0
    resumed: int = 0


def as_key_array(keys: np.ndarray | list[bytes], n: int | None = None) -> np.ndarray:
    """Row keys as a ``(N, 16)`` uint8 array (from one of that shape or a list of 16-byte keys)."""
    if isinstance(keys, list):
        if any(len(k) != ITEM_KEY_BYTES for k in keys):
            raise CacheError(f"item keys must be {ITEM_KEY_BYTES} bytes each")
        arr = np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(-1, ITEM_KEY_BYTES)
    else:
        arr = np.ascontiguousarray(keys, dtype=np.uint8)
    if arr.ndim != 2 or arr.shape[1] != ITEM_KEY_BYTES:
        raise CacheError(f"item keys must have shape (N, {ITEM_KEY_BYTES}), got {arr.shape}")
    if n is not None and len(arr) != n:
        raise CacheError(f"{len(arr)} item keys for {n} rows")
    return arr


def _as_sortable(keys: np.ndarray) -> np.ndarray:
    """``(N, 16)`` uint8 -> ``(N,)`` fixed-width bytes that numpy sorts and searches."""
    return np.ascontiguousarray(keys).view(f"S{ITEM_KEY_BYTES}").ravel()


class _Feeder:
    """Hands out exactly ``k`` rows at a time from a stream of view chunks (lazily pulled)."""

    def __init__(self, chunks: Iterable[Views]) -> None:
        self._it = iter(chunks)
        self._buf: list[Views] = []
        self._have = 0

    def take(self, k: int) -> Views:
        while self._have < k:
            try:
                chunk = next(self._it)
            except StopIteration:
                raise CacheError(f"compute stopped {k - self._have} row(s) short") from None
            rows = {len(v) for v in chunk.values()}
            if len(rows) != 1:
                raise CacheError(f"compute returned views of unequal lengths {sorted(rows)}")
            self._buf.append(chunk)
            self._have += rows.pop()
        names = sorted(self._buf[0])
        joined = {v: np.concatenate([c[v] for c in self._buf]) if len(self._buf) > 1
                  else self._buf[0][v] for v in names}
        out = {v: a[:k] for v, a in joined.items()}
        rest = {v: a[k:] for v, a in joined.items()}
        self._have -= k
        self._buf = [rest] if self._have else []
        return out

    def finish(self) -> None:
        """Raise if the stream holds rows beyond those taken."""
        if self._have or next(self._it, None) is not None:
            raise CacheError("compute returned more rows than asked for")


class _Donors:
    """Rows of complete entries of one encoder, looked up by content key."""

    def __init__(self, cache: ActivationCache, encoder: str, exclude: str) -> None:
        self.cache = cache
        self.entries: list[tuple[Path, dict[str, Any]]] = []
        parts, owners, rows = [], [], []
        views: list[str] | None = None
        for meta_path in sorted(cache.root.glob("*/meta.json")):
            if meta_path.parent.name == exclude:
                continue
            try:
                meta = read_json(meta_path)
            except (OSError, ValueError):
                continue
            if (meta.get("format") != CACHE_FORMAT or not meta.get("item_keys")
                    or meta.get("key", {}).get("encoder") != encoder or not meta.get("rows")):
                continue
            if views is None:
                views = sorted(meta["views"])
            if sorted(meta["views"]) != views:
                continue
            keys = cache._read_shard(meta_path.parent / meta["item_keys"], ["keys"])["keys"]
            if len(keys) != meta["rows"]:
                continue
            parts.append(_as_sortable(keys))
            owners.append(np.full(len(keys), len(self.entries), dtype=np.int32))
            rows.append(np.arange(len(keys), dtype=np.int64))
            self.entries.append((meta_path.parent, meta))
        self.views = views
        if parts:
            allkeys = np.concatenate(parts)
            order = np.argsort(allkeys, kind="stable")
            self.keys = allkeys[order]
            self.owner = np.concatenate(owners)[order]
            self.row = np.concatenate(rows)[order]
        else:
            self.keys = np.zeros(0, dtype=f"S{ITEM_KEY_BYTES}")
            self.owner = np.zeros(0, dtype=np.int32)
            self.row = np.zeros(0, dtype=np.int64)
        self._shard_cache: dict[tuple[int, int], Views] = {}

    def find(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(found mask, owning entry, row in it) for each of ``keys`` (``(N, 16)`` uint8)."""
        want = _as_sortable(keys)
        if len(self.keys) == 0:
            z = np.zeros(len(want), dtype=np.int64)
            return np.zeros(len(want), dtype=bool), z, z
        pos = np.minimum(np.searchsorted(self.keys, want), len(self.keys) - 1)
        found = self.keys[pos] == want
        return found, self.owner[pos].astype(np.int64), self.row[pos]

    def gather(self, owners: np.ndarray, rows: np.ndarray) -> Views:
        """The views of rows ``rows`` of entries ``owners`` (reads each needed shard once)."""
        out: Views = {}
        assert self.views is not None
        for e in np.unique(owners):
            path, meta = self.entries[int(e)]
            starts = np.array([sh["start"] for sh in meta["shards"]], dtype=np.int64)
            sel = np.flatnonzero(owners == e)
            shard_of = np.searchsorted(starts, rows[sel], side="right") - 1
            for s in np.unique(shard_of):
                arrays = self._shard(int(e), int(s), path, meta)
                here = sel[shard_of == s]
                local = rows[here] - starts[s]
                for v in self.views:
                    if v not in out:
                        a = arrays[v]
                        out[v] = np.empty((len(owners), *a.shape[1:]), dtype=a.dtype)
                    out[v][here] = arrays[v][local]
        return out

    def _shard(self, e: int, s: int, path: Path, meta: dict[str, Any]) -> Views:
        key = (e, s)
        if key not in self._shard_cache:
            if len(self._shard_cache) >= 2:  # bounded memory: two shards at most
                self._shard_cache.pop(next(iter(self._shard_cache)))
            assert self.views is not None
            self._shard_cache[key] = self.cache._read_shard(
                path / meta["shards"][s]["file"], self.views)
        return self._shard_cache[key]


class ActivationCache:
    """A folder of entries ``<digest>/{meta.json, shard-00000.safetensors, ...}``."""

    def __init__(self, root: str | os.PathLike[str] | None = None,
                 shard_rows: int = DEFAULT_SHARD_ROWS) -> None:
        if shard_rows < 1:
            raise ConceptlabValueError("shard_rows must be >= 1")
        self.root = Path(root) if root is not None else default_cache_dir()
        self.shard_rows = shard_rows

    def check_writable(self, what: str = "--cache") -> None:
        """Fail now, before any encoding, if new entries could not be written (a file in the
        way, a read-only or immutable folder): an OutputError naming the folder."""
        target = check_output_dir(self.root, what)
        if not target.exists():
            try:
                target.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise OutputError(f"{what} {target}: cannot create the folder "
                                  f"({err.strerror or err})") from err
            probe_writable(target, what)

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
        """Compute and store an entry; finished shards of an interrupted run are reused.

        ``compute(start, stop)`` is called once per missing shard, in order.
        """
        shard_rows = self.shard_rows

        def rows(positions: np.ndarray) -> Iterator[Views]:
            # positions are whole missing shards, ascending: one compute call per shard
            for first in range(0, len(positions), shard_rows):
                start = int(positions[first])
                stop = min(start + shard_rows, n_rows)
                views = compute(start, stop)
                self._check_views(views, stop - start)
                yield views

        self._write(key, n_rows, None, rows, info, on_progress, WriteReport())
        return self.path(key)

    def ensure_rows(self, key: CacheKey, item_keys: np.ndarray | list[bytes],
                    compute: RowsCompute, *, info: dict[str, Any] | None = None,
                    on_progress: Callable[[int], None] | None = None) -> WriteReport:
        """Make sure the entry exists, computing only rows no complete entry of the same
        encoder (``key.encoder``) already holds, by content key; never reads the entry back.

        ``item_keys``: one 16-byte content key per row (``(N, 16)`` uint8 or a list of bytes);
        ``compute(positions)`` is called at most once, with the ascending row positions to
        compute, and yields their views in order in chunks of any size (a local loop or a
        distributed pipeline, see ``conceptlab.engines``). Memory stays bounded by a shard
        plus what the stream holds in flight.
        """
        report = WriteReport()
        if self.has(key):
            report.hit = True
            return report
        keys = as_key_array(item_keys)
        self._write(key, len(keys), keys, compute, info, on_progress, report)
        return report

    def _write(self, key: CacheKey, n_rows: int, keys: np.ndarray | None,
               compute: RowsCompute, info: dict[str, Any] | None,
               on_progress: Callable[[int], None] | None, report: WriteReport) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        # One writer per key at a time: a second process waits, then finds the entry done.
        with open(self.root / f".{key.digest}.lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                if self.has(key):
                    report.hit = True
                    return
                self._write_locked(key, n_rows, keys, compute, info, on_progress, report)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _write_locked(self, key: CacheKey, n_rows: int, keys: np.ndarray | None,
                      compute: RowsCompute, info: dict[str, Any] | None,
                      on_progress: Callable[[int], None] | None, report: WriteReport) -> None:
        final = self.path(key)
        partial = self.root / f".{key.digest}.partial"
        partial.mkdir(parents=True, exist_ok=True)
        bounds = [(s, min(s + self.shard_rows, n_rows)) for s in range(0, n_rows, self.shard_rows)]
        names = [f"shard-{i:05d}.safetensors" for i in range(len(bounds))]
        done_views: dict[int, list[str]] = {}
        for i, (start, stop) in enumerate(bounds):
            shard_path, done = partial / names[i], partial / f"{names[i]}.done"
            marker = read_json(done) if shard_path.is_file() and done.is_file() else None
            if marker is not None and (marker.get("start"), marker.get("stop")) == (start, stop):
                done_views[i] = sorted(marker["views"])
                report.resumed += stop - start
        todo = [i for i in range(len(bounds)) if i not in done_views]
        need = np.zeros(n_rows, dtype=bool)
        for i in todo:
            need[bounds[i][0]:bounds[i][1]] = True
        found = np.zeros(n_rows, dtype=bool)
        owner = row = np.zeros(n_rows, dtype=np.int64)
        donors: _Donors | None = None
        if keys is not None and todo:
            donors = _Donors(self, key.encoder, exclude=key.digest)
            found, owner, row = donors.find(keys)
            found &= need
        missing = np.flatnonzero(need & ~found)
        feeder = _Feeder(compute(missing)) if len(missing) else None
        view_names: list[str] | None = next(iter(done_views.values()), None)
        for i, (start, stop) in enumerate(bounds):
            if i in done_views:
                names_i = done_views[i]
            else:
                here = found[start:stop]
                n_new = int((~here).sum())
                new = feeder.take(n_new) if n_new and feeder is not None else {}
                old = (donors.gather(owner[start:stop][here], row[start:stop][here])
                       if donors is not None and here.any() else {})
                views = _merge(new, old, here, stop - start)
                self._check_views(views, stop - start)
                tmp = partial / f".{names[i]}.tmp"
                save_tensors(views, tmp)
                os.replace(tmp, partial / names[i])
                write_json_atomic(partial / f"{names[i]}.done",
                                  {"views": sorted(views), "start": start, "stop": stop})
                names_i = sorted(views)
                report.computed += n_new
                report.reused += stop - start - n_new
                del views, new, old
            if view_names is None:
                view_names = names_i
            elif names_i != view_names:
                raise CacheError(f"shard {i} has views {names_i}, expected {view_names}")
            if on_progress is not None:
                on_progress(stop)
        if feeder is not None:
            feeder.finish()
        meta: dict[str, Any] = {
            "format": CACHE_FORMAT,
            "key": {"encoder": key.encoder, "data": key.data, "extra": key.extra},
            "rows": n_rows, "views": view_names or [],
            "shards": [{"file": names[i], "start": a, "stop": b}
                       for i, (a, b) in enumerate(bounds)],
            "info": info or {},
        }
        if keys is not None:
            tmp = partial / f".{KEYS_FILE}.tmp"
            save_tensors({"keys": np.ascontiguousarray(keys)}, tmp)
            os.replace(tmp, partial / KEYS_FILE)
            meta["item_keys"] = KEYS_FILE
        write_json_atomic(partial / "meta.json", meta)
        for done_file in partial.glob("*.done"):
            done_file.unlink()
        if final.exists():  # another process finished first: keep theirs
            shutil.rmtree(partial, ignore_errors=True)
        else:
            os.replace(partial, final)

    def item_keys(self, key: CacheKey) -> np.ndarray | None:
        """The ``(N, 16)`` content keys of an entry's rows (None for entries without them)."""
        meta = self.meta(key)
        if not meta.get("item_keys"):
            return None
        return self._read_shard(self.path(key) / meta["item_keys"], ["keys"])["keys"]

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


def _merge(new: Views, old: Views, from_old: np.ndarray, rows: int) -> Views:
    """One shard's views: rows where ``from_old`` from ``old``, the others from ``new``."""
    if not old:
        return {k: np.ascontiguousarray(v) for k, v in new.items()}
    if not new:
        return {k: np.ascontiguousarray(v) for k, v in old.items()}
    if sorted(new) != sorted(old):
        raise CacheError(f"computed views {sorted(new)} differ from cached views {sorted(old)} "
                         "of the same encoder")
    out: Views = {}
    for k in new:
        a, b = new[k], old[k]
        if a.shape[1:] != b.shape[1:] or a.dtype != b.dtype:
            raise CacheError(f"view {k!r}: computed {a.dtype}{a.shape[1:]} but cached "
                             f"{b.dtype}{b.shape[1:]} for the same encoder")
        merged = np.empty((rows, *a.shape[1:]), dtype=a.dtype)
        merged[~from_old] = a
        merged[from_old] = b
        out[k] = merged
    return out
