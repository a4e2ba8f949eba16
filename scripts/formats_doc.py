"""Write the option tables of docs/formats.md from the dataset and encoder registries.

    python scripts/formats_doc.py          # rewrite the tables in place
    python scripts/formats_doc.py --check  # exit 1 if the file is stale

The tables sit between ``<!-- options:data -->`` / ``<!-- /options:data -->`` and
``<!-- options:encoders -->`` / ``<!-- /options:encoders -->``. Option names and defaults come
from ``register_dataset(..., options=...)`` and ``register_encoder(..., options=...)``; what
each option means is written once below (``DATA_NOTES``, ``ENCODER_NOTES``) and a test checks
that every registered option has a note, so a new option cannot go undocumented.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

DOC = Path(__file__).resolve().parents[1] / "docs" / "formats.md"

#: what each ``-D`` option means (key: option name, or ``family.option`` where it differs)
DATA_NOTES: dict[str, str] = {
    "invert": "white garments on black (the original) when false; true inverts the pixels",
    "on_error": "`raise` (a corrupt image stops the run, named) or `skip` (left out, counted)",
    "test_fraction": "share of a pool held out as test when the data has no official split",
    "split_seed": "seed of the stratified train/test draw of a pool (recorded)",
    "text_column": "column (CSV) or key (JSONL) holding the text",
    "label_column": "column or key holding the label (a string or an integer)",
    "split_column": "column or key with train / test / val (aliases: training, testing, "
                    "valid, validation, dev); absent: a seeded pool split",
    "class_names": "a JSON list fixing class order; integer labels index it",
    "encoding": "text encoding of the file",
    "image_column": "column holding the image path (relative to the CSV's folder)",
    "caption_column": "column holding the caption",
    "attributes": "`cub`: path of `image_attribute_labels.txt` when not in the usual place",
    "labels": "`imagenet-val`: a file of one class index per line, in file-name order",
    "resolution": "`places365`: `256` or `large` (which image folders to read); default: found",
    "label_kind": "`cifar100`: `fine` (100 classes) or `coarse` (20 superclasses)",
    "seed": "seed of the generator (robot texts, rendered shapes)",
    "cache_dir": "where generated data is cached (default `$CONCEPTLAB_CACHE/datasets/`)",
    "n_train": "`idsprites`, `twoshapes`: train images rendered",
    "n_test": "`idsprites`, `twoshapes`: test images rendered",
    "img_size": "`idsprites`, `twoshapes`: image side in pixels",
    "association": "`twoshapes`: share of training scenes whose `assoc_shape` has "
                   "`assoc_colour` (1/6: no association)",
    "assoc_shape": "`twoshapes`: the shape whose colour is associated (`circle`, ...)",
    "assoc_colour": "`twoshapes`: the colour associated with `assoc_shape`",
    "single_fraction": "`twoshapes`: share of scenes with a single object",
    "captions_per_image": "`idsprites`: captions written per image",
    "color_jitter": "`idsprites`: colour jitter of the rendered shapes",
    "classes": "`idsprites`: factor names joined by `+` that make a class (e.g. `color+size`)",
}

#: what each ``-E`` option means
ENCODER_NOTES: dict[str, str] = {
    "batch_size": "items per forward pass (an integer >= 1)",
    "device": "`cpu`, `cuda`, `cuda:1`, ... (default: cpu)",
    "backend": "`torch`, `onnx` or `auto` (default `$CONCEPTLAB_BACKEND`, else `auto`)",
    "normalize": "true: unit-length embeddings (default true)",
    "dtype": "`float32`, `float16` or `bfloat16`",
    "image_size": "side of the square the image is resized to",
    "crop": "share of the image kept by the centre crop (1.0: none)",
    "weights": "a safetensors file of EfficientNet-Lite0 weights (default: the packaged ones)",
    "k": "`conse`: top ImageNet classes averaged per image (1..1000, or `all`)",
    "template": "`conse`: the text template of each class name, with one `{}`",
    "temperature": "`conse`: softmax temperature over the ImageNet classes",
    "names": "`conse`: which ImageNet names (`clean`, ...)",
    "check_fingerprints": "`linear`: refuse a map whose encoders changed (default true)",
}


def _value(v: Any) -> str:
    return "`" + json.dumps(v) + "`" if v is not None else "none"


def data_table() -> str:
    """The ``-D`` table: one row per registered dataset family."""
    from conceptlab.data.base import dataset_options, known_datasets

    rows = ["| data spec | `-D` options (default) |", "|---|---|"]
    for prefix in known_datasets():
        opts, path = dataset_options(prefix)
        spec = f"`{prefix}:{path}`" if path else f"`{prefix}`"
        cell = ", ".join(f"`{k}` = {_value(v)}" for k, v in sorted(opts.items())) or "none"
        rows.append(f"| {spec} | {cell} |")
    names = sorted({k for p in known_datasets() for k in dataset_options(p)[0]})
    rows += ["", "| option | meaning |", "|---|---|"]
    rows += [f"| `{k}` | {DATA_NOTES.get(k, 'UNDOCUMENTED')} |" for k in names]
    return "\n".join(rows)


def encoder_table() -> str:
    """The ``-E`` table: one row per registered encoder family."""
    from conceptlab.encoders.base import encoder_options, package_encoders

    rows = ["| encoder spec | `-E` options |", "|---|---|"]
    for prefix in package_encoders():
        names, arg = encoder_options(prefix)
        spec = f"`{prefix}:{arg}`" if arg else f"`{prefix}`"
        rows.append(f"| {spec} | {', '.join(f'`{n}`' for n in names) or 'none'} |")
    names = sorted({n for p in package_encoders() for n in encoder_options(p)[0]})
    rows += ["", "| option | meaning |", "|---|---|"]
    rows += [f"| `{k}` | {ENCODER_NOTES.get(k, 'UNDOCUMENTED')} |" for k in names]
    return "\n".join(rows)


def render(text: str) -> str:
    """``text`` (docs/formats.md) with both generated tables replaced."""
    for key, table in (("data", data_table()), ("encoders", encoder_table())):
        pattern = re.compile(rf"(<!-- options:{key} -->\n)(?:.*?\n)?(<!-- /options:{key} -->)",
                             re.S)
        if not pattern.search(text):
            raise SystemExit(f"{DOC}: no <!-- options:{key} --> block")
        text = pattern.sub(lambda m, t=table: m.group(1) + t + "\n" + m.group(2), text)
    return text


def main(argv: list[str]) -> int:
    old = DOC.read_text(encoding="utf-8")
    new = render(old)
    if "--check" in argv:
        if new != old:
            print(f"{DOC} is stale: run python scripts/formats_doc.py", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(new, encoding="utf-8")
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
