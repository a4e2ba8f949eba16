"""Language-model concept jobs, the Python twins of ``conceptlab lm probe|neurons|steer|ablate|
observable``. Each writes ``OUT/metrics.json`` (and PNGs) atomically and returns the metrics.

Every job takes ``model`` (a spec for ``lm.model.load_lm``: ``smollm2`` by default, a Hugging
Face name or a folder) or an already loaded ``CausalLM`` as ``lm``; seeds are recorded.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from conceptlab.cache import ActivationCache
from conceptlab.lm import edits as E
from conceptlab.lm.ablation import SCOPES, ablation_edits, probe_after_edit
from conceptlab.lm.datasets import PromptSet, load_prompts, shipped_lines
from conceptlab.lm.directions import directions_bank, estimate
from conceptlab.lm.effects import (
    Baseline,
    concept_words,
    side_effects,
    split_indices,
    token_mass,
)
from conceptlab.lm.model import CausalLM, LMError, load_lm
from conceptlab.lm.neurons import (
    SIDES,
    NeuronMap,
    confirm_by_clamping,
    decode_neurons,
    search,
    token_index,
)
from conceptlab.lm.observables import compare, direct_path_vector
from conceptlab.lm.preflight import check_folds, check_layers
from conceptlab.lm.probing import (
    cached_activations,
    concept_depth,
    layer_points,
    majority_rate,
    probe_layers,
)
from conceptlab.report import lm_plots
from conceptlab.runs import open_run

DEFAULT_CONCEPTS = ("animals", "sentiment", "gender", "gapminder")
DEFAULT_WORDS = ("dog", "happy", "France", "money", "water", "music", "red")


def _lm(model: str, lm: CausalLM | None) -> CausalLM:
    return lm if lm is not None else load_lm(model)


def _cache(cache_dir: str | Path | None) -> ActivationCache | None:
    return ActivationCache(cache_dir, shard_rows=256) if cache_dir else None


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


def _resolve_layers(lm: CausalLM, layers: Sequence[int] | None) -> list[int]:
    out = list(range(lm.n_layers)) if not layers else [int(i) for i in layers]
    bad = [i for i in out if not 0 <= i < lm.n_layers]
    if bad:
        raise LMError(f"layers {bad} out of range 0..{lm.n_layers - 1}")
    return out


def run_lm_probe(data: Sequence[str] = DEFAULT_CONCEPTS, out: str | Path | None = None, *,
                 model: str = "smollm2", lm: CausalLM | None = None,
                 layers: Sequence[int] | None = None, folds: int = 5, tol: float = 0.02,
                 n_boot: int = 1000, seed: int = 0, reduce: str = "last",
                 cache_dir: str | Path | None = None,
                 cd_reference: bool = False) -> dict[str, Any]:
    """Concept depth for each prompt set: per-layer probe curves, depth, banks, one figure.

    ``cd_reference`` adds the Concept Depth reference protocol's rows (its hook point and one
    60/40 split, ``lm.depth_reference``) beside ours for two-class sets."""
    t0 = time.perf_counter()
    if not data:
        raise LMError("lm probe needs at least one --data prompt set")
    prompt_sets = [load_prompts(spec, seed=seed) for spec in data]  # fail before the model
    check_folds(folds, prompt_sets)
    if lm is None:
        check_layers(model, layers)  # from config.json, without loading the weights
    with open_run("lm probe", out, seed=seed) as run:
        lm = _lm(model, lm)
        layer_ids = _resolve_layers(lm, layers)
        points = layer_points(lm, layer_ids)
        concepts = []
        for ps in prompt_sets:
            acts = cached_activations(lm, ps, points, reduce, _cache(cache_dir))
            rows, _ = probe_layers(acts, ps, folds=folds, seed=seed, n_boot=n_boot)
            for r, layer in zip(rows, layer_ids, strict=True):
                r["layer"] = layer
            acc = [r["accuracy"]["value"] for r in rows]
            d = concept_depth(acc, [r["accuracy"]["lo"] for r in rows],
                              [r["accuracy"]["hi"] for r in rows], tol)
            chance = majority_rate(ps.labels)
            entry: dict[str, Any] = {
                "name": ps.name, "prompts": ps.describe(), "depth": layer_ids[d],
                "depth_index": d, "depth_rule": "first layer whose 95% interval overlaps the "
                "best layer's (tol rule without intervals)",
                "best_layer": layer_ids[int(np.argmax(acc))],
                "best_accuracy": float(max(acc)), "chance": chance,
                "control": "type-level random labels (Hewitt & Liang 2019)",
                "control_accuracy_mean": float(np.mean([r["control"]["accuracy"]["value"]
                                                        for r in rows])),
                "layers": rows}
            if chance > 1.0 / ps.n_classes + 0.05:
                entry["warning"] = (f"imbalanced classes: always answering the majority class "
                                    f"scores {chance:.3f}; read accuracy against that, or AUC")
            if cd_reference and ps.n_classes == 2:
                from conceptlab.lm.depth_reference import reference_rows

                ref = reference_rows(lm, ps, layer_ids)
                racc = [r["accuracy"] for r in ref]
                entry["reference_cd"] = {"layers": ref, "best_layer": ref[int(np.argmax(racc))]
                                         ["layer"], "best_accuracy": float(max(racc))}
            if run.writes and ps.n_classes == 2:
                bank = directions_bank(lm, acts, ps)
                bank.provenance["reduce"] = reduce
                entry["bank"] = run.shown_of(bank.save(run.path("banks", _safe(ps.name))))
            concepts.append(entry)
        metrics: dict[str, Any] = {"command": "lm probe", "model": lm.describe(), "seed": seed,
                                   "folds": folds, "tol": tol, "n_boot": n_boot, "reduce": reduce,
                                   "layers": layer_ids, "concepts": concepts}
        if run.writes:
            plot_rows = [{**c, "depth": c["depth_index"]} for c in concepts]
            metrics["figure"] = run.shown_of(lm_plots.plot_depth(plot_rows, run.path("depth.png")))
        metrics["seconds"] = round(time.perf_counter() - t0, 2)
        return run.finish(metrics)


def run_lm_neurons(out: str | Path | None = None, *, model: str = "smollm2",
                   lm: CausalLM | None = None, words: Sequence[str] = DEFAULT_WORDS,
                   k: int = 10, confirm: bool = True, factor: float = 4.0, top: int = 5,
                   seed: int = 0, map_dir: str | Path | None = None,
                   side: str = "up") -> dict[str, Any]:
    """Decode every MLP neuron through the head, save the map, search words, clamp the best hit.

    ``side``: ``up`` (default, Davies 2025's up-projection rows), ``gate`` or ``down`` (value
    vectors, Geva et al. 2022). ``map_dir`` reuses a saved map (``OUT/map`` from an earlier run)
    instead of decoding again; its side must match.
    """
    t0 = time.perf_counter()
    if side not in SIDES:
        raise LMError(f"side must be one of {', '.join(SIDES)}, got {side!r}")
    with open_run("lm neurons", out, seed=seed) as run:
        lm = _lm(model, lm)
        if map_dir is not None:
            nmap = NeuronMap.load(map_dir)
            if nmap.info.get("model_fingerprint") != lm.fingerprint():
                raise LMError(f"{map_dir}: the neuron map was made for another model")
            if nmap.info.get("side") != side:
                raise LMError(f"{map_dir}: the map decodes side {nmap.info.get('side')!r}, "
                              f"not {side!r}")
        else:
            nmap = decode_neurons(lm, k=k, side=side)
            if run.writes:
                nmap.save(run.path("map"))
        index = token_index(nmap)
        prompts = shipped_lines("neutral_prompts")
        found, clamps = [], []
        for w in words:
            t = time.perf_counter()
            hits = search(nmap, w, top=top, token_index=index)
            entry: dict[str, Any] = {"word": w, "hits": hits,
                                     "search_ms": round((time.perf_counter() - t) * 1e3, 3)}
            if confirm and hits:
                best = hits[0]
                res = confirm_by_clamping(lm, nmap, best["layer"], best["neuron"], prompts,
                                          factor=factor, seed=seed)
                entry["clamp"] = res
                clamps.append({"word": w, **res})
            found.append(entry)
        order = np.argsort(-nmap.score)[:20]
        metrics: dict[str, Any] = {
            "command": "lm neurons", "model": lm.describe(), "seed": seed, "k": k,
            "side": side, "factor": factor, "map": nmap.info, "words": found,
            "most_specialised": [nmap.describe(int(r)) for r in order],
            "neutral_prompts": prompts}
        if run.writes and clamps:
            metrics["figure"] = run.shown_of(lm_plots.plot_clamps(clamps, run.path("clamps.png")))
        metrics["seconds"] = round(time.perf_counter() - t0, 2)
        return run.finish(metrics)


def _direction(lm: CausalLM, ps: PromptSet, layer: int, method: str, idx: np.ndarray,
               cache_dir: str | Path | None) -> tuple[np.ndarray, float, float]:
    """Unit direction at ``layer`` from the prompts ``idx``; its class gap and the mean norm."""
    point = f"blocks.{layer}.hook_resid_post"
    # one cache entry holds every layer, shared with probe / ablate / observable
    X = cached_activations(lm, ps, layer_points(lm), cache=_cache(cache_dir))[point]
    sub = PromptSet(ps.name, [ps.texts[i] for i in idx], ps.labels[idx], ps.classes,
                    None if ps.groups is None else [ps.groups[i] for i in idx])
    v = estimate(method, X[idx], sub)
    proj = X[idx] @ v
    gap = float(proj[sub.labels == 1].mean() - proj[sub.labels == 0].mean())
    return v, gap, float(np.linalg.norm(X, axis=1).mean())


def run_lm_ablate(data: Sequence[str] = DEFAULT_CONCEPTS, out: str | Path | None = None, *,
                  model: str = "smollm2", lm: CausalLM | None = None,
                  layers: Sequence[int] | None = None, method: str = "mean_diff",
                  scope: str = "layer", test_fraction: float = 0.3, seed: int = 0,
                  cache_dir: str | Path | None = None) -> dict[str, Any]:
    """Project a concept direction out and measure the probe before / after and side effects.

    ``layers`` default: each concept's depth from a probe of the *training* prompts only (the
    held-out prompts play no part in choosing it); ``scope``: ``layer``, ``onward`` or ``all``
    (Arditi et al. 2024, every layer; ``lm.ablation``). Judged on held-out prompts by AUROC.
    """
    t0 = time.perf_counter()
    if scope not in SCOPES:
        raise LMError(f"scope must be one of {', '.join(SCOPES)}, got {scope!r}")
    prompt_sets = [load_prompts(spec, seed=seed) for spec in data]
    for ps in prompt_sets:
        ps.require_binary("ablation")
    with open_run("lm ablate", out, seed=seed) as run:
        lm = _lm(model, lm)
        base = Baseline.of(lm, shipped_lines("neutral"))
        rows = []
        for ps in prompt_sets:
            train, test = split_indices(ps, test_fraction, seed)
            chosen = (_resolve_layers(lm, layers) if layers
                      else [_depth_of(lm, ps, seed, cache_dir, train)])
            for layer in chosen:
                v, gap, norm = _direction(lm, ps, layer, method, train, cache_dir)
                edit = ablation_edits(lm, v, layer, scope)
                read_at = [layer, lm.n_layers - 1] if layer != lm.n_layers - 1 else [layer]
                pts = [f"blocks.{r}.hook_resid_post" for r in read_at]
                base_acts = cached_activations(lm, ps, layer_points(lm), cache=_cache(cache_dir))
                res = probe_after_edit(lm, ps, pts, edit, train, test, seed,
                                       base={p: base_acts[p] for p in pts})
                probes = {f"layer_{r}": res[p] for r, p in zip(read_at, pts, strict=True)}
                rows.append({"concept": ps.name, "layer": layer, "method": method, "scope": scope,
                             "class_gap": gap, "resid_norm": norm, "probes": probes,
                             "side_effects": side_effects(lm, base, edit),
                             "n_train": len(train), "n_heldout": len(test),
                             "layer_chosen_by": "given" if layers else "depth on training prompts"})
        metrics: dict[str, Any] = {"command": "lm ablate", "model": lm.describe(), "seed": seed,
                                   "method": method, "scope": scope, "measure": "held-out AUROC",
                                   "test_fraction": test_fraction, "rows": rows}
        if run.writes:
            metrics["figure"] = run.shown_of(lm_plots.plot_ablation(rows, run.path("ablation.png")))
        metrics["seconds"] = round(time.perf_counter() - t0, 2)
        return run.finish(metrics)


def _depth_of(lm: CausalLM, ps: PromptSet, seed: int, cache_dir: str | Path | None,
              idx: np.ndarray) -> int:
    """The concept's depth read from the prompts ``idx`` (the training part) only."""
    points = layer_points(lm)
    acts = cached_activations(lm, ps, points, cache=_cache(cache_dir))
    sub = PromptSet(ps.name, [ps.texts[i] for i in idx], ps.labels[idx], ps.classes,
                    None if ps.groups is None else [ps.groups[i] for i in idx])
    rows, _ = probe_layers({p: X[idx] for p, X in acts.items()}, sub, seed=seed, n_boot=200,
                           control=False)
    return concept_depth([r["accuracy"]["value"] for r in rows],
                         [r["accuracy"]["lo"] for r in rows], [r["accuracy"]["hi"] for r in rows])


