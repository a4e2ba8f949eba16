"""The GPU check the project owns: each family once on the CPU and once on the GPU, same inputs.

Families and what is compared (largest absolute difference, CPU vs GPU, float32 on both):

* ``embeddings``: the packaged MiniLM (torch backend) on fixed sentences; tolerance 1e-4.
* ``concept_scores``: cosine of those embeddings with MiniLM embeddings of concept phrases,
  computed on the device; tolerance 1e-4.
* ``cbm_logits``: a concept layer (``EmbeddingCBL``, seeded) and a seeded linear head applied
  to the embeddings on the device (the CBM forward pass); tolerance 1e-4.
* ``sae_codes``: a TopK SAE (discovery registry, ``topk-sae``, seed 0) trained under
  ``conceptlab.device.using(device)`` on fixed planted activations, then its codes; training
  order differs on a GPU (reductions), so the tolerance is 5e-2 on codes scaled by their
  largest value, plus the reconstruction's fraction of variance explained within 1e-2.
* ``lm_hidden``: residual-stream hidden states of the packaged SmolLM2-135M at three blocks
  (last token), float32; tolerance 1e-3 scaled by the largest |value| (attention kernels
  differ between devices).
* ``neuron_table``: ``decode_neurons`` (top-k tokens per MLP neuron) on the first block;
  compared as the fraction of neurons whose top token agrees (at least 0.99) and the largest
  top-logit difference (1e-3 scaled).

Each family also reports its throughput (items per second; the first call on each device is a
warm-up and is not timed). With no GPU (``torch.cuda.is_available()`` false) only the CPU side
runs and the JSON and the table say ``no GPU found``. ``--smoke`` swaps SmolLM2 for a tiny
random Llama and shrinks every input (the test suite runs it); a family that fails on a device
is recorded with its error instead of stopping the check.

Run: ``python benchmarks/gpu_check.py`` (writes ``benchmarks/results/gpu_check.json`` and
prints the table; ``--markdown`` prints the docs/benchmarks.md section from the JSON).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

RESULTS = Path(__file__).resolve().parent / "results"
#: family -> {measure: tolerance}; "agree" measures are lower bounds, the rest upper bounds
TOLERANCES: dict[str, dict[str, float]] = {
    "embeddings": {"max_abs_diff": 1e-4},
    "concept_scores": {"max_abs_diff": 1e-4},
    "cbm_logits": {"max_abs_diff": 1e-4},
    "sae_codes": {"max_rel_diff": 5e-2, "fve_diff": 1e-2},
    "lm_hidden": {"max_rel_diff": 1e-3},
    "neuron_table": {"top_token_agree": 0.99, "max_rel_diff": 1e-3},
}
SENTENCES = ["a photo of a cat on a sofa", "the striker scored a late goal",
             "simmer the tomato sauce with garlic", "a red car parked by the old stone house",
             "two children watch the rain from the window", "the market fell sharply today",
             "a violin plays a slow melody", "fresh bread cooling on the table"]
CONCEPTS = ["an animal", "sports", "cooking", "a vehicle", "weather", "money", "music", "food"]
PROMPTS = ["The capital of France is", "A cat is an animal that", "The film was very",
           "She opened the door and"]

Outputs = dict[str, np.ndarray]
Family = Callable[[torch.device, bool], tuple[Outputs, int]]


def _minilm(device: torch.device) -> Any:
    from conceptlab.encoders import build_encoder

    return build_encoder("minilm", backend="torch", device=str(device))


def _embeddings(device: torch.device, smoke: bool) -> tuple[Outputs, int]:
    texts = SENTENCES[:4] if smoke else SENTENCES * 8
    emb = _minilm(device).encode_texts(texts)
    return {"embedding": np.asarray(emb, np.float32)}, len(texts)


def _concept_scores(device: torch.device, smoke: bool) -> tuple[Outputs, int]:
    enc = _minilm(device)
    texts = SENTENCES[:4] if smoke else SENTENCES * 8
    x = torch.as_tensor(enc.encode_texts(texts), device=device)
    c = torch.as_tensor(enc.encode_texts(CONCEPTS), device=device)
    scores = torch.nn.functional.normalize(x, dim=1) @ torch.nn.functional.normalize(c, dim=1).T
    return {"scores": scores.float().cpu().numpy()}, len(texts)


def _cbm_logits(device: torch.device, smoke: bool) -> tuple[Outputs, int]:
    from conceptlab.bottleneck.layers import EmbeddingCBL

    n = 16 if smoke else 4096
    x = torch.as_tensor(np.random.default_rng(0).standard_normal((n, 384)), dtype=torch.float32)
    gen = torch.Generator().manual_seed(0)
    cbl = EmbeddingCBL(384, len(CONCEPTS), generator=gen)
    head = torch.nn.Linear(len(CONCEPTS), 5)
    with torch.no_grad():
        head.weight.copy_(torch.randn(5, len(CONCEPTS), generator=gen))
        head.bias.zero_()
    cbl, head = cbl.to(device), head.to(device)
    with torch.inference_mode():
        acts = cbl(x.to(device))
        logits = head(acts)
    return {"concepts": acts.cpu().numpy(), "logits": logits.cpu().numpy()}, n


def _planted(n: int, d: int = 32, k: int = 12) -> np.ndarray:
    rng = np.random.default_rng(0)
    atoms = rng.standard_normal((k, d))
    codes = rng.exponential(1.0, (n, k)) * (rng.random((n, k)) < 0.2)
    return (codes @ atoms + 0.01 * rng.standard_normal((n, d))).astype(np.float32)


def _sae_codes(device: torch.device, smoke: bool) -> tuple[Outputs, int]:
    from conceptlab.device import using
    from conceptlab.discover.base import build_dictionary

    A = _planted(256 if smoke else 4096)
    with using(str(device)):
        d = build_dictionary("topk-sae", 16, seed=0, k=4, epochs=2,
                             min_steps=50 if smoke else 400).fit(A)
        codes = np.asarray(d.encode(A), np.float32)
        recon = np.asarray(d.decode(codes), np.float32)
    fve = 1.0 - ((A - recon) ** 2).sum() / ((A - A.mean(0)) ** 2).sum()
    return {"codes": codes, "fve": np.array([fve], np.float32)}, len(A)


def _tiny_llama() -> Any:
    """A tiny random Llama with a byte-per-word tokenizer (smoke runs: no packaged weights)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from conceptlab.lm.model import CausalLM

    words = sorted({w for p in PROMPTS for w in p.split()})
    vocab = {"<pad>": 0, "<bos>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate(words)}}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<bos>",
                                   unk_token="<unk>")
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(vocab), hidden_size=16, intermediate_size=24,
                      num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=64, pad_token_id=0, bos_token_id=1,
                      eos_token_id=None)
    return CausalLM(LlamaForCausalLM(cfg).eval(), fast, name="tiny-llama")


