"""One run lifecycle under every command that writes a folder, and one way to read a run back.

Why one module: before it, each workflow applied the run promises by hand (check ``--out``
before any work, stage the folder, swap it in whole) and the ones that forgot them broke them
(``discover`` wrote straight into ``--out``; a killed ``lm probe`` rerun left new banks beside
old metrics). Now a workflow writes its files through :func:`open_run`::

    with open_run("lm probe", out, seed=seed) as run:   # --out checked here, before any work
        ...                                             # long work
        bank.save(run.path("banks", name))              # files go to the staging folder
        metrics["bank"] = run.shown("banks", name)      # recorded as they will be after the swap
        return run.finish(metrics)                      # metrics.json; swapped in on exit

and the promises hold for every command at once:

* ``--out`` is refused before any work when it cannot become the run (a file in its place or
  above it, a folder of other files, no permission) -- one line naming it;
* the run is built in a sibling staging folder and swapped in with one rename: a reader (or a
  kill at any write step) sees the earlier run or the new one, whole; a rerun leaves no stale
  file of the earlier run; a killed run's staging folder is removed by the next run;
* the seed is applied once, before the work;
* the run record (:data:`RUN_FIELDS`: version, where it ran, seconds) is filled the same way
  for every command, and a start and an end line (command, output folder, seconds) go to the
  ``conceptlab.runs`` log;
* what the run shows as its name (the report's subtitle, recorded paths) is the folder it
  becomes, never the staging folder.

``out=None`` runs the same code with nothing written (the Python twins return metrics only).

:func:`load_run` reads a run back (:class:`LoadedRun`): its record, the splits rebuilt from the
recorded configuration and checked against the recorded fingerprints, and the saved concept
model (any kind, through ``bottleneck.concept_model``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conceptlab.errors import InputError, MissingFileError, OutputError
from conceptlab.utils.io import atomic_run_dir, read_json, write_json_atomic

LOG = logging.getLogger("conceptlab.runs")

#: the run-record fields every command's ``metrics.json`` shares, each declared once with what
#: it means (the report and ``docs/reliability.md`` read these descriptions)
RUN_FIELDS: dict[str, str] = {
    "command": "the command that wrote the run (fit, discover, lm probe, ...)",
    "version": "the conceptlab version that wrote the run",
    "compute": "where it ran: device (and GPU card) and floating-point type",
    "seed": "the seed applied before any work (data subsamples, initialisation, sampling)",
    "seconds": "wall-clock seconds of the whole command",
    "config": "the data and encoder configuration the splits and embeddings are rebuilt from "
              "(commands built on a dataset and an encoder)",
    "splits": "sizes, seeds and fingerprints of the train / validation / test splits",
    "faithfulness": "the audit's verdict on every concept claim of the run",
}


def field_description(name: str) -> str:
    """What the run-record field ``name`` means (:data:`RUN_FIELDS`); InputError if unknown."""
    try:
        return RUN_FIELDS[name]
    except KeyError:
        raise InputError(f"unknown run-record field {name!r}; known: "
                         f"{', '.join(RUN_FIELDS)}") from None


def compute_record(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """Where a run ran (``conceptlab.device.run_record``): device, card and dtype; a language
    model's own dtype when the metrics name one."""
    from conceptlab.device import run_record

    model = metrics.get("model")
    dtype = model.get("dtype") if isinstance(model, dict) else None
    record = run_record()
    return {**record, "dtype": dtype} if isinstance(dtype, str) else record


@dataclass
class Run:
    """A run being written: where its files go now (:attr:`dir`, the staging folder) and the
    folder it becomes (:attr:`out`). With ``out=None`` nothing is written and :attr:`dir` is
    ``None``."""

    command: str
    out: Path | None
    dir: Path | None
    seed: int | None = None
    started: float = field(default_factory=time.perf_counter)

    @property
    def writes(self) -> bool:
        """Whether this run writes a folder."""
        return self.dir is not None

    def path(self, *parts: str | Path) -> Path:
        """``parts`` inside the staging folder (its parent folders made); OutputError when the
        run writes nothing."""
        if self.dir is None:
            raise OutputError(f"{self.command}: this run writes no folder (no --out)")
        target = self.dir.joinpath(*[str(p) for p in parts])
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def shown(self, *parts: str | Path) -> str:
        """How ``parts`` is named in records and messages: under the folder the run becomes,
        never under the staging folder."""
        if self.out is None:
            raise OutputError(f"{self.command}: this run writes no folder (no --out)")
        return str(self.out.joinpath(*[str(p) for p in parts]))

    def shown_of(self, path: str | Path) -> str:
        """A path written under the staging folder, named as it will be after the swap."""
        p = Path(path)
        if self.dir is not None and self.out is not None and p.is_relative_to(self.dir):
            return str(self.out / p.relative_to(self.dir))
        return str(p)

    def finish(self, metrics: dict[str, Any], record: str = "metrics.json") -> dict[str, Any]:
        """Complete the run record (version, where it ran, seconds; existing values are kept)
        and write it as ``record`` (``metrics.json``; a kind with its own name, e.g.
        ``importance.json``, passes that) into the staging folder; returns the metrics."""
        from conceptlab.utils.version import package_version

        metrics.setdefault("command", self.command)
        metrics.setdefault("version", package_version())
        metrics.setdefault("compute", compute_record(metrics))
        metrics.setdefault("seconds", round(time.perf_counter() - self.started, 2))
        if self.dir is not None:
            write_json_atomic(self.dir / record, metrics)
        return metrics


