"""ConceptBottleneckModel: sparsity, explanations, interventions, save/load, errors, plots."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from conceptlab import metrics
from conceptlab.bottleneck.audit import audit
from conceptlab.bottleneck.intervention import (
    concept_accuracy,
    fit_concept_thresholds,
    intervention_curve,
)
from conceptlab.bottleneck.model import (
    DEFAULT_EXPLAIN_TOP,
    ConceptBottleneckModel,
    ModelFormatError,
    NotFittedError,
)
from conceptlab.concepts.bank import ConceptBank
from conceptlab.errors import OutputError
from conceptlab.report.plots import (
    plot_explanation,
    plot_intervention_curve,
    plot_saved_model_weights,
)
from tests.planted import PLANTED

C, D, K = PLANTED.C, PLANTED.D, PLANTED.K
class_concept_data = PLANTED.data

CLASSES = ["cat", "dog", "car", "ship"]
FP = "fp-synthetic-0"
FAST = {"max_epochs": 10, "patience": 3, "show_progress": False}
_MODEL_ARGS = {"seed", "association", "encoder_spec", "encoder_fingerprint"}


def make_model(bank, classes, method="gumbel", nec=None, **settings):
    """A model from flat settings, as the command line builds one (``from_options``)."""
    model_args = {k: settings.pop(k) for k in list(settings) if k in _MODEL_ARGS}
    if "cbl_input" in settings:
        settings["cbl.input"] = settings.pop("cbl_input")
    return ConceptBottleneckModel.from_options(bank, classes, method=method, nec=nec,
                                               options=settings, **model_args)


def make_bank(vectors: np.ndarray, with_classes: bool = True) -> ConceptBank:
    names = [f"{CLASSES[k // 6]} concept {k % 6}" for k in range(K)]
    meta = {"classes": [CLASSES[k // 6] for k in range(K)]} if with_classes else {}
    return ConceptBank(vectors, names, provenance={"encoder": "synthetic",
                                                   "encoder_fingerprint": FP}, metadata=meta)


@pytest.fixture(scope="module")
def data():
    Xt, yt, V, A, _ = class_concept_data(1500, 1)
    Xv, yv, _, _, _ = class_concept_data(500, 2)
    Xs, ys, _, _, _ = class_concept_data(1000, 3)
    return {"train": (Xt, yt), "val": (Xv, yv), "test": (Xs, ys), "bank": make_bank(V), "A": A}


@pytest.fixture(scope="module")
def models(data):
    out = {}
    for method in ("l1", "contrastive", "gumbel"):
        out[method] = make_model(data["bank"], CLASSES, method=method, seed=0,
                                             **FAST).fit(*data["train"], *data["val"])
    return out


# ------------------------------------------------------------------------------ (a) sparsity


def test_gumbel_is_sparser_at_comparable_accuracy(data, models):
    Xs, ys = data["test"]
    acc = {m: metrics.accuracy(ys, model.predict(Xs)) for m, model in models.items()}
    act = {m: float(metrics.effective_count(model.concept_activations(Xs)).mean())
           for m, model in models.items()}
    contrib = {m: model.mean_active_concepts(Xs) for m, model in models.items()}
    for other in ("l1", "contrastive"):
        assert act["gumbel"] < act[other], act
        assert contrib["gumbel"] < contrib[other], contrib
        assert acc["gumbel"] >= acc[other] - 0.03, acc
    assert act["gumbel"] <= 3.0 and contrib["gumbel"] <= 3.0, (act, contrib)
    assert min(acc.values()) > 0.9, acc
    assert models["gumbel"].association_source_ == "bank.metadata.classes"
    for model in models.values():  # every trainable parameter moved during fitting
        assert all(model.training_["parameters_moved"].values())


# ------------------------------------------------------------------------------ explanations


def test_explain_decomposes_the_logit_and_caps_at_32(data, models):
    Xs, _ = data["test"]
    model = models["l1"]
    [one] = model.explain(Xs[0], top=K)
    total = one["intercept"] + sum(c["contribution"] for c in one["concepts"])
    assert total == pytest.approx(one["logit"], rel=1e-4, abs=1e-4)
    for c in one["concepts"]:
        assert c["contribution"] == pytest.approx(c["activation"] * c["weight"], rel=1e-5)
    assert one["prediction"] == CLASSES[int(model.predict(Xs[:1])[0])]
    mags = [abs(c["contribution"]) for c in one["concepts"]]
    assert mags == sorted(mags, reverse=True)
    assert len(model.explain(Xs[:3], top=5)) == 3
    assert all(len(e["concepts"]) <= 5 for e in model.explain(Xs[:3], top=5))
    json.dumps(model.explain(Xs[:2]))  # JSON-able as is
    # the default cap: a 40-concept bank never lists more than 32 concepts
    rng = np.random.default_rng(5)
    big = ConceptBank(rng.normal(size=(40, D)), [f"c{i}" for i in range(40)])
    big_model = make_model(big, CLASSES, method="l1", max_epochs=1,
                                       show_progress=False).fit(*data["train"], *data["val"])
    assert DEFAULT_EXPLAIN_TOP == 32
    assert len(big_model.explain(Xs[0])[0]["concepts"]) == 32


def test_class_weights_and_sparse_head(data, models):
    weights = models["l1"].class_weights("dog")
    assert len(weights) == K
    assert [abs(w) for _, w in weights] == sorted((abs(w) for _, w in weights), reverse=True)
    with pytest.raises(ValueError, match=r"unknown class 'dgo'.*dog"):
        models["l1"].class_weights("dgo")
    sparse = make_model(data["bank"], CLASSES, method="l1", nec=2,
                                    **FAST).fit(*data["train"], *data["val"])
    assert int((sparse.head_.weight != 0).sum()) == 2 * C
    assert sum(len(sparse.class_weights(c)) for c in CLASSES) == 2 * C
    assert sparse.head_.nec == 2.0


@pytest.mark.parametrize("method", ["contrastive", "gumbel"])
def test_sparse_finetune_keeps_nec_exact_and_never_lowers_val_accuracy(data, method):
    kwargs = dict(method=method, nec=1, seed=0, **FAST)
    tuned = make_model(data["bank"], CLASSES, **kwargs).fit(*data["train"],
                                                                        *data["val"])
    plain = make_model(data["bank"], CLASSES, finetune_epochs=0,
                                   **kwargs).fit(*data["train"], *data["val"])
    report = tuned.training_["sparse_finetune"]
    assert plain.training_["sparse_finetune"] == {}
    assert int((tuned.head_.weight != 0).sum()) == C  # NEC = 1 exactly, after fine-tuning
    assert report["val_accuracy_after"] >= report["val_accuracy_before"] or not report["kept"]
    Xv, yv = data["val"]
    val_tuned = float((tuned.predict(Xv) == yv).mean())
    val_plain = float((plain.predict(Xv) == yv).mean())
    assert val_tuned >= val_plain - 1e-9


@pytest.mark.parametrize("method", ["contrastive", "l1"])
def test_cbl_can_read_the_embedding_instead_of_concept_scores(data, method):
    model = make_model(data["bank"], CLASSES, method=method, cbl_input="embedding",
                                   seed=0, **FAST).fit(*data["train"], *data["val"])
    assert model.cbl_.linear.weight.shape == (model.n_concepts, data["train"][0].shape[1])
    assert K - 4 <= model.n_concepts <= K  # the grounding cutoff may drop a few units
    Xs, ys = data["test"]
    assert float((model.predict(Xs) == ys).mean()) > 0.8
    faith = audit(model, Xs, ys)
    assert faith["unit_fidelity_median"] >= 0.8 and faith["name_match_rate"] >= 0.8, faith


# ------------------------------------------------------------------------------ (c) save / load


def test_save_load_in_a_fresh_process_predicts_identically(tmp_path, data, models):
    model = models["gumbel"]
    Xs, _ = data["test"]
    folder = model.save(tmp_path / "cbm")
    assert {p.name for p in folder.iterdir()} == {"model.safetensors", "model.json"}
    meta = json.loads((folder / "model.json").read_text())
    assert meta["encoder_fingerprint"] == FP and meta["method"] == "gumbel"
    assert meta["concept_names"] == model.concept_names and meta["seed"] == 0
    np.save(tmp_path / "X.npy", Xs)
    script = textwrap.dedent("""
        import sys
        import numpy as np
        from conceptlab.bottleneck.model import ConceptBottleneckModel
        m = ConceptBottleneckModel.load(sys.argv[1], expected_encoder_fingerprint=sys.argv[2],
                                        expected_n_concepts=int(sys.argv[3]))
        X = np.load(sys.argv[4])
        np.save(sys.argv[5], m.predict(X))
        np.save(sys.argv[6], m.predict_proba(X))
    """)
    out = subprocess.run(
        [sys.executable, "-c", script, str(folder), FP, str(K), str(tmp_path / "X.npy"),
         str(tmp_path / "pred.npy"), str(tmp_path / "proba.npy")],
        capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "pred.npy"), model.predict(Xs))
    np.testing.assert_allclose(np.load(tmp_path / "proba.npy"), model.predict_proba(Xs),
                               rtol=0, atol=1e-7)
    loaded = ConceptBottleneckModel.load(folder)
    assert loaded.explain(Xs[0]) == model.explain(Xs[0])

    with pytest.raises(ModelFormatError, match="fingerprint"):
        ConceptBottleneckModel.load(folder, expected_encoder_fingerprint="another-encoder")
    with pytest.raises(ModelFormatError, match="24 concepts but 25"):
        ConceptBottleneckModel.load(folder, expected_n_concepts=25)
    with pytest.raises(ModelFormatError, match="no such model folder"):
        ConceptBottleneckModel.load(tmp_path / "missing")
    (folder / "model.safetensors").unlink()
    with pytest.raises(ModelFormatError, match=r"missing model\.safetensors"):
        ConceptBottleneckModel.load(folder)


# ------------------------------------------------------------------------------ (d) interventions


def test_intervention_on_a_named_concept_flips_a_decision(data, models):
    model = models["l1"]
    Xs, _ = data["test"]
    x = Xs[:1]
    H = model.concept_activations(x)[0]
    w, b = model.effective_head()
    logits = w @ H + b
    p = int(logits.argmax())
    q = (p + 1) % C
    others = [j for j in range(C) if j != q]
    gap = w[q][None, :] - w[others]                    # how much unit k favours q over j
    k = int(np.argmax(gap.min(axis=0)))                # the unit that favours q over all others
    assert gap[:, k].min() > 0
    need = (logits[others] - logits[q]) / gap[:, k]    # extra activation needed per rival
    value = float(H[k] + need.max() + 1.0)
    name = model.concept_names[k]
    assert model.predict(x)[0] == p
    assert model.intervene(x, {name: value})[0] == q
    assert model.intervene(x, {name: float(H[k])})[0] == p  # its own value changes nothing
    proba = model.intervene(x, {name: value}, return_proba=True)
    assert proba.shape == (1, C) and proba[0].argmax() == q
    with pytest.raises(ValueError, match="unknown concept 'cat concept 9'"):
        model.intervene(x, {"cat concept 9": 1.0})
    with pytest.raises(ValueError, match="non-empty"):
        model.intervene(x, {})
    with pytest.raises(ValueError, match="not finite"):
        model.intervene(x, {name: float("nan")})


def test_gumbel_intervention_acts_on_units_before_the_softmax(data, models):
    """Raising one unit above the others makes the (simplex) activation one-hot on it, so
    the decision follows that concept's class."""
    model = models["gumbel"]
    Xs, _ = data["test"]
    U = model.unit_values(Xs[:20])
    H = model.concept_activations(Xs[:20])
    np.testing.assert_allclose(H.sum(1), 1.0, rtol=1e-5)
    pred = model.predict(Xs[:20])
    flipped = 0
    for i in range(20):
        q = (int(pred[i]) + 2) % C
        name = f"{CLASSES[q]} concept 0"
        new = model.intervene(Xs[i:i + 1], {name: float(U[i].max() + 5.0)})[0]
        flipped += int(new == q)
    assert flipped == 20
    assert (model.unit_high_ > model.unit_low_ + 0.1).all()  # percentiles of units, not softmax


