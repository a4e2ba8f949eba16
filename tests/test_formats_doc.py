"""docs/formats.md cannot go stale: every example block is written to disk and read by the real
loader, every command line parses with the real command line and the registries, and the
option tables equal what the registries hold."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from PIL import Image

from conceptlab.concepts.vocab import Vocabulary, load_vocabulary
from conceptlab.data.base import (
    DataError,
    build_dataset,
    dataset_options,
    known_datasets,
    take_options,
)
from conceptlab.encoders.base import EncoderError, encoder_options, known_encoders, package_encoders
from tests.script_loading import load_script

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "formats.md"
EXAMPLE = re.compile(r"<!-- example: (\S+) (.*?) -->\n```\w*\n(.*?)```", re.S)


def _examples(kind: str) -> list[tuple[str, str]]:
    """``(arguments, body)`` of every example block of ``kind``."""
    found = [(args, body) for k, args, body in EXAMPLE.findall(DOC.read_text("utf-8"))
             if k == kind]
    assert found, f"docs/formats.md has no '{kind}' example"
    return found


def _generator() -> ModuleType:
    return load_script(ROOT / "scripts" / "formats_doc.py", "_formats_doc")


def test_every_block_has_a_known_kind() -> None:
    kinds = {k for k, _, _ in EXAMPLE.findall(DOC.read_text("utf-8"))}
    assert kinds == {"vocabulary", "table", "tree", "captions", "inputs"}
    # no fenced block of input text goes unchecked: every non-bash block is an example (or
    # the portable-module snippet, run by tests/test_portable_export.py)
    text = DOC.read_text("utf-8")
    fences = re.findall(r"(<!-- (?:example: [^>]*|runs-without-conceptlab )-->\n)?```(\w*)\n",
                        text)
    opening = fences[::2]  # every other fence opens a block
    assert all(marker or lang == "bash" for marker, lang in opening), opening


def test_vocabulary_examples_load(tmp_path: Path) -> None:
    loaded: dict[str, Vocabulary] = {}
    for name, body in _examples("vocabulary"):
        path = tmp_path / name
        path.write_text(body, encoding="utf-8")
        vocab = load_vocabulary(path)
        assert len(vocab) >= 2, name
        loaded[name] = vocab
    suffixes = {Path(n).suffix for n in loaded}
    assert suffixes == {".txt", ".json"}
    shoes = loaded["shoes.txt"]  # a concept under two headers belongs to both classes
    assert shoes.classes[shoes.concepts.index("a thick rubber sole")] == ["Sneaker", "Ankle boot"]
    assert shoes.source == "written by hand for Fashion-MNIST shoes"
    assert loaded["by_class.json"].class_names == ["sport", "politics"]
    saved = loaded["saved.json"]
    assert saved.source == "my notes" and saved.classes[saved.concepts.index("a crowd")] == []


def _data_options(args: str) -> dict[str, Any]:
    tokens = shlex.split(args)
    opts: dict[str, Any] = {}
    for flag, pair in zip(tokens[1::2], tokens[2::2], strict=True):
        assert flag == "-D", args
        key, _, value = pair.partition("=")
        opts[key] = value
    return opts


def test_text_table_examples_load(tmp_path: Path) -> None:
    seen_official = False
    for args, body in _examples("table"):
        name = shlex.split(args)[0]
        path = tmp_path / name
        path.write_text(body, encoding="utf-8")
        family = "jsonl" if name.endswith(".jsonl") else "csv"
        ds = build_dataset(f"{family}:{path}", **_data_options(args))
        rows = [line for line in body.splitlines() if line.strip()]
        n_rows = len(rows) - (family == "csv")  # the header
        sizes = [len(ds.official_split(s)) for s in ds.available_splits()]
        assert sum(sizes) == n_rows, name
        assert len(ds.class_names) == 2, (name, ds.class_names)
        seen_official |= bool(ds.official_split("test").meta.get("official"))
    assert seen_official


def _write_image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (200, 30, 30)).save(path)


def test_image_folder_examples_load(tmp_path: Path) -> None:
    for root, body in _examples("tree"):
        lines = [line.strip() for line in body.splitlines() if line.strip()]
        assert lines[0] == f"{root}/"
        files = lines[1:]
        for rel in files:
            _write_image(tmp_path / root / rel)
        ds = build_dataset(f"folder:{tmp_path / root}")
        expected = sorted({Path(f).parts[-2] for f in files})
        assert ds.class_names == expected
        assert sum(len(ds.official_split(s)) for s in ds.available_splits()) == len(files)


def test_captions_example_loads(tmp_path: Path) -> None:
    for name, body in _examples("captions"):
        path = tmp_path / name
        path.write_text(body, encoding="utf-8")
        images = {line.split(",")[0] for line in body.splitlines()[1:] if line.strip()}
        for rel in images:
            _write_image(tmp_path / rel)
        ds = build_dataset(f"captions:{path}")
        splits = [ds.official_split(s) for s in ds.available_splits()]
        assert sum(len(s) for s in splits) == len(images)
        captions = [c for s in splits for cs in ds.captions_for(s) for c in cs]  # type: ignore[attr-defined]
        assert len(captions) == len(body.strip().splitlines()) - 1


def test_input_text_example_reads_one_row_per_line(tmp_path: Path) -> None:
    from conceptlab.workflows.cbm import read_text_file

    for name, body in _examples("inputs"):
        path = tmp_path / name
        path.write_text(body, encoding="utf-8")
        rows = read_text_file(path, "minilm")
        assert [t for _, t in rows] == [line for line in body.splitlines() if line.strip()]
        assert rows[-1][0] == f"{path}:{len(body.splitlines())}"  # labelled file:line


def _command_lines() -> list[str]:
    text = DOC.read_text("utf-8")
    blocks = re.findall(r"```bash\n(.*?)```", text, re.S)
    lines = [ln.strip() for b in blocks for ln in b.splitlines() if ln.strip()]
    assert lines and all(ln.startswith("conceptlab ") for ln in lines)
    return lines


def test_every_command_line_parses_and_its_options_are_registered() -> None:
    import typer

    from conceptlab.cli import app
    from conceptlab.cli.common import parse_options as _parse_options

    root: Any = typer.main.get_command(app)
    for line in _command_lines():
        args = shlex.split(line)[1:]
        command = root.commands[args[0]]
        ctx = command.make_context(args[0], args[1:])  # unknown options raise here
        params = ctx.params
        data = params.get("data")
        if data:
            prefix, _, arg = str(data).partition(":")
            assert prefix in known_datasets(), line
            defaults, path = dataset_options(prefix)
            assert bool(arg) == bool(path) or prefix == "fashion-mnist", line
            take_options(prefix, _parse_options(params.get("data_option")), defaults)
        for key in ("encoder", "image_encoder", "text_encoder"):
            spec = params.get(key)
            if spec:
                prefix = str(spec).partition(":")[0]
                assert prefix in known_encoders(), line
                names, _ = encoder_options(prefix)
                unknown = set(_parse_options(params.get("encoder_option"))) - set(names)
                assert not unknown, (line, unknown)


def test_a_bad_option_on_a_doc_line_would_be_caught() -> None:
    """The check above can fail: a misspelt -D option or a wrong kind is refused."""
    defaults, _ = dataset_options("fashion-mnist")
    with pytest.raises(DataError, match="unknown option"):
        take_options("fashion-mnist", {"inverted": True}, defaults)
    with pytest.raises(DataError, match="true or false"):
        take_options("fashion-mnist", {"invert": "maybe"}, defaults)


@pytest.mark.parametrize("prefix", known_datasets())
def test_registered_data_options_are_what_the_family_accepts(prefix: str) -> None:
    defaults, path = dataset_options(prefix)
    spec = f"{prefix}:{path}" if path else prefix
    with pytest.raises(DataError, match="unknown option") as err:
        build_dataset(spec, zz_not_an_option=1)
    known = str(err.value).split("known: ", 1)[1]
    assert known == (", ".join(sorted(defaults)) or "none")


@pytest.mark.parametrize("prefix", package_encoders())
def test_registered_encoder_options_are_what_the_family_accepts(prefix: str) -> None:
    from conceptlab.encoders.base import build_encoder

    names, arg = encoder_options(prefix)
    spec = f"{prefix}:{arg}" if arg else prefix
    with pytest.raises(EncoderError, match="unknown option") as err:
        build_encoder(spec, zz_not_an_option=1)
    known = str(err.value).split("known: ", 1)[1]
    assert json.loads(known.replace("'", '"')) == names


def test_option_tables_match_the_registries_and_every_option_is_explained() -> None:
    gen = _generator()
    text = DOC.read_text("utf-8")
    assert gen.render(text) == text, "run: python scripts/formats_doc.py"
    assert "UNDOCUMENTED" not in text
    for prefix in known_datasets():
        for key in dataset_options(prefix)[0]:
            assert f"| `{key}` |" in text
    for prefix in package_encoders():
        for key in encoder_options(prefix)[0]:
            assert f"| `{key}` |" in text


def test_readme_links_the_formats_page() -> None:
    assert "docs/formats.md" in (ROOT / "README.md").read_text("utf-8")
