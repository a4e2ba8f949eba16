"""ConceptVectors as its reference code does it: one down-projection column per concept, perturbed,
judged by how much the model's answers to the concept's questions change against unrelated ones.

Hong et al. (2024), "Intrinsic Evaluation of Unlearning Using Parametric Knowledge Traces"; the
reference is ``yihuaihong/ConceptVectors``, notebook
``Concept_Validation_Experiments/Concept_Validation_Experiments.ipynb``:

* a concept vector is one column ``W_down[:, dim]`` of one block's MLP down-projection (the
  benchmark's ``Layer`` and ``Dim`` fields). The paper finds candidates by projecting value
  vectors onto the vocabulary and screens them with GPT-4 and by hand; here ``locate`` takes
  the column whose head projection gives the concept's tokens the highest z-score
  (``parametric.concept_scores``), an automatic stand-in for that screening;
* ``add_noise(location, noise_scale)``: ``noise = torch.normal(0, std, size=(d_model,))`` is
  added to ``new_params[f"model.layers.{layer}.mlp.down_proj.weight"][:, dimension]`` and
  loaded; the concept-validation call uses ``noise = 0.1`` (``perturb_column`` with
  ``mode="noise"``), and zeroing the column is the ablation the paper reports beside it
  (``mode="zero"``); the weights are restored afterwards (``old_params``);
* ``answers_generate``: every question is asked as ``f"Question: {question}\\n Answer:"``,
  left-padded, greedy, ``max_new_tokens=100`` (``answers``); the unrelated questions are the
  ``QA`` of 5 other concepts drawn at random (``random_select_except(concepts_list, 5, idx)``),
  of whose answers the notebook keeps the last ``len(Questions)`` (``outputs[-len_questions:]``),
  so only those are generated here;
* scores: ``calculate_bleu(perturbed_answer, original_answer)``, NLTK's ``sentence_bleu`` with
  the perturbed answer as the reference, whitespace tokens and ``SmoothingFunction().method3``
  (``bleu``), and ``calculate_rouge_l``: ``Rouge().get_scores(original, perturbed)[0]
  ["rouge-l"]["f"]`` of the ``rouge`` package the reference pins (``requirements.txt``:
  ``rouge==1.0.1``), i.e. ``rouge_score.rouge_l_summary_level`` with ``exclusive=True``: both
  answers split into sentences at ".", the union of the LCS *word sets* of each reference
  sentence with every candidate sentence, recall and precision over the numbers of *distinct*
  words, F = 2PR / (P + R + 1e-8); 0.0 when it raises on an empty answer (``rouge_l``); each
  averaged over the concept's questions (``statistics.mean``).

A concept vector is confirmed when perturbing it changes the answers to its own questions
(lower BLEU / ROUGE-L against the unperturbed answers) more than the answers to unrelated
questions. The control the reference lacks: a random column of the *same layer* perturbed the
same way.

QA set: ``prompts/concept_qa.csv`` (12 everyday concepts x 5 questions), written for conceptlab
in the benchmark's style (short factual questions about the concept, cf. the ``QA`` field of
``ConceptVectors_data/llama2-7b_concepts.json``), not copied from it: the benchmark's concepts
were located in Llama-2-7B and OLMo-7B, not in the models this project ships.
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib import resources

import numpy as np
import torch

from conceptlab.lm.model import CausalLM, LMError
from conceptlab.lm.parametric import concept_scores

PROMPT = "Question: {question}\n Answer:"
MODES = ("noise", "zero")


def concept_questions() -> dict[str, list[str]]:
    """The shipped QA set: concept -> its questions (see the module docstring)."""
    ref = resources.files("conceptlab.lm") / "prompts" / "concept_qa.csv"
    out: dict[str, list[str]] = {}
    with resources.as_file(ref) as path, open(path, encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            out.setdefault(row["concept"], []).append(row["question"])
    return out


def bleu(reference: str, candidate: str) -> float:
    """NLTK ``sentence_bleu([reference.split()], candidate.split())`` with uniform 4-gram
    weights and ``SmoothingFunction().method3`` (Chen & Cherry 2014's NIST geometric
    smoothing: the i-th zero precision becomes ``1 / (2**i * n_candidate_ngrams)``)."""
    ref, hyp = reference.split(), candidate.split()
    num, den = [], []
    for n in range(1, 5):
        h = Counter(tuple(hyp[i:i + n]) for i in range(len(hyp) - n + 1))
        r = Counter(tuple(ref[i:i + n]) for i in range(len(ref) - n + 1))
        num.append(sum(min(c, r[g]) for g, c in h.items()))
        den.append(max(1, sum(h.values())))
    if num[0] == 0:
        return 0.0
    p, k = [], 1
    for a, b in zip(num, den, strict=True):
        if a == 0:
            p.append(1.0 / (2 ** k * b))
            k += 1
        else:
            p.append(a / b)
    c, r_len = len(hyp), len(ref)
    bp = 1.0 if c > r_len else (0.0 if c == 0 else math.exp(1 - r_len / c))
    return bp * math.exp(math.fsum(0.25 * math.log(x) for x in p))


def _lcs_words(x: Sequence[str], y: Sequence[str]) -> set[str]:
    """The words of one longest common subsequence of ``x`` and ``y``, as a set: rouge 1.0.1's
    ``_recon_lcs(x, y, exclusive=True)`` (walked back from the end, stepping in ``y`` unless
    stepping in ``x`` keeps a strictly longer LCS)."""
    n, m = len(x), len(y)
    table = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            table[i][j] = (table[i - 1][j - 1] + 1 if x[i - 1] == y[j - 1]
                           else max(table[i - 1][j], table[i][j - 1]))
    out: set[str] = set()
    i, j = n, m
    while i > 0 and j > 0:
        if x[i - 1] == y[j - 1]:
            out.add(x[i - 1])
            i, j = i - 1, j - 1
        elif table[i - 1][j] > table[i][j - 1]:
            i -= 1
        else:
            j -= 1
    return out


def _sentences(text: str) -> list[str]:
    """rouge 1.0.1's ``Rouge._get_scores`` split: pieces between "." (non-empty before their
    whitespace is normalised)."""
    return [" ".join(s.split()) for s in text.split(".") if len(s) > 0]


def rouge_l(reference: str, candidate: str) -> float:
    """ROUGE-L F of the reference's ``calculate_rouge_l(reference, candidate)``: rouge 1.0.1's
    summary-level ROUGE-L (see the module docstring), 0.0 for an empty answer."""
    ref, hyp = _sentences(reference), _sentences(candidate)
    if not ref or not hyp:
        return 0.0  # the package raises ValueError; the reference's ``except`` returns 0.0
    m = len({w for s in ref for w in s.split(" ")})
    n = len({w for s in hyp for w in s.split(" ")})
    union: set[str] = set()
    llcs = 0
    for r in ref:
        before = len(union)
        for h in hyp:
            union |= _lcs_words(r.split(" "), h.split(" "))
        llcs += len(union) - before
    rec, prec = llcs / m, llcs / n
    return 2.0 * (prec * rec) / (prec + rec + 1e-8)


def locate(lm: CausalLM, token_ids: Sequence[int]) -> tuple[int, int, float]:
    """``(layer, dim, z)`` of the down-projection column whose head projection favours the
    concept's tokens most (the top of ``parametric.concept_scores``)."""
    scores = concept_scores(lm, token_ids)
    flat = int(np.argmax(scores))
    layer, dim = divmod(flat, scores.shape[1])
    return layer, dim, float(scores[layer, dim])