def ground_truth_concept_data(n: int, seed: int):
    """8 binary concepts; class = 2 * majority(c0..c2) + majority(c3..c5); c6, c7 irrelevant.
    Embeddings are noisy views of the concepts, so predicted concepts are sometimes wrong."""
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(8, D))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    r = np.random.default_rng(seed)
    c = (r.random((n, 8)) < 0.5).astype(np.float32)
    y = 2 * (c[:, :3].sum(1) >= 2) + (c[:, 3:6].sum(1) >= 2)
    X = (2 * c - 1) @ vectors + 0.8 * r.normal(size=(n, D))
    names = ["red", "round", "striped", "metal", "winged", "large", "shiny", "old"]
    return X.astype(np.float32), y.astype(np.int64), c, ConceptBank(vectors, names)


def test_intervention_curve_rises_with_corrected_concepts(tmp_path):
    Xt, yt, ct, bank = ground_truth_concept_data(2000, 1)
    Xv, yv, _, _ = ground_truth_concept_data(500, 2)
    Xs, ys, cs, _ = ground_truth_concept_data(800, 3)
    model = make_model(bank, ["a", "b", "c", "d"], method="supervised",
                                   **FAST).fit(Xt, yt, Xv, yv, concept_labels=ct)
    names = bank.names
    curve = intervention_curve(model, Xs, ys, cs, names, order="random", seed=0)
    accs = [p["accuracy"] for p in curve]
    assert [p["n_corrected"] for p in curve] == list(range(9))
    assert accs[-1] > accs[0] + 0.15, accs
    assert accs[-1] > 0.95, accs
    assert all(b >= a - 0.02 for a, b in itertools.pairwise(accs)), accs
    uncertain = intervention_curve(model, Xs, ys, cs, names, steps=[0, 2, 8],
                                   order="uncertain")
    assert uncertain[0]["accuracy"] == pytest.approx(accs[0])
    assert uncertain[1]["accuracy"] >= curve[2]["accuracy"] - 0.02
    thresholds = fit_concept_thresholds(model, Xt, ct, names)
    acc = concept_accuracy(model, Xs, cs, names, thresholds)
    assert 0.6 < acc["mean"] < 1.0 and set(acc["per_concept"]) == set(names)
    png = plot_intervention_curve({"random": curve, "uncertain": uncertain},
                                  tmp_path / "curve.png")
    assert png.stat().st_size > 1000
    with pytest.raises(ValueError, match="unknown concept"):
        intervention_curve(model, Xs, ys, cs, [*names[:-1], "bogus"])
    with pytest.raises(ValueError, match="shape"):
        intervention_curve(model, Xs, ys, cs[:, :3], names)
    with pytest.raises(ValueError, match="needs concept_labels"):
        make_model(bank, ["a", "b", "c", "d"], method="supervised",
                               **FAST).fit(Xt, yt, Xv, yv)


