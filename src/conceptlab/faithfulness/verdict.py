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


@dataclass
class Verdict:
    trusted: bool
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"trusted": self.trusted, "warnings": list(self.warnings)}


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and math.isfinite(float(x))


def verdict(faithfulness: dict[str, Any]) -> Verdict:
    """``trusted`` is False when the median unit fidelity is below ``FIDELITY_MIN`` or the
    random-bank agreement above ``AGREEMENT_MAX``; a large intercept share only warns."""
    warnings: list[str] = []
    trusted = True
    fid = faithfulness.get("unit_fidelity_median")
    if _finite(fid) and fid < FIDELITY_MIN:
        trusted = False
        warnings.append(f"units do not track their concepts (median unit-to-concept "
                        f"correlation {fid:.2f} < {FIDELITY_MIN}): the concept names of this "
                        f"model are not to be trusted")
    agree = faithfulness.get("random_bank_agreement")
    if _finite(agree) and agree > AGREEMENT_MAX:
        trusted = False
        warnings.append(f"a random concept bank gives the same predictions ({agree:.1%} "
                        f"agreement > {AGREEMENT_MAX:.0%}): the model does not use its "
                        f"concepts, and their names are not to be trusted")
    share = faithfulness.get("intercept_share")
    if _finite(share) and share > INTERCEPT_SHARE_MAX:
        warnings.append(f"the bias carries a median {share:.0%} of the predicted class's "
                        f"|logit|: decisions are only partly explained by concepts")
    return Verdict(trusted, warnings)