def run_lm_steer(data: str = "sentiment", out: str | Path | None = None, *,
                 model: str = "smollm2", lm: CausalLM | None = None,
                 layers: Sequence[int] = (3, 8, 13, 18, 23), coefs: Sequence[float] = (
                     0.5, 1.0, 2.0, 4.0, 8.0), method: str = "mean_diff",
                 sample_prompt: str = "I think that this", max_new_tokens: int = 12,
                 seed: int = 0, cache_dir: str | Path | None = None,
                 control_vector: str | Path | None = None) -> dict[str, Any]:
    """Sweep steering ``h += coef * class_gap * v`` over layers x coefficients.

    ``control_vector``: also write the best setting's vector (``coef * class_gap * v`` at its
    block, added to that block's output) as a llama.cpp control vector (GGUF, repeng's layout;
    ``lm.control_vectors``).

    Intended effect: the change in log P(the concept's positive words) minus the change in
    log P(its negative words) at the next token of neutral prompts (the words are read from the
    prompt set's contrast pairs). Side effect: next-token KL and perplexity on unrelated text.
    ``coef`` is in units of the class gap (1 moves a typical negative to a typical positive).
    """
    t0 = time.perf_counter()
    ps = load_prompts(data, seed=seed)
    ps.require_binary("steering")
    pos_words, neg_words = concept_words(ps)
    if not pos_words:
        raise LMError(f"{ps.name}: no contrast pairs that differ in one word, so no concept "
                      "tokens to measure steering by")
    with open_run("lm steer", out, seed=seed) as run:
        lm = _lm(model, lm)
        layer_ids = _resolve_layers(lm, layers)
        pos_ids, neg_ids = lm.token_ids(pos_words), lm.token_ids(neg_words)
        prompts = shipped_lines("neutral_prompts")
        base = Baseline.of(lm, shipped_lines("neutral"))
        pos0, neg0 = token_mass(lm, prompts, pos_ids), token_mass(lm, prompts, neg_ids)
        all_idx = np.arange(len(ps))
        rows, samples = [], []
        for layer in layer_ids:
            v, gap, norm = _direction(lm, ps, layer, method, all_idx, cache_dir)
            for c in coefs:
                edit = [E.add(f"blocks.{layer}.hook_resid_post", v, c * gap)]
                dp = token_mass(lm, prompts, pos_ids, edit) - pos0
                dn = token_mass(lm, prompts, neg_ids, edit) - neg0
                rows.append({"layer": layer, "coef": float(c), "class_gap": gap,
                             "resid_norm": norm, "added_norm": abs(c * gap),
                             "delta_logp_positive": float(dp.mean()),
                             "delta_logp_negative": float(dn.mean()),
                             "intended": float((dp - dn).mean()),
                             **side_effects(lm, base, edit)})
        # sample generations at the setting with the best intended effect per unit of KL
        ok = [r for r in rows if r["kl"] < 1.0] or rows
        best = max(ok, key=lambda r: r["intended"])
        v, gap, _ = _direction(lm, ps, int(best["layer"]), method, all_idx, cache_dir)
        for sign in (0.0, 1.0, -1.0):
            edit = [E.add(f"blocks.{best['layer']}.hook_resid_post", v, sign * best["coef"] * gap)]
            samples.append({"coef": sign * best["coef"], "layer": best["layer"],
                            "text": sample_prompt + lm.generate(sample_prompt, max_new_tokens,
                                                                edits=edit if sign else None)})
        metrics: dict[str, Any] = {
            "command": "lm steer", "model": lm.describe(), "data": ps.describe(), "seed": seed,
            "method": method, "layers": layer_ids, "coefs": list(coefs),
            "positive_words": pos_words, "negative_words": neg_words, "neutral_prompts": prompts,
            "rows": rows, "best": best, "samples": samples}
        if control_vector is not None:
            from conceptlab.lm.control_vectors import export_control_vector

            vec = np.asarray(v, dtype=np.float32) * float(best["coef"] * gap)
            metrics["control_vector"] = str(export_control_vector(
                {int(best["layer"]): vec}, control_vector,
                str(getattr(lm.model.config, "model_type", lm.arch.family))))
        if run.writes:
            metrics["figure"] = run.shown_of(lm_plots.plot_sweep(
                rows, run.path("sweep.png"), intended="intended", side="kl",
                title=f"Steering {ps.name}: log-odds of concept words vs KL"))
        metrics["seconds"] = round(time.perf_counter() - t0, 2)
        return run.finish(metrics)


