"""The concept-benchmark robot TEXT set (``robots-text``): 7,680 descriptions, 9 binary concepts.

Each text describes a fictional robot (head, body, knees, elbows, antennae, ears, mouth,
hands, feet); the label says whether it is a Glorp or a Drent, drawn from a known formula
over those body-part concepts. Ground-truth concepts make it the place to check what a
concept bottleneck's concepts *mean* on a real joint text space (MiniLM).

Generation (``concept-benchmark==0.4.1``, installed ``--no-deps``; it also needs pandas,
colorir and pero) runs once per (generation seed, package version) in a **child process** and
is cached as JSON under ``cache_dir`` (default ``base.dataset_cache_dir("robots-text")``:
``$CONCEPTLAB_CACHE/datasets/robots-text`` or ``~/.cache/conceptlab/datasets/robots-text``),
written atomically. A child process because the generator reseeds Python, numpy and torch
globally and switches torch to deterministic algorithms, and because its import needs a
stand-in ``cairo`` module: none of that should touch the caller's process. ``PYTHONHASHSEED`` is
fixed in the child so the texts are the same on every machine.

Splits: the package defines a paper split for robot *images* only (``generate_splits()``
refuses text), so train and test are drawn by a **seeded, stratified** rule
(``test_fraction`` 0.2, ``split_seed`` 0), recorded in ``split.meta["split_rule"]``. With
the default one text per robot, no robot appears in two splits.

Robot IMAGES are not offered yet. They can render here, checked on Debian 12: the package
rasterises through pycairo (``cairo.ImageSurface`` in ``synthetic/robot/draw.py``), which has no
Linux wheel on PyPI but builds from source in ~13 s once Debian's ``libcairo2-dev`` and a C
compiler are present (``apt-get install libcairo2-dev; pip install pycairo==1.29.2``); the
image factory ``create_synthetic_dataset`` imports torchvision only for a default
``ToTensor`` transform, so calling ``synthetic.robot.create_robot_image_dataset`` directly
avoids it. That drew all 7,680 robots at 32x32 (RGBA PNGs) in 37 s on 2 cores. What is missing
is a loader that runs it in a child process (as for the texts) and pairs each image with its
robot's description, and a system package (libcairo2-dev) in the set-up script.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from conceptlab.data.base import (
    DataError,
    Dataset,
    DataSplit,
    dataset_cache_dir,
    file_digest,
    register_dataset,
    take_options,
)
from conceptlab.data.splits import check_fraction, pool_split
from conceptlab.data.text_table import TextListSource
from conceptlab.utils.hashing import hash_json
from conceptlab.utils.io import atomic_path

PACKAGE = "concept-benchmark"
DEFAULT_SEED = 1014  # the seed of the package's own examples
CLASS_NAMES = ["drent", "glorp"]  # the package's y: 1 for "glorp", 0 otherwise
FORMAT_VERSION = 1
_LOG = logging.getLogger(__name__)
_INSTALL_HINT = ("pip install --no-deps concept-benchmark==0.4.1 && "
                 "pip install pandas colorir pero")


def default_cache_dir() -> Path:
    """``dataset_cache_dir("robots-text")``: ``$CONCEPTLAB_CACHE/datasets/robots-text`` (the
    one cache setting, shared with the activation cache) or
    ``~/.cache/conceptlab/datasets/robots-text``."""
    if os.environ.get("CONCEPTLAB_CACHE_DIR"):
        _LOG.warning("CONCEPTLAB_CACHE_DIR is no longer read; set CONCEPTLAB_CACHE "
                     "(docs/environment.md)")
    return dataset_cache_dir("robots-text")


def package_version() -> str:
    try:
        return metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        raise DataError(f"robots-text needs the {PACKAGE} package: {_INSTALL_HINT}") from None


def readable_concept(raw: str) -> str:
    """``head_is_square`` -> ``head is square``."""
    return raw.replace("_", " ")


def cache_path(cache_dir: Path, seed: int, version: str) -> Path:
    return cache_dir / f"robots-text-cb{version}-seed{seed}-v{FORMAT_VERSION}.json"


def generate_to(path: Path, seed: int, timeout: float = 600.0) -> None:
    """Run the generator in a child process that writes ``path`` (atomically)."""
    with atomic_path(path) as tmp:
        env = {**os.environ, "PYTHONHASHSEED": "0", "CONCEPTLAB_NO_PROGRESS": "1"}
        cmd = [sys.executable, "-m", "conceptlab.data.robots", "--seed", str(seed),
               "--out", str(tmp)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env,
                                  timeout=timeout, check=False)
        except subprocess.TimeoutExpired as err:
            raise DataError(f"robots-text: generation took longer than {timeout:.0f} s") from err
        if proc.returncode != 0:
            tail = "\n".join(proc.stderr.strip().splitlines()[-6:])
            hint = f" ({_INSTALL_HINT})" if "ModuleNotFoundError" in tail else ""
            raise DataError(f"robots-text: generation with {PACKAGE} failed{hint}:\n{tail}")


def read_cache(path: Path) -> dict[str, Any]:
    """The cached texts, labels and concepts, checked; a damaged file is a DataError."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"{path}: unreadable robots-text cache ({err}); delete it to "
                        "regenerate") from err
    try:
        texts = data["texts"]
        labels = np.asarray(data["labels"], dtype=np.int64)
        concepts = np.asarray(data["concepts"], dtype=np.float32)
        names = list(data["concept_names"])
    except (KeyError, TypeError, ValueError) as err:
        raise DataError(f"{path}: malformed robots-text cache ({err}); delete it to "
                        "regenerate") from err
    n = len(texts)
    if labels.shape != (n,) or concepts.shape != (n, len(names)) or \
            not all(isinstance(t, str) and t for t in texts):
        raise DataError(f"{path}: inconsistent robots-text cache (texts {n}, labels "
                        f"{labels.shape}, concepts {concepts.shape}); delete it to regenerate")
    if not np.isin(labels, (0, 1)).all() or not np.isin(concepts, (0.0, 1.0)).all():
        raise DataError(f"{path}: labels and concepts must be 0/1; delete it to regenerate")
    return {**data, "texts": texts, "labels": labels, "concepts": concepts,
            "concept_names": names}


