"""Discovered concepts are named from a vocabulary fit for the data (the built-in
parts-and-attributes list by default, the head's ImageNet classes only on request), and every
name says which vocabulary it came from (bank, report rows, run metrics)."""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from conceptlab.concepts.builtin import builtin_vocabulary
from conceptlab.discover.bank import discover
from conceptlab.discover.naming import (
    ConceptNamer,
    NamingError,
    name_by_class_mix,
    naming_vocabulary,
)
from conceptlab.discover.sources import extract
from conceptlab.workflows.discover import run_discover
from tests.discover.test_sources import images, tapped


def fake_embed(texts: Sequence[str]) -> np.ndarray:
    """A deterministic stand-in for a text encoder: one seeded random vector per text."""
    out = []
    for t in texts:
        seed = int(hashlib.sha256(t.encode()).hexdigest()[:8], 16)
        out.append(np.random.default_rng(seed).normal(size=24))
    return np.array(out)


def test_the_class_mix_is_named_by_its_nearest_vocabulary_entry() -> None:
    eye = np.eye(4)
    class_emb = eye[:3]  # classes a, b, c
    vocab = ["strap", "sole", "lens"]
    vocab_emb = np.stack([eye[0], eye[1], eye[2] + 0.1 * eye[3]])
    probs = np.array([[0.1, 0.8, 0.1], [0.05, 0.05, 0.9]])
    out = name_by_class_mix(probs, class_emb, vocab_emb, vocab)
    assert [o["name"] for o in out] == ["sole", "lens"]
    assert out[0]["score"] > 0.9 and out[0]["alternatives"][0][0] == "sole"
    with pytest.raises(NamingError):
        name_by_class_mix(probs, eye, vocab_emb, vocab)


def test_default_names_come_from_the_parts_vocabulary_and_carry_its_name() -> None:
    assert inspect.signature(run_discover).parameters["naming"].default == "parts"
    vocab = naming_vocabulary()  # the default
    entries = set(builtin_vocabulary("parts-attributes").concepts)
    assert vocab.label == "parts-attributes" and set(vocab.entries) == entries
    assert "builtin:parts-attributes" in vocab.source
    t, ims = tapped(), images(8)
    acts = extract(t, ims, "crops", n_crops=3, seed=0)
    namer = ConceptNamer(vocab, fake_embed)
    found, _, report = discover(t, acts, "nmf", 3, seed=0, top=4, namer=namer)
    for k, name in enumerate(found.bank.names):
        assert name.startswith(f"c{k:02d} ") and name[4:] in entries
    meta = found.bank.metadata
    assert meta["name_vocabulary"] == ["parts-attributes"] * 3
    assert meta["head_name"][0] in ("a", "b", "c")  # the head's reading is kept beside it
    assert found.provenance["naming"]["vocabulary"] == "parts-attributes"
    assert {r["vocabulary"] for r in report["names"]} == {"parts-attributes"}
    assert all(-1 <= r["name_score"] <= 1 for r in report["names"])


def test_imagenet_names_only_on_request_and_labelled() -> None:
    t, ims = tapped(), images(8)
    acts = extract(t, ims, "crops", n_crops=3, seed=0)
    found, _, report = discover(t, acts, "nmf", 2, seed=0, top=4,
                                namer=ConceptNamer(naming_vocabulary("imagenet")))
    assert all(n[4:] in ("a", "b", "c") for n in found.bank.names)
    assert {r["vocabulary"] for r in report["names"]} == {"head classes"}
    # no namer and no head: exemplar labels, said so
    bare = tapped(head=False)
    found, _, report = discover(bare, extract(bare, ims, "crops", n_crops=3, seed=0), "nmf", 2,
                                seed=0, labels=list("aabbccdd"), top=4)
    assert found.bank.metadata["name_vocabulary"] == ["exemplar labels"] * 2
    assert report["naming"]["vocabulary"] == "exemplar labels"


def test_an_unknown_naming_vocabulary_fails_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(NamingError,
                       match=r"unknown naming vocabulary 'oboe' \(known: imagenet, parts\)"):
        run_discover("no-such-data", tmp_path / "r", naming="oboe")
    assert not (tmp_path / "r").exists()
