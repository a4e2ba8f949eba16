"""The concept bottleneck variants a comparison runs: faithful references beside our own.

Every row of a comparison is a ``Variant``: an objective, flat settings routed by
``bottleneck.options``, what it reproduces (references) or improves (ours), and whether it is a
concept bottleneck at all. A variant whose units are not tied to its concepts is still run and
reported (it shows what accuracy costs), but under its real name: ``is_cbm=False``.

Choices here (learning rate, fine-tuning budget, grounding weight) were made on validation
data carved from train, before test was looked at; docs/methods.md records how.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from conceptlab.errors import UnknownNameError

#: the same sparse fine-tuning budget for every variant that has a joint head (ours)
FINETUNE: dict[str, Any] = {"finetune_epochs": 30, "patience": 6}
#: the embedding CBL's learning rate (chosen on validation, Fashion-MNIST)
EMBEDDING_LR = 3e-3
#: VLG-CBM's protocol on the head: path + truncation, no refit, no fine-tuning
VLG_HEAD: dict[str, Any] = {"head.refit": False, "finetune_epochs": 0}


@dataclass(frozen=True)
class Variant:
    """One row of a comparison."""

    label: str
    objective: str
    options: dict[str, Any] = field(default_factory=dict)
    reproduces: str = ""
    is_cbm: bool = True
    needs_features: bool = False
    #: the label this row had in tables before issue 18 (the redesigns once called "reference")
    formerly: str = ""

    @property
    def kind(self) -> str:
        return "reference" if self.reproduces else ("ours" if self.is_cbm else "not a CBM")


REFERENCES: tuple[Variant, ...] = (
    Variant("LF-CBM (reference)", "ref:lfcbm", {"cbl.input": "features"},
            reproduces="Label-free-CBM train_cbm.py: clip_cutoff top-5 filter, Linear(D -> K) "
                       "on raw backbone features, full-batch Adam 1e-3, validation every 50 "
                       "steps with a stop at the first increase, interpretability cutoff 0.45; "
                       "head by VLG-CBM's NEC protocol (validation carved from train: the "
                       "reference validates on test)",
            needs_features=True),
    Variant("Sparse-CBM l1 (reference)", "ref:sparsecbm-l1",
            reproduces="Andron00e/SparseCBM BaseCBModel + criterion_l1 (lambda 1e-3): random "
                       "Linear(K, K) on 100 * scores, joint head without bias, Adam 3e-4, "
                       "batches of 128, 10 epochs (the head put into its optimiser)"),
    Variant("Sparse-CBM contrastive (reference)", "ref:sparsecbm-contrastive",
            reproduces="Andron00e/SparseCBM criterion_contrastive: CLIP loss on the B x K CBL "
                       "output with the diagonal as positives; same model and loop"),
    Variant("Sparse-CBM gumbel (reference)", "ref:sparsecbm-gumbel",
            reproduces="Andron00e/SparseCBM criterion_gumbel: -mean log gumbel_softmax "
                       "(tau = 1) over both axes, in the loss only; same model and loop"),
    Variant("random CBL (VLG-CBM baseline)", "random-cbl", {"cbl.input": "features"},
            reproduces="VLG-CBM's random baseline: an untrained ConceptLayer (nn.Linear with "
                       "bias, default initialisation) on the backbone's features, the same "
                       "sparse head", needs_features=True),
)

#: what the "(reference)" rows were before issue 18: conceptlab's own designs, named by how
#: they differ from the references above (kept so that older tables stay reproducible)
REDESIGNS: tuple[Variant, ...] = (
    Variant("cos3 (ours) on features: minibatch 256, lr 1e-2, standardised, epoch patience",
            "cos3", {"cbl.input": "features", **VLG_HEAD}, needs_features=True,
            formerly="LF-CBM (reference)"),
    Variant("l1 (ours, ungrounded): identity init, bias, z-scored scores, lambda 1e-2",
            "l1", {"cbl.grounding": 0.0, **VLG_HEAD},
            formerly="Sparse-CBM l1 (reference)"),
    Variant("contrastive (ours, ungrounded): identity init, class-row CLIP loss",
            "contrastive", {"cbl.grounding": 0.0, **VLG_HEAD},
            formerly="Sparse-CBM contrastive (reference)"),
    Variant("gumbel (ours, ungrounded): identity init, tau 1 -> 0.1, head on softmax(a / tau)",
            "gumbel", {"cbl.grounding": 0.0, **VLG_HEAD},
            formerly="Sparse-CBM gumbel (reference)"),
)

#: which of our objectives each reference is compared with, seed by seed (``random-cbl`` is the
#: control of every row, so it is paired with all of ours)
REFERENCE_FAMILY: dict[str, str] = {"ref:lfcbm": "cos3", "ref:sparsecbm-l1": "l1",
                                    "ref:sparsecbm-contrastive": "contrastive",
                                    "ref:sparsecbm-gumbel": "gumbel", "random-cbl": "*"}


def counterparts(reference: Variant, candidates: tuple[Variant, ...]) -> tuple[Variant, ...]:
    """Our CBM rows among ``candidates`` that improve on ``reference`` (same objective family;
    every CBM row for the random baseline)."""
    family = REFERENCE_FAMILY.get(reference.objective)
    if family is None:
        raise UnknownNameError(f"{reference.label!r} is not a reference row")
    return tuple(v for v in candidates if not v.reproduces and v.is_cbm
                 and v.objective != "supervised" and family in ("*", v.objective))


OURS: tuple[Variant, ...] = (
    Variant("l1, scores CBL, grounded", "l1", dict(FINETUNE)),
    Variant("contrastive, scores CBL, grounded", "contrastive", dict(FINETUNE)),
    Variant("gumbel, scores CBL, grounded", "gumbel", dict(FINETUNE)),
    Variant("l1, embedding CBL, grounded", "l1",
            {"cbl.input": "embedding", "lr": EMBEDDING_LR, **FINETUNE}),
    Variant("contrastive, embedding CBL, grounded", "contrastive",
            {"cbl.input": "embedding", "lr": EMBEDDING_LR, **FINETUNE}),
    Variant("gumbel, embedding CBL, grounded", "gumbel",
            {"cbl.input": "embedding", "lr": EMBEDDING_LR, **FINETUNE}),
)

#: the variant behind the old headline number, kept to show what it is
UNGROUNDED: tuple[Variant, ...] = (
    Variant("low-rank probe with concept names (contrastive, embedding CBL, ungrounded)",
            "contrastive", {"cbl.input": "embedding", "lr": EMBEDDING_LR,
                            "cbl.grounding": 0.0, "cbl.cutoff": -1.0, **FINETUNE},
            is_cbm=False),
)

ALL_VARIANTS: tuple[Variant, ...] = (*REFERENCES, *REDESIGNS, *OURS, *UNGROUNDED)

SUPERVISED = Variant("supervised (Koh et al. joint CBM)", "supervised", dict(FINETUNE))


def for_inputs(variants: tuple[Variant, ...], has_features: bool) -> tuple[Variant, ...]:
    """``variants`` as data without backbone features can run them: a row that reads features
    reads the encoder's embedding instead (a CLIP-like encoder is its own backbone, as in
    LF-CBM's ``clip_RN50`` runs), relabelled "on the embedding"."""
    if has_features:
        return variants
    return tuple(dataclasses.replace(v, label=f"{v.label} on the embedding",
                                     options={**v.options, "cbl.input": "embedding"},
                                     needs_features=False)
                 if v.needs_features else v for v in variants)


def variant(label: str) -> Variant:
    """The registered variant called ``label``."""
    for v in (*ALL_VARIANTS, SUPERVISED):
        if v.label == label:
            return v
    raise UnknownNameError(f"unknown variant {label!r}")
