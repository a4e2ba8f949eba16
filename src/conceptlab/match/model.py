"""An explicit concept matcher: items embedded into a space whose dimensions are named concepts.

After SESA (Bogdanova & Yazdani, "SESA: Supervised Explicit Semantic Analysis", LinkedIn,
2019): an item's representation ``f(x)`` is compared with a matrix ``E`` of concept embeddings,
one row per named concept (skills there), the explicit vector is ``e(x) = relu(E f(x))``, two
items match by the cosine of their explicit vectors, and ``E`` is trained with a supervised
relevance objective, so that why two items match is the concepts they share.

What is the same here and what is smaller: the encoder is frozen (conceptlab works on cached
embeddings; SESA trains its RNN encoder end to end), so ``f(x)`` is the unit-normalised cached
embedding; ``E`` starts from a :class:`~conceptlab.concepts.ConceptBank` (concept texts
through the same encoder) and is trained; each unit is standardised on the training scores
and gets a learned gain and threshold,

    u_k(x) = a_k * (<normalize(x), E_k> - m_k) / s_k + b_k,     e_k(x) = relu(u_k(x)),

and the objective is pairwise (RankNet, Burges et al. 2005): for an anchor, a relevant item
(same class) must outscore an irrelevant one, ``softplus((c(a, n) - c(a, p)) / tau)`` averaged
over every such triple in a batch, with ``c`` the cosine of explicit vectors. Because ``E``
moves, unit k can drift away from concept k; conceptlab's grounding term
``ground * (1 - mean_k corr_batch(u_k, S_k))`` (``S_k`` the score of the bank's fixed concept
k) keeps it near, and :func:`conceptlab.match.audit.audit_matcher` measures whether it did.

``tied=False`` gives the control: the same layer, size, loss and training with ``E`` drawn at
random and no grounding (a dense learned projection whose dimensions have no names).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from conceptlab.concepts.bank import ConceptBank
from conceptlab.errors import ConceptlabValueError
from conceptlab.match.ranking import cosine_matrix, retrieval_metrics
from conceptlab.utils.io import atomic_dir
from conceptlab.utils.saved import SavedKind, read_saved, write_saved
from conceptlab.utils.threads import threads_for, torch_threads

MATCHER_FORMAT = 1


class MatchError(ConceptlabValueError):
    """Bad input to a matcher: shapes, labels or settings."""


#: ``matcher.json`` (config, seed, training record) + ``matcher.safetensors`` (its state)
SAVED_MATCHER = SavedKind("explicit_matcher", (MATCHER_FORMAT,), "matcher", legacy=True,
                          error=MatchError)


@dataclass(frozen=True)
class MatchConfig:
    """Training settings of an explicit matcher (all recorded)."""

    epochs: int = 60
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 1e-4
    temperature: float = 0.1
    ground: float = 1.0
    patience: int = 10
    select_k: int = 10  # validation nDCG@k picks the epoch

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "patience", "select_k"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise MatchError(f"match setting {name} must be a positive integer, got {v!r}")
        for name in ("lr", "temperature"):
            if not float(getattr(self, name)) > 0:
                raise MatchError(f"match setting {name} must be positive")
        for name in ("weight_decay", "ground"):
            if not float(getattr(self, name)) >= 0:
                raise MatchError(f"match setting {name} must be >= 0")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MatchConfig:
        known = set(cls.__dataclass_fields__)
        bad = sorted(set(d) - known)
        if bad:
            raise MatchError(f"unknown match setting(s) {bad}; known: {sorted(known)}")
        return replace(cls(), **d)


def _unit_rows(X: np.ndarray) -> np.ndarray:
    x = np.asarray(X, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _batch_corr(u: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    uc = u - u.mean(0, keepdim=True)
    sc = s - s.mean(0, keepdim=True)
    return (uc * sc).sum(0) / (uc.norm(dim=0) * sc.norm(dim=0)).clamp_min(1e-8)


def pairwise_ranking_loss(h: torch.Tensor, y: torch.Tensor, temperature: float) -> torch.Tensor:
    """RankNet over every (anchor, relevant, irrelevant) triple in the batch: the mean of
    ``softplus((cos(a, n) - cos(a, p)) / temperature)``; 0 when a batch has no triple."""
    hn = h / h.norm(dim=1, keepdim=True).clamp_min(1e-8)
    c = hn @ hn.T
    same = y[:, None] == y[None, :]
    eye = torch.eye(len(y), dtype=torch.bool)
    pos = same & ~eye
    neg = ~same
    diff = (c[:, None, :] - c[:, :, None]) / temperature  # [a, p, n] = c(a,n) - c(a,p)
    mask = pos[:, :, None] & neg[:, None, :]
    if not mask.any():
        return h.sum() * 0.0
    return torch.nn.functional.softplus(diff[mask]).mean()


class ExplicitMatcher:
    """``e(x) = relu(a * (normalize(x) E^T - m) / s + b)``, matched by cosine; see the module."""

    def __init__(self, bank: ConceptBank, config: MatchConfig | None = None, *,
                 tied: bool = True, seed: int = 0) -> None:
        self.bank = bank
        self.config = config or MatchConfig()
        self.tied = bool(tied)
        self.seed = int(seed)
        K, D = bank.vectors.shape
        if tied:
            self.E = bank.vectors.astype(np.float32).copy()
        else:
            rng = np.random.default_rng([self.seed, 0xDE15E])
            self.E = _unit_rows(rng.standard_normal((K, D)).astype(np.float32))
        self.mean = np.zeros(K, np.float32)
        self.std = np.ones(K, np.float32)
        self.gain = np.ones(K, np.float32)
        self.bias = np.zeros(K, np.float32)
        self.training_: dict[str, Any] = {}

    @property
    def names(self) -> list[str]:
        return list(self.bank.names)

    def _check(self, X: np.ndarray) -> np.ndarray:
        x = np.asarray(X, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.bank.dim:
            raise MatchError(f"inputs of shape {x.shape} do not match the bank's dimension "
                             f"{self.bank.dim}")
        if not np.isfinite(x).all():
            raise MatchError("inputs contain NaN or infinity")
        return x

    def units(self, X: np.ndarray) -> np.ndarray:
        """Unit pre-activations ``u`` (N x K): unit k is meant to track concept k's score."""
        raw = _unit_rows(self._check(X)) @ self.E.T
        return (self.gain * (raw - self.mean) / self.std + self.bias).astype(np.float32)

    def embed(self, X: np.ndarray) -> np.ndarray:
        """Explicit vectors ``e = relu(u)`` (N x K), one named dimension per concept."""
        return np.maximum(self.units(X), 0.0)

    def similarity(self, Q: np.ndarray, G: np.ndarray) -> np.ndarray:
        return cosine_matrix(self.embed(Q), self.embed(G))

    def shared_concepts(self, q: np.ndarray, g: np.ndarray, top: int = 3) -> list[dict[str, Any]]:
        """Why ``g`` matches ``q``: the concepts whose products ``e_k(q) e_k(g) / (|e(q)||e(g)|)``
        (they sum to the match's cosine) are largest, largest first."""
        eq, eg = self.embed(np.atleast_2d(q))[0], self.embed(np.atleast_2d(g))[0]
        denom = max(float(np.linalg.norm(eq) * np.linalg.norm(eg)), 1e-12)
        contrib = eq * eg / denom
        order = np.argsort(-contrib, kind="stable")[:top]
        return [{"concept": self.bank.names[k], "contribution": float(contrib[k]),
                 "query": float(eq[k]), "match": float(eg[k])} for k in order if contrib[k] > 0]

    def fit(self, X: np.ndarray, y: np.ndarray, X_val: np.ndarray, y_val: np.ndarray
            ) -> ExplicitMatcher:
        """Train ``E``, gains and thresholds on (X, y); keep the best validation-nDCG epoch."""
        x = _unit_rows(self._check(X))
        xv = self._check(X_val)
        yy, yv = np.asarray(y), np.asarray(y_val)
        if len(yy) != len(x) or len(yv) != len(xv):
            raise MatchError("each input needs one label")
        if len(np.unique(yy)) < 2:
            raise MatchError("a ranking objective needs at least two classes in training")
        cfg = self.config
        raw0 = x @ self.E.T
        self.mean = raw0.mean(0).astype(np.float32)
        self.std = np.maximum(raw0.std(0), 1e-6).astype(np.float32)
        gen = torch.Generator().manual_seed(self.seed)
        E = torch.nn.Parameter(torch.from_numpy(self.E.copy()))
        log_gain = torch.nn.Parameter(torch.zeros(len(self.mean)))
        bias = torch.nn.Parameter(torch.zeros(len(self.mean)))
        params = [E, log_gain, bias]
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        xt, yt = torch.from_numpy(x), torch.from_numpy(yy.astype(np.int64))
        S = torch.from_numpy(self.bank.scores(x, normalize_inputs=False).astype(np.float32))
        m, s = torch.from_numpy(self.mean), torch.from_numpy(self.std)
        grounded = self.tied and cfg.ground > 0
        best = (-np.inf, 0)
        best_state = self._state()
        history: list[dict[str, float]] = []
        bs = min(cfg.batch_size, len(x))
        macs = bs * x.shape[1] * len(self.mean) + bs ** 3
        with torch_threads(threads_for(macs)):
            for epoch in range(cfg.epochs):
                perm = torch.randperm(len(x), generator=gen)
                tot, nb = 0.0, 0
                for start in range(0, len(x) - bs + 1, bs):
                    idx = perm[start:start + bs]
                    u = log_gain.exp() * ((xt[idx] @ E.T) - m) / s + bias
                    loss = pairwise_ranking_loss(torch.relu(u), yt[idx], cfg.temperature)
                    if grounded:
                        loss = loss + cfg.ground * (1 - _batch_corr(u, S[idx]).mean())
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    tot, nb = tot + float(loss.detach()), nb + 1
                self._set(E, log_gain, bias)
                val = retrieval_metrics(self.similarity(xv, xv), yv, ks=(cfg.select_k,))
                score = val[f"nDCG@{cfg.select_k}"]
                history.append({"epoch": epoch, "loss": tot / max(nb, 1), "val": score})
                if score > best[0]:
                    best, best_state = (score, epoch), self._state()
                elif epoch - best[1] >= cfg.patience:
                    break
        self._load_state(best_state)
        self.training_ = {"best_epoch": best[1], "val_ndcg": best[0], "history": history,
                          "config": asdict(cfg), "tied": self.tied, "seed": self.seed,
                          "grounded": grounded}
        return self

    def _set(self, E: torch.Tensor, log_gain: torch.Tensor, bias: torch.Tensor) -> None:
        self.E = E.detach().numpy().copy()
        self.gain = log_gain.detach().exp().numpy().copy()
        self.bias = bias.detach().numpy().copy()

    def _state(self) -> dict[str, np.ndarray]:
        return {"E": self.E.copy(), "gain": self.gain.copy(), "bias": self.bias.copy(),
                "mean": self.mean.copy(), "std": self.std.copy()}

    def _load_state(self, st: dict[str, np.ndarray]) -> None:
        self.E, self.gain, self.bias = st["E"], st["gain"], st["bias"]
        self.mean, self.std = st["mean"], st["std"]

    def save(self, folder: str | Path) -> Path:
        """``matcher.safetensors`` + ``matcher.json`` + the bank (``bank/``), atomically."""
        with atomic_dir(folder) as tmp:
            write_saved(tmp, SAVED_MATCHER, {
                "tied": self.tied, "seed": self.seed,
                "config": asdict(self.config), "training": {
                    k: v for k, v in self.training_.items() if k != "history"}},
                {k: np.asarray(v, dtype=np.float32) for k, v in self._state().items()})
            self.bank.save(tmp / "bank")
        return Path(folder)

    @classmethod
    def load(cls, folder: str | Path) -> ExplicitMatcher:
        d = Path(folder)
        state_names = ("E", "gain", "bias", "mean", "std")
        meta, arrays = read_saved(d, SAVED_MATCHER, required=state_names)
        bank = ConceptBank.load(d / "bank")
        out = cls(bank, MatchConfig.from_dict(meta["config"]), tied=bool(meta["tied"]),
                  seed=int(meta["seed"]))
        out._load_state({k: arrays[k] for k in state_names})
        out.training_ = dict(meta.get("training", {}))
        return out
