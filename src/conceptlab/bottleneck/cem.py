"""Concept Embedding Model (Espinosa Zarlenga et al., NeurIPS 2022) with RandInt.

For each concept i two context generators map the input embedding x to a positive and a
negative embedding, ``c_i^+ = LeakyReLU(W_i^+ x + b)``, ``c_i^- = LeakyReLU(W_i^- x + b)``
(m dimensions each); one scoring function shared by all concepts gives the concept's
probability ``p_i = sigmoid(s([c_i^+, c_i^-]))``; the concept's embedding is the mixture
``c_i = p_i c_i^+ + (1 - p_i) c_i^-``; the task head reads the k concatenated embeddings
(``Linear(k m -> classes)``). Loss: cross-entropy on the task plus ``concept_weight`` times the
binary cross-entropy of ``p`` against the concept labels (reference: mateoespinosa/cem,
``cem/models/cem.py``, ``ConceptEmbeddingModel``: ``concept_context_generators``, the shared
``concept_prob_generators``, ``c2y_model``; ``shared_prob_gen=True``, ``emb_size=16``).

RandInt (sec. 4 of the paper; ``training_intervention_prob`` in the reference): during
training each concept of each example is replaced, with probability ``p_int`` (0.25), by its
ground truth (``p_i := c_i``) before mixing, so the head learns to use corrected concepts. At
test time an intervention sets ``p_i`` to the true label (or to 1 / 0 for "present" /
"absent"), exactly as during training.

Here the input is a frozen encoder's cached embedding (conceptlab fits every concept model on
cached embeddings), not a backbone trained end to end as in the paper's experiments.

As a ``bottleneck.concept_model.ConceptModel`` (kind ``cem``) its units are the concept
probabilities ``p`` (absent 0, present 1). The mixture is linear in ``p``, so for one input the
head is affine in the probabilities: ``logit_c = b_c + sum_i W_c,i . c_i^- + sum_i p_i W_c,i .
(c_i^+ - c_i^-)`` (``W_c,i``: the head's m weights reading concept i). ``head_at`` returns that
input's weights ``W_c,i . (c_i^+ - c_i^-)`` and intercept, so an explanation's contributions
``p_i x weight`` and its intercept add up to the logit exactly, as for a CBM; unlike a CBM's,
the weights depend on the input (there is no single class x concept table).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from conceptlab.bottleneck.concept_model import (
    AuditInputs,
    ConceptModelError,
    explain_units,
    intervention_rows,
    read_meta,
    register_concept_model,
    softmax,
)
from conceptlab.errors import ConceptlabValueError
from conceptlab.utils.seed import seed_everything
from conceptlab.utils.threads import threads_for, torch_threads


class CEMError(ConceptlabValueError):
    """Raised for missing concept labels, bad settings or a damaged saved model."""


@dataclass(frozen=True)
class CEMConfig:
    """Hyper-parameters (defaults: the reference's ``emb_size=16``, ``p_int=0.25``)."""

    emb_size: int = 16
    p_int: float = 0.25
    concept_weight: float = 5.0
    lr: float = 1e-2
    weight_decay: float = 4e-5
    max_epochs: int = 150
    patience: int = 20
    batch_size: int = 128

    def __post_init__(self) -> None:
        if self.emb_size < 1 or not 0 <= self.p_int <= 1 or self.concept_weight < 0:
            raise CEMError(f"bad CEM settings: {self}")
        if self.max_epochs < 1 or self.patience < 1 or self.batch_size < 1 or self.lr <= 0:
            raise CEMError(f"bad CEM training settings: {self}")

    @classmethod
    def from_options(cls, options: dict[str, Any] | None) -> CEMConfig:
        """From ``--set KEY=VALUE`` pairs; an unknown key is refused by name."""
        opts = dict(options or {})
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(opts) - known)
        if unknown:
            raise CEMError(f"cem: unknown settings {unknown}; known: {', '.join(sorted(known))}")
        return cls(**opts)


