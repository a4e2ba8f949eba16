"""The TCAV test (Kim et al., ICML 2018, sec. 3.3-3.5) on arrays, and the layer taps it reads.

A ``LayerTarget`` gives, for a list of inputs, their activations at one layer (one row each)
and the gradients of one class logit with respect to that layer's output, reduced the same
way, so that ``gradient . CAV`` is the directional derivative of the paper. Two taps:

* ``TappedTarget``: any torch model split at a hook point (``discover.sources.TappedModel``);
  ``reduce="flatten"`` (the paper's and the reference code's choice: the whole map is the
  activation) or ``"mean"`` (a pooled direction added at every position; the gradient is then
  summed over positions: the derivative of the logit when every position moves along v);
* ``LMTarget``: a language model's hook point (``lm.model.CausalLM``); the class logit is the
  next-token logit of a class token at the last real token; ``reduce="last"`` reads that token.

``run_test`` then does the whole experiment on the arrays: for each concept and each of the
N random counter-example sets R_1..R_N a CAV (concept vs R_i) and its TCAV score; the random
baseline is N CAVs R_0 vs R_i; a two-sided t-test per concept and layer, Holm-corrected over
every (concept, layer) test of the run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from conceptlab.errors import ConceptlabValueError
from conceptlab.tcav.cavs import CAV_METHODS, fit_cav
from conceptlab.tcav.stats import holm, tcav_score, two_sided_ttest

#: the paper's minimum: statistics over many random counter-example sets
MIN_RANDOM_RUNS = 10


class TCAVError(ConceptlabValueError):
    """Raised for too few random runs, empty example sets or a bad reduction."""


class LayerTarget(Protocol):
    """A layer of a model, read as activations and as gradients of one class logit."""

    layer: str

    def activations(self, items: Sequence[Any]) -> np.ndarray:
        """(N, D) activations of ``items`` at the layer."""
        ...

    def gradients(self, items: Sequence[Any], target: int) -> np.ndarray:
        """(N, D) gradients of logit ``target`` w.r.t. the layer, reduced as the activations."""
        ...


def _reduce_act(z: torch.Tensor, reduce: str) -> torch.Tensor:
    if reduce == "flatten" or z.dim() <= 2:
        return z.reshape(z.shape[0], -1)
    return z.mean(dim=tuple(range(2, z.dim()))) if z.dim() == 4 else z.mean(dim=1)


def _reduce_grad(g: torch.Tensor, reduce: str) -> torch.Tensor:
    if reduce == "flatten" or g.dim() <= 2:
        return g.reshape(g.shape[0], -1)
    return g.sum(dim=tuple(range(2, g.dim()))) if g.dim() == 4 else g.sum(dim=1)


@dataclass
class TappedTarget:
    """``TappedModel`` (input -> latent at ``layer`` -> logits) as a ``LayerTarget``."""

    tapped: Any  # conceptlab.discover.sources.TappedModel (kept loose: no import cycle)
    reduce: str = "flatten"
    batch_size: int = 32
    layer: str = field(init=False)

    def __post_init__(self) -> None:
        if self.reduce not in ("flatten", "mean"):
            raise TCAVError(f"reduce must be 'flatten' (the paper) or 'mean', got "
                            f"{self.reduce!r}")
        self.layer = self.tapped.layer

    def _batches(self, items: Sequence[Any]) -> list[Sequence[Any]]:
        if len(items) == 0:
            raise TCAVError("no inputs to read at the layer")
        return [items[s:s + self.batch_size] for s in range(0, len(items), self.batch_size)]

    def activations(self, items: Sequence[Any]) -> np.ndarray:
        parts = [_reduce_act(self.tapped.latent(self.tapped.preprocess(b)), self.reduce)
                 for b in self._batches(items)]
        return torch.cat(parts).numpy().astype(np.float64)

    def gradients(self, items: Sequence[Any], target: int) -> np.ndarray:
        parts = []
        for b in self._batches(items):
            x = self.tapped.preprocess(b)
            z = self.tapped.latent(x).detach().requires_grad_(True)
            with torch.enable_grad():
                logits = self.tapped.logits_from_latent(z, x)
                if not 0 <= target < logits.shape[1]:
                    raise TCAVError(f"class index {target} outside the model's "
                                    f"{logits.shape[1]} outputs")
                (grad,) = torch.autograd.grad(logits[:, target].sum(), z)
            parts.append(_reduce_grad(grad, self.reduce))
        return torch.cat(parts).numpy().astype(np.float64)


@dataclass
class LMTarget:
    """A causal LM's hook point as a ``LayerTarget``; the class logit is the next-token logit
    of token ``target`` after each text's last real token."""

    lm: Any  # conceptlab.lm.model.CausalLM
    layer: str
    reduce: str = "last"
    batch_size: int = 16

    def __post_init__(self) -> None:
        if self.reduce not in ("last", "mean"):
            raise TCAVError(f"LM reduce must be 'last' or 'mean', got {self.reduce!r}")
        self.lm.resolve(self.layer)

    def activations(self, items: Sequence[Any]) -> np.ndarray:
        if len(items) == 0:
            raise TCAVError("no texts to read at the layer")
        acts = self.lm.activations(list(items), [self.layer], reduce=self.reduce,
                                   batch_size=self.batch_size, desc=f"texts @ {self.layer}")
        return np.asarray(acts[self.layer], np.float64)

    def gradients(self, items: Sequence[Any], target: int) -> np.ndarray:
        from conceptlab.lm.model import hooked

        if len(items) == 0:
            raise TCAVError("no texts to read at the layer")
        parts = []
        for s in range(0, len(items), self.batch_size):
            b = self.lm.batch(list(items[s:s + self.batch_size]))
            leaf: list[torch.Tensor] = []

            def tap(h: torch.Tensor, leaf: list[torch.Tensor] = leaf) -> torch.Tensor:
                z = h.detach().requires_grad_(True)
                leaf.append(z)
                return z

            with torch.enable_grad(), hooked(self.lm, edits={self.layer: tap}):
                logits = self.lm.forward(b)
                last = b.last_index().to(logits.device)
                picked = logits[torch.arange(len(last)), last, target]
                (grad,) = torch.autograd.grad(picked.sum(), leaf[0])
            grad = grad.float().cpu()
            if self.reduce == "last":
                row = grad[torch.arange(len(last)), b.last_index()]
            else:
                row = (grad * b.attention_mask.unsqueeze(-1).float()).sum(1)
            parts.append(row)
        return torch.cat(parts).numpy().astype(np.float64)


