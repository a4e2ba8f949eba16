"""Steering measured against prompting, in the spirit of AxBench (Wu et al., 2025).

For each concept, the same instructions are answered (greedy, batched) by the unsteered model,
by the model steered with each method's direction over a strength sweep, and by the model
prompted to talk about the concept ("... Talk about X." appended to the instruction). Each
answer is scored by judges that never see the method:

* ``concept``: cosine of the answer's sentence embedding with the concept's description
  (MiniLM in the benchmark; any ``embed(texts) -> (N, d)`` here);
* ``instruction``: cosine of the answer with the instruction it answers;
* ``fluency``: ``exp(nll_base - nll)`` capped at 1, where ``nll`` is the answer's mean token
  negative log-likelihood under the *unsteered* model given the plain instruction, and
  ``nll_base`` the unsteered answer's;
* ``aggregate``: the harmonic mean of the three (each clipped to [0, 1]), AxBench's way of
  making a method pay for fluency and instruction-following lost to the concept.

The strength of each method is chosen per concept on selection instructions; the table reports
held-out instructions only. Directions (``mean_diff``, ``pca_diff``, ``probe``) come from
contrast sentences (the concept's words against other concepts' words in the same templates);
``direct_path`` is the concept words' direct-path observable vector (``lm.observables``).
Steering adds ``strength * s * v`` (``v`` unit, ``s`` the median token norm at the layer) to the
residual stream at every position.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from conceptlab.lm.concept_vectors import mean_interval
from conceptlab.lm.edits import Edit
from conceptlab.lm.model import CausalLM, LMError

Embed = Callable[[Sequence[str]], np.ndarray]


@dataclass(frozen=True)
class Concept:
    name: str
    description: str
    words: tuple[str, ...]


CONCEPTS: tuple[Concept, ...] = (
    Concept("dogs", "dogs, puppies and their barking", ("dog", "puppy", "leash", "bark")),
    Concept("music", "music, songs and musical instruments", ("music", "song", "guitar", "piano")),
    Concept("ocean", "the ocean, the sea and waves", ("ocean", "sea", "waves", "beach")),
    Concept("space", "outer space, stars and planets", ("space", "stars", "planet", "rocket")),
    Concept("football", "football, players and matches", ("football", "goal", "match", "team")),
    Concept("weather", "rain, storms and the weather", ("rain", "storm", "weather", "clouds")),
    Concept("money", "money, banks and prices", ("money", "bank", "price", "cash")),
    Concept("computers", "computers, software and programming",
            ("computer", "software", "code", "program")),
    Concept("gardens", "gardens, flowers and plants", ("garden", "flowers", "plants", "seeds")),
    Concept("medicine", "medicine, doctors and hospitals",
            ("doctor", "hospital", "medicine", "patient")),
    Concept("fire", "fire, flames and smoke", ("fire", "flames", "smoke", "burning")),
    Concept("cooking", "cooking, recipes and food", ("cooking", "recipe", "food", "kitchen")),
)

TEMPLATES = ("I keep thinking about the {}.", "She told me a long story about the {}.",
             "Everyone was talking about the {} today.", "The {} was the best part of the day.",
             "We read an article about the {}.", "My friend is obsessed with the {}.")

INSTRUCTIONS = ("Describe your ideal weekend.", "Write a short note to a friend.",
                "Give me one tip for a job interview.", "Tell me about your morning.",
                "Explain how to stay productive at work.", "Write two sentences about a city.")


def contrast_texts(concept: Concept, others: Sequence[Concept], seed: int = 0
                   ) -> tuple[list[str], list[str]]:
    """Paired sentences: the concept's words in each template, and another concept's word in
    the same template (so ``pos[i] - neg[i]`` is one contrast pair)."""
    if not others:
        raise LMError("contrast sentences need at least one other concept")
    rng = np.random.default_rng(seed)
    pos, neg = [], []
    for t in TEMPLATES:
        for w in concept.words:
            other = others[int(rng.integers(len(others)))]
            pos.append(t.format(w))
            neg.append(t.format(other.words[int(rng.integers(len(other.words)))]))
    return pos, neg


def directions(X_pos: np.ndarray, X_neg: np.ndarray) -> dict[str, np.ndarray]:
    """Unit mean-difference, paired-PCA and logistic-probe directions from paired rows."""
    from sklearn.linear_model import LogisticRegression

    def unit(v: np.ndarray) -> np.ndarray:
        n = float(np.linalg.norm(v))
        if n == 0 or not np.isfinite(n):
            raise LMError("zero steering direction")
        return (v / n).astype(np.float32)

    md = X_pos.mean(0) - X_neg.mean(0)
    D = X_pos - X_neg
    _, _, vt = np.linalg.svd(D, full_matrices=False)
    pc = vt[0] if float(vt[0] @ md) >= 0 else -vt[0]
    X = np.concatenate([X_pos, X_neg])
    y = np.r_[np.ones(len(X_pos)), np.zeros(len(X_neg))]
    mu, sd = X.mean(0), X.std(0) + 1e-6
    w = LogisticRegression(C=1.0, max_iter=2000).fit((X - mu) / sd, y).coef_[0] / sd
    return {"mean_diff": unit(md), "pca_diff": unit(pc), "probe": unit(w)}


def chat(lm: CausalLM, instruction: str) -> str:
    """The instruction in the tokenizer's chat template (plain text with a newline without)."""
    tok = lm.tokenizer
    if getattr(tok, "chat_template", None):
        return str(tok.apply_chat_template([{"role": "user", "content": instruction}],
                                           add_generation_prompt=True, tokenize=False))
    return f"{instruction}\n"


