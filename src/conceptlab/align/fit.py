"""Fit a linear image-to-text map on captions: ridge regression or a CLIP-style contrastive loss.

Both read standardised image features ``z = (f - mu) / sigma`` (``mu``, ``sigma`` over the
training pairs) and produce a :class:`~conceptlab.encoders.linear.LinearMap`
``e = normalize(z W + b)`` into the text encoder's space (LiMBeR, Merullo et al., ICLR 2023,
sec. 2: a single linear projection between frozen encoders).

* **Ridge** (closed form): ``W = (Z^T Z + lam I)^{-1} Z^T (T - t_bar)``, ``b = t_bar``, over all
  (image, caption) pairs, i.e. least squares to the caption embeddings ``T`` with an l2
  penalty. One eigendecomposition of ``Z^T Z`` serves every ``lam``; ``lam = alpha *
  mean eigenvalue`` for ``alpha`` on a log grid.
* **Contrastive** (CLIP, Radford et al., ICML 2021, sec. 2.3 and Fig. 3): for a batch of
  images with one caption each, logits ``s_ij = exp(t) cos(e_i, c_j)`` and the symmetric
  InfoNCE loss ``(CE(s, P) + CE(s^T, P^T)) / 2``. ``P`` is the identity, except that captions
  whose *text* is the same count as positives of each other (factor-written captions repeat;
  treating a word-for-word match as a negative would push apart identical targets). The
  temperature ``t`` (logit scale) is **learned** by default, initialised at ``log(1/0.07)`` and
  clamped at ``log(100)`` as in CLIP; ``learn_temperature=False`` keeps it fixed at the
  initial value. ``W``, ``b`` and ``t`` are all in the AdamW optimizer (weight decay on ``W``
  only). Each epoch draws one caption per image (seeded); the epoch with the best validation
  score is kept (early stopping with ``patience``).

Model choice: every candidate (each ``alpha``; each contrastive configuration) is scored on
validation images carved from train only, by image-to-caption recall@5 over the validation
captions (ties: recall@1, then the mean cosine to the own captions); the best one wins.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from conceptlab.align.retrieval import caption_gallery, mean_own_cosine, recall_at_k
from conceptlab.encoders.linear import LinearMap
from conceptlab.errors import ConceptlabValueError
from conceptlab.utils.progress import progress

DEFAULT_ALPHAS = tuple(float(a) for a in np.logspace(-3, 2, 11))
DEFAULT_CONTRASTIVE = ({"lr": 1e-3, "weight_decay": 0.0}, {"lr": 1e-3, "weight_decay": 0.1},
                       {"lr": 3e-3, "weight_decay": 0.0}, {"lr": 3e-3, "weight_decay": 0.1})


@dataclass
class AlignData:
    """Images (one feature row each) with their captions embedded as distinct texts."""

    features: np.ndarray  # (N, d_img)
    texts: list[str]  # distinct caption texts
    text_emb: np.ndarray  # (M, d_text)
    owners: list[np.ndarray]  # per image: ids into ``texts`` of its captions

    def __post_init__(self) -> None:
        self.features = np.asarray(self.features, dtype=np.float32)
        self.text_emb = np.asarray(self.text_emb, dtype=np.float32)
        if self.features.ndim != 2 or len(self.features) != len(self.owners):
            raise ConceptlabValueError(
                f"{len(self.owners)} caption lists for image features of shape "
                f"{self.features.shape}")
        if self.text_emb.shape[0] != len(self.texts):
            raise ConceptlabValueError(
                f"{len(self.texts)} texts but {len(self.text_emb)} text embeddings")
        empty = [i for i, o in enumerate(self.owners) if len(o) == 0]
        if empty:
            raise ConceptlabValueError(
                f"{len(empty)} image(s) have no caption (e.g. item {empty[0]}); "
                "drop uncaptioned images first")

    @classmethod
    def build(cls, features: np.ndarray, captions: Sequence[Sequence[str]],
              embed: Callable[[list[str]], np.ndarray]) -> AlignData:
        """From features and captions per image; ``embed`` maps texts to text embeddings."""
        texts, owners = caption_gallery(captions)
        return cls(features, texts, embed(texts), owners)

    @property
    def n_pairs(self) -> int:
        return int(sum(len(o) for o in self.owners))

    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """(image index, text id) of every (image, caption) pair."""
        img = np.concatenate([np.full(len(o), i) for i, o in enumerate(self.owners)])
        return img.astype(np.int64), np.concatenate(self.owners).astype(np.int64)


@dataclass
class Candidate:
    """One fitted map with its validation scores."""

    method: str
    params: dict[str, Any]
    linear_map: LinearMap
    val: dict[str, float]
    fit_seconds: float
    history: list[dict[str, float]] = field(default_factory=list)

    def key(self) -> tuple[float, float, float]:
        return (self.val["R@5"], self.val["R@1"], self.val["own_cosine"])

    def summary(self) -> dict[str, Any]:
        return {"method": self.method, "params": self.params, "val": self.val,
                "fit_seconds": round(self.fit_seconds, 3)}


def score_map(linear_map: LinearMap, data: AlignData) -> dict[str, float]:
    """Validation scores of a map: recall@1/5 image->caption and mean cosine to own captions."""
    emb = linear_map(data.features)
    img, txt = data.pairs()
    return {**recall_at_k(emb, data.text_emb, data.owners, (1, 5)),
            "own_cosine": mean_own_cosine(emb[img], data.text_emb[txt])}


def standardizer(train: AlignData) -> tuple[np.ndarray, np.ndarray]:
    """Pair-weighted mean and standard deviation of the image features (sigma 1 where flat)."""
    img, _ = train.pairs()
    X = train.features[img].astype(np.float64)
    mu, sd = X.mean(0), X.std(0)
    return mu.astype(np.float32), np.where(sd < 1e-6, 1.0, sd).astype(np.float32)


def fit_ridge(train: AlignData, val: AlignData,
              alphas: Sequence[float] = DEFAULT_ALPHAS) -> list[Candidate]:
    """One ridge map per ``alpha`` (closed form; see the module docstring), scored on ``val``."""
    t0 = time.perf_counter()
    mu, sigma = standardizer(train)
    img, txt = train.pairs()
    n_per = np.bincount(img, minlength=len(train.features)).astype(np.float64)
    Z = (train.features.astype(np.float64) - mu) / sigma  # per image
    T = train.text_emb.astype(np.float64)
    t_bar = T[txt].mean(0)
    S = np.zeros((len(Z), T.shape[1]))
    np.add.at(S, img, T[txt])  # per image: sum of its caption embeddings
    G = Z.T @ (Z * n_per[:, None])  # sum over pairs of z z^T
    C = Z.T @ (S - n_per[:, None] * t_bar)  # sum over pairs of z (t - t_bar)^T
    evals, V = np.linalg.eigh(G)
    evals = np.clip(evals, 0.0, None)
    VC = V.T @ C
    scale = float(evals.mean()) or 1.0
    setup = time.perf_counter() - t0
    out = []
    for alpha in alphas:
        t1 = time.perf_counter()
        lam = float(alpha) * scale
        W = V @ (VC / (evals + lam)[:, None])
        lm = LinearMap(W, t_bar, mu, sigma, method="ridge",
                       info={"alpha": float(alpha), "lambda": lam})
        out.append(Candidate("ridge", {"alpha": float(alpha)}, lm, score_map(lm, val),
                             setup + time.perf_counter() - t1))
    return out


def _positive_targets(text_ids: torch.Tensor) -> torch.Tensor:
    same = (text_ids[:, None] == text_ids[None, :]).float()
    return same / same.sum(1, keepdim=True)


def fit_contrastive_one(train: AlignData, val: AlignData, *, lr: float = 1e-3,
                        weight_decay: float = 0.0, epochs: int = 60, batch_size: int = 256,
                        patience: int = 10, init_temperature: float = 0.07,
                        learn_temperature: bool = True, seed: int = 0,
                        show_progress: bool | None = None) -> Candidate:
    """One contrastive map (symmetric InfoNCE; see the module docstring), best epoch on ``val``."""
    t0 = time.perf_counter()
    mu, sigma = standardizer(train)
    gen = torch.Generator().manual_seed(int(seed))
    Z = torch.from_numpy((train.features - mu) / sigma).float()
    T = F.normalize(torch.from_numpy(train.text_emb).float(), dim=1)
    d_in, d_out = Z.shape[1], T.shape[1]
    W = torch.nn.Parameter(torch.randn(d_in, d_out, generator=gen) / np.sqrt(d_in))
    b = torch.nn.Parameter(torch.zeros(d_out))
    logit_scale = torch.nn.Parameter(torch.tensor(float(np.log(1.0 / init_temperature))),
                                     requires_grad=learn_temperature)
    groups = [{"params": [W], "weight_decay": weight_decay},
              {"params": [b], "weight_decay": 0.0}]
    if learn_temperature:
        groups.append({"params": [logit_scale], "weight_decay": 0.0})
    opt = torch.optim.AdamW(groups, lr=lr)
    max_scale = float(np.log(100.0))

    def current() -> LinearMap:
        return LinearMap(W.detach().numpy().copy(), b.detach().numpy().copy(), mu, sigma,
                         method="contrastive")

    best: tuple[tuple[float, float, float], LinearMap, int] | None = None
    history: list[dict[str, float]] = []
    stale = 0
    for epoch in progress(range(epochs), total=epochs, desc="fit contrastive map",
                          disable=None if show_progress is None else not show_progress):
        rng = np.random.default_rng([int(seed), epoch])
        pick = torch.tensor([int(o[rng.integers(len(o))]) for o in train.owners])
        order = torch.randperm(len(Z), generator=gen)
        total = 0.0
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            if len(idx) < 2:
                continue
            e = F.normalize(Z[idx] @ W + b, dim=1)
            ids = pick[idx]
            logits = logit_scale.exp() * e @ T[ids].T
            P = _positive_targets(ids)
            loss = 0.5 * (F.cross_entropy(logits, P) + F.cross_entropy(logits.T, P.T))
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                logit_scale.clamp_(max=max_scale)
            total += float(loss.detach()) * len(idx)
        lm = current()
        scores = score_map(lm, val)
        history.append({"epoch": epoch, "loss": total / len(order),
                        "temperature": float(torch.exp(-logit_scale.detach())), **scores})
        key = (scores["R@5"], scores["R@1"], scores["own_cosine"])
        if best is None or key > best[0]:
            best, stale = (key, lm, epoch), 0
        else:
            stale += 1
            if stale >= patience:
                break
    assert best is not None
    params = {"lr": lr, "weight_decay": weight_decay, "batch_size": batch_size,
              "init_temperature": init_temperature, "learn_temperature": learn_temperature,
              "seed": int(seed), "best_epoch": best[2], "epochs_run": len(history),
              "final_temperature": history[best[2]]["temperature"]}
    lm = best[1]
    lm.info = dict(params)
    return Candidate("contrastive", params, lm, score_map(lm, val), time.perf_counter() - t0,
                     history)


def fit_contrastive(train: AlignData, val: AlignData,
                    configs: Sequence[dict[str, Any]] = DEFAULT_CONTRASTIVE, *, seed: int = 0,
                    **common: Any) -> list[Candidate]:
    """One contrastive candidate per configuration (same seed for each)."""
    return [fit_contrastive_one(train, val, seed=seed, **{**common, **cfg}) for cfg in configs]


def select_candidate(candidates: Sequence[Candidate]) -> Candidate:
    """The candidate with the best validation recall@5 (ties: recall@1, own cosine)."""
    if not candidates:
        raise ConceptlabValueError("no candidate maps to choose from")
    return max(candidates, key=lambda c: c.key())
