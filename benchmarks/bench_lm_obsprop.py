"""ObsProp's data-efficiency claim on SmolLM2-135M: gendered pronouns from occupations.

Dunefsky & Cohan (2024), section 4: the observable ``n = logit(" she") - logit(" he")`` after
occupation prompts, propagated back (``lm.obsprop``) through the attention head and the MLP
that contribute most to it, against linear probes and mean differences fitted on few labelled
prompts and on many. Labels: the occupation's majority gender in the U.S. Bureau of Labor
Statistics figures as WinoBias lists them (Zhao et al., 2018, "Gender Bias in Coreference
Resolution", the 20 + 20 occupations of their Table 1 that are single words here).
Occupations are split once (seed 0) into train and test halves; every held-out AUROC scores
test occupations only. ObsProp fits nothing to labels, but it does use the *sides* (labels) of
the few prompts: attribution (positive minus negative) picks the components and the MLP is
linearised between the two sides; these are the same few labelled prompts the few-example
probe is fitted on (the direct-path row uses no label). Repeated over ``--seeds`` draws.

Not the paper's experiment: section 4.3 (``OtherObservables.ipynb``, "Gendered pronouns
prediction") uses one-token names in three subject-pronoun templates, one prompt per gender
for ObsProp, a three-head path found by path patching, and scores each direction by r^2
between its score and the model's observable output on held-out prompts, against
``LinearRegression`` on that output and a mean difference over 30 + 30 prompts; here the
occupation labels (WinoBias), single-component paths, logistic probes and held-out AUROC.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_lm_obsprop.py [--seeds 5] [--few 2]

Writes benchmarks/results/bench_lm_obsprop.json; ``benchmarks/lm_obsprop_tables.py`` turns it
into the table and the verdict sentence in docs/lm.md.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from conceptlab.lm import obsprop as OP
from conceptlab.lm.ablation import auroc
from conceptlab.lm.concept_vectors import mean_interval
from conceptlab.lm.model import CausalLM, load_lm
from conceptlab.utils.io import write_json_atomic

RESULTS = Path(__file__).parent / "results"
FEMALE = ["nurse", "secretary", "receptionist", "hairdresser", "librarian", "housekeeper",
          "cashier", "teacher", "attendant", "assistant", "auditor", "cleaner", "clerk",
          "counselor", "designer", "writer", "baker", "accountant", "editor", "tailor"]
MALE = ["driver", "supervisor", "janitor", "cook", "mover", "laborer", "chief", "developer",
        "carpenter", "manager", "lawyer", "farmer", "salesperson", "physician", "guard",
        "analyst", "mechanic", "sheriff", "CEO", "engineer"]
TEMPLATES = ["The {} said that", "I talked to the {} because", "Yesterday the {} told me that",
             "The {} went home early because"]


def prompts(lm: CausalLM) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Texts, labels (1 = female-majority), occupation index, occupation's last token."""
    texts, labels, occ, pos = [], [], [], []
    for k, (word, label) in enumerate([(w, 1) for w in FEMALE] + [(w, 0) for w in MALE]):
        for t in TEMPLATES:
            text = t.format(word)
            head = text[:text.index(word) + len(word)]
            texts.append(text)
            labels.append(label)
            occ.append(k)
            pos.append(len(lm.encode(head)) - 1)
    return texts, np.array(labels), np.array(occ), np.array(pos)


