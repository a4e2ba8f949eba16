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
#: for units named after the fact: below this share of used units whose best-correlated
#: vocabulary entry is their own name, the names are not the units' best description
NAME_MATCH_MIN = 0.5


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


def _intercept_warning(faithfulness: dict[str, Any]) -> list[str]:
    share = _finite(faithfulness.get("intercept_share"))
    if share is not None and share > INTERCEPT_SHARE_MAX:
        return [f"the bias carries a median {share:.0%} of the predicted class's |logit|: "
                f"decisions are only partly explained by concepts"]
    return []


def _fidelity_failure(fid: float) -> str:
    return (f"units do not track their concepts (median unit-to-concept correlation "
            f"{fid:.2f} < {FIDELITY_MIN}): the concept names of this model are not to be "
            f"trusted")


def _labels_verdict(faithfulness: dict[str, Any]) -> Verdict:
    auroc = _finite(faithfulness.get("concept_auroc_mean"))
    if auroc is None:
        return Verdict(True, ["units are trained on concept labels; without held-out labels "
                              "their meaning was not measured"])
    if auroc < AUROC_MIN:
        return Verdict(False, [f"units do not separate their labelled concepts (mean AUROC "
                               f"{auroc:.2f} < {AUROC_MIN}): the concept names of this model "
                               f"are not to be trusted"])
    return Verdict(True, [])


def _naming_verdict(faithfulness: dict[str, Any]) -> Verdict:
    warnings = ["the decisions never read the vocabulary (a random one gives the same "
                "predictions): the names describe discovered units after the fact"]
    fid = _finite(faithfulness.get("unit_fidelity_median"))
    match = _finite(faithfulness.get("name_match_rate"))
    auroc = _finite(faithfulness.get("concept_auroc_mean"))
    failures = []
    if fid is None or not faithfulness.get("n_units_used", 1):
        failures.append("no used unit's fidelity to its name was measured: the names of this "
                        "model are not to be trusted")
    elif fid < FIDELITY_MIN:
        failures.append(_fidelity_failure(fid))
    if match is not None and match < NAME_MATCH_MIN:
        failures.append(f"most used units correlate better with another vocabulary entry than "
                        f"with their own name (name match {match:.2f} < {NAME_MATCH_MIN}): the "
                        f"names of this model are not to be trusted")
    if auroc is not None and auroc < AUROC_MIN:
        failures.append(f"units do not separate the labelled concepts they are named after "
                        f"(mean AUROC {auroc:.2f} < {AUROC_MIN})")
    return Verdict(not failures, failures + warnings + _intercept_warning(faithfulness))


def verdict(faithfulness: dict[str, Any]) -> Verdict:
    """``trusted`` is False when the median unit fidelity is below ``FIDELITY_MIN`` or the
    random-bank agreement above ``AGREEMENT_MAX``; a large intercept share only warns.

    Units trained on ground-truth concept labels (``grounded_by == "labels"``, Koh et al.'s
    joint CBM) mean their names through the labels, not through the bank's directions, so for
    them a random bank changing nothing is expected: they are judged by their mean concept
    AUROC against held-out labels instead (``AUROC_MIN``).

    Units discovered without the vocabulary and named afterwards (``grounded_by ==
    "naming"``, DN-CBM) cannot depend on the bank by construction, so the random-bank control
    cannot speak for their names; in its place each name must beat the rest of the vocabulary:
    fidelity at least ``FIDELITY_MIN``, name match at least ``NAME_MATCH_MIN``, and with
    held-out labels a mean AUROC of at least ``AUROC_MIN``. Missing fidelity fails.
    """
    if faithfulness.get("grounded_by") == "labels":
        return _labels_verdict(faithfulness)
    if faithfulness.get("grounded_by") == "naming":
        return _naming_verdict(faithfulness)
    warnings: list[str] = []
    trusted = True
    fid = _finite(faithfulness.get("unit_fidelity_median"))
    if fid is not None and fid < FIDELITY_MIN:
        trusted = False
        warnings.append(_fidelity_failure(fid))
    agree = _finite(faithfulness.get("random_bank_agreement"))
    if agree is not None and agree > AGREEMENT_MAX:
        trusted = False
        warnings.append(f"a random concept bank gives the same predictions ({agree:.1%} "
                        f"agreement > {AGREEMENT_MAX:.0%}): the model does not use its "
                        f"concepts, and their names are not to be trusted")
    return Verdict(trusted, warnings + _intercept_warning(faithfulness))
