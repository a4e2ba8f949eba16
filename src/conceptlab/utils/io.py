"""Atomic writes: a temporary file or folder beside the target, then one atomic rename.

Why: an interrupted run must never leave a half-written result where a good one used to be,
and a reader must see either the old result or the new one, complete. Files and folders
written here get the permissions the umask asks for (``mkstemp``/``mkdtemp`` make 0600/0700).
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from conceptlab.errors import FormatError, MissingFileError, OutputError

#: files that mark a folder as a conceptlab run (``metrics.json`` is written last; the others
#: let a rerun replace what an interrupted older version left)
RUN_MARKERS = ("metrics.json", "model", "encoder.json", "report.html", "explanations.json",
               "importance.json")


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux ``/proc``).

    Why not ``os.umask(0)`` then back: between the two calls another thread would create
    files with no mask at all.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def apply_umask(path: Path) -> None:
    """Give ``path`` (a file, or a folder and all it holds) the modes the umask asks for:
    0666 & ~umask for files, 0777 & ~umask for folders."""
    mask = current_umask()
    if path.is_file():
        os.chmod(path, 0o666 & ~mask)
        return
    os.chmod(path, 0o777 & ~mask)
    for dirpath, dirnames, filenames in os.walk(path):
        for d in dirnames:
            os.chmod(os.path.join(dirpath, d), 0o777 & ~mask)
        for f in filenames:
            os.chmod(os.path.join(dirpath, f), 0o666 & ~mask)


#: errors of a write that the disk refused (full, over quota, file too large, read-only)
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO})


def _safetensors_io_reason(err: BaseException) -> str | None:
    """The OS reason inside a safetensors write failure (``SafetensorError('Error while
    serializing: I/O error: No space left on device (os error 28)')``), else None: any other
    SafetensorError is a bug in the caller (bad tensors) and keeps its traceback."""
    if type(err).__name__ != "SafetensorError":
        return None
    text = str(err)
    marker = "I/O error: "
    if marker not in text:
        return None
    reason = text.split(marker, 1)[1]
    return reason.split(" (os error", 1)[0].strip() or reason


@contextmanager
def writing(path: str | os.PathLike[str]) -> Iterator[None]:
    """Run a write of ``path`` (safetensors, a PNG, a JSON file); a failure the disk causes
    becomes one OutputError naming the file.

    Why: safetensors reports a full disk as ``SafetensorError`` (not an ``OSError``, so the
    command line would print a traceback), and Python's own writes report it as an
    ``OSError`` without a file name; either way the user must learn which file could not be
    written.
    """
    try:
        yield
    except OutputError:
        raise
    except OSError as err:
        reason = err.strerror or str(err)
        name = err.filename or path
        if Path(name).name.startswith(f".{Path(path).name}."):  # our temporary sibling
            name = path
        raise OutputError(f"{name}: cannot write ({reason})") from err
    except Exception as err:
        reason_or_none = _safetensors_io_reason(err)
        if reason_or_none is None:
            raise
        raise OutputError(f"{path}: cannot write ({reason_or_none})") from err


def save_tensors(arrays: dict[str, np.ndarray], path: str | os.PathLike[str]) -> Path:
    """``safetensors.numpy.save_file`` with a failed write reported as an OutputError naming
    ``path`` (see :func:`writing`)."""
    from safetensors.numpy import save_file

    with writing(path):
        save_file(arrays, str(path))
    return Path(path)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; renamed onto ``path`` if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():  # mkstemp creates 0600: give the file the usual permissions
            apply_umask(tmp_path)
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` atomically and return the path (a write the disk refuses is
    an OutputError naming ``path``)."""
    with writing(path), atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` as indented JSON atomically (numpy scalars and arrays become plain JSON)."""
    return write_text_atomic(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file, naming the file in the error if it is missing or malformed."""
    p = Path(path)
    if not p.is_file():
        raise MissingFileError(f"{p}: no such file")
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise FormatError(f"{p}: not valid JSON ({err})") from err
    except UnicodeDecodeError as err:
        raise FormatError(f"{p}: not UTF-8 text ({err.reason} at byte {err.start})") from err
    except RecursionError:
        raise FormatError(f"{p}: JSON nested too deeply to read") from None


# ------------------------------------------------------------------------------------------------
# folders swapped in whole
# ------------------------------------------------------------------------------------------------

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_LIBC: Any = None


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``).

    Returns False where the OS or file system cannot (the caller then falls back to two
    renames); raises OSError for any other failure (no permission, immutable folder).
    """
    global _LIBC
    try:
        if _LIBC is None:
            _LIBC = ctypes.CDLL(None, use_errno=True)
        fn = _LIBC.renameat2
    except (OSError, AttributeError):
        return False
    rc = fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _stage_prefix(target: Path) -> str:
    return f".{target.name}.stage-{os.getpid()}-"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale(target: Path) -> list[Path]:
    """Remove what a killed writer of ``target`` left beside it: staging folders
    (``.NAME.stage-PID-*``) and old copies (``.NAME.old-PID*``) of processes that are gone."""
    removed: list[Path] = []
    parent = target.parent
    if not parent.is_dir():
        return removed
    for kind in ("stage", "old"):
        for p in parent.glob(f".{target.name}.{kind}-*"):
            pid_txt = p.name[len(f".{target.name}.{kind}-"):].split("-")[0]
            if pid_txt.isdigit() and not _pid_alive(int(pid_txt)):
                if p.is_dir():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    p.unlink(missing_ok=True)
                removed.append(p)
    return removed


def _swap_in(stage: Path, target: Path) -> None:
    """Put the finished ``stage`` folder at ``target``: one atomic exchange where the OS
    allows it, so a reader sees the old folder or the new one and never neither."""
    apply_umask(stage)
    if not target.exists():
        os.replace(stage, target)
        return
    if _exchange(stage, target):
        shutil.rmtree(stage, ignore_errors=True)  # it now holds the old folder
        return
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    os.replace(target, old)
    os.replace(stage, target)
    shutil.rmtree(old, ignore_errors=True)


def _make_stage(target: Path, what: str = "") -> Path:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=_stage_prefix(target), dir=target.parent))
    except OSError as err:
        where = f"{what} {target}: " if what else ""
        raise OutputError(f"{where}{err.filename or target.parent}: cannot write here "
                          f"({err.strerror or err})") from err


def _named_at_target(err: OSError, stage: Path, target: Path, what: str = "",
                     note: str = "") -> OSError:
    """A write failure inside a staging folder, told as the path the user asked for: an
    OutputError's staging path becomes ``target``'s, and a disk error without a file name
    (a full disk while a figure is saved) gets ``target``'s name; any other error as it is."""
    if isinstance(err, OutputError) and str(stage) in str(err):
        return OutputError(str(err).replace(str(stage), str(target)) + note)
    if not isinstance(err, OutputError) and not err.filename and err.errno in WRITE_ERRNOS:
        where = f"{what} {target}" if what else str(target)
        return OutputError(f"{where}: cannot write ({err.strerror or err}){note}")
    return err


@contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; it replaces ``path`` only if the block succeeds
    (a write failure inside names the file under ``path``, not the staging folder)."""
    target = Path(path)
    sweep_stale(target)
    stage = _make_stage(target)
    try:
        try:
            yield stage
        except OSError as err:
            named = _named_at_target(err, stage, target)
            if named is err:
                raise
            raise named from err
        _swap_in(stage, target)
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)


def check_output_dir(path: str | os.PathLike[str], what: str = "--out",
                     replace: bool = False) -> Path:
    """Fail now, before any long work, if ``path`` cannot become an output folder: a file in
    its place or above it, or no permission to write there (read-only, immutable).

    With ``replace`` (a run folder that will be swapped whole) an existing, non-empty folder
    must be an earlier conceptlab run (it holds one of ``RUN_MARKERS``): a refit replaces the
    run, but never a folder of other files.
    """
    target = Path(path)
    existing = next((p for p in (target, *target.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        where = "" if existing == target else f" (above {target})"
        raise OutputError(f"{what} {target}: {existing}{where} is a file, not a folder")
    if target.is_dir() and replace and any(target.iterdir()) \
            and not any((target / m).exists() for m in RUN_MARKERS):
        raise OutputError(f"{what} {target}: folder exists and is not a conceptlab run "
                          "(no metrics.json, model/ or report.html); give a new or empty folder")
    if replace and target.is_dir():
        # swapped by a rename in its parent (the staging folder proves the parent writable):
        # only an immutable or append-only flag stops it; no probe file inside the run
        if _immutable(target):
            raise OutputError(f"{what} {target}: cannot replace the folder (it is immutable "
                              "or append-only)")
    elif existing is not None and not replace:  # (a run's staging folder probes its parent)
        probe_writable(existing, what if existing == target else f"{what} {target}:")
    return target


def check_output_file(path: str | os.PathLike[str], what: str = "--out") -> Path:
    """Fail now, before any work, if ``path`` cannot become an output file: a folder in its
    place, a file where a folder above it should be, or a folder that refuses writes (read-only,
    no permission). An existing file is fine (it is replaced atomically)."""
    target = Path(path)
    if target.is_dir():
        raise OutputError(f"{what} {target}: is a folder; give a file path")
    existing = next((p for p in target.parents if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise OutputError(f"{what} {target}: {existing} (above it) is a file, not a folder")
    if existing is not None:
        probe_writable(existing, what if existing == target.parent else f"{what} {target}:")
    return target


_FS_IOC_GETFLAGS = 0x80086601
_FS_IMMUTABLE_OR_APPEND = 0x10 | 0x20


def _immutable(path: Path) -> bool:
    """Whether ``path`` carries Linux's immutable or append-only flag (False where unknown)."""
    try:
        import array
        import fcntl

        fd = os.open(path, os.O_RDONLY)
    except (ImportError, OSError):
        return False
    try:
        buf = array.array("i", [0])
        fcntl.ioctl(fd, _FS_IOC_GETFLAGS, buf, True)
        return bool(buf[0] & _FS_IMMUTABLE_OR_APPEND)
    except OSError:
        return False
    finally:
        os.close(fd)


def probe_writable(folder: Path, what: str) -> None:
    """Create and remove a file in ``folder``; an OutputError naming it if that fails."""
    try:
        fd, name = tempfile.mkstemp(prefix=".conceptlab-probe-", dir=folder)
        os.close(fd)
        os.unlink(name)
    except OSError as err:
        raise OutputError(f"{what} {folder}: cannot write here ({err.strerror or err})") from err


@contextmanager
def atomic_run_dir(out: str | os.PathLike[str]) -> Iterator[Path]:
    """Build a whole run (model, records, plots, report, metrics.json) in a sibling staging
    folder and swap it in for ``out`` with one rename when the block succeeds.

    A reader of ``out`` (``predict``, a person) always sees the earlier run or the new one,
    complete; a failure or a kill anywhere leaves the earlier run untouched (a killed run's
    staging folder is removed by the next run). ``out`` is checked on entry, so a bad
    ``--out`` fails before any encoding. Everything in ``out`` belongs to the run: a rerun
    leaves no stale file of the earlier one.
    """
    target = check_output_dir(out, replace=True)
    sweep_stale(target)
    stage = _make_stage(target, "--out")
    try:
        try:
            yield stage
        except OSError as err:
            named = _named_at_target(err, stage, target, "--out",
                                     "; the run was not written, an earlier run there is kept")
            if named is err:
                raise
            raise named from err
        try:
            _swap_in(stage, target)
        except OSError as err:
            raise OutputError(f"--out {target}: cannot replace the folder "
                              f"({err.strerror or err})") from err
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)