def row_add(point: str, vector: np.ndarray, coefs: Sequence[float]) -> Edit:
    """Add ``coefs[r] * vector`` to row ``r`` of the batch at every position."""
    v = torch.as_tensor(np.asarray(vector, dtype=np.float32))
    c = torch.as_tensor(np.asarray(coefs, dtype=np.float32))

    def fn(h: torch.Tensor) -> torch.Tensor:
        if h.shape[0] != len(c):
            raise LMError(f"{len(c)} coefficients for a batch of {h.shape[0]}")
        return h + c.to(h.device, h.dtype)[:, None, None] * v.to(h.device, h.dtype)

    return Edit(point, fn, {"kind": "row_add", "point": point, "coefs": [float(x) for x in c]})


def generate(lm: CausalLM, prompts: Sequence[str], max_new_tokens: int = 24,
             edits: Any = None) -> list[str]:
    """Greedy continuations of a batch: left padding, mask-derived positions, a KV cache, and
    the edits acting on every new position (the same tokens as ``CausalLM.generate`` per prompt,
    which reruns the full sequence each step)."""
    from conceptlab.lm.model import hooked

    b = lm.batch([lm.encode(p) for p in prompts], side="left")
    dev = lm.device
    ids, mask = b.input_ids.to(dev), b.attention_mask.to(dev)
    pos = b.position_ids.to(dev)
    eos = getattr(lm.tokenizer, "eos_token_id", None)
    new: list[list[int]] = [[] for _ in prompts]
    done = [False] * len(prompts)
    past = None
    with torch.inference_mode(), hooked(lm, edits=edits):
        for _ in range(max_new_tokens):
            out = lm.model(input_ids=ids, attention_mask=mask, position_ids=pos,
                           cache=past, use_cache=True)
            past = out.past_key_values
            nxt = out.logits[:, -1].argmax(-1)
            for r, t in enumerate(nxt.tolist()):
                if not done[r]:
                    if eos is not None and t == eos:
                        done[r] = True
                    else:
                        new[r].append(int(t))
            if all(done):
                break
            ids = nxt[:, None]
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], 1)
            pos = pos[:, -1:] + 1
    return [str(lm.tokenizer.decode(n, skip_special_tokens=True)) for n in new]


def answer_nll(lm: CausalLM, prompts: Sequence[str], answers: Sequence[str],
               batch_size: int = 16) -> np.ndarray:
    """Mean negative log-likelihood of each answer's tokens under the unedited model."""
    out = []
    for s in range(0, len(prompts), batch_size):
        ps, ans = prompts[s:s + batch_size], answers[s:s + batch_size]
        p_ids = [lm.encode(p) for p in ps]
        a_ids = [list(lm.tokenizer(a, add_special_tokens=False)["input_ids"]) or [lm.pad_id()]
                 for a in ans]
        logits = lm.run([p + a for p, a in zip(p_ids, a_ids, strict=True)])[0]
        lp = torch.log_softmax(logits.float(), -1)
        for r, (p, a) in enumerate(zip(p_ids, a_ids, strict=True)):
            idx = torch.arange(len(p) - 1, len(p) + len(a) - 1)
            out.append(float(-lp[r, idx, torch.tensor(a)].mean()))
    return np.array(out)


def harmonic(*xs: np.ndarray) -> np.ndarray:
    arr = np.clip(np.stack(xs), 1e-6, 1.0)
    return len(xs) / (1.0 / arr).sum(0)


def score(embed: Embed, answers: Sequence[str], concept: str, instructions: Sequence[str],
          nll: np.ndarray, nll_base: np.ndarray) -> dict[str, np.ndarray]:
    """The judges' scores for each answer (see the module docstring)."""
    E = embed([*answers, concept, *instructions])
    E = E / (np.linalg.norm(E, axis=1, keepdims=True) + 1e-12)
    A, c, ins = E[:len(answers)], E[len(answers)], E[len(answers) + 1:]
    conc = A @ c
    inst = (A * ins).sum(1)
    flu = np.minimum(1.0, np.exp(nll_base - nll))
    return {"concept": conc, "instruction": inst, "fluency": flu, "nll": nll,
            "aggregate": harmonic(np.clip(conc, 0, 1), np.clip(inst, 0, 1), flu)}