def random_column(lm: CausalLM, layer: int, exclude: int, seed: int) -> int:
    """A random column of the same layer (the layer-matched control)."""
    rng = np.random.default_rng(seed)
    pool = np.setdiff1d(np.arange(lm.d_mlp), [exclude])
    return int(rng.choice(pool))


@contextmanager
def perturb_column(lm: CausalLM, layer: int, dim: int, mode: str, std: float = 0.1,
                   seed: int = 0) -> Iterator[None]:
    """Add N(0, std) noise to (``noise``) or zero (``zero``) the down-projection column
    ``W_down[:, dim]`` of ``layer`` while the block runs; restored afterwards, even on error."""
    if mode not in MODES:
        raise LMError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    cols = lm.down_columns(layer)  # a view on the weight: (d_mlp, d_model)
    if not 0 <= dim < cols.shape[0]:
        raise LMError(f"column {dim} out of range 0..{cols.shape[0] - 1}")
    saved = cols[dim].clone()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        if mode == "noise":
            noise = torch.normal(0.0, std, size=(cols.shape[1],), generator=g)
            cols[dim] += noise.to(cols.device, cols.dtype)
        else:
            cols[dim] = 0
    try:
        yield
    finally:
        with torch.no_grad():
            cols[dim] = saved


def answers(lm: CausalLM, questions: Sequence[str], max_new_tokens: int = 100) -> list[str]:
    """Greedy answers to ``Question: ...\\n Answer:`` prompts (left-padded batch, KV cache)."""
    b = lm.batch([PROMPT.format(question=q) for q in questions], side="left")
    dev = lm.device
    with torch.inference_mode():
        out = lm.model.generate(input_ids=b.input_ids.to(dev),
                                attention_mask=b.attention_mask.to(dev),
                                max_new_tokens=max_new_tokens, do_sample=False,
                                pad_token_id=lm.pad_id())
    new = out[:, b.input_ids.shape[1]:]
    return [str(t) for t in lm.tokenizer.batch_decode(new, skip_special_tokens=True)]


