"""Contracts over every registry: a newly registered dataset, encoder or objective is held to
them the moment it exists (the objective contract itself is tests/bottleneck/test_contract.py).
"""

from __future__ import annotations

import pytest

from conceptlab.bottleneck.objectives import OBJECTIVES, objective_names
from conceptlab.data import build_dataset, known_datasets
from conceptlab.encoders import build_encoder
from conceptlab.encoders.base import package_encoders
from conceptlab.errors import ConceptlabError


@pytest.mark.parametrize("prefix", known_datasets())
def test_every_dataset_refuses_bad_input_with_a_conceptlab_error(prefix: str, tmp_path) -> None:
    """An unknown option, or a path that does not exist, is a one-line ConceptlabError (the
    CLI's exit code 2), never another exception type from deep inside a loader."""
    for spec in (prefix, f"{prefix}:{tmp_path / 'missing'}"):
        try:
            build_dataset(spec, not_an_option=1)
        except ConceptlabError as err:
            assert "\n" not in str(err).strip()
        else:  # pragma: no cover - a loader that accepts anything breaks the contract
            pytest.fail(f"{spec!r} accepted an unknown option")


@pytest.mark.parametrize("prefix", package_encoders())
def test_every_encoder_refuses_an_unknown_option(prefix: str, tmp_path) -> None:
    for spec in (prefix, f"{prefix}:{tmp_path / 'missing'}"):
        with pytest.raises(ConceptlabError):
            build_encoder(spec, not_an_option=1)


def test_objective_registry_lists_are_derived_from_the_registry() -> None:
    from conceptlab.cli import app
    from conceptlab.workflows.cbm import methods

    assert methods() == [*objective_names(), "dncbm", "cem", "probe"]
    fit = next(c for c in app.registered_commands if c.name == "fit" or
               getattr(c.callback, "__name__", "") == "fit")
    assert fit is not None
    for name in OBJECTIVES:
        assert OBJECTIVES[name].summary, f"objective {name!r} has no summary for the CLI help"
