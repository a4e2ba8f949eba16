"""The concept bottleneck variants a comparison runs: faithful references beside our own.

Every row of a comparison is a ``Variant``: an objective, flat settings routed by
``bottleneck.options``, what it reproduces (references) or improves (ours), and whether it is a
concept bottleneck at all. A variant whose units are not tied to its concepts is still run and
reported (it shows what accuracy costs), but under its real name: ``is_cbm=False``.

Choices here (learning rate, fine-tuning budget, grounding weight) were made on validation
data carved from train, before test was looked at; docs/methods.md records how.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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

    @property
    def kind(self) -> str:
        return "reference" if self.reproduces else ("ours" if self.is_cbm else "not a CBM")


REFERENCES: tuple[Variant, ...] = (
    Variant("LF-CBM (reference)", "cos3",
            {"cbl.input": "features", **VLG_HEAD},
            reproduces="Label-free CBM as designed: CBL Linear(1280 -> K) on the backbone's "
                       "features, cos^3 to the joint space's concept scores, interpretability "
                       "cutoff 0.45 on validation, sparse GLM head by VLG-CBM's NEC protocol",
            needs_features=True),
    Variant("Sparse-CBM l1 (reference)", "l1", {"cbl.grounding": 0.0, **VLG_HEAD},
            reproduces="Sparse-CBM's l1 CBL on the concept scores; head on the raw units by "
                       "VLG-CBM's NEC protocol (path, truncation, no refit, no fine-tuning)"),
    Variant("Sparse-CBM contrastive (reference)", "contrastive",
            {"cbl.grounding": 0.0, **VLG_HEAD},
            reproduces="Sparse-CBM's contrastive CBL on the concept scores; VLG-CBM NEC head"),
    Variant("Sparse-CBM gumbel (reference)", "gumbel", {"cbl.grounding": 0.0, **VLG_HEAD},
            reproduces="Sparse-CBM's Gumbel CBL on the concept scores; VLG-CBM NEC head"),
)

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

ALL_VARIANTS: tuple[Variant, ...] = (*REFERENCES, *OURS, *UNGROUNDED)

SUPERVISED = Variant("supervised (Koh et al. joint CBM)", "supervised", dict(FINETUNE))


def variant(label: str) -> Variant:
    """The registered variant called ``label``."""
    for v in (*ALL_VARIANTS, SUPERVISED):
        if v.label == label:
            return v
    raise KeyError(f"unknown variant {label!r}")