def run_lm_observable(out: str | Path | None = None, *, model: str = "smollm2",
                      lm: CausalLM | None = None, positive: Sequence[str] = (" he",),
                      negative: Sequence[str] = (" she",), data: str = "gender",
                      layers: Sequence[int] | None = None, seed: int = 0,
                      cache_dir: str | Path | None = None) -> dict[str, Any]:
    """The feature vector of ``logit(positive) - logit(negative)`` against directions learned
    from ``data`` at each layer (cosine), and how well projecting on it separates the prompts."""
    t0 = time.perf_counter()
    ps = load_prompts(data, seed=seed)
    ps.require_binary("an observable's comparison")
    with open_run("lm observable", out, seed=seed) as run:
        lm = _lm(model, lm)
        layer_ids = _resolve_layers(lm, layers)
        feature = direct_path_vector(lm, list(positive), list(negative))
        points = layer_points(lm, layer_ids)
        acts = cached_activations(lm, ps, points, cache=_cache(cache_dir))
        _, probe_dirs = probe_layers(acts, ps, seed=seed, n_boot=0, control=False)
        mean_dirs = {p: estimate("mean_diff", X, ps) for p, X in acts.items()}
        rows = compare(feature, {"probe": probe_dirs, "mean_diff": mean_dirs}, acts, ps.labels)
        for r, layer in zip(rows, layer_ids, strict=True):
            r["layer"] = layer
        # the observable itself on the prompts: the sign of the logit difference at the last token
        lp = lm.next_token_logprobs(ps.texts)
        pi, ni = lm.token_ids(list(positive)), lm.token_ids(list(negative))
        diff = (lp[:, pi].mean(1) - lp[:, ni].mean(1)).numpy()
        metrics: dict[str, Any] = {
            "command": "lm observable", "model": lm.describe(), "data": ps.describe(),
            "seed": seed, "positive": list(positive), "negative": list(negative),
            "observable_accuracy": float(((diff > 0) == (ps.labels == 1)).mean()),
            "rows": rows,
            "method": "direct-path observable: f = g * W_U^T n through the final norm "
                      "(residual path only; the paper's ObsProp is lm.obsprop)"}
        if run.writes:
            metrics["figure"] = run.shown_of(lm_plots.plot_observable(
                rows, run.path("observable.png")))
        metrics["seconds"] = round(time.perf_counter() - t0, 2)
        return run.finish(metrics)