def probe(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    w = LogisticRegression(C=1.0, max_iter=2000).fit(X, y).coef_[0]
    return w / np.linalg.norm(w)


def mean_diff(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    v = X[y == 1].mean(0) - X[y == 0].mean(0)
    return v / np.linalg.norm(v)


def compare(v: np.ndarray, X: np.ndarray, y: np.ndarray, few: np.ndarray, train: np.ndarray,
            test: np.ndarray) -> dict[str, float]:
    dirs = {"obsprop": v, "probe_few": probe(X[few], y[few]),
            "probe_many": probe(X[train], y[train]),
            "mean_few": mean_diff(X[few], y[few]), "mean_many": mean_diff(X[train], y[train])}
    out = {f"auroc_{k}": auroc(y[test], X[test] @ d) for k, d in dirs.items()}
    for k in ("probe_few", "probe_many", "mean_few", "mean_many"):
        out[f"cos_obsprop_{k}"] = OP.cosine(v, dirs[k])
    out["cos_probe_few_probe_many"] = OP.cosine(dirs["probe_few"], dirs["probe_many"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--few", type=int, default=2, help="labelled prompts per class, few regime")
    ap.add_argument("--model", default="smollm2")
    a = ap.parse_args()
    t0 = time.perf_counter()
    torch.set_grad_enabled(False)
    lm = load_lm(a.model)
    texts, y, occ, occ_pos = prompts(lm)
    rng = np.random.default_rng(0)
    n_occ = len(FEMALE) + len(MALE)
    test_occ = set(rng.permutation(len(FEMALE))[:len(FEMALE) // 2].tolist()) | set(
        (len(FEMALE) + rng.permutation(len(MALE))[:len(MALE) // 2]).tolist())
    test = np.array([i for i in range(len(texts)) if occ[i] in test_occ])
    train = np.array([i for i in range(len(texts)) if occ[i] not in test_occ])
    n = OP.observable(lm, [" she"], [" he"])
    last = OP.trace(lm, texts)
    at_occ = OP.trace(lm, texts, positions=occ_pos.tolist())
    lp = lm.next_token_logprobs(texts)
    obs_value = (lp @ n).numpy()
    runs: list[dict[str, Any]] = []
    for seed in range(a.seeds):
        r = np.random.default_rng(1000 + seed)
        few = np.concatenate([r.choice(train[y[train] == c], a.few, replace=False)
                              for c in (1, 0)])
        pos, neg = last.take(few[y[few] == 1]), last.take(few[y[few] == 0])
        att = OP.attributions(lm, n, pos, neg)
        heads = sorted((k for k in att if ".H" in k), key=lambda k: -abs(att[k]))
        mlps = sorted((k for k in att if k.endswith("MLP")), key=lambda k: -abs(att[k]))
        h_layer, h_head = (int(x[1:]) for x in heads[0].split("."))
        m_layer = int(mlps[0].split(".")[0][1:])
        y_final = OP.final_feature(lm, n, pos)
        occ_few = at_occ.take(few)
        head_node, mlp_node = OP.Node("attn", h_layer, h_head), OP.Node("mlp", m_layer)
        v_head = OP.head_backward(lm, head_node, y_final, occ_few).numpy()
        v_mlp = OP.mlp_backward(lm, mlp_node, y_final, pos, neg).numpy()
        v_direct = y_final.numpy()
        rows = {
            "top head": {"component": heads[0], "read": f"blocks.{h_layer}.hook_resid_pre at "
                         "the occupation's last token",
                         **compare(v_head, at_occ.resid_pre[h_layer].numpy(), y, few, train,
                                   test)},
            "top MLP": {"component": mlps[0], "read": f"block {m_layer}'s MLP-norm input at "
                        "the last token", **compare(v_mlp, last.resid_mid[m_layer].numpy(), y,
                                                    few, train, test)},
            "direct path": {"component": "unembedding", "read": "final-norm input at the last "
                            "token", **compare(v_direct, last.final.numpy(), y, few, train,
                                               test)}}
        top3 = [OP.Node("attn", *(int(x[1:]) for x in k.split("."))) for k in heads[:3]]
        feats = [OP.head_backward(lm, node, y_final, last).numpy() for node in top3]
        coupling = [[OP.coupling_coeff(f1, f2) for f2 in feats] for f1 in feats]
        agree = OP.norm_agreement(lm, n, pos, neg, [head_node, mlp_node])
        runs.append({"seed": seed, "few_items": few.tolist(), "rows": rows,
                     "top_heads": [{"head": k, "attribution": att[k]} for k in heads[:5]],
                     "top_mlps": [{"mlp": k, "attribution": att[k]} for k in mlps[:3]],
                     "coupling_top3_heads": {"heads": heads[:3], "matrix": coupling},
                     "layernorm_cosine_paper_vs_exact": agree})
    metric_names = [k for k in runs[0]["rows"]["top head"] if k.startswith(("auroc", "cos"))]
    summary = {row: {k: mean_interval([r["rows"][row][k] for r in runs]) for k in metric_names}
               for row in runs[0]["rows"]}
    out = {"benchmark": "bench_lm_obsprop", "model": lm.describe(),
           "observable": "logit(' she') - logit(' he')", "n_prompts": len(texts),
           "n_occupations": n_occ, "templates": TEMPLATES, "few_per_class": a.few,
           "n_train": len(train), "n_test": len(test), "seeds": a.seeds,
           "observable_test_auroc": auroc(y[test], obs_value[test]),
           "summary": summary, "runs": runs,
           "layernorm_cosine_min": float(min(v for r in runs for v in
                                             r["layernorm_cosine_paper_vs_exact"].values())),
           "seconds": round(time.perf_counter() - t0, 1),
           "machine": {"python": platform.python_version(), "torch": torch.__version__,
                       "threads": torch.get_num_threads()}}
    write_json_atomic(RESULTS / "bench_lm_obsprop.json", out)
    for row, s in summary.items():
        print(row, {k: round(v["mean"], 3) for k, v in s.items()})
    print("observable test AUROC", round(out["observable_test_auroc"], 3), "seconds",
          out["seconds"])


if __name__ == "__main__":
    main()
