"""What ``backend=auto`` chooses on this machine, and the times it chose from.

``auto`` times torch and ONNX Runtime on each model once per machine setup
(``conceptlab.encoders.backend_choice``) and stores the choice in ``backend-choices.json``
beside the ONNX exports. This script builds MiniLM and EfficientNet-Lite0 (224 px) with
``backend=auto`` in a fresh export folder (so the measurement runs now), copies the stored
entries into ``benchmarks/results/backend_choice.json`` and prints the docs section.
``--from FILE`` reads an existing ``backend-choices.json`` instead of measuring;
``--markdown JSON`` prints the section of a results file.

Run: ``python benchmarks/backend_choice.py``
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results" / "backend_choice.json"


def measure() -> dict[str, Any]:
    """Build both encoders with ``auto`` in a fresh export folder; the stored choices."""
    from conceptlab.encoders import build_encoder
    from conceptlab.encoders.backend_choice import CHOICES_FILE

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["CONCEPTLAB_ONNX_DIR"] = tmp
        os.environ.pop("CONCEPTLAB_BACKEND", None)
        build_encoder("minilm").backend  # noqa: B018 - the property runs the measurement
        build_encoder("efficientnet", image_size=224).backend  # noqa: B018
        return json.loads((Path(tmp) / CHOICES_FILE).read_text(encoding="utf-8"))


def rows(choices: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for entry in choices.values():
        model = entry["model"]
        name = (f"EfficientNet-Lite0 @ {model['image_size']}" if "arch" in model
                else "all-MiniLM-L6-v2")
        sec = entry["seconds"]
        out.append({"model": name, "batch": model["batch_size"], "threads": model["threads"],
                    "torch_s": sec["torch"], "onnx_s": sec["onnx"],
                    "onnx_speedup": sec["torch"] / sec["onnx"], "choice": entry["choice"],
                    "repeats": entry["repeats"], "onnxruntime": model["onnxruntime"],
                    "torch": model["torch"]})
    return sorted(out, key=lambda r: r["model"])


def markdown(record: dict[str, Any]) -> str:
    lines = ["## Backend chosen by measurement (issue 25)", "",
             "Script: `benchmarks/backend_choice.py`; JSON: "
             "`benchmarks/results/backend_choice.json`; section written by "
             "`python benchmarks/backend_choice.py --markdown "
             "benchmarks/results/backend_choice.json`. `auto` times one batch per backend "
             "(best of the stated repeats, interleaved, after a warm-up) and keeps ONNX only "
             "when it is more than 5% faster.", "",
             "| model | batch | threads | torch s/batch | onnx s/batch | onnx speed-up | "
             "auto chose |", "|---|---|---|---|---|---|---|"]
    for r in record["rows"]:
        lines.append(f"| {r['model']} | {r['batch']} | {r['threads']} | {r['torch_s']:.3f} | "
                     f"{r['onnx_s']:.3f} | {r['onnx_speedup']:.2f}x | {r['choice']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--from", dest="source", type=Path, help="an existing backend-choices.json")
    ap.add_argument("--markdown", type=Path, help="print the docs section of this JSON")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    if args.markdown:
        print(markdown(json.loads(args.markdown.read_text(encoding="utf-8"))), end="")
        return 0
    choices = (json.loads(args.source.read_text(encoding="utf-8")) if args.source
               else measure())
    record = {"source": str(args.source) if args.source else "measured now", "rows": rows(choices)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(markdown(record), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