class CEMNet(nn.Module):
    """The network: context generators, the shared scorer and the task head."""

    def __init__(self, d_in: int, n_concepts: int, n_classes: int, emb_size: int) -> None:
        super().__init__()
        self.k, self.m = n_concepts, emb_size
        self.context = nn.Linear(d_in, n_concepts * 2 * emb_size)  # all generators at once
        self.act = nn.LeakyReLU()
        self.scorer = nn.Linear(2 * emb_size, 1)  # shared by every concept
        self.head = nn.Linear(n_concepts * emb_size, n_classes)

    def concepts(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(p (N, k), positive embeddings (N, k, m), negative embeddings (N, k, m))."""
        ctx = self.act(self.context(x)).view(len(x), self.k, 2 * self.m)
        p = torch.sigmoid(self.scorer(ctx).squeeze(-1))
        return p, ctx[..., : self.m], ctx[..., self.m:]

    def task(self, p: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        mixed = p.unsqueeze(-1) * pos + (1 - p.unsqueeze(-1)) * neg
        return self.head(mixed.reshape(len(p), -1))

    def forward(self, x: torch.Tensor, c_true: torch.Tensor | None = None,
                mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(task logits, predicted p); where ``mask`` is 1 the true concept replaces p."""
        p, pos, neg = self.concepts(x)
        used = p if mask is None or c_true is None else torch.where(mask.bool(), c_true, p)
        return self.task(used, pos, neg), p


class ConceptEmbeddingModel:
    """Fit, predict, explain, intervene, audit, save and load a CEM over cached embeddings
    (a ``ConceptModel``; see the module docstring for its head)."""

    kind = "cem"
    #: units are probabilities
    unit_limits: tuple[float, float] = (0.0, 1.0)

    def __init__(self, concept_names: list[str], class_names: list[str],
                 config: CEMConfig | None = None, seed: int = 0, *, encoder_spec: str = "",
                 encoder_fingerprint: str = "") -> None:
        if not concept_names or not class_names:
            raise CEMError("a CEM needs concept names and class names")
        self._concept_names, self.class_names = list(concept_names), list(class_names)
        self.encoder_spec, self.encoder_fingerprint = encoder_spec, encoder_fingerprint
        self.config = config or CEMConfig()
        self.seed = int(seed)
        self.net: CEMNet | None = None
        self.training_: dict[str, Any] = {}

    @property
    def concept_names(self) -> list[str]:
        return list(self._concept_names)

    def _need(self) -> CEMNet:
        if self.net is None:
            raise CEMError("the CEM is not fitted")
        return self.net

    def fit(self, X: np.ndarray, y: np.ndarray, C: np.ndarray, X_val: np.ndarray,
            y_val: np.ndarray) -> ConceptEmbeddingModel:
        """Adam on CE + concept_weight * BCE with RandInt; the best validation-accuracy epoch
        is kept (validation is carved from train by the caller)."""
        cfg = self.config
        X = np.asarray(X, np.float32)
        macs = cfg.batch_size * X.shape[1] * len(self.concept_names) * 2 * cfg.emb_size
        with torch_threads(threads_for(macs)):
            return self._fit(X, y, C, X_val, y_val)

    def _fit(self, X: np.ndarray, y: np.ndarray, C: np.ndarray, X_val: np.ndarray,
             y_val: np.ndarray) -> ConceptEmbeddingModel:
        cfg = self.config
        X, C = np.asarray(X, np.float32), np.asarray(C, np.float32)
        if C.shape != (len(X), len(self.concept_names)) or not np.all((C == 0) | (C == 1)):
            raise CEMError(f"concept labels must be 0/1 of shape ({len(X)}, "
                           f"{len(self.concept_names)}), got {C.shape}")
        gen = seed_everything(self.seed)
        net = CEMNet(X.shape[1], len(self.concept_names), len(self.class_names), cfg.emb_size)
        opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        Xt, yt, Ct = torch.from_numpy(X), torch.from_numpy(np.asarray(y, np.int64)), \
            torch.from_numpy(C)
        Xv = torch.from_numpy(np.asarray(X_val, np.float32))
        yv = np.asarray(y_val)
        best, best_state, since, log = -1.0, None, 0, []
        bce = nn.BCELoss()
        for epoch in range(cfg.max_epochs):
            net.train()
            order = torch.randperm(len(Xt), generator=gen)
            for s in range(0, len(order), cfg.batch_size):
                idx = order[s:s + cfg.batch_size]
                mask = (torch.rand(len(idx), Ct.shape[1], generator=gen) < cfg.p_int).float()
                logits, p = net(Xt[idx], Ct[idx], mask)
                loss = nn.functional.cross_entropy(logits, yt[idx]) + \
                    cfg.concept_weight * bce(p, Ct[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
            net.eval()
            with torch.no_grad():
                acc = float((net(Xv)[0].argmax(1).numpy() == yv).mean())
            log.append({"epoch": epoch, "val_accuracy": acc, "loss": float(loss.detach())})
            if acc > best:
                best, since = acc, 0
                best_state = {k: v.clone() for k, v in net.state_dict().items()}
            else:
                since += 1
                if since >= cfg.patience:
                    break
        assert best_state is not None
        net.load_state_dict(best_state)
        net.eval()
        self.net = net
        self.training_ = {"val_accuracy": best, "epochs": len(log), "log": log}
        return self

    def concept_probs(self, X: np.ndarray) -> np.ndarray:
        """Predicted concept probabilities (N, k)."""
        with torch.no_grad():
            return self._need().concepts(torch.from_numpy(np.asarray(X, np.float32)))[0].numpy()

    def logits(self, X: np.ndarray, p: np.ndarray | None = None) -> np.ndarray:
        """Task logits; with ``p`` (N, k) the probabilities used for mixing are replaced."""
        net = self._need()
        with torch.no_grad():
            pp, pos, neg = net.concepts(torch.from_numpy(np.asarray(X, np.float32)))
            used = pp if p is None else torch.from_numpy(np.asarray(p, np.float32))
            return net.task(used, pos, neg).numpy()

    def predict(self, X: Any) -> np.ndarray:
        return self.logits(X).argmax(1)

    def predict_proba(self, X: Any) -> np.ndarray:
        return softmax(self.logits(X))

    # ------------------------------------------------------------------ ConceptModel
    def unit_values(self, X: Any) -> np.ndarray:
        """The concept probabilities (what an intervention sets)."""
        return self.concept_probs(X)

    def activations_from_units(self, U: np.ndarray) -> np.ndarray:
        """The head's affine form reads the probabilities themselves."""
        return np.asarray(U, np.float32)

    def head_at(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        """Per input the head as an affine map of the probabilities (N x C x k, N x C): see
        the module docstring."""
        net = self._need()
        with torch.no_grad():
            _, pos, neg = net.concepts(torch.from_numpy(np.asarray(X, np.float32)))
            Wh = net.head.weight.view(-1, net.k, net.m)  # (C, k, m)
            W = torch.einsum("cim,nim->nci", Wh, pos - neg)
            b = net.head.bias[None, :] + torch.einsum("cim,nim->nc", Wh, neg)
        return W.numpy(), b.numpy()

    def effective_head(self) -> None:
        """None: a CEM's head on the probabilities depends on the input (``head_at``)."""
        return None

    def unit_range(self) -> tuple[np.ndarray, np.ndarray]:
        k = len(self._concept_names)
        return np.zeros(k, np.float32), np.ones(k, np.float32)

    def explain(self, X: Any, top: int = 32) -> list[dict[str, Any]]:
        """Per decision the concepts by |contribution| (probability x the input's weight, see
        the module docstring); ``logit`` = ``intercept`` + every contribution."""
        return explain_units(self, X, self.concept_probs(X), top=top)

    def intervene(self, X: Any, interventions: Mapping[str, Any], *,
                  return_proba: bool = False) -> np.ndarray:
        """Predictions (or probabilities) with the named concepts' probabilities set (1 or
        ``present``, 0 or ``absent``, or a number in [0, 1])."""
        rows = intervention_rows(self, X, interventions)
        if return_proba:
            return np.array([[r["probabilities_after"][c] for c in self.class_names]
                             for r in rows])
        return np.array([self.class_names.index(r["after"]) for r in rows], dtype=np.int64)

    def intervened_logits(self, X: np.ndarray, settings: dict[str, float]) -> np.ndarray:
        """Logits with the named concepts set to the given probability (1 present, 0
        absent)."""
        p = self.concept_probs(X)
        for name, value in settings.items():
            if name not in self._concept_names:
                raise CEMError(f"unknown concept {name!r}")
            p[:, self._concept_names.index(name)] = float(value)
        return self.logits(X, p)

    def audit_profile(self, inputs: AuditInputs) -> dict[str, Any]:
        """``bottleneck.cem_audit.audit_cem`` on the inputs."""
        from conceptlab.bottleneck.cem_audit import audit_cem

        return audit_cem(self, inputs)

    def intervention_curve(self, X: np.ndarray, y: np.ndarray, C: np.ndarray,
                           seed: int = 0) -> list[dict[str, Any]]:
        """Accuracy after setting the first n concepts of each example (a seeded random order
        per example, as the CBM's curve) to their true labels, n = 0..k."""
        p, C = self.concept_probs(X), np.asarray(C, np.float32)
        rank = np.argsort(np.argsort(np.random.default_rng(seed).random(p.shape), axis=1),
                          axis=1)
        out = []
        for n in range(p.shape[1] + 1):
            used = np.where(rank < n, C, p)
            out.append({"n_corrected": n, "accuracy":
                        float((self.logits(X, used).argmax(1) == np.asarray(y)).mean())})
        return out

    # ------------------------------------------------------------------ persistence
    def save(self, folder: str | Path) -> Path:
        """``model.safetensors`` + ``model.json`` (no pickle), atomically."""
        from safetensors.torch import save_file

        from conceptlab.utils.io import atomic_dir, write_json_atomic, writing

        net = self._need()
        with atomic_dir(folder) as tmp:
            with writing(tmp / "model.safetensors"):
                save_file({k: v.contiguous() for k, v in net.state_dict().items()},
                          str(tmp / "model.safetensors"))
            write_json_atomic(tmp / "model.json", {
                "kind": self.kind, "method": self.kind, "concept_names": self._concept_names,
                "class_names": self.class_names, "config": asdict(self.config),
                "seed": self.seed, "d_in": net.context.in_features,
                "encoder_spec": self.encoder_spec,
                "encoder_fingerprint": self.encoder_fingerprint,
                "training": {k: v for k, v in self.training_.items() if k != "log"}})
        return Path(folder)

    @classmethod
    def load(cls, folder: str | Path) -> ConceptEmbeddingModel:
        """Read a folder written by ``save``; anything malformed is a ``ConceptModelError``
        naming the folder."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        base = Path(folder)
        meta = read_meta(base)
        if meta.get("kind") != cls.kind:
            raise ConceptModelError(f"{base}: model kind {meta.get('kind')!r} is not 'cem'")
        try:
            state = load_file(str(base / "model.safetensors"))
        except (OSError, ValueError, SafetensorError) as err:
            raise ConceptModelError(f"{base}: model.safetensors is missing, truncated or not "
                                    f"a safetensors file ({err})") from None
        try:
            d_in = meta["d_in"]
            if isinstance(d_in, bool) or not isinstance(d_in, int) or d_in < 1:
                raise ConceptlabValueError(f"d_in must be a positive integer, got {d_in!r}")
            model = cls([str(c) for c in meta["concept_names"]],
                        [str(c) for c in meta["class_names"]], CEMConfig(**meta["config"]),
                        int(meta["seed"]), encoder_spec=str(meta.get("encoder_spec", "")),
                        encoder_fingerprint=str(meta.get("encoder_fingerprint", "")))
            net = CEMNet(d_in, len(model._concept_names), len(model.class_names),
                         model.config.emb_size)
            net.load_state_dict(state)
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            raise ConceptModelError(f"{base}: malformed CEM ({str(err).splitlines()[0]})"
                                    ) from None
        model.net = net.eval()
        raw = meta.get("training")
        model.training_ = raw if isinstance(raw, dict) else {}
        return model


register_concept_model(ConceptEmbeddingModel.kind, ConceptEmbeddingModel.load)
