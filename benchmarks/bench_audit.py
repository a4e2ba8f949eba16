"""The audit on held-out tasks and on the project's spaces, 3 seeds (issue: a verdict that can
be staked on).

Sections:

* ``topics``: an easy held-out text task (3 topics, sentences the project never tuned on,
  ``benchmarks/audit_tasks.py``) through MiniLM, l1 CBM at NEC = 5: 12 real concept texts
  against 12 random letter strings (a new draw per seed). Must read: real trusted, nonsense not.
* ``digits``: held-out 8x8 digits (scikit-learn's, upscaled) through ConSE with 15 stroke
  concepts at NEC = 5 (a space where the concept texts mean little).
* ``spaces``: the demo's spaces (Fashion-MNIST / ConSE, idsprites / caption-trained map) and
  robot texts / MiniLM, each with the demo's grounded CBMs at NEC = 5, with the old single-bit
  verdict beside the new one (fidelity < 0.5 or random-bank agreement > 0.99 withheld trust).

    CONCEPTLAB_NO_PROGRESS=1 .venv/bin/python benchmarks/bench_audit.py [--only SECTION]

Writes benchmarks/results/bench_audit.json and prints markdown tables.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.audit_tasks import TOPIC_CONCEPTS, TOPICS, nonsense_concepts, topic_sentences

from conceptlab.bottleneck.audit import audit
from conceptlab.bottleneck.heads import HeadConfig
from conceptlab.bottleneck.model import ConceptBottleneckModel
from conceptlab.concepts.bank import ConceptBank
from conceptlab.concepts.vocab import Vocabulary
from conceptlab.encoders.base import build_encoder
from conceptlab.faithfulness.claims import LABELS
from conceptlab.utils.io import read_json, write_json_atomic
from conceptlab.workflows.cbm import fit_cbm
from conceptlab.workflows.concepts import ConceptSource, concept_source
from conceptlab.workflows.demo_sprites import SPRITES_N_TEST, SPRITES_N_TRAIN, sprites_map_dir
from conceptlab.workflows.prepare import RunConfig, prepare
from conceptlab.workflows.variants import variant

RESULTS = Path(__file__).parent / "results"
SEEDS = (0, 1, 2)
NEC = 5.0
STROKES = ("a vertical line", "a horizontal line", "a diagonal stroke", "a closed loop",
           "two loops", "a curve open to the left", "a curve open to the right",
           "a sharp corner", "a hook at the top", "a flat base", "a cross", "a tail at the "
           "bottom", "a round top", "a short stroke", "a long stroke")
SPACE_VARIANTS = ("l1, scores CBL, grounded", "contrastive, embedding CBL, grounded")


def statuses(record: dict[str, Any]) -> dict[str, str]:
    return {n: c["status"] for n, c in (record.get("claims") or {}).items()}


def old_verdict(record: dict[str, Any]) -> bool:
    """The single bit before the profile: fidelity < 0.5 or agreement > 0.99 withheld trust."""
    fid = record.get("unit_fidelity_median")
    agree = record.get("random_bank_agreement")
    return not ((fid is not None and fid < 0.5) or (agree is not None and agree > 0.99))


def topics() -> list[dict[str, Any]]:
    enc = build_encoder("minilm")
    rows = []
    for seed in SEEDS:
        texts, y = topic_sentences(80, seed=100 + seed)
        X = enc.encode_texts(texts)
        n = len(y)
        tr, va = np.arange(n) < n // 2, (np.arange(n) >= n // 2) & (np.arange(n) < 5 * n // 8)
        te = np.arange(n) >= 5 * n // 8
        for label, names in (("real concept texts", [c for c, _ in TOPIC_CONCEPTS]),
                             ("random letter strings", nonsense_concepts(12, seed))):
            bank = ConceptBank.from_texts(enc, names)
            model = ConceptBottleneckModel(bank, list(TOPICS), objective="l1",
                                           head=HeadConfig(nec=NEC), seed=seed)
            model.fit(X[tr], y[tr], X[va], y[va])
            rec = audit(model, X[te], y[te], refit=(X[tr], y[tr], X[va], y[va]), encoder=enc)
            rows.append({"section": "topics", "vocabulary": label, "seed": seed,
                         "accuracy": model.score(X[te], y[te]), "n_test": int(te.sum()),
                         "trusted": rec["trusted"], "old_trusted": old_verdict(rec),
                         "statuses": statuses(rec),
                         "class_link_support": rec.get("class_link_support"),
                         "random_bank_gap": rec.get("random_bank_gap")})
            print(f"topics {label} seed {seed}: acc {rows[-1]['accuracy']:.3f} "
                  f"trusted {rec['trusted']}", flush=True)
    return rows


def _digits_folder(root: Path) -> Path:
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    rng = np.random.default_rng(0)
    order = rng.permutation(len(d.target))[:900]
    for j, i in enumerate(order):
        split = "test" if j % 3 == 0 else "train"
        folder = root / split / str(d.target[i])
        folder.mkdir(parents=True, exist_ok=True)
        img = (255 - d.images[i] * 255 / 16).astype(np.uint8)  # dark strokes on white
        Image.fromarray(img).resize((64, 64), Image.NEAREST).save(folder / f"{i}.png")
    return root


def digits(tmp: Path) -> list[dict[str, Any]]:
    root = _digits_folder(tmp / "digits")
    prep = prepare(RunConfig(data=f"folder:{root}", encoder="conse", seed=0,
                             encoder_options={"image_size": 160}))
    vocab = Vocabulary.from_items([(s, []) for s in STROKES], source="stroke concepts")
    src = ConceptSource(vocab, vocab.to_bank(prep.encoder), "file:strokes")
    v = variant("l1, scores CBL, grounded")
    rows = []
    for seed in SEEDS:
        _, row = fit_cbm(prep, src, v.objective, NEC, v.options, seed=seed)
        f = row["faithfulness"]
        rows.append({"section": "digits", "vocabulary": "15 stroke concepts", "seed": seed,
                     "accuracy": row["accuracy"], "n_test": f["n"], "trusted": f["trusted"],
                     "old_trusted": old_verdict(f), "statuses": statuses(f),
                     "class_link_support": f.get("class_link_support"),
                     "random_bank_gap": f.get("random_bank_gap")})
        print(f"digits seed {seed}: acc {row['accuracy']:.3f} trusted {f['trusted']}",
              flush=True)
    return rows


def spaces() -> list[dict[str, Any]]:
    fm = prepare(RunConfig(data="fashion-mnist", encoder="conse", n_train=2000, n_val=500,
                           n_test=1000, seed=0, encoder_options={"image_size": 224}))
    options = {"n_train": SPRITES_N_TRAIN, "n_test": SPRITES_N_TEST}
    map_dir = sprites_map_dir(None, {**options, "seed": 0})
    preps = [("Fashion-MNIST / ConSE", fm)]
    if (map_dir / "map.json").is_file():
        preps.append(("idsprites / caption-trained map", prepare(RunConfig(
            data="idsprites", encoder=f"linear:{map_dir}", seed=0, data_options=options))))
    preps.append(("robot texts / MiniLM", prepare(RunConfig(
        data="robots-text", encoder="minilm", n_train=2000, n_val=500, n_test=1000, seed=0))))
    rows = []
    for space, prep in preps:
        src = concept_source(prep, "auto")
        for label in SPACE_VARIANTS:
            v = variant(label)
            for seed in SEEDS:
                t0 = time.perf_counter()
                _, row = fit_cbm(prep, src, v.objective, NEC, v.options, seed=seed)
                f = row["faithfulness"]
                rows.append({"section": "spaces", "space": space, "vocabulary": label,
                             "seed": seed, "accuracy": row["accuracy"], "n_test": f["n"],
                             "trusted": f["trusted"], "old_trusted": old_verdict(f),
                             "statuses": statuses(f), "unit_fidelity": f["unit_fidelity_median"],
                             "class_link_support": f.get("class_link_support"),
                             "random_bank_gap": f.get("random_bank_gap"),
                             "seconds": round(time.perf_counter() - t0, 2)})
                print(f"{space} {label} seed {seed}: acc {row['accuracy']:.3f} "
                      f"trusted {f['trusted']} (old {old_verdict(f)})", flush=True)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown: one line per (section, space, vocabulary), statuses over the seeds."""
    keys: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in rows:
        keys.setdefault((r["section"], r.get("space", ""), r["vocabulary"]), []).append(r)
    head = ["task", "model / vocabulary", "accuracy", "trusted (new)", "trusted (old rule)",
            *LABELS.values()]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (section, space, vocab), rs in keys.items():
        acc = np.array([r["accuracy"] for r in rs])
        sd = acc.std(ddof=1) if len(acc) > 1 else 0.0
        cells = [space or section, vocab, f"{acc.mean():.3f} ± {sd:.3f}",
                 f"{sum(r['trusted'] for r in rs)}/{len(rs)}",
                 f"{sum(r['old_trusted'] for r in rs)}/{len(rs)}"]
        for name in LABELS:
            seen = [r["statuses"].get(name, "-") for r in rs]
            cells.append(", ".join(f"{seen.count(s)} {s}" for s in dict.fromkeys(seen)))
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", choices=("topics", "digits", "spaces"))
    args = ap.parse_args()
    out_file = RESULTS / "bench_audit.json"
    old = read_json(out_file) if out_file.is_file() else {"rows": []}
    t0 = time.perf_counter()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("topics", "digits", "spaces"):
            if args.only in (None, name):
                rows += {"topics": topics, "digits": lambda: digits(Path(tmp)),
                         "spaces": spaces}[name]()
    done = {r["section"] for r in rows}
    rows = [r for r in old["rows"] if r["section"] not in done] + rows
    write_json_atomic(out_file, {"command": "benchmarks/bench_audit.py", "seeds": list(SEEDS),
                                 "nec": NEC, "rows": rows,
                                 "seconds": round(time.perf_counter() - t0, 1)})
    print(table(rows))


if __name__ == "__main__":
    main()