def similarity(perturbed: Sequence[str], original: Sequence[str]) -> dict[str, float]:
    """Mean BLEU and ROUGE-L of perturbed answers against the original ones (the reference's
    argument order: the perturbed answer is the reference)."""
    pairs = list(zip(perturbed, original, strict=True))
    return {"bleu": float(np.mean([bleu(p, o) for p, o in pairs])),
            "rouge_l": float(np.mean([rouge_l(p, o) for p, o in pairs]))}


def concept_tokens(lm: CausalLM, concept: str) -> list[int]:
    """First token of the concept's word as it appears in text (`` dog``, `` Dog``, ``dog``)."""
    return sorted(set(lm.token_ids([f" {concept}", f" {concept.capitalize()}", concept])))


def mean_interval(values: Sequence[float]) -> dict[str, float]:
    """Mean and 95% t-interval over concepts."""
    from scipy.stats import t

    v = np.asarray(values, dtype=np.float64)
    half = (float(t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))
            if len(v) > 1 else float("nan"))
    return {"mean": float(v.mean()), "lo": float(v.mean() - half), "hi": float(v.mean() + half),
            "n": len(v)}


def validate(lm: CausalLM, qa: dict[str, list[str]], concepts: Sequence[str] | None = None,
             std: float = 0.1, n_unrelated: int = 5, max_new_tokens: int = 100, seed: int = 0,
             ) -> list[dict[str, object]]:
    """The notebook's concept-validation loop, per concept: locate its column, answer its own
    and unrelated questions before and after each perturbation of the column and of a random
    column of the same layer; BLEU / ROUGE-L of perturbed vs original answers."""
    names = list(qa) if concepts is None else list(concepts)
    unknown = [c for c in names if c not in qa]
    if unknown:
        raise LMError(f"no questions for {unknown}; concepts: {', '.join(qa)}")
    if len(qa) < n_unrelated + 1:
        raise LMError(f"{n_unrelated} unrelated concepts need {n_unrelated + 1} concepts in all")
    rng = np.random.default_rng(seed)
    rows: list[dict[str, object]] = []
    for ci, concept in enumerate(names):
        own = qa[concept]
        others = [c for c in qa if c != concept]
        picked = [str(c) for c in rng.choice(others, n_unrelated, replace=False)]
        unrelated = [q for c in picked for q in qa[c]][-len(own):]
        layer, dim, z = locate(lm, concept_tokens(lm, concept))
        ctrl = random_column(lm, layer, dim, seed + 1000 + ci)
        base = answers(lm, own + unrelated, max_new_tokens)
        row: dict[str, object] = {"concept": concept, "layer": layer, "dim": dim, "z": z,
                                  "control_dim": ctrl, "unrelated_concepts": picked,
                                  "original_answers": base[:len(own)]}
        for mode in MODES:
            for target, d in (("concept", dim), ("control", ctrl)):
                with perturb_column(lm, layer, d, mode, std, seed + ci):
                    after = answers(lm, own + unrelated, max_new_tokens)
                s_own = similarity(after[:len(own)], base[:len(own)])
                s_unr = similarity(after[len(own):], base[len(own):])
                row[f"{mode}_{target}"] = {"own_bleu": s_own["bleu"],
                                           "own_rouge_l": s_own["rouge_l"],
                                           "unrelated_bleu": s_unr["bleu"],
                                           "unrelated_rouge_l": s_unr["rouge_l"]}
                if target == "concept":
                    row[f"{mode}_answers"] = after[:len(own)]
        rows.append(row)
    return rows
