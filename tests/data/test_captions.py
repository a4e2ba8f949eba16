"""Caption CSVs (image,caption rows) and the one accessor for every caption source."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from conceptlab.data import DataError, build_dataset
from conceptlab.data.captions import read_caption_csv, split_captions
from conceptlab.data.splits import make_splits


def _png(path: Path, colour: tuple[int, int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), colour).save(path)


@pytest.fixture
def folder(tmp_path):
    for split in ("train", "test"):
        for cls, colour in (("red", (250, 0, 0)), ("blue", (0, 0, 250))):
            for i in range(3):
                _png(tmp_path / "imgs" / split / cls / f"{i}.png", colour)
    return tmp_path


def test_csv_several_captions_per_image_and_split_column(folder):
    csv_path = folder / "caps.csv"
    csv_path.write_text(
        "image,caption,split\n"
        "imgs/train/red/0.png,a red square,train\n"
        'imgs/train/red/0.png,"a red patch, bright",train\n'
        "imgs/train/blue/0.png,a blue square,train\n"
        "imgs/test/blue/1.png,a blue patch,test\n", encoding="utf-8")
    table = read_caption_csv(csv_path)
    assert table.relpaths == ["imgs/train/red/0.png", "imgs/train/blue/0.png",
                              "imgs/test/blue/1.png"]
    assert table.captions[0] == ["a red square", "a red patch, bright"]
    assert table.n_captions == 4
    ds = build_dataset(f"captions:{csv_path}")
    train = ds.official_split("train")
    assert len(train) == 2 and ds.available_splits() == ["train", "test"]
    assert split_captions(ds, train, "auto") == [["a red square", "a red patch, bright"],
                                                 ["a blue square"]]
    assert train[0].getpixel((0, 0)) == (250, 0, 0)
    # the same CSV beside a folder dataset: matched by file path, uncaptioned items get []
    fold = build_dataset(f"folder:{folder / 'imgs'}")
    tr = fold.official_split("train")
    caps = split_captions(fold, tr, csv_path)
    by_file = {str(tr.source.path(int(i)).relative_to(folder)): c
               for i, c in zip(tr.indices, caps, strict=True)}
    assert by_file["imgs/train/red/0.png"] == ["a red square", "a red patch, bright"]
    assert by_file["imgs/train/red/1.png"] == []
    with pytest.raises(DataError, match="has no captions of its own"):
        split_captions(fold, tr, "auto")


def test_csv_pool_split_without_split_column(folder):
    csv_path = folder / "caps.csv"
    rows = [f"imgs/train/red/{i}.png,red {i}" for i in range(3)]
    rows += [f"imgs/train/blue/{i}.png,blue {i}" for i in range(3)]
    csv_path.write_text("image,caption\n" + "\n".join(rows) + "\n", encoding="utf-8")
    ds = build_dataset(f"captions:{csv_path}", test_fraction=0.34)
    sets = make_splits(ds, seed=0, val_fraction=0.25)
    assert len(sets.test) == 2 and len(sets.train) + len(sets.val) == 4
    assert ds.official_split("test").meta["split_rule"]["kind"].startswith("seeded")
    caps = ds.captions_for(sets.val)
    assert len(caps) == len(sets.val) and all(len(c) == 1 for c in caps)


@pytest.mark.parametrize(("text", "message"), [
    ("", "empty file"),
    ("img,caption\na.png,x\n", "no 'image' column"),
    ("image,caption\na.png,\n", r"caps.csv:2: empty caption"),
    ("image,caption\n,hello\n", r"caps.csv:2: empty image path"),
    ("image,caption,split\na.png,x,holdout\n", "unknown split"),
    ("image,caption,split\na.png,x,train\na.png,y,test\n", "is in split 'test' here"),
    ("image,caption\na.png,x,extra\n", "3 fields, header has 2"),
    ("image,caption\n", "no caption rows"),
])
def test_csv_errors_name_file_and_line(tmp_path, text, message):
    p = tmp_path / "caps.csv"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        read_caption_csv(p)


def test_csv_that_matches_no_image_is_refused(folder, tmp_path):
    p = tmp_path / "caps.csv"
    p.write_text("image,caption\nelsewhere/x.png,a thing\n", encoding="utf-8")
    fold = build_dataset(f"folder:{folder / 'imgs'}")
    with pytest.raises(DataError, match="no caption matches any image"):
        split_captions(fold, fold.official_split("train"), p)
    with pytest.raises(DataError, match="no such file"):
        read_caption_csv(tmp_path / "missing.csv")
