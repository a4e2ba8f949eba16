"""Concept discovery, importance and application as whole jobs (twins of `conceptlab discover`,
`conceptlab importance` and `conceptlab concepts apply`).

``run_discover``: per class (CRAFT's protocol, Fel et al. CVPR 2023), random crops of that
class's training images through the model at a hook point, a dictionary of ``k`` concepts,
names (head + exemplars) with scores, a saved bank per class and a gallery PNG of top crops.

``run_importance``: for one class, the concepts' importance for the decision on held-out images
of that class (Sobol, gradient x input, occlusion), importance bars, attribution overlays, and
the explanation-fidelity metrics of each ranking against a random order.

The decision explained: the model's own head when the data's classes are the head's classes;
otherwise (Fashion-MNIST through an ImageNet network) a linear probe fitted on the pooled
activations of the hook point of the training images, saved and recorded with its accuracy.
Activations are cached (``conceptlab.cache``), keyed by the model + hook + source fingerprint
and the items' fingerprint, so a rerun reads them back.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from conceptlab.cache import ActivationCache, CacheKey
from conceptlab.data.base import DataSplit, build_dataset
from conceptlab.discover.bank import DiscoveredConcepts, discover, load_probe, save_probe
from conceptlab.discover.naming import (
    DEFAULT_NAMING,
    ConceptNamer,
    minilm_embedder,
    naming_vocabulary,
)
from conceptlab.discover.sources import Activations, SourceError, TappedModel, build_tapped, extract
from conceptlab.faithfulness.explanations import (
    curve_auc,
    deletion_curve,
    insertion_curve,
    mu_fidelity,
    order_from_importance,
    random_orders,
)
from conceptlab.importance import IMPORTANCE, ConceptModel, local_importance
from conceptlab.importance.attribution import concept_maps
from conceptlab.report.discover_plots import (
    plot_concept_gallery,
    plot_fidelity_curves,
    plot_importance_bars,
    plot_overlays,
)
from conceptlab.runs import open_run
from conceptlab.utils.hashing import hash_json
from conceptlab.utils.io import read_json

DATA_SEED = 0  # which items are drawn per class is fixed; `seed` moves the dictionary and QMC


def slug(name: str) -> str:
    """A file-safe folder name for a class (``T-shirt/top`` -> ``t-shirt-top``)."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "class"


def per_class_subset(split: DataSplit, n_per_class: int, classes: list[int],
                     seed: int = DATA_SEED) -> DataSplit:
    """The first ``n_per_class`` items of each class in a seeded permutation (stable order)."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(split))
    keep: list[int] = []
    for c in classes:
        pos = perm[split.labels[perm] == c][:n_per_class]
        if len(pos) == 0:
            raise SourceError(f"{split.dataset}/{split.name}: no items of class "
                              f"{split.class_names[c]!r}")
        keep.extend(sorted(pos.tolist()))
    return split.subset(np.array(keep), name=f"{split.name}-{n_per_class}-per-class")


def cached_extract(cache: ActivationCache, tapped: TappedModel, split: DataSplit, kind: str,
                   **params: Any) -> Activations:
    """``sources.extract`` through the activation cache."""
    key = CacheKey(encoder=hash_json({"tapped": tapped.fingerprint(), "kind": kind, **params}),
                   data=split.fingerprint(), extra="discover-source")
    if not cache.has(key):
        images = split.items(0, len(split))
        acts = extract(tapped, images, kind, **params)
        views = {"rows": acts.rows, "item": acts.item}
        if acts.boxes is not None:
            views["boxes"] = acts.boxes
        if acts.positions is not None:
            views["positions"] = acts.positions
        info = {"kind": kind, "layer": tapped.layer, "grid": list(acts.grid or ()),
                "provenance": acts.provenance}
        cache.write(key, len(acts.rows),
                    lambda a, b: {k: v[a:b] for k, v in views.items()}, info=info)
    meta = cache.meta(key)
    v = cache.load(key)
    grid = tuple(meta["info"]["grid"]) or None
    return Activations(v["rows"], v["item"], kind, tapped.layer, boxes=v.get("boxes"),
                       positions=v.get("positions"),
                       grid=(int(grid[0]), int(grid[1])) if grid else None,
                       provenance=meta["info"]["provenance"])


def cached_grid(cache: ActivationCache, tapped: TappedModel, split: DataSplit,
                patch: int | None) -> Activations:
    """CRAFT's grid patches (``discover.craft.extract_grid``) through the activation cache."""
    from conceptlab.discover.craft import extract_grid

    key = CacheKey(encoder=hash_json({"tapped": tapped.fingerprint(), "kind": "craft-grid",
                                      "patch": patch}),
                   data=split.fingerprint(), extra="discover-source")
    if not cache.has(key):
        acts = extract_grid(tapped, split.items(0, len(split)), patch)
        assert acts.boxes is not None
        views = {"rows": acts.rows, "item": acts.item, "boxes": acts.boxes}
        cache.write(key, len(acts.rows), lambda a, b: {k: v[a:b] for k, v in views.items()},
                    info={"kind": "crops", "layer": tapped.layer, "grid": [],
                          "provenance": acts.provenance})
    meta = cache.meta(key)
    v = cache.load(key)
    return Activations(v["rows"], v["item"], "crops", tapped.layer, boxes=v["boxes"],
                       provenance=meta["info"]["provenance"])


