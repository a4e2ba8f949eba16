"""SAEs on a language model's streamed activations (tiny random Llama): streaming fit, the
stream itself, spliced loss, SAELens' format (read back by SAELens itself), control vectors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conceptlab.discover import DictionaryError, build_dictionary, match_dictionaries
from conceptlab.lm.control_vectors import export_control_vector, read_control_vector
from conceptlab.lm.corpus import Corpus, load_corpus, read_fortune_file
from conceptlab.lm.model import LMError
from conceptlab.lm.sae_audit import naming_audit, spliced_loss
from conceptlab.lm.saelens_format import load_saelens, save_saelens
from conceptlab.lm.stream import stream_activations
from conceptlab.workflows.lm_dictionary import run_lm_dictionary
from tests.lm.tiny import WORDS, tiny_lm


def planted(seed: int, n: int = 6000, k: int = 8, d: int = 32) -> tuple[np.ndarray, np.ndarray]:
    r = np.random.default_rng(seed)
    W = np.abs(r.normal(size=(k, d))) * (r.random((k, d)) < 0.3)
    W /= np.linalg.norm(W, axis=1, keepdims=True)
    U = np.zeros((n, k))
    for i in range(n):
        U[i, r.choice(k, 2, replace=False)] = r.uniform(0.5, 1.5, 2)
    return (U @ W + 0.01 * np.abs(r.normal(size=(n, d)))).astype(np.float32), W


def test_partial_fit_learns_planted_atoms_from_a_stream() -> None:
    A, W = planted(0)
    d = build_dictionary("topk-sae", 8, seed=0, k=2, batch_size=64, lr=5e-3)
    for s in range(0, len(A), 1000):  # six chunks, each seen once
        d.partial_fit(A[s:s + 1000], total_rows=len(A))
    assert match_dictionaries(W, d.dictionary)["mean_cosine"] > 0.85
    frozen = build_dictionary("topk-sae", 8, seed=0, k=2, batch_size=64, frozen_decoder=True)
    before = None
    for s in range(0, len(A), 1000):
        frozen.partial_fit(A[s:s + 1000], total_rows=len(A))
        before = frozen.dictionary.copy() if before is None else before
    np.testing.assert_array_equal(before, frozen.dictionary)  # atoms never move
    assert match_dictionaries(W, frozen.dictionary)["mean_cosine"] < 0.7
    with pytest.raises(DictionaryError, match="no streaming fit"):
        build_dictionary("nmf", 3).partial_fit(np.abs(A[:10]))


def test_stream_matches_a_full_forward_and_stops_on_budget() -> None:
    lm = tiny_lm()
    texts = ["the cat is a animal .", "a dog and a horse", "the lamp is an object", "it was"]
    point = "blocks.1.hook_resid_post"
    rows = list(stream_activations(lm, texts, point, batch_texts=2, max_norm_ratio=None))
    got = np.concatenate([r.acts for r in rows])
    text = np.concatenate([r.text for r in rows])
    pos = np.concatenate([r.pos for r in rows])
    assert pos.min() == 1  # the first position is skipped
    _, acts, _ = lm.run(texts, record=[point])
    want = acts[point][torch.as_tensor(text), torch.as_tensor(pos)].numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert len(got) == sum(len(lm.encode(t)) - 1 for t in texts)
    capped = list(stream_activations(lm, texts, point, max_tokens=5, batch_texts=1))
    assert sum(len(r) for r in capped) == 5


def test_spliced_loss_of_an_exact_reconstruction_is_the_clean_loss() -> None:
    lm = tiny_lm()
    texts = ["the cat is a very good animal .", "a dog and a horse and a cow", "it was a day"]
    point = "blocks.1.hook_resid_post"
    A = np.concatenate([r.acts for r in stream_activations(lm, texts, point)])
    exact = build_dictionary("pca", lm.d_model).fit(np.concatenate([A, A + 0.1]))
    out = spliced_loss(lm, texts, point, {"pca": exact}, max_norm_ratio=1e9)
    assert out["ce_pca"] == pytest.approx(out["ce_clean"], abs=1e-4)
    assert out["ce_zero"] != pytest.approx(out["ce_clean"], abs=1e-3)
    assert out["loss_recovered_pca"] == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("method", ["sae", "topk-sae", "batchtopk-sae"])
def test_saelens_round_trip_opens_in_saelens(method: str, tmp_path: Path) -> None:
    A, _ = planted(1, n=800)
    A = A * 7.0 + 3.0  # a scale and offset the SAE must carry into SAELens' units
    d = build_dictionary(method, 8, seed=0, k=2, min_steps=60).fit(A)
    save_saelens(d, tmp_path / "sae", hook_name="blocks.1.hook_resid_post", model_name="tiny")
    back, cfg = load_saelens(tmp_path / "sae")
    np.testing.assert_allclose(back.encode(A[:50]), d.encode(A[:50]), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(back.decode(back.encode(A[:50])), d.decode(d.encode(A[:50])),
                               rtol=1e-4, atol=1e-3)
    assert cfg["metadata"]["hook_name"] == "blocks.1.hook_resid_post"
    # the training normalisation is folded (SAELens reads raw activations) and recorded
    assert cfg["normalize_activations"] == "none"
    assert cfg["metadata"]["conceptlab"]["activation_scale"] == pytest.approx(
        float(d.arrays()["enc.scale"][0]))
    assert cfg["metadata"]["conceptlab"]["activation_scale"] > 1.0  # rows were scaled by 7
    sae_lens = pytest.importorskip("sae_lens")
    theirs = sae_lens.SAE.load_from_disk(str(tmp_path / "sae"))
    with torch.no_grad():
        z = theirs.encode(torch.from_numpy(A[:50])).numpy()
        x_hat = theirs.decode(torch.from_numpy(z)).numpy()
    np.testing.assert_allclose(z, d.encode(A[:50]), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(x_hat, d.decode(d.encode(A[:50])), rtol=1e-4, atol=1e-3)
    # and an SAE saved by SAELens opens here
    theirs.save_model(str(tmp_path / "theirs"))
    again, _ = load_saelens(tmp_path / "theirs")
    np.testing.assert_allclose(again.encode(A[:50]), z, rtol=1e-4, atol=1e-4)


def test_saelens_refusals(tmp_path: Path) -> None:
    with pytest.raises(LMError, match="not a SAELens folder"):
        load_saelens(tmp_path)
    A, _ = planted(2, n=300)
    d = build_dictionary("topk-sae", 4, k=2, min_steps=20).fit(A)
    save_saelens(d, tmp_path / "s", hook_name="h", model_name="m")
    cfg = json.loads((tmp_path / "s" / "cfg.json").read_text())
    cfg["normalize_activations"] = "layer_norm"
    (tmp_path / "s" / "cfg.json").write_text(json.dumps(cfg))
    with pytest.raises(LMError, match="normalize_activations"):
        load_saelens(tmp_path / "s")
    with pytest.raises(LMError, match="sparse autoencoders"):
        save_saelens(build_dictionary("pca", 2).fit(A), tmp_path / "p", hook_name="h",
                     model_name="m")


def test_control_vector_gguf_reads_back(tmp_path: Path) -> None:
    r = np.random.default_rng(0)
    dirs = {3: r.normal(size=16).astype(np.float32), 7: r.normal(size=16).astype(np.float32)}
    path = export_control_vector(dirs, tmp_path / "v.gguf", "llama")
    import gguf

    reader = gguf.GGUFReader(str(path))
    assert bytes(reader.get_field("general.architecture").parts[-1]) == b"controlvector"
    assert int(reader.get_field("controlvector.layer_count").parts[-1][0]) == 2
    hint, back = read_control_vector(path)
    assert hint == "llama" and set(back) == {3, 7}
    for layer, v in dirs.items():
        np.testing.assert_array_equal(back[layer], v)
    with pytest.raises(LMError, match="widths"):
        export_control_vector({0: np.ones(3), 1: np.ones(4)}, tmp_path / "bad.gguf", "llama")


def test_naming_audit_sees_a_planted_topic_feature() -> None:
    labels = ["a"] * 20 + ["b"] * 20
    text_max = np.zeros((40, 3), np.float32)
    text_max[:20, 0] = 1.0  # feature 0 fires on topic a only
    text_max[20:, 1] = 1.0  # feature 1 fires on topic b only
    text_max[:, 2] = np.random.default_rng(0).random(40)
    names = [{"feature": 0, "topic": "a"}, {"feature": 1, "topic": "b"},
             {"feature": 2, "topic": ""}]
    out = naming_audit(names, text_max, labels)
    assert out["n_named"] == 2 and out["auroc_mean"] == pytest.approx(1.0)
    assert out["shuffled_auroc_mean"] < 0.8


def test_corpus_specs_and_fortune_records(tmp_path: Path) -> None:
    f = tmp_path / "food"
    f.write_text("Bread and butter make a very fine breakfast.\n%\nshort\n%\n"
                 "An apple a day keeps\n\tthe doctor away.\n")
    assert read_fortune_file(f) == ["Bread and butter make a very fine breakfast.",
                                    "An apple a day keeps the doctor away."]
    c = Corpus("c", ["x"] * 10 + ["y"] * 10, ["p"] * 10 + ["q"] * 10)
    tr, he = c.split(0.2, seed=0)
    assert len(he) == 4 and not set(tr) & set(he)
    assert sorted(c.labels[i] for i in he) == ["p", "p", "q", "q"]
    with pytest.raises(LMError, match="unknown corpus"):
        load_corpus("nope:1")


def test_run_lm_dictionary_end_to_end(tmp_path: Path) -> None:
    lm = tiny_lm()
    r = np.random.default_rng(0)
    animals, objects = WORDS[2:10], WORDS[10:16]
    rows = ["text,label"]
    for _ in range(60):
        rows.append("the " + " a ".join(r.choice(animals, 4)) + " is an animal,animals")
        rows.append("the " + " a ".join(r.choice(objects, 4)) + " is an object,objects")
    (tmp_path / "c.csv").write_text("\n".join(rows) + "\n")
    m = run_lm_dictionary(f"csv:{tmp_path / 'c.csv'}", tmp_path / "run", lm=lm,
                          hook="blocks.1.hook_resid_post", width=32, k=4, tokens=900,
                          batch_size=16, name_tokens=400, eval_tokens=400, loss_texts=8)
    assert m["training"]["tokens"] == 900 and m["corpus"]["n_texts"] == 120
    for name in ("sae", "random"):
        res = m["results"][name]
        assert 0 <= res["dead_rate"] <= 1 and res["l0"] <= 4 + 1e-6
        assert np.isfinite(res["ce_increase"])
    assert m["results"]["sae"]["fve"] > m["results"]["random"]["fve"]
    feats = json.loads((tmp_path / "run" / "features.json").read_text())
    assert len(feats["sae"]["names"]) == 32
    assert any("[[" in c["text"] for n in feats["sae"]["names"] for c in n["contexts"])
    back, cfg = load_saelens(tmp_path / "run" / "sae")
    assert cfg["metadata"]["conceptlab"]["corpus_digest"] == m["corpus"]["digest"]
    assert back.n_concepts == 32
    with pytest.raises(LMError, match="no such file"):
        run_lm_dictionary(f"csv:{tmp_path / 'missing.csv'}", None, lm=lm)


def test_doc_sentences_follow_the_numbers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2] / "benchmarks"))
    from lm_dictionary_tables import tables

    def res(fve: float, ce: float) -> dict:
        return {"fve": fve, "l0": 32.0, "dead_rate": 0.0, "dense_rate": 0.0,
                "heldout_tokens": 10, "ce_increase": ce, "loss_recovered": 0.5,
                "naming_audit": {"n_named": 3, "auroc_mean": 0.8,
                                 "shuffled_auroc_mean": 0.5, "shuffled_auroc_sd": 0.01}}

    def metrics(fve_sae: float) -> dict:
        d = {"tokens_per_s": 10.0, "gemm_bound_tokens_per_s": 20.0, "ratio_to_bound": 2.0,
             "loss_per_chunk": [fve_sae * 100, fve_sae]}
        return {"model": {"name": "m", "n_layers": 2}, "hook": "h", "method": "topk-sae",
                "width": 8, "k": 2, "corpus": {"name": "c", "n_texts": 4, "digest": "x"},
                "n_train_texts": 3, "n_heldout_texts": 1, "seconds": 1.0,
                "training": {"tokens": 10, "texts": 3, "sink_tokens_dropped": 0,
                             "model_tokens_per_s": 5.0, "chunk_rows": 4,
                             "memory_mb": [(4, 100.0), (8, 101.0)],
                             "dictionaries": {"sae": d, "random": d}},
                "loss": {"ce_clean": 1.0, "ce_zero": 3.0, "ce_sae": 1.2, "ce_random": 1.5},
                "results": {"sae": res(fve_sae, 0.2), "random": res(0.5, 0.5)}}

    assert "explains more held-out variance" in tables(metrics(0.9))
    assert "explains less held-out variance" in tables(metrics(0.1))
    assert "first chunk 90.000, last 0.900" in tables(metrics(0.9))


def offset_planted(seed: int, n: int = 8000, F: int = 64, d: int = 32,
                   k: int = 4) -> np.ndarray:
    """Rows made of ``k`` of ``F`` known unit features, plus what a residual stream adds: a
    large constant offset on every dimension and one huge dimension (a massive activation)."""
    r = np.random.default_rng(seed)
    W = r.normal(size=(F, d))
    W /= np.linalg.norm(W, axis=1, keepdims=True)
    U = np.zeros((n, F))
    for i in range(n):
        U[i, r.choice(F, k, replace=False)] = r.uniform(1.0, 3.0, k)
    A = U @ W + 0.05 * r.normal(size=(n, d)) + 20.0
    A[:, 3] = 300.0 + 3.0 * r.normal(size=n)
    return A.astype(np.float32)


def test_lm_recipe_survives_an_offset_and_a_huge_dimension() -> None:
    from conceptlab.lm.dictionary import make_sae

    A = offset_planted(0)
    train, test = A[:6000], A[6000:]

    def fitted(d: object) -> tuple[float, float, float]:
        for s in range(0, len(train), 1000):  # streamed, as from a language model
            d.partial_fit(train[s:s + 1000], total_rows=len(train))  # type: ignore[attr-defined]
        Z = d.encode(test)  # type: ignore[attr-defined]
        R = d.decode(Z)  # type: ignore[attr-defined]
        fve = 1 - float(((test - R) ** 2).sum() / ((test - test.mean(0)) ** 2).sum())
        return fve, float(((Z > 0).sum(0) == 0).mean()), float((Z > 0).sum(1).mean())

    # the old recipe (atoms at data rows, uncalibrated encoder) collapses on these rows
    old_fve, _, old_l0 = fitted(build_dictionary("topk-sae", 64, k=4, lr=5e-3, batch_size=128))
    assert old_fve < 0.2 and old_l0 < 2.0
    new = make_sae("topk", 64, k=4, lr=5e-3, batch_size=128)
    fve, dead, l0 = fitted(new)
    assert fve > 0.5 and dead < 0.05 and l0 > 3.5
    # the normalisation is stored and undone at decode: reconstructions in the input's units
    assert new.arrays()["enc.scale"][0] > 1.0
    assert abs(float(new.bias[3]) - 300.0) < 5.0
    with pytest.raises(DictionaryError, match="init must be one of"):
        build_dictionary("topk-sae", 4, init="zeros")
