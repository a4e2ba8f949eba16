"""The audit tested like a classifier: every planted case gets its known verdict, every
must-fail case is caught by the claims it names, and without those claims it would pass (so
each check is what catches its case)."""

from __future__ import annotations

import pytest

from conceptlab.checks.planted_audit import CASES, run_case, trusted_without

MUST_FAIL = [c for c in CASES if c.expect == "must-fail"]


def test_the_suite_has_both_kinds_and_at_least_ten_cases() -> None:
    assert len(CASES) >= 10
    assert {c.expect for c in CASES} == {"must-pass", "must-fail"}
    assert all(c.caught_by for c in MUST_FAIL)
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_each_planted_case_gets_its_verdict_and_its_check_is_what_catches_it(case) -> None:
    result = run_case(case)
    assert result.ok, (case.name, result.trusted, result.statuses)
    if case.expect == "must-fail":
        assert trusted_without(result, case.caught_by), (
            f"{case.name}: still untrusted with {case.caught_by} disabled: another claim "
            f"catches it too ({result.statuses})")
