"""The audit as a profile of claims: each claim has its own measurement, control and status.

A single "trusted" bit mixes questions with different answers (do the units follow their
concepts? do the scores mean the words? do the decisions need these concepts?). The audit
answers each separately, with a status that is never a silent pass:

* ``pass``: measured, and the interval clears the bar;
* ``fail``: measured, and it does not;
* ``undecided``: measured, but the interval straddles the bar or too few held-out items stand
  behind it (``MIN_ITEMS``);
* ``not measured``: the data or inputs it needs were not given (said so in ``reason``).

``profile_verdict`` combines them: ``trusted`` needs the model's *required* claim (how its
units are tied to their names) to pass and no other claim about the explanations to fail or be
undecided; the necessity claim (``decisions_need_concepts``) is shown beside the verdict and
withholds trust only when it fails (the named directions carry *less* about the classes than
random ones). Every sentence here is computed from the figures.

Thresholds and the reasons for them: docs/faithfulness.md (chosen on the planted suite,
``conceptlab.checks.planted``, before any benchmark table was rerun).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from scipy import stats

from conceptlab.errors import ConceptlabValueError

Status = Literal["pass", "fail", "undecided", "not measured"]
STATUSES: tuple[Status, ...] = ("pass", "fail", "undecided", "not measured")

#: below this median unit-to-concept correlation the units do not track their names
FIDELITY_MIN = 0.5
#: below this share of used units whose best-correlated concept is their own name, the names
#: are not the units' best description
NAME_MATCH_MIN = 0.5
#: below this mean AUROC against ground truth (labels or example sets) the units do not
#: separate what their names say
AUROC_MIN = 0.7
#: above this median share of |logit| carried by the bias, decisions are not explained by
#: the concepts
INTERCEPT_SHARE_MAX = 0.5
#: fewer held-out items than this: no claim measured on items is decided
MIN_ITEMS = 50
#: how many control banks (random directions or random character strings) a control refits
N_CONTROLS = 5
#: one-sided level of the prediction bound a model must clear to beat its controls
CONTROL_LEVEL = 0.95
#: two-sided level of every interval the audit reports
INTERVAL_LEVEL = 0.95

#: claims in the order they are shown, with the question each answers
QUESTIONS: dict[str, str] = {
    "units_follow_concepts": "do the units follow their concepts?",
    "concepts_mean_words": "do the concept scores mean the words?",
    "class_links_make_sense": "do the class-concept links make sense?",
    "explanations_carry_decisions": "do the explanations carry the decisions?",
    "interventions_work": "does correcting concepts correct decisions?",
    "decisions_need_concepts": "do the decisions need these concepts?",
    "concepts_do_not_leak": "do the soft concepts carry only what the hard ones say?",
}
#: short labels of the claims (headline badges in the report and the explorer)
LABELS: dict[str, str] = {
    "units_follow_concepts": "units follow their concepts",
    "concepts_mean_words": "concepts mean their words",
    "class_links_make_sense": "class links make sense",
    "explanations_carry_decisions": "explanations carry decisions",
    "interventions_work": "interventions work",
    "decisions_need_concepts": "decisions need these concepts",
    "concepts_do_not_leak": "no concept leakage",
}
#: claims whose failure withholds trust only by failing (shown beside the verdict)
BESIDE = ("decisions_need_concepts", "concepts_do_not_leak")


@dataclass(frozen=True)
class Claim:
    """One claim of the profile: its status, the figures behind it and a computed reason."""

    name: str
    status: Status
    reason: str
    figures: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.name not in QUESTIONS:
            raise ConceptlabValueError(f"unknown claim {self.name!r}; known: "
                                       f"{', '.join(QUESTIONS)}")
        if self.status not in STATUSES:
            raise ConceptlabValueError(f"unknown status {self.status!r}; known: "
                                       f"{', '.join(STATUSES)}")

    @property
    def question(self) -> str:
        return QUESTIONS[self.name]

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "question": self.question, "reason": self.reason,
                **{k: _plain(v) for k, v in self.figures.items()}}


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, tuple | list):
        return [_plain(x) for x in v]
    return v


def finite(x: Any) -> float | None:
    """``x`` as a float when it is a finite number, else None."""
    if isinstance(x, bool) or not isinstance(x, int | float | np.floating | np.integer):
        return None
    f = float(x)
    return f if math.isfinite(f) else None


def not_measured(name: str, why: str) -> Claim:
    return Claim(name, "not measured", f"not measured: {why}")


def _too_few(name: str, n: int, figures: dict[str, Any]) -> Claim | None:
    if n < MIN_ITEMS:
        return Claim(name, "undecided", f"undecided: {n} held-out items are too few to decide "
                                         f"(at least {MIN_ITEMS} needed)", figures)
    return None


def _against(lo: float, hi: float, bar: float) -> Status:
    """``pass`` when the interval clears ``bar``, ``fail`` when it lies below, else
    ``undecided``."""
    if lo >= bar:
        return "pass"
    if hi < bar:
        return "fail"
    return "undecided"


def _interval_text(point: float, lo: float, hi: float) -> str:
    return f"{point:.2f} [{lo:.2f}, {hi:.2f}]"


def bootstrap_interval(values: np.ndarray, level: float = INTERVAL_LEVEL) -> tuple[float, float]:
    """Percentile interval of bootstrap replicates (NaNs dropped; NaN when none is left)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return float("nan"), float("nan")
    a = (1 - level) / 2
    return float(np.quantile(v, a)), float(np.quantile(v, 1 - a))


