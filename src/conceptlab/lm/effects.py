"""What an edit does: its intended effect and its side effects, measured.

Side effects on unrelated running text (``side_effects``): the mean next-token
KL(P_base || P_edited) over every position, and the perplexity before and after, the two
numbers steering papers report for fluency damage (e.g. Turner et al., 2023, ActAdd, section
4; Arditi et al., 2024, section 4.1).

Intended effects: the log of the probability mass an edit puts on a concept's tokens at the
next position of neutral prompts (``token_mass``), a probe's held-out AUROC after an ablation
(``lm.ablation``), and greedy sample generations.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from conceptlab.lm.datasets import PromptSet
from conceptlab.lm.model import CausalLM, Edits, LMError


@dataclass
class Baseline:
    """Unedited next-token log-probabilities of a text set, computed once per sweep."""

    texts: list[str]
    logp: torch.Tensor  # (M, vocab)
    targets: torch.Tensor  # (M,)

    @classmethod
    def of(cls, lm: CausalLM, texts: Sequence[str]) -> Baseline:
        logp, targets, _ = lm.token_logprobs(list(texts))
        return cls(list(texts), logp, targets)

    @property
    def perplexity(self) -> float:
        return float(torch.exp(-self.logp.gather(1, self.targets[:, None]).mean()))


def side_effects(lm: CausalLM, base: Baseline, edits: Edits) -> dict[str, float]:
    """Mean next-token KL(base || edited) in nats, perplexity before / after, and their ratio."""
    logp, targets, _ = lm.token_logprobs(base.texts, edits=edits)
    if not torch.equal(targets, base.targets):
        raise LMError("the edited run saw other tokens than the baseline")
    kl = (base.logp.exp() * (base.logp - logp)).sum(1)
    ppl = float(torch.exp(-logp.gather(1, targets[:, None]).mean()))
    return {"kl": float(kl.mean()), "kl_max": float(kl.max()), "ppl_base": base.perplexity,
            "ppl_edit": ppl, "ppl_ratio": ppl / base.perplexity}


def concept_words(prompts: PromptSet) -> tuple[list[str], list[str]]:
    """The words that tell a contrast pair's positive from its negative (with a leading space).

    For ``I saw a cat ...`` vs ``I saw a table ...`` that is `` cat`` and `` table``: the
    concept's own tokens, read from the data rather than typed in.
    """
    pos_words: list[str] = []
    neg_words: list[str] = []
    for i, j in prompts.pairs():
        a, b = prompts.texts[int(i)].split(), prompts.texts[int(j)].split()
        if len(a) != len(b):
            continue
        diff = [(x, y) for x, y in zip(a, b, strict=True) if x != y]
        if len(diff) == 1:
            x, y = (w.strip(".,!?;:") for w in diff[0])
            if x and y:
                pos_words.append(" " + x)
                neg_words.append(" " + y)
    return list(dict.fromkeys(pos_words)), list(dict.fromkeys(neg_words))


def token_mass(lm: CausalLM, prompts: Sequence[str], token_ids: Sequence[int],
               edits: Edits = None) -> np.ndarray:
    """log of the next-token probability mass on ``token_ids``, per prompt."""
    if not len(token_ids):
        raise LMError("no concept tokens to measure")
    lp = lm.next_token_logprobs(list(prompts), edits=edits)
    ids = torch.as_tensor(sorted(set(int(t) for t in token_ids)))
    return torch.logsumexp(lp[:, ids], dim=1).numpy()


def split_indices(prompts: PromptSet, test_fraction: float = 0.3, seed: int = 0,
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Seeded stratified train / held-out split that keeps groups (contrast pairs) together."""
    rng = np.random.default_rng(seed)
    keys = prompts.groups if prompts.groups is not None else [str(i) for i in range(len(prompts))]
    uniq = sorted(set(keys))
    held = set(rng.permutation(uniq)[: max(1, round(test_fraction * len(uniq)))].tolist())
    test = np.asarray([i for i, g in enumerate(keys) if g in held], dtype=np.int64)
    train = np.asarray([i for i, g in enumerate(keys) if g not in held], dtype=np.int64)
    for name, idx in (("train", train), ("held-out", test)):
        if len(np.unique(prompts.labels[idx])) < 2:
            raise LMError(f"{prompts.name}: the {name} part has one class only; more prompts?")
    return train, test
