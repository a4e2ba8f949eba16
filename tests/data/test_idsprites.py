"""The idsprites dataset: deterministic per seed, concepts that match pixels and captions."""

from __future__ import annotations

import re

import numpy as np
import pytest

from conceptlab.data import DataError, build_dataset, known_datasets
from conceptlab.data import idsprites as ids
from conceptlab.data.splits import make_splits

pytest.importorskip("idsprites")

SMALL = {"n_train": 48, "n_test": 16, "img_size": 32}


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    return build_dataset("idsprites", seed=3, cache_dir=str(tmp_path_factory.mktemp("spr")),
                         **SMALL)


def _pixels(split):
    return np.stack([np.asarray(split[i]) for i in range(len(split))])


def test_registered_and_deterministic_per_seed(ds, tmp_path):
    assert "idsprites" in known_datasets()
    again = build_dataset("idsprites", seed=3, cache_dir=str(tmp_path / "a"), **SMALL)
    other = build_dataset("idsprites", seed=4, cache_dir=str(tmp_path / "b"), **SMALL)
    for name in ("train", "test"):
        a, b = ds.official_split(name), again.official_split(name)
        np.testing.assert_array_equal(_pixels(a), _pixels(b))
        assert ds.captions(name) == again.captions(name)
        np.testing.assert_array_equal(a.labels, b.labels)
        assert a.fingerprint() == b.fingerprint()
    assert not np.array_equal(_pixels(ds.official_split("train")),
                              _pixels(other.official_split("train")))
    # the test images do not depend on n_train (separate streams)
    more = build_dataset("idsprites", seed=3, cache_dir=str(tmp_path / "c"),
                         **{**SMALL, "n_train": 60})
    np.testing.assert_array_equal(_pixels(more.official_split("test")),
                                  _pixels(ds.official_split("test")))


def test_reads_its_cache_and_names_a_damaged_one(tmp_path):
    first = build_dataset("idsprites", cache_dir=str(tmp_path), **SMALL)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert [f.rsplit(".", 1)[1] for f in files] == ["json", "safetensors"]
    second = build_dataset("idsprites", cache_dir=str(tmp_path), **SMALL)
    assert second.captions("test") == first.captions("test")
    (tmp_path / files[1]).write_bytes(b"not safetensors")
    with pytest.raises(DataError, match="unreadable idsprites cache"):
        build_dataset("idsprites", cache_dir=str(tmp_path), **SMALL)


def test_cache_dir_follows_conceptlab_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CONCEPTLAB_CACHE", str(tmp_path))
    d = build_dataset("idsprites", **SMALL)
    assert d.path.parent == tmp_path / "datasets" / "idsprites"


def test_concept_labels_match_caption_words_and_factors(ds):
    names = ds.concept_names
    assert len(names) == 18 and names[0] == "a red shape" and "a shape on the left" in names
    split = ds.official_split("train")
    assert split.concept_names == names
    C = split.concept_labels
    for row, caps, f in zip(C, ds.captions("train"), ds.factors("train"), strict=True):
        on = {names[j] for j in np.flatnonzero(row)}
        assert f"{ids._a(f.color)} shape" in on and f"{ids._a(f.shape)}" in on
        assert sum(row[:6]) == 1 and sum(row[6:8]) == 1 and sum(row[12:16]) == 1
        for cap in caps:
            words = set(re.findall(r"[a-z]+", cap))
            colours = words & set(ids.COLORS)
            assert colours <= {f.color}, cap
            shapes = words & set(ids.SHAPES)
            assert shapes <= {f.shape}, cap
            if words & {"small", "little", "tiny"}:
                assert "a small shape" in on, cap
            if words & {"large", "big"}:
                assert "a large shape" in on, cap
            if "left" in words:
                assert "a shape on the left" in on, cap
            if "right" in words:
                assert "a shape on the right" in on, cap
            if words & {"top", "upper"}:
                assert "a shape near the top" in on, cap
            if words & {"bottom", "lower"}:
                assert "a shape near the bottom" in on, cap
            if words & {"tilted", "rotated", "slanted"}:
                assert "a tilted shape" in on, cap
        assert len(set(caps)) == len(caps) == 3


def test_pixels_show_the_factors(ds):
    split = ds.official_split("train")
    bg = np.array([169, 169, 169])
    for img, f in zip(_pixels(split), ds.factors("train"), strict=True):
        mask = np.abs(img.astype(int) - bg).sum(-1) > 60
        ys, xs = np.nonzero(mask)
        assert mask.sum() > 5
        # colour: the shape's pixels are its RGB
        assert np.abs(np.median(img[mask], axis=0) - np.array(f.rgb)).max() <= 3
        # position: the centre of mass lies on the named side
        cx, cy = xs.mean() / img.shape[1], ys.mean() / img.shape[0]
        assert (cx < 0.5) == (f.hpos == "left") and (cy < 0.5) == (f.vpos == "top")
    sizes = {s: [] for s in ids.SIZES}
    for img, f in zip(_pixels(split), ds.factors("train"), strict=True):
        if f.shape == "square":
            sizes[f.size].append((np.abs(img.astype(int) - bg).sum(-1) > 60).sum())
    if sizes["small"] and sizes["large"]:
        assert max(sizes["small"]) < min(sizes["large"])


def test_classes_need_two_concepts_and_splits_work(ds):
    assert len(ds.class_names) == 12 and ds.class_names[0] == "small red shape"
    split = ds.official_split("train")
    for label, f in zip(split.labels, ds.factors("train"), strict=True):
        assert ds.class_names[label] == f"{f.size} {f.color} shape"
    sets = make_splits(ds, seed=0, val_fraction=0.25)
    caps = ds.captions_for(sets.val)
    assert caps == [ds.captions("train")[i] for i in sets.val.indices]
    with pytest.raises(DataError, match="not a view"):
        ds.captions_for(build_dataset("idsprites", cache_dir=str(ds.cache_dir), **SMALL)
                        .official_split("test"))


def test_other_class_rules_and_bad_options(ds, tmp_path):
    by_shape = build_dataset("idsprites", seed=3, cache_dir=str(ds.cache_dir),
                             classes="shape+color", **SMALL)
    assert len(by_shape.class_names) == 24 and "red square" in by_shape.class_names
    assert by_shape.path == ds.path  # the class rule does not re-render
    with pytest.raises(DataError, match="classes must join"):
        build_dataset("idsprites", classes="colour+size", cache_dir=str(tmp_path), **SMALL)
    with pytest.raises(DataError, match="unknown option"):
        build_dataset("idsprites", n_images=3)
    with pytest.raises(DataError, match="img_size"):
        build_dataset("idsprites", img_size=4, cache_dir=str(tmp_path))
    with pytest.raises(DataError, match="no split"):
        ds.official_split("val")