def t_interval(values: Sequence[float], level: float = INTERVAL_LEVEL
               ) -> tuple[float, float, float]:
    """Mean and Student-t interval of ``values`` (the interval is the mean itself for one)."""
    v = np.asarray([x for x in values if finite(x) is not None], dtype=np.float64)
    if len(v) == 0:
        return float("nan"), float("nan"), float("nan")
    m = float(v.mean())
    if len(v) == 1:
        return m, m, m
    half = float(stats.t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))
    return m, m - half, m + half


def prediction_bound(controls: Sequence[float], level: float = CONTROL_LEVEL) -> float:
    """One-sided upper prediction bound for one more control draw: ``mean + t * sd *
    sqrt(1 + 1/M)``. A model beats its controls when its figure lies above it."""
    v = np.asarray([x for x in controls if finite(x) is not None], dtype=np.float64)
    if len(v) < 2:
        return float("nan")
    t = float(stats.t.ppf(level, len(v) - 1))
    return float(v.mean() + t * v.std(ddof=1) * math.sqrt(1 + 1 / len(v)))


# ------------------------------------------------------------------------------------------
# the claims
# ------------------------------------------------------------------------------------------


def units_claim(fidelity: float | None, fidelity_ci: tuple[float, float], name_match: float | None,
                name_match_ci: tuple[float, float], n: int, n_units: int, *,
                null_fidelity: float | None = None) -> Claim:
    """Units follow their concepts: the median correlation of each used unit with its concept's
    encoder score (fidelity) and the share of used units whose best-correlated concept is their
    own (name match), on the activations the explanations show. Both intervals must clear
    their bars; ``null_fidelity`` (units scored against shuffled names) is recorded beside."""
    name = "units_follow_concepts"
    fid = finite(fidelity)
    figures: dict[str, Any] = {"fidelity": fidelity, "fidelity_interval": list(fidelity_ci),
                               "name_match": name_match, "name_match_interval": list(name_match_ci),
                               "n_items": n, "n_units_used": n_units,
                               "bars": {"fidelity": FIDELITY_MIN, "name_match": NAME_MATCH_MIN}}
    if null_fidelity is not None:
        figures["shuffled_name_fidelity"] = null_fidelity
    if fid is None or n_units == 0:
        return Claim(name, "fail", "fail: no used unit's fidelity to its name could be measured",
                     figures)
    few = _too_few(name, n, figures)
    if few:
        return few
    match = finite(name_match)
    s_fid = _against(fidelity_ci[0], fidelity_ci[1], FIDELITY_MIN)
    s_match: Status = ("pass" if match is None
                       else _against(name_match_ci[0], name_match_ci[1], NAME_MATCH_MIN))
    parts = [f"median unit-to-concept correlation {_interval_text(fid, *fidelity_ci)} "
             f"against a bar of {FIDELITY_MIN}"]
    if match is not None:
        parts.append(f"name match {_interval_text(match, *name_match_ci)} against "
                     f"{NAME_MATCH_MIN}")
    status: Status = ("fail" if "fail" in (s_fid, s_match)
                      else "undecided" if "undecided" in (s_fid, s_match) else "pass")
    return Claim(name, status, f"{status}: " + "; ".join(parts), figures)