def position_boxes(acts: Activations, size: tuple[int, int]) -> np.ndarray:
    """For spatial rows, a square box (left, top, side) twice the grid cell around each
    position, as the exemplar shown for it."""
    assert acts.grid is not None and acts.positions is not None
    (h, w), (W, H) = acts.grid, size
    side = max(1, round(2 * min(W / w, H / h)))
    cy = (acts.positions[:, 0] + 0.5) * H / h
    cx = (acts.positions[:, 1] + 0.5) * W / w
    left = np.clip(np.round(cx - side / 2), 0, W - side)
    top = np.clip(np.round(cy - side / 2), 0, H - side)
    return np.stack([left, top, np.full(len(left), side)], 1).astype(np.int64)


def _crop_array(image: Any, box: np.ndarray) -> np.ndarray:
    x, y, s = (int(b) for b in box)
    return np.asarray(image.convert("L").crop((x, y, x + s, y + s)).resize((48, 48)))


def fit_probe(X: np.ndarray, y: np.ndarray, n_classes: int, seed: int
              ) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression on pooled activations (the decision explained when the
    model's head does not know the data's classes), as a (C, D) weight over all ``n_classes``
    (a class without training items gets a bias of -30: never predicted)."""
    from sklearn.linear_model import LogisticRegression

    present = np.unique(y)
    if len(present) < 2:
        raise SourceError("the decision probe needs training items of at least 2 classes")
    clf = LogisticRegression(C=1.0, max_iter=1000, random_state=seed).fit(X, y)
    coef, bias = clf.coef_, clf.intercept_
    if len(present) == 2:  # scikit-learn's binary form: one row for the second class
        coef, bias = np.vstack([-coef / 2, coef / 2]), np.array([-bias[0] / 2, bias[0] / 2])
    W = np.zeros((n_classes, X.shape[1]), np.float32)
    b = np.full(n_classes, -30.0, np.float32)
    W[clf.classes_], b[clf.classes_] = coef, bias
    return W, b


def run_discover(data: str, out: str | Path, *, method: str = "nmf", k: int = 10,
                 encoder: str = "efficientnet", layer: str | None = None,
                 image_size: int | None = 128, n_per_class: int = 100, n_crops: int = 8,
                 classes: list[str] | None = None, seed: int = 0,
                 cache_dir: str | None = None, data_options: dict[str, Any] | None = None,
                 method_options: dict[str, Any] | None = None, top: int = 8,
                 source: str = "crops", encoder_options: dict[str, Any] | None = None,
                 model: str | None = None, naming: str = DEFAULT_NAMING,
                 patch_size: int | None = None) -> dict[str, Any]:
    """Discover ``k`` concepts per class (see the module docstring); writes ``OUT/metrics.json``,
    ``OUT/concepts/<class>/`` (banks), ``OUT/gallery/<class>.png`` and ``OUT/probe``.

    ``encoder``: any image encoder the registry builds (``efficientnet``, ``conse``,
    ``hf:FOLDER``, ...) with ``encoder_options``; ``layer``: a hook point of its tap (default
    the family's ``features``); ``image_size`` goes to families that take it. ``model`` is
    the former name of ``encoder``. ``naming``: the vocabulary concepts are named from
    (``discover.naming``): ``parts`` (default, the built-in parts-and-attributes list) or
    ``imagenet`` (the head's class names); every name is recorded with it.

    ``method="craft"`` is CRAFT as its reference code runs it (``discover.craft``): grid
    patches of side ``patch_size`` (default 64/224 of the input) at stride 0.8 x patch and
    NMF with alpha_W = 1e-2, instead of ``n_crops`` random crops; ``nmf`` on ``crops`` is
    conceptlab's earlier recipe (8 random crops, unregularised NMF).
    """
    encoder = model or encoder
    with open_run("discover", out, seed=seed) as run:
        from conceptlab.discover.base import build_dictionary

        build_dictionary(method, k, seed=seed, **(method_options or {}))  # bad names fail early
        vocabulary = naming_vocabulary(naming)
        namer = ConceptNamer(vocabulary, None if vocabulary.uses_head else minilm_embedder())
        dataset = build_dataset(data, **(data_options or {}))
        if dataset.modality != "image":
            raise SourceError(f"{data}: concept discovery on crops needs images")
        names = dataset.class_names
        wanted = list(range(len(names))) if not classes else [_class_index(names, c)
                                                              for c in classes]
        tapped = build_tapped(encoder, layer, image_size=image_size, **(encoder_options or {}))
        train = per_class_subset(dataset.official_split("train"), n_per_class, wanted)
        cache = ActivationCache(cache_dir)
        if method == "craft" and source == "crops":
            crops = cached_grid(cache, tapped, train, patch_size)
        elif source == "crops":
            crops = cached_extract(cache, tapped, train, "crops", n_crops=n_crops, seed=DATA_SEED)
        elif source == "spatial":  # each position a row; its exemplar is its receptive cell
            crops = cached_extract(cache, tapped, train, "spatial")
            crops.boxes = position_boxes(crops, train[0].size)
        else:
            raise SourceError(f"discovery source must be 'crops' or 'spatial', got {source!r}")
        stage = run.path()  # the run's files go here; swapped in for `out` at the end
        images = train.items(0, len(train))
        per_class: dict[str, Any] = {}
        label_names = [names[int(lbl)] for lbl in train.labels]
        for c in wanted:
            in_c = np.flatnonzero(train.labels[crops.item] == c)
            acts = Activations(crops.rows[in_c], crops.item[in_c], source, crops.layer,
                               boxes=crops.boxes[in_c] if crops.boxes is not None else None,
                               provenance={**crops.provenance, "class": names[c],
                                           "data_fingerprint": train.fingerprint()})
            found, U, report = discover(tapped, acts, method, k, seed=seed, labels=label_names,
                                        top=top, options=method_options, namer=namer)
            folder = stage / "concepts" / slug(names[c])
            found.save(folder)
            rows = []
            boxes = acts.boxes
            assert boxes is not None
            for kk, entry in enumerate(report["names"]):
                ex = entry["exemplars"]["rows"][:6]
                head = entry["head"]
                label = entry["concept"]
                score = entry.get("name_score")
                label += f"\n[{entry['vocabulary']}" + (f", {score:.2f}]" if isinstance(
                    score, float) else "]")
                if head:
                    label += f"\nhead p={head['score']:.2f}"
                label += f"\nfreq {float((U.argmax(1) == kk).mean()):.2f}"
                rows.append({"label": label, "crops": [
                    _crop_array(images[int(acts.item[r])], boxes[r]) for r in ex]})
            png = plot_concept_gallery(rows, stage / "gallery" / f"{slug(names[c])}.png",
                                       title=f"{names[c]}: {k} {method} concepts at "
                                             f"{tapped.layer} (top {source}); names from "
                                             f"{report['naming']['vocabulary']}")
            per_class[names[c]] = {"folder": str(folder.relative_to(stage)), "gallery":
                                   str(png.relative_to(stage)), "quality": report["quality"],
                                   "concepts": report["names"]}
        probe_acc = None
        if tapped.head is not None and tapped.class_names != names:
            # the probe reads the pooled features the model's own head reads (`features`)
            feat = tapped if tapped.layer == "features" or tapped.pooled is None else \
                build_tapped(encoder, "features", image_size=image_size,
                             **(encoder_options or {}))
            whole = cached_extract(cache, feat, train, "embeddings")
            Wp, bp = fit_probe(whole.rows, train.labels, len(names), seed)
            save_probe(stage / "probe", Wp, bp)
            probe_acc = float(((whole.rows @ Wp.T + bp).argmax(1) == train.labels).mean())
        metrics = {"command": "discover", "data": data, "data_options": data_options or {},
                   "model": encoder, "encoder": encoder, "encoder_options": tapped.options,
                   "layer": tapped.layer, "image_size": tapped.options.get("image_size"),
                   "method": method, "method_options": method_options or {}, "k": k, "seed": seed,
                   "source": source, "patches": "craft-grid" if method == "craft" and
                   source == "crops" else ("random-crops" if source == "crops" else source),
                   "patch_size": crops.provenance.get("patch_size"),
                   "data_seed": DATA_SEED, "n_per_class": n_per_class, "n_crops": n_crops,
                   "classes": [names[c] for c in wanted], "class_names": names,
                   "train_items": train.indices.tolist(), "data_fingerprint": train.fingerprint(),
                   "model_fingerprint": tapped.fingerprint(), "probe_train_accuracy": probe_acc,
                   "per_class": per_class, "naming": namer.record()}
        return run.finish(metrics)


def _class_index(names: list[str], name: str) -> int:
    if name in names:
        return names.index(name)
    by_slug = {slug(n): i for i, n in enumerate(names)}
    if slug(name) in by_slug:
        return by_slug[slug(name)]
    raise SourceError(f"unknown class {name!r}; classes: {', '.join(names)}")


def _decision_head(run: dict[str, Any], folder: Path, tapped: TappedModel
                   ) -> tuple[Any, bool]:
    """(latent -> logits over the data's classes, whether it is a fitted probe)."""
    probe = load_probe(folder / "probe")
    if probe is not None:
        W, b = torch.from_numpy(probe[0]), torch.from_numpy(probe[1])
        pooled = tapped.pooled
        if pooled is None:
            raise SourceError(f"the decision probe reads pooled features, which are not known "
                              f"from {tapped.layer!r}")

        def head(latent: torch.Tensor) -> torch.Tensor:
            assert pooled is not None
            return pooled(latent) @ W.T + b

        return head, True
    if tapped.head is None:
        raise SourceError(f"importance needs a direct head at {tapped.layer!r}: the encoder "
                          f"{tapped.name} has no class outputs known from that point (use an "
                          "ImageNet classifier such as efficientnet, at 'features' or a block)")
    return tapped.head, False


def concept_output(model: ConceptModel, u: torch.Tensor, target: int
                   ) -> Any:
    """``f(masks)`` for the fidelity metrics: the target class's probability with each
    concept's codes (all positions) scaled by its mask."""

    def f(masks: np.ndarray) -> np.ndarray:
        m = torch.from_numpy(np.asarray(masks, np.float32))
        with torch.no_grad():
            logits = model(u[None] * m[:, None, :])
        return logits.softmax(-1)[:, target].numpy()

    return f


def resampled_output(model: ConceptModel, U: torch.Tensor, i: int, target: int,
                     donors: np.ndarray) -> Any:
    """``f(masks)`` where a removed concept takes its codes from other inputs (``donors``,
    averaged over them) instead of zero: a deletion no importance estimator perturbs with
    (occlusion zeroes a concept, Sobol scales it by a mask in [0, 1], gradient x input is the
    first-order term of zeroing), so it does not favour one estimator's own perturbation."""
    u = U[i]
    others = U[torch.from_numpy(np.asarray(donors, np.int64))]

    def f(masks: np.ndarray) -> np.ndarray:
        m = torch.from_numpy(np.asarray(masks, np.float32))[:, None, :]
        outs = []
        with torch.no_grad():
            for d in others:
                outs.append(model(u[None] * m + d[None] * (1 - m)).softmax(-1)[:, target])
        return torch.stack(outs).mean(0).numpy()

    return f


def importance_and_fidelity(model: ConceptModel, U: torch.Tensor, target: int, seed: int,
                            methods: tuple[str, ...], n_design: int = 32, n_random: int = 8,
                            baseline: str = "zero", n_donors: int = 4) -> dict[str, Any]:
    """Local importances of each method on codes ``U`` (N, P, K) for class ``target``, and the
    fidelity of each ranking (and of random orders) per input, averaged.

    ``baseline``: what a deleted concept becomes in the fidelity metrics: ``zero`` (its codes
    set to 0, occlusion's own perturbation) or ``resample`` (its codes taken from
    ``n_donors`` other inputs, ``resampled_output``)."""
    if baseline not in ("zero", "resample"):
        raise SourceError(f"fidelity baseline must be 'zero' or 'resample', got {baseline!r}")
    if baseline == "resample" and len(U) < 2:
        raise SourceError("the resample baseline needs at least 2 inputs")
    t = np.full(len(U), target)
    local = {m: local_importance(m, model, U, t, **({"n_design": n_design, "seed": seed}
                                                     if m == "sobol" else {}))
             for m in methods}
    K = model.n_concepts
    rand = random_orders(K, n_random, seed)
    rng = np.random.default_rng(seed)
    fid: dict[str, dict[str, list[float]]] = {m: {"deletion_auc": [], "insertion_auc": [],
                                                  "mu_fidelity": []}
                                              for m in (*methods, "random")}
    curves: dict[str, list[np.ndarray]] = {m: [] for m in (*methods, "random")}
    for i in range(len(U)):
        if baseline == "zero":
            f = concept_output(model, U[i], target)
        else:
            pool = np.delete(np.arange(len(U)), i)
            f = resampled_output(model, U, i, target,
                                 rng.choice(pool, min(n_donors, len(pool)), replace=False))
        for m in methods:
            order = order_from_importance(local[m][i])
            dc = deletion_curve(f, order)
            curves[m].append(dc)
            fid[m]["deletion_auc"].append(curve_auc(dc))
            fid[m]["insertion_auc"].append(curve_auc(insertion_curve(f, order)))
            fid[m]["mu_fidelity"].append(mu_fidelity(f, local[m][i], seed=seed + i))
        dr = [deletion_curve(f, o) for o in rand]
        curves["random"].append(np.mean(dr, 0))
        fid["random"]["deletion_auc"].append(float(np.mean([curve_auc(c) for c in dr])))
        fid["random"]["insertion_auc"].append(float(np.mean(
            [curve_auc(insertion_curve(f, o)) for o in rand])))
        fid["random"]["mu_fidelity"].append(mu_fidelity(f, rng.normal(size=K), seed=seed + i))
    summary = {m: {k: float(np.nanmean(v)) for k, v in d.items()} for m, d in fid.items()}
    return {"local": local, "fidelity": summary,
            "curves": {m: np.mean(c, 0) for m, c in curves.items()}}


def run_importance(folder: str | Path, class_name: str, *, n_images: int = 30,
                   methods: tuple[str, ...] = tuple(IMPORTANCE), seed: int | None = None,
                   n_design: int = 32, cache_dir: str | None = None,
                   out: str | Path | None = None, n_overlay: int = 4,
                   baseline: str = "zero") -> dict[str, Any]:
    """Importance of one class's discovered concepts on held-out (official test) images of
    that class; writes ``importance/<class>/{importance.json, bars.png, overlays.png,
    deletion.png}`` under ``folder`` (or ``out``)."""
    t0 = time.perf_counter()
    folder = Path(folder)
    run = read_json(folder / "metrics.json")
    names = run["class_names"]
    c = _class_index(names, class_name)
    if names[c] not in run["per_class"]:
        raise SourceError(f"no concepts for class {names[c]!r} in {folder}; found for: "
                          f"{', '.join(run['per_class'])}")
    unknown = sorted(set(methods) - set(IMPORTANCE))
    if unknown:
        raise SourceError(f"unknown importance method(s) {unknown}; choose from "
                          f"{', '.join(IMPORTANCE)}")
    if baseline not in ("zero", "resample"):
        raise SourceError(f"fidelity baseline must be 'zero' or 'resample', got {baseline!r}")
    seed = run["seed"] if seed is None else seed
    imp_folder = Path(out) if out is not None else folder / "importance" / slug(names[c])
    # the class's importance folder is a run of its own: checked first, written whole
    with open_run("importance", imp_folder, seed=seed) as imp:
        dest = imp.dir
        assert dest is not None
        found = DiscoveredConcepts.load(folder / run["per_class"][names[c]]["folder"])
        tapped = build_tapped(run.get("encoder") or run["model"], run["layer"],
                              **run.get("encoder_options", {"image_size": run["image_size"]}))
        found.check_model(tapped)
        head, is_probe = _decision_head(run, folder, tapped)
        dataset = build_dataset(run["data"], **run.get("data_options", {}))
        test = per_class_subset(dataset.official_split("test"), n_images, [c])
        spatial = cached_extract(ActivationCache(cache_dir), tapped, test, "spatial")
        if spatial.grid is None:
            raise SourceError("importance needs spatial activations")
        U = found.dictionary.encode(spatial.rows).reshape(len(test), -1,
                                                          found.dictionary.n_concepts)
        model = ConceptModel.from_dictionary(found.dictionary, head, spatial.grid)
        target = c  # a probe's classes are the data's; a model head shares the data's names
        res = importance_and_fidelity(model, torch.from_numpy(U), target, seed, methods, n_design,
                                      baseline=baseline)
        glob = {m: res["local"][m].mean(0) for m in methods}
        cnames = found.bank.names
        bars = plot_importance_bars(glob, cnames, dest / "bars.png",
                                    title=f"{names[c]}: concept importance ({len(test)} test "
                                          f"images)")
        order = order_from_importance(glob.get("sobol", next(iter(glob.values()))))
        top3 = order[:3]
        imgs = test.items(0, min(n_overlay, len(test)))
        arrs = [np.asarray(im.convert("L")) for im in imgs]
        maps = np.stack([concept_maps(U[i].reshape(*spatial.grid, -1), arrs[i].shape)[top3]
                         for i in range(len(imgs))])
        overlay = plot_overlays(arrs, maps, [cnames[i] for i in top3], dest / "overlays.png",
                                title=f"{names[c]}: the 3 most important concepts (Sobol)")
        curves = plot_fidelity_curves(res["curves"], dest / "deletion.png",
                                      title=f"{names[c]}: concept deletion")
        with torch.no_grad():
            recon = model(torch.from_numpy(U)).softmax(-1)
            orig = head(torch.from_numpy(spatial.maps()).permute(0, 3, 1, 2)).softmax(-1)
        probs = recon[:, target].numpy()
        result = {"command": "importance", "class": names[c], "n_images": len(test),
                  "seed": seed, "n_design": n_design, "decision": "probe" if is_probe else "model",
                  "fidelity_baseline": baseline,
                  "mean_target_probability_reconstructed": float(probs.mean()),
                  "mean_target_probability_original": float(orig[:, target].mean()),
                  "recall_original": float((orig.argmax(1) == target).float().mean()),
                  "recall_reconstructed": float((recon.argmax(1) == target).float().mean()),
                  "test_items": test.indices.tolist(),
                  "global": {m: {cnames[k]: float(v[k]) for k in range(len(cnames))}
                             for m, v in glob.items()},
                  "ranking": {m: [cnames[k] for k in order_from_importance(v)]
                              for m, v in glob.items()},
                  "fidelity": res["fidelity"],
                  "pngs": [imp.shown(p.name) for p in (bars, overlay, curves)],
                  "seconds": round(time.perf_counter() - t0, 2)}
        return imp.finish(result, record="importance.json")


def apply_concepts(folder: str | Path, images: list[Any], cache_dir: str | None = None
                   ) -> list[dict[str, Any]]:
    """Codes of new images under a saved bank (a class folder written by ``run_discover``),
    strongest concepts first."""
    found = DiscoveredConcepts.load(folder)
    prov = found.provenance
    tapped = build_tapped(prov.get("spec") or "efficientnet", prov["layer"],
                          **prov.get("options", {}))
    codes = found.apply(tapped, images)["codes"]
    rows = []
    for u in codes:
        order = np.argsort(-u, kind="stable")
        rows.append({"concepts": [{"concept": found.bank.names[k], "code": float(u[k])}
                                  for k in order]})
    return rows