# ------------------------------------------------------------------------------ (e) cos3


def test_cos3_model_drops_a_concept_the_embeddings_cannot_express(data):
    """A concept direction orthogonal to every embedding has a constant score: its unit can
    never match it (cos3 = 0), so LF-CBM's 0.45 cutoff drops it."""
    Xt, yt = data["train"]
    Xv, yv = data["val"]
    Xs, ys = data["test"]
    basis = np.linalg.svd(np.vstack([Xt, Xv, Xs]), full_matrices=True)[2]
    # remove the last direction from all embeddings and give it to a new concept
    drop = basis[-1]

    def project(X):
        return (X - np.outer(X @ drop, drop)).astype(np.float32)

    bank = data["bank"]
    vectors = np.vstack([bank.vectors, drop[None, :]])
    bank2 = ConceptBank(vectors, [*bank.names, "unmatchable"])
    model = make_model(bank2, CLASSES, method="cos3", **FAST)
    model.fit(project(Xt), yt, project(Xv), yv)
    dropped = {d["concept"] for d in model.dropped_concepts_}
    assert "unmatchable" in dropped
    assert "unmatchable" not in model.concept_names
    assert model.n_concepts >= K - 4
    sims = {d["concept"]: d["objective_score"] for d in model.dropped_concepts_}
    assert sims["unmatchable"] < 0.45
    hist = [h["val_score"] for h in model.training_["cbl"]["history"]]
    assert hist[-1] > hist[0]
    assert metrics.accuracy(ys, model.predict(project(Xs))) > 0.9
    assert model.hyper_parameters()["objective"]["cutoff"] == 0.45
    # a second fit starts again from the full bank (not from the filtered one)
    model.fit(project(Xt), yt, project(Xv), yv)
    assert "unmatchable" in {d["concept"] for d in model.dropped_concepts_}
    selection = model.training_["unit_selection"]
    assert selection["n_kept"] + selection["n_dropped"] == K + 1