def auroc_claim(name: str, auroc: float | None, interval: tuple[float, float], n: int,
                n_concepts: int, source: str) -> Claim:
    """Units separate what their names say: mean AUROC of each unit against ground truth for
    its concept (held-out concept labels, or a user's example sets against random
    counter-examples), whose interval must clear ``AUROC_MIN``."""
    a = finite(auroc)
    figures = {"auroc": auroc, "auroc_interval": list(interval), "n_items": n,
               "n_concepts": n_concepts, "source": source, "bar": AUROC_MIN}
    if a is None or n_concepts == 0:
        return not_measured(name, f"no concept with both classes in the {source}")
    few = _too_few(name, n, figures)
    if few:
        return few
    status = _against(interval[0], interval[1], AUROC_MIN)
    return Claim(name, status, f"{status}: mean AUROC of the units against the {source} "
                               f"{_interval_text(a, *interval)} against a bar of {AUROC_MIN} "
                               f"({n_concepts} concepts, {n} items)", figures)


def class_links_claim(support: float | None, controls: Sequence[float], control_kind: str,
                      n_units: int, agreement: float | None = None) -> Claim:
    """The class links make sense: the words of the concepts the head links to each class are
    closer (in the text encoder) to that class than to the others, by more than ``controls``
    reach (the same configuration on random character strings with the same names and class
    links, or the names permuted among the units): ``faithfulness.links.class_link_support``.
    Passes when the support is positive and above the controls' one-sided prediction bound;
    otherwise fails. ``agreement`` (the scale-free cosine) is recorded beside."""
    name = "class_links_make_sense"
    a = finite(support)
    bound = prediction_bound(controls)
    ctrl = [float(c) for c in controls if finite(c) is not None]
    figures = {"support": support, "agreement": agreement,
               "control_mean": float(np.mean(ctrl)) if ctrl else None,
               "control_bound": bound if math.isfinite(bound) else None,
               "controls": ctrl, "control_kind": control_kind, "n_units_used": n_units}
    if a is None or n_units == 0:
        return not_measured(name, "no used unit with a class link to compare")
    if not math.isfinite(bound):
        return not_measured(name, f"fewer than 2 {control_kind} controls")
    beats = a > bound and a > 0
    status: Status = "pass" if beats else "fail"
    verb = "beats" if beats else "does not beat"
    return Claim(name, status, f"{status}: the concepts' words favour the classes the head "
                               f"links them to by {a:.3f} (cosine), which {verb} {len(ctrl)} "
                               f"{control_kind} (mean {figures['control_mean']:.3f}, "
                               f"{CONTROL_LEVEL:.0%} bound {bound:.3f})", figures)


def decisions_claim(intercept_share: float | None, deletion_auc: float | None,
                    random_deletion_auc: float | None, n: int) -> Claim:
    """The explanations carry the decisions: the bias carries at most ``INTERCEPT_SHARE_MAX``
    of the median predicted |logit|, and deleting concepts in the explanation's order destroys
    decisions faster than a random order (deletion AUC below the random one)."""
    name = "explanations_carry_decisions"
    share, dele, rnd = finite(intercept_share), finite(deletion_auc), finite(random_deletion_auc)
    figures = {"intercept_share": intercept_share, "deletion_auc": deletion_auc,
               "random_deletion_auc": random_deletion_auc, "n_items": n,
               "bar": INTERCEPT_SHARE_MAX}
    if share is None:
        return not_measured(name, "no head to read")
    few = _too_few(name, n, figures)
    if few:
        return few
    problems = []
    if share > INTERCEPT_SHARE_MAX:
        problems.append(f"the bias carries a median {share:.0%} of the predicted class's |logit| "
                        f"(bar {INTERCEPT_SHARE_MAX:.0%})")
    if dele is not None and rnd is not None and dele >= rnd:
        problems.append(f"deleting the explanation's concepts first (AUC {dele:.3f}) is no "
                        f"faster than a random order ({rnd:.3f})")
    if problems:
        return Claim(name, "fail", "fail: " + "; ".join(problems), figures)
    tail = (f", deletion AUC {dele:.3f} against {rnd:.3f} for a random order"
            if dele is not None and rnd is not None else "")
    return Claim(name, "pass", f"pass: the bias carries a median {share:.0%} of the predicted "
                               f"class's |logit|{tail}", figures)