_LMS: dict[tuple[str, bool], Any] = {}


def _lm(device: torch.device, smoke: bool) -> Any:
    key = (str(device), smoke)
    if key not in _LMS:
        if smoke:
            _LMS[key] = _tiny_llama()
            _LMS[key].model.to(device)
        else:
            from conceptlab.lm.model import load_lm

            _LMS[key] = load_lm("smollm2", dtype="float32", device=str(device))
    return _LMS[key]


def _lm_hidden(device: torch.device, smoke: bool) -> tuple[Outputs, int]:
    lm = _lm(device, smoke)
    points = [f"blocks.{i}.hook_resid_post" for i in (0, lm.n_layers // 2, lm.n_layers - 1)]
    acts = lm.activations(PROMPTS, points)
    return {p: np.asarray(a, np.float32) for p, a in acts.items()}, len(PROMPTS)


def _neuron_table(device: torch.device, smoke: bool) -> tuple[Outputs, int]:
    from conceptlab.lm.neurons import decode_neurons

    lm = _lm(device, smoke)
    nmap = decode_neurons(lm, layers=[0], k=5)
    return {"top_ids": nmap.top_ids, "top_logits": nmap.top_logits}, len(nmap)


FAMILIES: dict[str, Family] = {"embeddings": _embeddings, "concept_scores": _concept_scores,
                               "cbm_logits": _cbm_logits, "sae_codes": _sae_codes,
                               "lm_hidden": _lm_hidden, "neuron_table": _neuron_table}


def run_side(name: str, device: torch.device, smoke: bool) -> dict[str, Any]:
    """One family on one device: a warm-up call, then a timed call; its outputs and speed."""
    fn = FAMILIES[name]
    try:
        fn(device, smoke)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        outputs, n = fn(device, smoke)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - t0
    except Exception as err:  # a failing family is a finding, not a crash
        return {"error": f"{type(err).__name__}: {err}".splitlines()[0]}
    return {"outputs": outputs, "items": n, "seconds": seconds,
            "items_per_s": n / seconds if seconds > 0 else None}


def compare(name: str, cpu: Outputs, gpu: Outputs) -> dict[str, Any]:
    """The differences of one family, and whether each is within its tolerance."""
    got: dict[str, float] = {}
    if name == "neuron_table":
        got["top_token_agree"] = float(np.mean(cpu["top_ids"][:, 0] == gpu["top_ids"][:, 0]))
        scale = max(float(np.abs(cpu["top_logits"]).max()), 1e-12)
        got["max_rel_diff"] = float(np.abs(cpu["top_logits"] - gpu["top_logits"]).max()) / scale
    elif name == "sae_codes":
        scale = max(float(np.abs(cpu["codes"]).max()), 1e-12)
        got["max_rel_diff"] = float(np.abs(cpu["codes"] - gpu["codes"]).max()) / scale
        if "fve" in cpu and "fve" in gpu:
            got["fve_diff"] = float(abs(cpu["fve"][0] - gpu["fve"][0]))
    elif name == "lm_hidden":
        got["max_rel_diff"] = max(
            float(np.abs(cpu[k] - gpu[k]).max()) / max(float(np.abs(cpu[k]).max()), 1e-12)
            for k in cpu)
    else:
        got["max_abs_diff"] = max(float(np.abs(cpu[k] - gpu[k]).max()) for k in cpu)
    ok = {}
    for measure, value in got.items():
        tol = TOLERANCES[name][measure]
        ok[measure] = value >= tol if measure == "top_token_agree" else value <= tol
    return {"differences": got, "within_tolerance": all(ok.values()), "checks": ok}


def run_check(smoke: bool = False, families: list[str] | None = None) -> dict[str, Any]:
    """Every family on the CPU, and on the GPU when torch sees one; the JSON record."""
    gpu = torch.device("cuda", 0) if torch.cuda.is_available() else None
    rows = []
    for name in families or list(FAMILIES):
        cpu_side = run_side(name, torch.device("cpu"), smoke)
        gpu_side = run_side(name, gpu, smoke) if gpu is not None else None
        row: dict[str, Any] = {"family": name, "tolerances": TOLERANCES[name],
                               "cpu": {k: v for k, v in cpu_side.items() if k != "outputs"}}
        if gpu_side is not None:
            row["gpu"] = {k: v for k, v in gpu_side.items() if k != "outputs"}
            if "outputs" in cpu_side and "outputs" in gpu_side:
                row.update(compare(name, cpu_side["outputs"], gpu_side["outputs"]))
        rows.append(row)
    return {"gpu": torch.cuda.get_device_name(gpu) if gpu is not None else None,
            "gpu_found": gpu is not None,
            "note": None if gpu is not None else "no GPU found: only the CPU side ran",
            "smoke": smoke, "torch": torch.__version__, "cpu_threads": torch.get_num_threads(),
            "python": platform.python_version(), "rows": rows}


def _fmt(x: Any) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.3g}"
    return str(x)


def table(record: dict[str, Any]) -> str:
    """The result as a markdown table (what the docs section and the terminal show)."""
    lines = ["| family | CPU items/s | GPU items/s | largest difference | within tolerance |",
             "|---|---|---|---|---|"]
    for r in record["rows"]:
        cpu = r["cpu"].get("error") or _fmt(r["cpu"].get("items_per_s"))
        gpu = "no GPU found" if not record["gpu_found"] else (
            r.get("gpu", {}).get("error") or _fmt(r.get("gpu", {}).get("items_per_s")))
        diffs = ", ".join(f"{k} {_fmt(v)}" for k, v in r.get("differences", {}).items()) or "-"
        ok = "-" if "within_tolerance" not in r else ("yes" if r["within_tolerance"] else "NO")
        lines.append(f"| {r['family']} | {cpu} | {gpu} | {diffs} | {ok} |")
    return "\n".join(lines)


def markdown(record: dict[str, Any]) -> str:
    """The docs/benchmarks.md section, generated from the JSON."""
    if record["gpu_found"]:
        head = (f"Ran on a GPU ({record['gpu']}) against this machine's CPU "
                f"({record['cpu_threads']} threads), torch {record['torch']}.")
    else:
        head = (f"This check has not run on a GPU: no GPU found on the machine that wrote the "
                f"JSON, so only the CPU side ran ({record['cpu_threads']} threads, torch "
                f"{record['torch']}{', smoke inputs' if record['smoke'] else ''}).")
    smoke = " --smoke" if record["smoke"] else ""
    n_bad = sum(1 for r in record["rows"] if r.get("within_tolerance") is False)
    n_err = sum(1 for r in record["rows"] if "error" in r["cpu"] or "error" in r.get("gpu", {}))
    tail = []
    if record["gpu_found"]:
        tail.append(f"{n_bad} famil{'y' if n_bad == 1 else 'ies'} outside tolerance.")
    if n_err:
        tail.append(f"{n_err} famil{'y' if n_err == 1 else 'ies'} failed on a device (the "
                    "error is in the table).")
    return "\n".join(["## GPU check (issue 25)", "",
                      "Script: `benchmarks/gpu_check.py` (tolerances in its docstring); "
                      "JSON: `benchmarks/results/gpu_check.json`; section written by "
                      "`python benchmarks/gpu_check.py --markdown "
                      "benchmarks/results/gpu_check.json`.", "",
                      f"Command: `python benchmarks/gpu_check.py{smoke}`. Throughput: items "
                      "per second of one timed call after a warm-up.", "", head, "",
                      table(record), "", *([" ".join(tail), ""] if tail else [])])


def _jsonable(record: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(record, default=float))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="tiny inputs and a tiny random LM")
    ap.add_argument("--out", type=Path, default=RESULTS / "gpu_check.json")
    ap.add_argument("--family", action="append", choices=list(FAMILIES))
    ap.add_argument("--markdown", type=Path, help="print the docs section of this JSON and exit")
    args = ap.parse_args(argv)
    if args.markdown:
        print(markdown(json.loads(args.markdown.read_text(encoding="utf-8"))))
        return 0
    record = _jsonable(run_check(args.smoke, args.family))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    tmp.replace(args.out)
    print(table(record))
    if not record["gpu_found"]:
        print("no GPU found: only the CPU side ran")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
