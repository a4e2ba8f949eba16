"""TCAV as a job (``conceptlab tcav``): concept example sets against random counter-example sets
at one or more layers of a model, tested against the class logit (Kim et al., ICML 2018).

Inputs: ``--data`` gives the class's inputs (the official test split's items of ``--class``,
a seeded subsample); ``--encoder`` the model: any registered image encoder whose tap has class
outputs (``efficientnet`` or ``conse``: the packaged EfficientNet-Lite0, ImageNet logits, default
layer ``features``; layers are hook points such as ``blocks.15.hook_resid_post``) or
``lm:SPEC`` (a causal LM such as ``lm:smollm2``; the class logit is the next-token logit of the
``--target`` token, default the class name with a leading space; default layer the middle
block's residual stream). The model output tested is ``--target`` (default: the class name,
matched to the model's class names).

Writes ``OUT/metrics.json`` (every row, with the random scores and the settings),
``OUT/tcav.md`` (the table), ``OUT/tcav.png`` (score per layer beside the random
distribution) and ``OUT/cavs.safetensors`` (every CAV), all at once.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from conceptlab.data.base import build_dataset
from conceptlab.runs import compute_record, open_run
from conceptlab.tcav.cavs import CAV_METHODS
from conceptlab.tcav.experiment import (
    MIN_RANDOM_RUNS,
    LayerData,
    LayerTarget,
    LMTarget,
    TappedTarget,
    TCAVError,
    draw_random_sets,
    run_test,
)
from conceptlab.tcav.plots import plot_tcav, table_markdown
from conceptlab.tcav.sets import list_concepts, read_concepts, read_pool
from conceptlab.utils.io import save_tensors, write_json_atomic, write_text_atomic
from conceptlab.utils.version import package_version


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def match_name(names: Sequence[str], wanted: str, what: str) -> int:
    """Index of ``wanted`` in ``names`` (exact, then case/punctuation-insensitive)."""
    if wanted in names:
        return list(names).index(wanted)
    by_slug = {_slug(n): i for i, n in enumerate(names)}
    if _slug(wanted) in by_slug:
        return by_slug[_slug(wanted)]
    shown = ", ".join(list(names)[:12]) + (" ..." if len(names) > 12 else "")
    raise TCAVError(f"{what} {wanted!r} not found; known: {shown}")


def build_targets(encoder: str, layers: Sequence[str] | None, *, image_size: int = 224,
                  reduce: str | None = None) -> tuple[list[LayerTarget], list[str] | None, Any]:
    """(one ``LayerTarget`` per layer, the model's class names or None for an LM, the LM)."""
    if encoder.startswith("lm:"):
        from conceptlab.lm.model import load_lm

        lm = load_lm(encoder[3:])
        names = list(layers or [f"blocks.{lm.n_layers // 2}.hook_resid_post"])
        return [LMTarget(lm, p, reduce or "last") for p in names], None, lm
    from conceptlab.discover.sources import SourceError, build_tapped

    targets: list[LayerTarget] = []
    class_names: list[str] | None = None
    wanted: list[str | None] = list(layers or []) or [None]
    for layer in wanted:
        try:
            tapped = build_tapped(encoder, layer, image_size=image_size)
        except SourceError as err:
            raise TCAVError(str(err)) from err
        if tapped.class_names is None:
            raise TCAVError(f"--encoder {encoder!r} has no class outputs to test concepts "
                            "against (TCAV needs a classifier, e.g. efficientnet or conse, or "
                            "lm:SPEC)")
        class_names = tapped.class_names
        targets.append(TappedTarget(tapped, reduce or "flatten"))
    return targets, class_names, None


def collect_layers(targets: Sequence[LayerTarget], concepts: Mapping[str, Sequence[Any]],
                   pool: Sequence[Any], class_items: Sequence[Any], target_index: int, *,
                   n_random: int = MIN_RANDOM_RUNS, set_size: int | None = None,
                   seed: int = 0) -> tuple[dict[str, LayerData], dict[str, Any]]:
    """Read every set at every layer: concept sets, ``n_random + 1`` random sets drawn from
    ``pool`` (R_0 is the random baseline's counterpart) and the class inputs' gradients."""
    if n_random < MIN_RANDOM_RUNS:
        raise TCAVError(f"--n-random must be >= {MIN_RANDOM_RUNS}, got {n_random}")
    size = set_size or min(len(v) for v in concepts.values())
    sets = draw_random_sets(len(pool), n_random + 1, size, seed)
    used = np.unique(np.concatenate(sets))
    out: dict[str, LayerData] = {}
    for t in targets:
        pool_acts = dict(zip(used.tolist(), t.activations([pool[i] for i in used]), strict=True))
        out[t.layer] = LayerData(
            {c: t.activations(list(v)) for c, v in concepts.items()},
            [np.stack([pool_acts[int(i)] for i in s]) for s in sets],
            t.gradients(list(class_items), target_index))
    info = {"n_random": n_random, "random_set_size": size, "random_seed": seed,
            "random_sets": [s.tolist() for s in sets], "pool_size": len(pool)}
    return out, info


def _class_items(data: str, class_name: str, n_class: int, seed: int,
                 data_options: Mapping[str, Any] | None) -> tuple[list[Any], dict[str, Any]]:
    dataset = build_dataset(data, **dict(data_options or {}))
    split = dataset.official_split("test")
    c = match_name(split.class_names, class_name, f"--class (a class of {data})")
    where = np.flatnonzero(split.labels == c)
    if len(where) < 2:
        raise TCAVError(f"--class {class_name!r}: {len(where)} test item(s) in {data}")
    pick = np.sort(np.random.default_rng(seed).choice(where, min(n_class, len(where)),
                                                      replace=False))
    sub = split.subset(pick)
    return [sub[i] for i in range(len(sub))], {"data": data, "split": "test",
                                               "class": split.class_names[c],
                                               "items": sub.indices.tolist(),
                                               "data_fingerprint": sub.fingerprint()}


def run_tcav(data: str, out: str | Path, *, concepts_dir: str | Path, random_dir: str | Path,
             class_name: str, encoder: str = "efficientnet", layers: Sequence[str] | None = None,
             target: str | None = None, fast: bool = False, n_random: int = MIN_RANDOM_RUNS,
             set_size: int | None = None, n_class: int = 50, max_per_concept: int | None = None,
             image_size: int = 224, reduce: str | None = None, alpha: float = 0.05,
             seed: int = 0, data_options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The TCAV test of every concept in ``concepts_dir`` at every layer (see module doc)."""
    t0 = time.perf_counter()
    method = "fast" if fast else "svm"
    assert method in CAV_METHODS
    if n_random < MIN_RANDOM_RUNS:
        raise TCAVError(f"--n-random must be >= {MIN_RANDOM_RUNS}, got {n_random}")
    listing = list_concepts(concepts_dir)  # cheap checks before any model loads
    modality = next(iter(listing.values()))[0]
    if encoder.startswith("lm:") != (modality == "text"):
        raise TCAVError(f"--concepts-dir holds {modality} examples but --encoder {encoder!r} "
                        f"reads {'texts' if encoder.startswith('lm:') else 'images'}")
    with open_run("tcav", out) as run:
        stage = run.path()
        _, concepts = read_concepts(concepts_dir, max_per_concept)
        pool = read_pool(random_dir, modality)
        items, class_info = _class_items(data, class_name, n_class, seed, data_options)
        targets, class_names, lm = build_targets(encoder, layers, image_size=image_size,
                                                 reduce=reduce)
        wanted = target or class_info["class"]
        if lm is not None:
            token = wanted if target else " " + wanted
            ids = lm.encode(token)
            if len(ids) != 1:
                raise TCAVError(f"--target {token!r} is {len(ids)} tokens; give one token")
            target_index, target_name = ids[0], token
        else:
            assert class_names is not None
            target_index = match_name(class_names, wanted, "--target (a model output)")
            target_name = class_names[target_index]
        layer_data, info = collect_layers(targets, concepts, pool, items, target_index,
                                          n_random=n_random, set_size=set_size, seed=seed)
        result = run_test(layer_data, method=method, alpha=alpha, seed=seed)
        save_tensors({f"{r['layer']}/{r['concept']}": r.pop("directions").astype(np.float32)
                      for r in result["rows"]}, stage / "cavs.safetensors")
        title = (f"TCAV ({'FastCAV' if fast else 'SGD-SVM CAVs'}), {n_random} random runs, Holm"
                 f"\nclass {class_info['class']} -> output {target_name!r}")
        plot_tcav(result["rows"], stage / "tcav.png", title=title)
        write_text_atomic(stage / "tcav.md", table_markdown(result["rows"]))
        metrics = {"command": "tcav", "version": package_version(), "encoder": encoder,
                   "layers": [t.layer for t in targets],
                   "reduce": reduce or ("last" if lm is not None else "flatten"),
                   "cav_method": method, "target": target_name, "target_index": target_index,
                   "concepts": {c: len(v) for c, v in concepts.items()},
                   "concepts_dir": str(concepts_dir), "random_dir": str(random_dir),
                   **class_info, **{k: v for k, v in info.items()}, "alpha": alpha,
                   "correction": "holm", "rows": result["rows"],
                   "cav_seconds": result["cav_seconds"], "image_size": image_size,
                   "seed": seed, "seconds": round(time.perf_counter() - t0, 2)}
        metrics.setdefault("compute", compute_record(metrics))
        write_json_atomic(stage / "metrics.json", metrics)
    return metrics