def interventions_claim(gain: float | None, n: int) -> Claim:
    """Correcting concepts corrects decisions: accuracy with every labelled concept set to its
    true state minus accuracy with none, which must be positive."""
    name = "interventions_work"
    g = finite(gain)
    if g is None:
        return not_measured(name, "no held-out concept labels to intervene with")
    figures = {"intervention_gain": g, "n_items": n}
    few = _too_few(name, n, figures)
    if few:
        return few
    status: Status = "pass" if g > 0 else "fail"
    verb = "raises" if g > 0 else "does not raise"
    return Claim(name, status, f"{status}: setting every labelled concept to its truth {verb} "
                               f"accuracy ({g:+.3f})", figures)


def necessity_claim(gaps: Sequence[float], control_kind: str, n: int,
                    failed: Sequence[str] = ()) -> Claim:
    """The decisions need these concepts: accuracy minus the accuracy of the same configuration
    refitted on each of ``N_CONTROLS`` control banks, with a t-interval over the banks. Above
    zero passes; holding zero ("any directions would do") is undecided, a finding shown beside
    the verdict; below zero fails (the named directions carry less about the classes than
    random ones, so the names are not what the model reads). ``failed``: the errors of control
    refits that could not be fitted (e.g. a concept filter that keeps no control concept); when
    they leave fewer than 2 gaps, the claim says so instead of asking for training data."""
    name = "decisions_need_concepts"
    mean, lo, hi = t_interval(gaps)
    figures = {"gap": mean if math.isfinite(mean) else None, "gap_interval": [lo, hi],
               "gaps": [float(g) for g in gaps], "control_kind": control_kind, "n_items": n,
               "failed_controls": len(failed)}
    if not math.isfinite(mean) or len(gaps) < 2:
        if failed:
            return Claim(name, "not measured",
                         f"not measured: {len(failed)} of {len(failed) + len(gaps)} control "
                         f"refits on {control_kind} could not be fitted with this "
                         f"configuration (first: {failed[0]})",
                         {k: v for k, v in figures.items() if k not in ("gap", "gap_interval")})
        return not_measured(name, "needs the training data for control refits (at least 2)")
    few = _too_few(name, n, figures)
    if few:
        return few
    pts = f"{100 * mean:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}] points"
    if lo > 0:
        return Claim(name, "pass", f"pass: these concepts beat {len(gaps)} {control_kind} by "
                                   f"{pts}", figures)
    if hi < 0:
        neg = f"{-100 * mean:.1f} [{-100 * hi:.1f}, {-100 * lo:.1f}] points"
        return Claim(name, "fail", f"fail: {len(gaps)} {control_kind} beat these concepts by "
                                   f"{neg}: the named directions carry less about the classes "
                                   f"than random ones", figures)
    return Claim(name, "undecided", f"undecided: against {len(gaps)} {control_kind} the gap is "
                                    f"{pts}, which holds zero: any directions would do as well "
                                    f"for accuracy", figures)