def run_lm_parametric(data: str = "animals", out: str | Path | None = None, *,
                      model: str = "smollm2", lm: CausalLM | None = None,
                      n_neurons: Sequence[int] = (10, 50, 200), seed: int = 0,
                      ) -> dict[str, Any]:
    """Top value-vector zeroing (not ConceptVectors' procedure, see ``run_lm_concept_vectors``):
    zero the MLP value vectors that best match a concept's tokens.

    For each size n: the change in log P(concept words) on the concept's prompt prefixes and
    on unrelated neutral prompts, the same for the contrast words (the other class), the same
    with n random neurons zeroed, and the side effects on unrelated text.
    """
    from conceptlab.lm import parametric as P

    t0 = time.perf_counter()
    ps = load_prompts(data, seed=seed)
    ps.require_binary("parametric concept vectors")
    pos_words, neg_words = concept_words(ps)
    prefixes = P.concept_prefixes(ps)
    if not pos_words or not prefixes:
        raise LMError(f"{ps.name}: needs contrast pairs that differ in one word")
    with open_run("lm parametric", out, seed=seed) as run:
        lm = _lm(model, lm)
        pos_ids, neg_ids = lm.token_ids(pos_words), lm.token_ids(neg_words)
        scores = P.concept_scores(lm, pos_ids)
        neutral = shipped_lines("neutral_prompts")
        base = Baseline.of(lm, shipped_lines("neutral"))
        ref = {name: token_mass(lm, texts, ids) for name, texts, ids in
               (("concept", prefixes, pos_ids), ("neutral", neutral, pos_ids),
                ("contrast", prefixes, neg_ids))}
        rows = []
        for n in n_neurons:
            chosen = P.top_neurons(scores, n)
            for kind, neurons in (("concept", chosen),
                                  ("random", P.random_neurons(lm, n, seed, exclude=chosen,
                                                              like=chosen))):
                edit = P.zero_neurons(neurons)
                d = {name: float((token_mass(lm, texts, ids, edit) - ref[name]).mean())
                     for name, texts, ids in (("concept", prefixes, pos_ids),
                                              ("neutral", neutral, pos_ids),
                                              ("contrast", prefixes, neg_ids))}
                rows.append({"n": n, "neurons": kind,
                             "delta_logp_concept_on_prefixes": d["concept"],
                             "delta_logp_concept_on_neutral": d["neutral"],
                             "delta_logp_contrast_on_prefixes": d["contrast"],
                             **side_effects(lm, base, edit),
                             "layers_hit": sorted({a for a, _ in neurons})})
        top = P.top_neurons(scores, 10)
        metrics: dict[str, Any] = {
            "command": "lm parametric", "model": lm.describe(), "data": ps.describe(),
            "seed": seed, "concept_words": pos_words, "contrast_words": neg_words,
            "prefixes": prefixes, "rows": rows, "method": "top value-vector zeroing (a "
            "simplification inspired by ConceptVectors; layer-matched random neurons)",
            "top_neurons": [{"layer": a, "neuron": b, "z": float(scores[a, b])} for a, b in top],
            "logp_before": {k: float(v.mean()) for k, v in ref.items()}}
        if run.writes:
            metrics["figure"] = run.shown_of(lm_plots.plot_parametric(
                rows, run.path("parametric.png")))
        metrics["seconds"] = round(time.perf_counter() - t0, 2)
        return run.finish(metrics)


