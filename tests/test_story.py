"""Result sentences follow the numbers: swap the rows and the words change."""

from __future__ import annotations

import numpy as np
import pytest

from conceptlab.workflows.story import (
    comparison_sentence,
    demo_story,
    paired_difference,
    verdict_sentence,
)


def test_paired_difference_and_its_sentence_follow_the_rows() -> None:
    a = np.array([True] * 90 + [False] * 10)
    b = np.array([True] * 60 + [False] * 40)
    diff = paired_difference(a, b)
    assert diff[0] == pytest.approx(0.3) and diff[1] > 0
    assert comparison_sentence("real names", "nonsense", diff, 5).startswith(
        "real names beat nonsense by 30.0 points")
    swapped = paired_difference(b, a)
    assert "lost to nonsense by 30.0 points" in comparison_sentence("real names", "nonsense",
                                                                   swapped, 5)
    tie = paired_difference(a, a)
    assert "did not beat" in comparison_sentence("real names", "nonsense", tie, 5)
    with pytest.raises(ValueError):
        paired_difference(a, b[:3])


def _faith(trusted: bool, links: str, need: str) -> dict:
    return {"trusted": trusted, "claims": {
        "units_follow_concepts": {"status": "pass"},
        "class_links_make_sense": {"status": links},
        "decisions_need_concepts": {"status": need}}}


def test_verdict_sentences_name_the_claims_behind_them() -> None:
    good = verdict_sentence("shapes", _faith(True, "pass", "pass"))
    assert "trusts" in good and "class links make sense" in good
    bad = verdict_sentence("fashion", _faith(False, "fail", "undecided"))
    assert "does not trust" in bad and "class links make sense" in bad
    assert "Random directions would do as well" in bad
    story = demo_story({"faithfulness": _faith(False, "fail", "undecided")},
                       [{"faithfulness": _faith(True, "pass", "pass"), "nec_requested": 5.0}],
                       (0.2, 0.1, 0.3))
    assert story[0].startswith("Shapes") and "trusts" in story[0]
    assert "does not trust" in story[1] and "beat random letter strings by 20.0" in story[2]
    flipped = demo_story({"faithfulness": _faith(True, "pass", "pass")},
                         [{"faithfulness": _faith(False, "fail", "pass"), "nec_requested": 5.0}],
                         (-0.01, -0.05, 0.03))
    assert "does not trust" in flipped[0] and "trusts" in flipped[1]
    assert "did not beat" in flipped[2]
