"""When the control refits of the necessity check cannot be fitted (a reference's concept filter
that keeps no random concept), the audit says so, not "needs the training data"."""

from __future__ import annotations

from typing import Any

import pytest

from conceptlab.bottleneck.audit import audit
from conceptlab.bottleneck.model import ConceptBottleneckModel
from conceptlab.concepts.bank import ConceptBank
from conceptlab.errors import ConceptlabValueError
from tests.planted import PLANTED

CLASSES = ["cat", "dog", "car", "ship"]


class _FilterDropsEverything:
    def fit(self, *args: Any, **kwargs: Any) -> None:
        raise ConceptlabValueError("the filter before training drops every concept")


@pytest.fixture(scope="module")
def fitted() -> tuple[ConceptBottleneckModel, Any, Any, Any]:
    Xt, yt, V, _, _ = PLANTED.data(600, 1)
    Xv, yv, _, _, _ = PLANTED.data(200, 2)
    Xs, ys, _, _, _ = PLANTED.data(400, 3)
    names = [f"{CLASSES[k // 6]} concept {k % 6}" for k in range(len(V))]
    bank = ConceptBank(V, names, provenance={"encoder": "synthetic",
                                             "encoder_fingerprint": "fp-synthetic-0"})
    model = ConceptBottleneckModel.from_options(
        bank, CLASSES, method="l1", nec=None,
        options={"max_epochs": 5, "patience": 2, "show_progress": False}, seed=0)
    model.fit(Xt, yt, Xv, yv)
    return model, (Xt, yt, Xv, yv), Xs, ys


def test_failed_control_refits_are_named(fitted: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    model, refit, Xs, ys = fitted
    monkeypatch.setattr(model, "clone", lambda **kw: _FilterDropsEverything())
    out = audit(model, Xs, ys, refit=refit)
    claim = out["claims"]["decisions_need_concepts"]
    assert claim["status"] == "not measured"
    assert "could not be fitted" in claim["reason"] and "drops every concept" in claim["reason"]
    assert len(out["failed_controls"]) == claim["failed_controls"] > 0


def test_working_control_refits_are_measured(fitted: Any) -> None:
    model, refit, Xs, ys = fitted
    out = audit(model, Xs, ys, refit=refit)
    assert out["claims"]["decisions_need_concepts"]["status"] != "not measured"
    assert "failed_controls" not in out
