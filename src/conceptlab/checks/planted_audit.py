"""The audit tested like a classifier: planted models where the right verdict is known.

In the spirit of scikit-learn's estimator checks, each case plants one property in a small
model whose answer is known by construction, audits it, and says what the audit must conclude:
``must-pass`` (trusted) or ``must-fail`` (not trusted, and caught by the claims named in
``caught_by``: each of them must come out fail, undecided or not measured). Running a case with
its catching claims disabled (``run_case(..., disabled=...)``) shows that they are what catches
it: the case then passes (docs/faithfulness.md shows both columns).

The world is a synthetic joint space with a text encoder whose answers are planted:

* every text shares a common component ``g`` (as real text encoders' embeddings do);
* class names point at class directions ``t_c``; concept words at ``e_k`` plus their class's
  direction (so the words' class links are known); any other string (a random character
  string, a nonsense name) at a seeded random direction;
* an item of class ``c`` is ``g`` + its class direction + the concepts present in it (its own
  class's concepts mostly) + noise; the concepts present are its ground-truth labels.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from conceptlab.bottleneck.audit import FitArrays, audit
from conceptlab.bottleneck.heads import HeadConfig, LinearHead
from conceptlab.bottleneck.layers import CBLConfig
from conceptlab.bottleneck.model import ConceptBottleneckModel
from conceptlab.bottleneck.objectives import get_objective
from conceptlab.concepts.bank import ConceptBank
from conceptlab.discover.dncbm import fit_dncbm
from conceptlab.discover.dncbm_audit import audit_dncbm
from conceptlab.faithfulness import claims as cl

DIM = 48
CLASSES = ("animal", "food", "tool")
#: three concept words per class, in class order
WORDS = ("fur", "claws", "hunting", "sweet", "cooked", "bread", "metal", "blade", "workshop")
#: words whose directions the data never uses (a vocabulary worse than random)
UNRELATED = ("rain", "cloud", "thunder", "snow", "fog", "wind", "frost", "hail", "storm")
NONSENSE = ("qzxvuwpl", "mhgrtkqe", "wbnvjfzd", "lkpqyxrs", "tzcvbnmq", "hgfdsjkl", "yxwvqpzr",
            "jkrtplmn", "vbzqxwty")
WORD_CLASS = np.repeat(np.arange(len(CLASSES)), 3)


def _orthonormal(n: int, dim: int, seed: int) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((dim, n)))
    return q.T.astype(np.float64)


_BASIS = _orthonormal(1 + len(CLASSES) + len(WORDS) + len(UNRELATED), DIM, 7)
G = _BASIS[0]
T = _BASIS[1:1 + len(CLASSES)]
E = _BASIS[1 + len(CLASSES):1 + len(CLASSES) + len(WORDS)]
F = _BASIS[1 + len(CLASSES) + len(WORDS):]


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


class PlantedTextEncoder:
    """A text encoder with planted answers (see the module docstring); a text containing a
    known name (class or word, longest first) embeds as that name."""

    spec = "planted-text"
    modalities = frozenset({"text"})
    dim = DIM

    def __init__(self) -> None:
        known: dict[str, np.ndarray] = {}
        for c, name in enumerate(CLASSES):
            known[name] = _unit(0.5 * G + T[c])
        for k, word in enumerate(WORDS):
            known[word] = _unit(0.5 * G + 0.6 * T[WORD_CLASS[k]] + E[k])
            known[f"no {word}"] = known[word]  # negation missed, as MiniLM misses it
        for j, word in enumerate(UNRELATED):
            known[word] = _unit(0.5 * G + F[j])
        self.known = known

    def fingerprint(self) -> str:
        return "planted-text-v1"

    def _one(self, text: str) -> np.ndarray:
        for name in sorted(self.known, key=len, reverse=True):
            if name in text.split() or name == text:
                return self.known[name]
        seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
        r = np.random.default_rng(seed).standard_normal(DIM)
        r -= (r @ G) * G
        return _unit(0.5 * G + _unit(r))

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self._one(str(t)) for t in texts]).astype(np.float32)


@dataclass
class World:
    """Items of one planted task: embeddings, classes and ground-truth concept labels."""

    X: np.ndarray
    y: np.ndarray
    labels: np.ndarray

    def split(self, n_train: int, n_val: int) -> tuple[World, World, World]:
        a, b = n_train, n_train + n_val
        return (World(self.X[:a], self.y[:a], self.labels[:a]),
                World(self.X[a:b], self.y[a:b], self.labels[a:b]),
                World(self.X[b:], self.y[b:], self.labels[b:]))


def make_world(n: int, seed: int, *, own: float = 0.8, other: float = 0.1,
               class_signal: float = 0.4, noise: float = 0.3, links: Sequence[int] | None = None,
               priors: Sequence[float] | None = None) -> World:
    """``n`` items: class ``c`` shows each concept of class ``links[c]`` (default ``c``) with
    probability ``own`` and every other concept with ``other``."""
    rng = np.random.default_rng(seed)
    y = rng.choice(len(CLASSES), size=n, p=priors)
    link = np.arange(len(CLASSES)) if links is None else np.asarray(links)
    p = np.where(WORD_CLASS[None, :] == link[y][:, None], own, other)
    labels = (rng.random(p.shape) < p).astype(np.int64)
    strength = labels * rng.uniform(0.6, 1.2, labels.shape)
    X = (0.5 * G + class_signal * T[y] + strength @ E
         + noise * rng.standard_normal((n, DIM)) / np.sqrt(DIM) * 3)
    return World(X.astype(np.float32), y.astype(np.int64), labels)


Expect = Literal["must-pass", "must-fail"]


@dataclass(frozen=True)
class Case:
    """One planted case: what it plants, the verdict it must get, the claims that catch it."""

    name: str
    plants: str
    expect: Expect
    build: Callable[[], dict[str, Any]]
    caught_by: tuple[str, ...] = ()


@dataclass
class CaseResult:
    case: Case
    record: dict[str, Any]
    trusted: bool
    statuses: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """The verdict is the planted one, and a must-fail case is caught by its claims."""
        if self.case.expect == "must-pass":
            return self.trusted
        caught = all(self.statuses.get(c) in ("fail", "undecided", "not measured")
                     for c in self.case.caught_by)
        return not self.trusted and caught


# ------------------------------------------------------------------------------------------
# building blocks
# ------------------------------------------------------------------------------------------

ENCODER = PlantedTextEncoder()


def _bank(names: Sequence[str]) -> ConceptBank:
    return ConceptBank(ENCODER.encode_texts(list(names)), list(names))


def _fit(names: Sequence[str], world: tuple[World, World, World], *, objective: str = "l1",
         cbl: CBLConfig | None = None, nec: float | None = 2.0, seed: int = 0,
         labels: bool = False, **objective_params: Any) -> ConceptBottleneckModel:
    tr, va, _ = world
    model = ConceptBottleneckModel(_bank(names), list(CLASSES),
                                   objective=get_objective(objective, **objective_params),
                                   cbl=cbl, head=HeadConfig(nec=nec), seed=seed)
    return model.fit(tr.X, tr.y, va.X, va.y, concept_labels=tr.labels if labels else None)


def _audit(model: ConceptBottleneckModel, world: tuple[World, World, World], *,
           with_labels: bool = False, refit: bool = True, test: World | None = None,
           label_names: Sequence[str] = WORDS, train_labels: bool = False) -> dict[str, Any]:
    tr, va, te = world
    te = test or te
    controls: Any = None
    if refit:
        controls = _labelled(world) if train_labels else (tr.X, tr.y, va.X, va.y)
    return audit(model, te.X, te.y, refit=controls, encoder=ENCODER,
                 concept_labels_test=te.labels if with_labels else None,
                 concept_label_names=list(label_names) if with_labels else None)


def _labelled(world: tuple[World, World, World]) -> FitArrays:
    tr, va, _ = world
    return FitArrays(tr.X, tr.y, va.X, va.y, concept_labels=tr.labels)


def _easy() -> tuple[World, World, World]:
    return make_world(900, 1).split(450, 150)


def _hard() -> tuple[World, World, World]:
    return make_world(900, 2, own=0.6, other=0.3, class_signal=0.1, noise=0.45).split(450, 150)


def _permute_units(model: ConceptBottleneckModel, perm: np.ndarray) -> ConceptBottleneckModel:
    """Unit k now computes what unit ``perm[k]`` computed, under concept k's name; the head's
    columns move with the units, so every decision is unchanged."""
    assert model.cbl_ is not None and model.head_ is not None
    h = model.head_
    model.cbl_ = model.cbl_.select(perm)
    model.head_ = LinearHead(h.weight[:, perm], h.bias, h.mean[perm], h.std[perm], dict(h.info))
    return model


# ------------------------------------------------------------------------------------------
# the cases
# ------------------------------------------------------------------------------------------


def real_easy() -> dict[str, Any]:
    w = _easy()
    return _audit(_fit(WORDS, w), w)


def real_hard() -> dict[str, Any]:
    w = _hard()
    return _audit(_fit(WORDS, w), w)


def labels_with_labels() -> dict[str, Any]:
    w = _easy()
    return _audit(_fit(WORDS, w, objective="supervised", labels=True), w, with_labels=True,
                  train_labels=True)


def labels_withheld() -> dict[str, Any]:
    w = _easy()
    return _audit(_fit(WORDS, w, objective="supervised", labels=True), w, train_labels=True)


def dncbm_right_names() -> dict[str, Any]:
    w = _easy()
    tr, va, te = w
    vocab = list(WORDS) + list(UNRELATED)
    emb = ENCODER.encode_texts(vocab)
    model = fit_dncbm(tr.X, tr.y, va.X, va.y, n_classes=len(CLASSES), vocab=vocab,
                      vocab_embeddings=emb, n_concepts=12, nec=2, seed=0,
                      sae_options={"min_steps": 300})
    return audit_dncbm(model, te.X, te.y, vocab=vocab, vocab_embeddings=emb,
                       class_embeddings=ENCODER.encode_texts(list(CLASSES)))


def permuted_units() -> dict[str, Any]:
    w = _easy()
    model = _fit(WORDS, w)
    perm = np.roll(np.arange(len(model.concept_names)), 1)
    return _audit(_permute_units(model, perm), w, refit=False)  # controls cannot permute


def ignored_bank() -> dict[str, Any]:
    w = _easy()
    return _audit(_fit(WORDS, w, cbl=CBLConfig(input="embedding", grounding=0.0, cutoff=-1.0)),
                  w)


def nonsense_easy() -> dict[str, Any]:
    w = _easy()
    return _audit(_fit(NONSENSE, w), w)


def worse_than_random() -> dict[str, Any]:
    w = _easy()
    return _audit(_fit(UNRELATED, w), w)


def intercept_carries() -> dict[str, Any]:
    """The easy model with its concept weights shrunk fivefold and class 0's bias raised: most
    decisions now follow the bias (no refit can reproduce a hand-edited head, so the controls
    are not run)."""
    w = _easy()
    model = _fit(WORDS, w)
    assert model.head_ is not None
    h = model.head_
    bias = h.bias.copy()
    bias[0] += 3.0
    model.head_ = LinearHead(h.weight * 0.1, bias, h.mean, h.std, dict(h.info))
    return _audit(model, w, refit=False)


def contradicting_links() -> dict[str, Any]:
    w = make_world(900, 4, links=(1, 2, 0), class_signal=0.0).split(450, 150)
    return _audit(_fit(WORDS, w), w)


def gumbel_mapped() -> dict[str, Any]:
    w = _easy()
    return _audit(_fit(WORDS, w, objective="gumbel", nec=None), w)


def negation_missed() -> dict[str, Any]:
    """Concepts named "no X" read X's direction (negation missed): units follow their scores,
    but against the labels of "no X" (X absent) they point the wrong way."""
    w = _easy()
    names = [f"no {word}" for word in WORDS]
    model = _fit(names, w)
    _, _, te = w
    absent = World(te.X, te.y, 1 - te.labels)
    return _audit(model, w, with_labels=True, test=absent, label_names=names)


def too_few_items() -> dict[str, Any]:
    w = _easy()
    _, _, te = w
    return _audit(_fit(WORDS, w), w, test=World(te.X[:12], te.y[:12], te.labels[:12]))


CASES: tuple[Case, ...] = (
    Case("real concepts, easy task", "real concept words on a task they separate",
         "must-pass", real_easy),
    Case("real concepts, hard task", "the same words on a noisy task with weak concepts",
         "must-pass", real_hard),
    Case("label-trained units with labels", "a joint CBM audited against held-out labels",
         "must-pass", labels_with_labels),
    Case("DN-CBM units with their right names", "SAE units named from a vocabulary holding "
         "the planted words", "must-pass", dncbm_right_names),
    Case("units permuted among names", "unit k computes concept k+1's unit (decisions "
         "unchanged), on a shared text component", "must-fail", permuted_units,
         ("units_follow_concepts",)),
    Case("a bank the model ignores", "an embedding CBL with no grounding: units free of "
         "their names", "must-fail", ignored_bank,
         ("units_follow_concepts", "class_links_make_sense")),
    Case("nonsense names on an easy task", "random letter strings as concept names",
         "must-fail", nonsense_easy, ("class_links_make_sense",)),
    Case("concepts worse than random", "weather words on a task they carry nothing about",
         "must-fail", worse_than_random, ("class_links_make_sense", "explanations_carry_decisions",
                                          "decisions_need_concepts")),
    Case("decisions carried by the intercept", "a skewed task whose concepts barely "
         "separate it: the bias decides", "must-fail", intercept_carries,
         ("explanations_carry_decisions",)),
    Case("a head that leans on contradicting concepts", "each class shows another class's "
         "words ('fur' in food)", "must-fail", contradicting_links,
         ("class_links_make_sense",)),
    Case("Gumbel-mapped units", "Gumbel-Softmax units audited after the map the head reads",
         "must-pass", gumbel_mapped),
    Case("units track scores but not the truth", "'no fur' reads fur's direction; labels say "
         "absent", "must-fail", negation_missed, ("concepts_mean_words",)),
    Case("label-trained units with labels withheld", "a joint CBM audited without labels",
         "must-fail", labels_withheld, ("concepts_mean_words",)),
    Case("too few held-out items", "the easy model audited on 12 items", "must-fail",
         too_few_items, ("units_follow_concepts", "explanations_carry_decisions",
                         "decisions_need_concepts")),
)


def run_case(case: Case) -> CaseResult:
    """Audit one case."""
    record = case.build()
    statuses: dict[str, str] = {c.name: c.status for c in cl.claims_from_record(record)}
    return CaseResult(case, record, bool(record["trusted"]), statuses)


def trusted_without(result: CaseResult, disabled: Sequence[str]) -> bool:
    """The verdict of an audited case with the ``disabled`` claims counted as passed: what the
    audit would say without those checks."""
    claims = [cl.Claim(c.name, "pass", c.reason, c.figures) if c.name in disabled else c
              for c in cl.claims_from_record(result.record)]
    return cl.profile_verdict(claims, result.record["required_claim"]).trusted


def check_audit(cases: Sequence[Case] = CASES) -> list[CaseResult]:
    """Every planted case, audited."""
    return [run_case(c) for c in cases]