@contextmanager
def open_run(command: str, out: str | Path | None, *, seed: int | None = None) -> Iterator[Run]:
    """The run lifecycle (module docstring): check ``out``, seed, stage, swap in on success.

    ``out`` is checked on entry, before the caller does any work; on an exception nothing of
    the new run is left and an earlier run at ``out`` is untouched."""
    started = time.perf_counter()
    if seed is not None:
        from conceptlab.utils.seed import seed_everything

        seed_everything(int(seed))
    if out is None:
        LOG.info("%s: start (nothing written)", command)
        yield Run(command, None, None, seed, started)
        LOG.info("%s: end in %.1f s", command, time.perf_counter() - started)
        return
    target = Path(out)
    with atomic_run_dir(target) as stage:
        LOG.info("%s: start -> %s", command, target)
        yield Run(command, target, stage, seed, started)
    LOG.info("%s: end -> %s in %.1f s", command, target, time.perf_counter() - started)


# ------------------------------------------------------------------------------------------------
# reading a run back
# ------------------------------------------------------------------------------------------------


@dataclass
class LoadedRun:
    """A run folder read back: its record (``metrics.json``) and what can be rebuilt from it."""

    path: Path
    metrics: dict[str, Any]

    @property
    def command(self) -> str:
        return str(self.metrics.get("command", "run"))

    @property
    def config(self) -> dict[str, Any]:
        """The recorded data / encoder configuration (InputError if the run has none)."""
        config = self.metrics.get("config")
        if not isinstance(config, dict) or "data" not in config:
            raise InputError(f"{self.path / 'metrics.json'}: no data config recorded; this "
                             f"{self.command} run cannot rebuild its splits")
        return config

    def rebuild_splits(self, check: tuple[str, ...] = ("train", "test")) -> Any:
        """The run's splits (``data.splits.SplitSet``), rebuilt from the recorded configuration;
        the ``check`` splits must match their recorded fingerprints (InputError naming the
        split and both fingerprints when the data changed since the run)."""
        return rebuild_splits(self.config, self.metrics.get("splits"), check=check,
                              where=str(self.path))

    def load_model(self) -> Any:
        """The saved concept model (any kind registered in ``bottleneck.concept_model``)."""
        from conceptlab.bottleneck.concept_model import load_concept_model

        folder = self.path / "model"
        if not (folder / "model.json").is_file():
            raise MissingFileError(f"{self.path}: no saved model (model/model.json); this "
                                   f"{self.command} run holds none")
        return load_concept_model(folder)


def rebuild_splits(config: Mapping[str, Any], split_record: Any = None, *,
                   check: tuple[str, ...] = ("train", "test"), where: str = "the run") -> Any:
    """Splits rebuilt from a recorded configuration (``RunConfig`` fields), each split in
    ``check`` compared with the fingerprint in ``split_record`` (when one is recorded).

    The one place run folders rebuild their data: the report, the explorer and ``load_run``."""
    from conceptlab.data.base import build_dataset
    from conceptlab.data.splits import make_splits

    dataset = build_dataset(config["data"], **(config.get("data_options") or {}))
    splits = make_splits(dataset, val_fraction=config.get("val_fraction", 0.1),
                         n_train=config.get("n_train"), n_val=config.get("n_val"),
                         n_test=config.get("n_test"), seed=config.get("seed", 0))
    recorded = (split_record or {}).get("fingerprints", {}) if isinstance(split_record, dict) \
        else {}
    for name in check:
        got = getattr(splits, name).fingerprint()
        if recorded.get(name) and recorded[name] != got:
            raise InputError(f"{where}: the {name} split of {config['data']!r} changed since "
                             f"the run (fingerprint {got} != recorded {recorded[name]})")
    return splits


def load_run(folder: str | Path) -> LoadedRun:
    """Read a run folder written by any command (MissingFileError / InputError when it is not
    one)."""
    path = Path(folder)
    if not path.is_dir():
        raise MissingFileError(f"{path}: no such run folder")
    if not (path / "metrics.json").is_file():
        raise InputError(f"{path}: not a run folder (no metrics.json)")
    metrics = read_json(path / "metrics.json")
    if not isinstance(metrics, dict):
        raise InputError(f"{path / 'metrics.json'}: expected a JSON object")
    return LoadedRun(path, metrics)


__all__ = ["LOG", "RUN_FIELDS", "LoadedRun", "Run", "compute_record", "field_description",
           "load_run", "open_run", "rebuild_splits"]