def run_lm_concept_vectors(out: str | Path | None = None, *, model: str = "smollm2",
                           lm: CausalLM | None = None, concepts: Sequence[str] | None = None,
                           std: float = 0.1, n_unrelated: int = 5, max_new_tokens: int = 100,
                           seed: int = 0) -> dict[str, Any]:
    """ConceptVectors' concept validation as its reference notebook does it (``lm.concept_vectors``)
    on the shipped QA set, with a layer-matched random column as the control."""
    from conceptlab.lm import concept_vectors as CV

    t0 = time.perf_counter()
    qa = CV.concept_questions()
    if concepts:
        missing = [c for c in concepts if c not in qa]
        if missing:
            raise LMError(f"no questions for {missing}; concepts: {', '.join(qa)}")
    with open_run("lm concept-vectors", out, seed=seed) as run:
        lm = _lm(model, lm)
        rows = CV.validate(lm, qa, concepts, std=std, n_unrelated=n_unrelated,
                           max_new_tokens=max_new_tokens, seed=seed)
        summary: dict[str, Any] = {}
        for mode in CV.MODES:
            for target in ("concept", "control"):
                key = f"{mode}_{target}"
                summary[key] = {m: CV.mean_interval([r[key][m] for r in rows])  # type: ignore[index]
                                for m in ("own_bleu", "unrelated_bleu", "own_rouge_l",
                                          "unrelated_rouge_l")}
        metrics: dict[str, Any] = {
            "command": "lm concept-vectors", "model": lm.describe(), "seed": seed, "std": std,
            "n_unrelated": n_unrelated, "max_new_tokens": max_new_tokens, "prompt": CV.PROMPT,
            "reference": "yihuaihong/ConceptVectors Concept_Validation_Experiments.ipynb",
            "rows": rows, "summary": summary}
        metrics["seconds"] = round(time.perf_counter() - t0, 2)
        return run.finish(metrics)
