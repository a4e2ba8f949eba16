"""Tiny real run folders for every concept model kind, fast enough for the unit tier.

``tinyjoint`` is a stand-in joint encoder registered for the tests: an image becomes its 4 x 4
mean-colour grid through a fixed random projection, a text the sum of seeded random word
vectors; both land in one 24-d space, so vocabularies become banks and runs have an
``encoder.json`` that ``predict`` and ``serve`` rebuild. The data are idsprites at 16 pixels,
classified by colour (6 classes), with its 18 ground-truth concepts: a CEM can fit on them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from conceptlab.encoders.base import Encoder, EncoderError, Modality, Views, register_encoder

DIM = 24
_PROJ = np.random.default_rng(5).standard_normal((48, DIM)).astype(np.float32)


def _word(word: str) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(word.encode()).digest()[:8], "little")
    return np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)


class TinyJoint(Encoder):
    """See the module docstring."""

    spec = "tinyjoint"
    modalities = frozenset({"image", "text"})
    batch_size = 256

    @property
    def dim(self) -> int:
        return DIM

    def fingerprint(self) -> str:
        return "tinyjoint-v1"

    def encode_batch(self, items: Sequence[Any], modality: Modality) -> Views:
        if modality == "image":
            rows = []
            for im in items:
                a = np.asarray(im.convert("RGB").resize((4, 4)), np.float32) / 255.0 - 0.5
                rows.append(a.reshape(-1) @ _PROJ)
            out = np.stack(rows)
        else:
            out = np.stack([sum((_word(w) for w in str(t).lower().split()),
                                np.zeros(DIM, np.float32)) for t in items])
        out = out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-6)
        return {"embedding": out.astype(np.float32)}


@register_encoder("tinyjoint")
def _build(arg: str, options: dict[str, Any]) -> Encoder:
    if options:  # the registry contract: an unknown option is refused (tests/test_registries)
        raise EncoderError(f"tinyjoint: takes no options, got {', '.join(sorted(options))}")
    return TinyJoint()


def run_config(cache: Path) -> Any:
    from conceptlab.workflows.prepare import RunConfig

    return RunConfig(data="idsprites", encoder="tinyjoint", cache_dir=str(cache),
                     data_options={"n_train": 300, "n_test": 60, "img_size": 16,
                                   "classes": "color", "cache_dir": str(cache / "data")})


#: settings that keep each fit to a second or two
DNCBM_SETTINGS = {"units": 16, "min_steps": 200}
CEM_SETTINGS = {"max_epochs": 25, "patience": 8, "emb_size": 4}


def fit_run(out: Path, cache: Path, method: str) -> Path:
    """A run folder of ``fit --method METHOD`` (``dncbm``, ``cem`` or a CBM objective)."""
    from conceptlab.workflows.cbm import run_fit

    settings = {"dncbm": DNCBM_SETTINGS, "cem": CEM_SETTINGS}.get(
        method, {"max_epochs": 5, "show_progress": False})
    run_fit(run_config(cache), out, method=method, nec=2 if method == "dncbm" else None,
            hparams=dict(settings))
    return out


def input_image(out: Path, cache: Path, index: int = 0) -> Path:
    """A PNG of one test item of the run's data, for ``--input``."""
    from conceptlab.data.base import build_dataset
    from conceptlab.data.splits import make_splits

    cfg = run_config(cache)
    ds = build_dataset(cfg.data, **cfg.data_options)

    splits = make_splits(ds, val_fraction=cfg.val_fraction, seed=cfg.seed)
    path = out / f"test-{index}.png"
    splits.test[index].save(path)
    return path
