"""The audit's claims: each status rule on known figures, the verdict that combines them, and
sentences that follow the numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from conceptlab import faithfulness as fm
from conceptlab.faithfulness import claims as cl


def test_units_claim_passes_fails_and_stays_undecided_by_its_intervals() -> None:
    ok = cl.units_claim(0.9, (0.85, 0.95), 1.0, (0.9, 1.0), n=500, n_units=6)
    assert ok.status == "pass" and "0.90 [0.85, 0.95]" in ok.reason
    low = cl.units_claim(0.3, (0.2, 0.4), 1.0, (1.0, 1.0), n=500, n_units=6)
    assert low.status == "fail"
    wrong_names = cl.units_claim(0.83, (0.8, 0.86), 0.0, (0.0, 0.1), n=500, n_units=6)
    assert wrong_names.status == "fail" and "name match 0.00" in wrong_names.reason
    straddles = cl.units_claim(0.52, (0.45, 0.6), 1.0, (1.0, 1.0), n=500, n_units=6)
    assert straddles.status == "undecided"
    few = cl.units_claim(0.9, (0.85, 0.95), 1.0, (1.0, 1.0), n=12, n_units=6)
    assert few.status == "undecided" and "12 held-out items" in few.reason
    none = cl.units_claim(float("nan"), (math.nan, math.nan), None, (math.nan, math.nan),
                          n=500, n_units=0)
    assert none.status == "fail"  # unmeasurable fidelity is never a silent pass


def test_necessity_claim_reads_its_interval_and_its_sentence_follows_the_numbers() -> None:
    up = cl.necessity_claim([0.05, 0.06, 0.07, 0.05, 0.06], "random banks", n=500)
    assert up.status == "pass" and "beat 5 random banks by +5.8" in up.reason
    down = cl.necessity_claim([-0.05, -0.06, -0.07, -0.05, -0.06], "random banks", n=500)
    assert down.status == "fail" and "random banks beat these concepts by 5.8" in down.reason
    flat = cl.necessity_claim([0.01, -0.01, 0.02, -0.02, 0.0], "random banks", n=500)
    assert flat.status == "undecided" and "any directions would do" in flat.reason
    assert cl.necessity_claim([], "random banks", n=500).status == "not measured"
    assert "needs the training data" in cl.necessity_claim([], "random banks", n=500).reason


def test_necessity_claim_names_control_refits_that_could_not_be_fitted() -> None:
    why = "the filter before training drops every concept"
    claim = cl.necessity_claim([0.01], "random character-string banks", n=500,
                               failed=[why] * 4)
    assert claim.status == "not measured"
    assert claim.reason.startswith("not measured: 4 of 5 control refits on random "
                                     "character-string banks could not be fitted")
    assert why in claim.reason and "training data" not in claim.reason
    assert claim.figures["failed_controls"] == 4
    assert "gap_interval" not in claim.figures  # no NaN in a record a browser parses


def test_class_links_claim_must_beat_the_prediction_bound_of_its_controls() -> None:
    controls = [0.05, 0.08, 0.02, 0.06, 0.04]
    bound = cl.prediction_bound(controls)
    sd = np.std(controls, ddof=1)
    assert bound == pytest.approx(np.mean(controls) + 2.1318 * sd * math.sqrt(1.2), rel=1e-3)
    assert cl.class_links_claim(0.3, controls, "refits", 5).status == "pass"
    assert cl.class_links_claim(bound - 1e-3, controls, "refits", 5).status == "fail"
    assert cl.class_links_claim(-0.2, [-0.5, -0.6, -0.55], "refits", 5).status == "fail"
    assert cl.class_links_claim(0.3, [0.1], "refits", 5).status == "not measured"


def test_decisions_and_interventions_claims() -> None:
    assert cl.decisions_claim(0.2, 0.3, 0.5, n=500).status == "pass"
    assert cl.decisions_claim(0.7, 0.3, 0.5, n=500).status == "fail"
    assert cl.decisions_claim(0.2, 0.6, 0.5, n=500).status == "fail"
    assert cl.interventions_claim(0.1, n=500).status == "pass"
    assert cl.interventions_claim(-0.01, n=500).status == "fail"
    assert cl.interventions_claim(None, n=500).status == "not measured"


def test_verdict_needs_the_required_claim_and_no_failed_explanation_claim() -> None:
    good = cl.units_claim(0.9, (0.85, 0.95), 1.0, (1.0, 1.0), n=500, n_units=6)
    flat = cl.necessity_claim([0.01, -0.01, 0.0], "random banks", n=500)
    v = cl.profile_verdict([good, flat, cl.not_measured("concepts_mean_words", "no labels")],
                           "units_follow_concepts")
    assert v.trusted and v.findings and "any directions" in v.findings[0] and not v.warnings
    links = cl.class_links_claim(0.0, [0.1, 0.2, 0.15], "refits", 5)
    assert not cl.profile_verdict([good, links], "units_follow_concepts").trusted
    worse = cl.necessity_claim([-0.1, -0.12, -0.11], "random banks", n=500)
    assert not cl.profile_verdict([good, worse], "units_follow_concepts").trusted
    unmeasured = cl.not_measured("concepts_mean_words", "no labels")
    v = cl.profile_verdict([good, unmeasured], "concepts_mean_words")
    assert not v.trusted and "not to be trusted" in v.warnings[0]
    with pytest.raises(ValueError, match="required claim"):
        cl.profile_verdict([good], "class_links_make_sense")


def test_a_claim_round_trips_through_its_record() -> None:
    c = cl.units_claim(0.9, (0.85, 0.95), 1.0, (1.0, 1.0), n=500, n_units=6)
    back = cl.claims_from_record({"claims": {c.name: c.as_dict()}})
    assert back[0].status == "pass" and back[0].figures["fidelity"] == 0.9
    with pytest.raises(ValueError):
        cl.Claim("made up", "pass", "")
    with pytest.raises(ValueError):
        cl.Claim("units_follow_concepts", "maybe", "")


def test_class_link_support_and_agreement_on_known_links() -> None:
    A = np.array([[0.8, 0.2], [0.2, 0.8]])  # concept 0 is class 0's word, concept 1 class 1's
    W_right = np.array([[1.0, 0.0], [0.0, 1.0]])
    W_wrong = W_right[::-1]
    assert fm.class_link_agreement(W_right, A) == pytest.approx(1.0)
    assert fm.class_link_agreement(W_wrong, A) == pytest.approx(-1.0)
    # all weight on the linked class: sqrt((C-1)/C) x (A[c] - mean of the others)
    assert fm.class_link_support(W_right, A) == pytest.approx(math.sqrt(0.5) * 0.6)
    # a faint association agrees as well but supports little
    assert fm.class_link_agreement(W_right, A * 0.1) == pytest.approx(1.0)
    assert fm.class_link_support(W_right, A * 0.1) == pytest.approx(math.sqrt(0.5) * 0.06)
    perm = fm.permuted_supports(W_right, A, n=10, seed=0)
    assert len(perm) == 10 and min(perm) >= -math.sqrt(0.5) * 0.6 - 1e-9
    with pytest.raises(ValueError):
        fm.class_link_support(W_right, A[:, :1])


def test_unit_figures_intervals_hold_the_point_estimate() -> None:
    rng = np.random.default_rng(0)
    S = rng.normal(size=(400, 5))
    U = S + 0.5 * rng.normal(size=S.shape)
    f = fm.unit_figures(U, S, seed=0, n_boot=50)
    lo, hi = f["fidelity_ci"]
    assert lo <= f["fidelity"]["median"] <= hi and hi - lo < 0.2
    assert f["name_match"] == 1.0