class RobotsText(Dataset):
    """Robot descriptions, Glorp vs Drent, with 9 ground-truth binary concepts."""

    modality = "text"

    def __init__(self, *, seed: int = DEFAULT_SEED, test_fraction: float = 0.2,
                 split_seed: int = 0, cache_dir: str | Path | None = None) -> None:
        self.seed = int(seed)
        self.test_fraction = check_fraction("test_fraction", test_fraction)
        self.split_seed = int(split_seed)
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
        self.spec = "robots-text"
        self.version = package_version()
        self.path = cache_path(self.cache_dir, self.seed, self.version)
        if not self.path.is_file():
            _LOG.info("generating robot texts (seed %d) into %s, once", self.seed, self.path)
            generate_to(self.path, self.seed)
        data = read_cache(self.path)
        self._labels: np.ndarray = data["labels"]
        self._concepts: np.ndarray = data["concepts"]
        self._concept_names_raw: list[str] = data["concept_names"]
        fingerprint = hash_json({"kind": "robots-text", "file": file_digest(self.path)})
        self.source = TextListSource(data["texts"], fingerprint)
        train, test, self._rule = pool_split(self._labels, self.test_fraction, self.split_seed,
                                             CLASS_NAMES)
        self._positions = {"train": train, "test": test}

    @property
    def class_names(self) -> list[str]:
        return list(CLASS_NAMES)

    @property
    def concept_names(self) -> list[str]:
        return [readable_concept(c) for c in self._concept_names_raw]

    def describe(self) -> dict[str, Any]:
        return {"spec": self.spec, "modality": self.modality, "seed": self.seed,
                "package": f"{PACKAGE}=={self.version}", "test_fraction": self.test_fraction,
                "split_seed": self.split_seed}

    def official_split(self, name: str) -> DataSplit:
        if name not in self._positions:
            raise DataError(f"robots-text: no split {name!r}; splits: train, test (seeded, "
                            "not official)")
        pos = self._positions[name]
        return DataSplit(
            dataset=self.spec, name=name, modality="text", source=self.source, indices=pos,
            labels=self._labels[pos], class_names=self.class_names,
            concept_labels=self._concepts[pos], concept_names=self.concept_names,
            meta={"official": False, "split_rule": self._rule, "generation_seed": self.seed,
                  "package": f"{PACKAGE}=={self.version}", "cache_file": str(self.path),
                  "concept_names_raw": list(self._concept_names_raw)})


_OPTIONS: dict[str, Any] = {"seed": DEFAULT_SEED, "test_fraction": 0.2, "split_seed": 0,
                           "cache_dir": None}


@register_dataset("robots-text", options=_OPTIONS)
def _build(arg: str, options: dict[str, Any]) -> Dataset:
    if arg:
        raise DataError("robots-text takes no path; options: seed, test_fraction, split_seed, "
                        "cache_dir")
    opts = take_options("robots-text", options, _OPTIONS)
    return RobotsText(**opts)


# ---- child process: the only place that imports concept_benchmark -------------------------

def _generate(seed: int) -> dict[str, Any]:
    import importlib.util
    import types

    import pero  # noqa: F401  (must be imported before the cairo stand-in below)

    if importlib.util.find_spec("cairo") is None:
        sys.modules["cairo"] = types.ModuleType("cairo")
    from concept_benchmark.robots import DatasetGenerator

    data = DatasetGenerator(seed=seed, data_type="text").generate()
    labels = np.asarray(data.y, dtype=np.int64)
    concepts = np.asarray(data.C)
    return {"format": FORMAT_VERSION, "package": PACKAGE, "version": metadata.version(PACKAGE),
            "seed": seed, "class_names": CLASS_NAMES,
            "concept_names": [str(c) for c in data.concepts],
            "texts": [str(t) for t in data.inputs], "labels": labels.tolist(),
            "concepts": np.rint(concepts).astype(int).tolist(),
            "row_index": np.asarray(data.meta.get("row_index", np.arange(len(labels))))
            .astype(int).tolist()}


def _main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="generate the robot text set into a JSON file")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    args.out.write_text(json.dumps(_generate(args.seed)), encoding="utf-8")


if __name__ == "__main__":
    _main()