def choose(scores: Mapping[float, Mapping[str, np.ndarray]], select: np.ndarray) -> float:
    """The strength with the best mean aggregate on the selection instructions."""
    if not scores:
        raise LMError("no strengths to choose from")
    return max(scores, key=lambda s: float(np.mean(scores[s]["aggregate"][select])))


def evaluate(lm: CausalLM, embed: Embed, *, concepts: Sequence[Concept] = CONCEPTS,
             instructions: Sequence[str] = INSTRUCTIONS, layer: int | None = None,
             strengths: Sequence[float] = (0.25, 0.5, 1.0, 2.0), n_select: int = 3,
             max_new_tokens: int = 24, seed: int = 0) -> dict[str, Any]:
    """Every method (and prompting) on every concept; strengths chosen on the first
    ``n_select`` instructions, scores reported on the rest (intervals over concepts)."""
    from conceptlab.lm.observables import direct_path_vector

    if len(concepts) < 2:
        raise LMError("steering against prompting needs at least two concepts")
    if not 0 < n_select < len(instructions):
        raise LMError(f"n_select must leave held-out instructions; got {n_select} of "
                      f"{len(instructions)}")
    layer = lm.n_layers // 3 if layer is None else layer
    point = f"blocks.{layer}.hook_resid_post"
    prompts = [chat(lm, i) for i in instructions]
    select = np.arange(len(instructions)) < n_select
    base = generate(lm, prompts, max_new_tokens)
    nll_base = answer_nll(lm, prompts, base)
    _, acts, b = lm.run(prompts, record=[point])
    norms = acts[point].float().norm(dim=-1)[b.attention_mask.bool()]
    scale = float(norms.median())
    per: list[dict[str, Any]] = []
    for ci, concept in enumerate(concepts):
        others = [c for c in concepts if c is not concept]
        pos, neg = contrast_texts(concept, others, seed + ci)
        X = lm.activations(pos + neg, [point], reduce="mean", desc=concept.name)[point]
        dirs = directions(X[:len(pos)], X[len(pos):])
        dirs["direct_path"] = direct_path_vector(lm, [f" {w}" for w in concept.words])
        row: dict[str, Any] = {"concept": concept.name, "methods": {}}
        s_base = score(embed, base, concept.description, instructions, nll_base, nll_base)
        row["methods"]["unsteered"] = {"strength": 0.0, "test": _test(s_base, ~select),
                                       "example": base[-1]}
        ask = [chat(lm, f"{i} Talk about {concept.name}.") for i in instructions]
        ans = generate(lm, ask, max_new_tokens)
        s_p = score(embed, ans, concept.description, instructions,
                    answer_nll(lm, prompts, ans), nll_base)
        row["methods"]["prompting"] = {"strength": 0.0, "test": _test(s_p, ~select),
                                       "example": ans[-1]}
        for method, v in dirs.items():
            coefs = [s * scale for s in strengths for _ in prompts]
            outs = generate(lm, prompts * len(strengths), max_new_tokens,
                            edits=[row_add(point, v, coefs)])
            by: dict[float, dict[str, np.ndarray]] = {}
            for k, s in enumerate(strengths):
                a = outs[k * len(prompts):(k + 1) * len(prompts)]
                by[s] = score(embed, a, concept.description, instructions,
                              answer_nll(lm, prompts, a), nll_base)
                by[s]["_text"] = np.array(a, dtype=object)
            best = choose(by, select)
            row["methods"][method] = {"strength": best, "test": _test(by[best], ~select),
                                      "example": str(by[best]["_text"][-1]),
                                      "sweep": {str(s): _test(by[s], ~select) for s in by}}
        per.append(row)
    methods = list(per[0]["methods"])
    summary = {m: {k: mean_interval([r["methods"][m]["test"][k] for r in per])
                   for k in ("concept", "instruction", "fluency", "aggregate")} for m in methods}
    vs_prompt = {m: mean_interval([r["methods"][m]["test"]["aggregate"]
                                   - r["methods"]["prompting"]["test"]["aggregate"] for r in per])
                 for m in methods if m != "prompting"}
    return {"point": point, "scale": scale, "strengths": list(strengths),
            "instructions": list(instructions), "n_select": n_select,
            "max_new_tokens": max_new_tokens, "concepts": [c.name for c in concepts],
            "per_concept": per, "summary": summary, "aggregate_minus_prompting": vs_prompt}


def _test(s: Mapping[str, np.ndarray], rows: np.ndarray) -> dict[str, float]:
    return {k: float(np.mean(s[k][rows])) for k in ("concept", "instruction", "fluency",
                                                    "aggregate", "nll")}