# ------------------------------------------------------------------------------ (f) errors


def test_malformed_inputs_raise_clear_errors(data, models):
    bank = data["bank"]
    Xt, yt = data["train"]
    Xv, yv = data["val"]
    model = models["gumbel"]
    with pytest.raises(ValueError, match=r"X: 31 columns, expected 32"):
        model.predict(Xt[:5, :31])
    bad = Xt[:5].copy()
    bad[2, 3] = np.nan
    with pytest.raises(ValueError, match="NaN or infinity in 1 row"):
        model.predict(bad)
    with pytest.raises(ValueError, match="empty"):
        model.predict(np.zeros((0, D), np.float32))
    with pytest.raises(ValueError, match="2-D"):
        model.predict(Xt[0])
    fresh = make_model(bank, CLASSES, method="l1", **FAST)
    with pytest.raises(NotFittedError):
        fresh.predict(Xt[:2])
    with pytest.raises(ValueError, match=r"labels in \[0, 4\] but there are 4 classes"):
        fresh.fit(Xt, np.where(yt == 3, 4, yt), Xv, yv)
    with pytest.raises(ValueError, match="y_val must be 1-D with 500"):
        fresh.fit(Xt, yt, Xv, yv[:10])
    with pytest.raises(ValueError, match="integer class indices"):
        fresh.fit(Xt, yt + 0.5, Xv, yv)
    with pytest.raises(ValueError, match="unknown objective 'gumble'"):
        make_model(bank, CLASSES, method="gumble")
    with pytest.raises(ValueError, match=r"unknown setting 'lam' for method 'gumbel'"):
        make_model(bank, CLASSES, method="gumbel", lam=0.1)
    with pytest.raises(ValueError, match="at least 2 class names"):
        make_model(bank, ["only"])
    with pytest.raises(ValueError, match="nec"):
        make_model(bank, CLASSES, nec=0)
    with pytest.raises(ValueError, match=r"association must be C x K = \(4, 24\)"):
        make_model(bank, CLASSES, method="contrastive",
                               association=np.ones((3, K)), **FAST).fit(Xt, yt, Xv, yv)
    with pytest.raises(ValueError, match="unknown concept 'wings'"):
        make_model(bank, CLASSES, method="contrastive",
                               association={"cat": ["wings"]}, **FAST).fit(Xt, yt, Xv, yv)


def test_association_falls_back_to_training_data(data):
    """Without vocabulary class links the contrastive objective estimates them on train."""
    bank = make_bank(data["bank"].vectors, with_classes=False)
    model = make_model(bank, CLASSES, method="contrastive", max_epochs=2,
                                   show_progress=False).fit(*data["train"], *data["val"])
    assert model.association_source_ == "data"
    assert (model.association_.sum(1) == K // C).all()
    assert (model.association_ == data["A"]).mean() > 0.9


# ------------------------------------------------------------------------------ plots


def test_plots_are_written_from_saved_results(tmp_path, data, models):
    model = models["l1"]
    Xs, _ = data["test"]
    explanation = json.loads(json.dumps(model.explain(Xs[0])[0]))  # as read back from disk
    a = plot_explanation(explanation, tmp_path / "decision.png", top=10)
    folder = model.save(tmp_path / "saved")
    b = plot_saved_model_weights(folder, tmp_path / "plots" / "weights.png")
    for png in (a, b):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000
    assert not list(tmp_path.glob("**/*.tmp"))
    with pytest.raises(OutputError, match=r"\.png"):
        plot_explanation(explanation, tmp_path / "decision.jpg")