def leakage_claim(soft_accuracy: float | None, hard_accuracy: float | None, gap_max: float,
                  n: int, oracle_impurity: float | None = None) -> Claim:
    """The soft concept probabilities of a model trained on concept labels carry no task
    information beyond the hard (thresholded) concepts (``faithfulness.leakage``): a classifier
    on the soft values may beat the same classifier on the hard ones by at most ``gap_max``.
    A larger gap is leakage: interventions and explanations then mislead (Mahinpei et al.
    2021). Shown beside the verdict; withholds trust only by failing."""
    name = "concepts_do_not_leak"
    soft, hard = finite(soft_accuracy), finite(hard_accuracy)
    if soft is None or hard is None:
        return not_measured(name, "needs concept probabilities of a model trained on concept "
                                  "labels, with the training split")
    gap = soft - hard
    figures: dict[str, Any] = {"soft_concept_accuracy": soft, "hard_concept_accuracy": hard,
                               "soft_hard_gap": gap, "gap_max": gap_max, "n_items": n}
    if finite(oracle_impurity) is not None:
        figures["oracle_impurity_logistic"] = float(oracle_impurity)  # type: ignore[arg-type]
    few = _too_few(name, n, figures)
    if few:
        return few
    text = (f"a classifier on the soft concepts scores {soft:.3f}, on the hard concepts "
            f"{hard:.3f} (gap {gap:+.3f}, bar {gap_max:.2f})")
    if gap > gap_max:
        return Claim(name, "fail", f"fail: {text}: the soft values leak task information the "
                                   f"concepts do not name", figures)
    return Claim(name, "pass", f"pass: {text}", figures)


# ------------------------------------------------------------------------------------------
# the verdict
# ------------------------------------------------------------------------------------------


@dataclass
class Verdict:
    """``trusted`` and the sentences shown with it: ``warnings`` (why trust is withheld, and
    other failed claims) and ``findings`` (claims shown beside the verdict)."""

    trusted: bool
    warnings: list[str] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"trusted": self.trusted, "warnings": list(self.warnings),
                "findings": list(self.findings)}


def profile_verdict(claims: Iterable[Claim], required: str) -> Verdict:
    """``trusted`` needs the ``required`` claim to pass and every other claim about the
    explanations to be ``pass`` or ``not measured``; the claims in ``BESIDE`` withhold trust
    only when they fail."""
    by = {c.name: c for c in claims}
    if required not in by:
        raise ConceptlabValueError(f"the required claim {required!r} is missing from the profile")
    warnings: list[str] = []
    findings: list[str] = []
    req = by[required]
    if req.status != "pass":
        warnings.append(f"{req.question} {req.reason}: the concept names of this model are "
                        f"not to be trusted")
    for c in by.values():
        if c.name == required:
            continue
        if c.name in BESIDE:
            if c.status == "fail":
                warnings.append(f"{c.question} {c.reason}")
            elif c.status in ("pass", "undecided"):
                findings.append(f"{c.question} {c.reason}")
        elif c.status in ("fail", "undecided"):
            warnings.append(f"{c.question} {c.reason}")
    return Verdict(not warnings, warnings, findings)


def claim_summary(record: Mapping[str, Any]) -> list[dict[str, str]]:
    """Per claim stored in an audit record, in the audit's order: its ``name``, short
    ``label``, ``question``, ``status``, ``reason`` and ``measurement`` (the reason without its
    leading status word): what the report, the explorer and the CLI show."""
    raw = record.get("claims")
    if not isinstance(raw, Mapping):
        return []
    out = []
    for name in QUESTIONS:
        c = raw.get(name)
        if isinstance(c, Mapping):
            reason = str(c.get("reason", ""))
            out.append({"name": name, "label": LABELS[name],
                        "question": str(c.get("question", QUESTIONS[name])),
                        "status": str(c.get("status")), "reason": reason,
                        "measurement": reason.partition(": ")[2] or reason})
    return out


def claims_from_record(record: Mapping[str, Any]) -> list[Claim]:
    """The claims stored in an audit record (``record["claims"]``), as ``Claim`` objects."""
    raw = record.get("claims")
    if not isinstance(raw, Mapping):
        return []
    out = []
    for name, c in raw.items():
        if name in QUESTIONS and isinstance(c, Mapping) and c.get("status") in STATUSES:
            figs = {k: v for k, v in c.items() if k not in ("status", "question", "reason")}
            out.append(Claim(name, c["status"], str(c.get("reason", "")), figs))
    return out
