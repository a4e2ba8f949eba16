"""The gate: when a model's concept names are not to be trusted, and the warnings it shows."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

#: below this median unit-to-concept correlation the units do not track their names
FIDELITY_MIN = 0.5
#: above this share of unchanged predictions with a random concept bank, the bank is unused
AGREEMENT_MAX = 0.99
#: above this median share of |logit| carried by the bias, decisions are mostly not concepts
INTERCEPT_SHARE_MAX = 0.5
#: for units trained on ground-truth concept labels: below this mean AUROC they do not track them
AUROC_MIN = 0.7


@dataclass
class Verdict:
    trusted: bool
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"trusted": self.trusted, "warnings": list(self.warnings)}


def _finite(x: Any) -> float | None:
    """``x`` as a float when it is a finite number, else None."""
    if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(float(x)):
        return None
    return float(x)


def verdict(faithfulness: dict[str, Any]) -> Verdict:
    """``trusted`` is False when the median unit fidelity is below ``FIDELITY_MIN`` or the
    random-bank agreement above ``AGREEMENT_MAX``; a large intercept share only warns.

    Units trained on ground-truth concept labels (``grounded_by == "labels"``, Koh et al.'s
    joint CBM) mean their names through the labels, not through the bank's directions, so for
    them a random bank changing nothing is expected: they are judged by their mean concept
    AUROC against held-out labels instead (``AUROC_MIN``).

    Units discovered without the vocabulary and named afterwards (``grounded_by ==
    "naming"``, DN-CBM) cannot depend on the bank by construction: for them a random bank's
    agreement is reported as a warning, and the gate is each unit's fidelity to its name.
    """
    if faithfulness.get("grounded_by") == "labels":
        auroc = _finite(faithfulness.get("concept_auroc_mean"))
        if auroc is None:
            return Verdict(True, ["units are trained on concept labels; without held-out "
                                  "labels their meaning was not measured"])
        if auroc < AUROC_MIN:
            return Verdict(False, [f"units do not separate their labelled concepts (mean "
                                   f"AUROC {auroc:.2f} < {AUROC_MIN}): the concept names of "
                                   f"this model are not to be trusted"])
        return Verdict(True, [])
    warnings: list[str] = []
    trusted = True
    post_hoc = faithfulness.get("grounded_by") == "naming"
    fid = _finite(faithfulness.get("unit_fidelity_median"))
    if fid is not None and fid < FIDELITY_MIN:
        trusted = False
        warnings.append(f"units do not track their concepts (median unit-to-concept "
                        f"correlation {fid:.2f} < {FIDELITY_MIN}): the concept names of this "
                        f"model are not to be trusted")
    agree = _finite(faithfulness.get("random_bank_agreement"))
    if agree is not None and agree > AGREEMENT_MAX and post_hoc:
        warnings.append(f"the decisions never read the vocabulary ({agree:.1%} agreement with "
                        f"a random one): the names describe discovered units after the fact "
                        f"and are only as good as their fidelity")
    elif agree is not None and agree > AGREEMENT_MAX:
        trusted = False
        warnings.append(f"a random concept bank gives the same predictions ({agree:.1%} "
                        f"agreement > {AGREEMENT_MAX:.0%}): the model does not use its "
                        f"concepts, and their names are not to be trusted")
    share = _finite(faithfulness.get("intercept_share"))
    if share is not None and share > INTERCEPT_SHARE_MAX:
        warnings.append(f"the bias carries a median {share:.0%} of the predicted class's "
                        f"|logit|: decisions are only partly explained by concepts")
    return Verdict(trusted, warnings)