def draw_random_sets(pool_size: int, n_sets: int, set_size: int, seed: int
                     ) -> list[np.ndarray]:
    """``n_sets`` seeded random sets of ``set_size`` pool positions (no repeats within a set)."""
    if set_size < 2 or set_size > pool_size:
        raise TCAVError(f"random sets of {set_size} examples cannot be drawn from a pool of "
                        f"{pool_size}; give a larger pool or a smaller set size")
    rng = np.random.default_rng(seed)
    return [np.sort(rng.choice(pool_size, set_size, replace=False)) for _ in range(n_sets)]


@dataclass
class LayerData:
    """One layer's arrays: concept sets, random sets R_0..R_N and the class's gradients."""

    concepts: Mapping[str, np.ndarray]
    randoms: Sequence[np.ndarray]
    gradients: np.ndarray


def run_test(layers: Mapping[str, LayerData], method: str = "svm", alpha: float = 0.05,
             seed: int = 0, on_cav: Callable[[str, str, int, float], None] | None = None
             ) -> dict[str, Any]:
    """The TCAV test over every (concept, layer); returns rows and the CAV fitting time.

    Each row: ``concept``, ``layer``, ``scores`` (N, concept vs R_i), ``random_scores``
    (N, R_0 vs R_i), their means and standard deviations, ``p`` (two-sided t-test),
    ``p_holm`` (Holm over all rows), ``significant`` (p_holm < alpha), ``cav_accuracy``
    (mean held-out accuracy of the concept's CAVs) and ``directions`` (the N unit CAVs, for
    comparisons between learners). ``on_cav(concept, layer, i, seconds)`` sees each fit.
    """
    if method not in CAV_METHODS:
        raise TCAVError(f"unknown CAV method {method!r}; choose from {', '.join(CAV_METHODS)}")
    if not 0 < alpha < 1:
        raise TCAVError(f"alpha must be in (0, 1), got {alpha}")
    rows: list[dict[str, Any]] = []
    cav_seconds = 0.0
    t0 = time.perf_counter()
    for layer, data in layers.items():
        n = len(data.randoms) - 1
        if n < MIN_RANDOM_RUNS:
            raise TCAVError(f"TCAV needs >= {MIN_RANDOM_RUNS} random runs (R_0 plus "
                            f"{MIN_RANDOM_RUNS} counter-example sets), got {n}")
        if not data.concepts:
            raise TCAVError("no concept example sets")
        grads = data.gradients
        random_scores = []
        for i in range(1, n + 1):
            fit = fit_cav(data.randoms[0], data.randoms[i], method, seed + i)
            cav_seconds += fit.seconds
            random_scores.append(tcav_score(grads, fit.direction))
        for concept, acts in data.concepts.items():
            scores, accs, dirs = [], [], []
            for i in range(1, n + 1):
                fit = fit_cav(acts, data.randoms[i], method, seed + i)
                cav_seconds += fit.seconds
                if on_cav is not None:
                    on_cav(concept, layer, i, fit.seconds)
                scores.append(tcav_score(grads, fit.direction))
                accs.append(fit.accuracy)
                dirs.append(fit.direction)
            rows.append({"concept": concept, "layer": layer, "scores": scores,
                         "random_scores": random_scores,
                         "mean": float(np.mean(scores)), "std": float(np.std(scores, ddof=1)),
                         "random_mean": float(np.mean(random_scores)),
                         "random_std": float(np.std(random_scores, ddof=1)),
                         "p": two_sided_ttest(scores, random_scores),
                         "cav_accuracy": float(np.nanmean(accs)) if np.isfinite(accs).any()
                         else float("nan"),
                         "directions": np.stack(dirs)})
    adjusted = holm([r["p"] for r in rows])
    for r, q in zip(rows, adjusted, strict=True):
        r["p_holm"] = float(q)
        r["significant"] = bool(q < alpha)
    return {"method": method, "alpha": alpha, "correction": "holm", "rows": rows,
            "cav_seconds": cav_seconds, "seconds": time.perf_counter() - t0}
