"""Contracts of the two shared helpers: one Registry type for every registry of the package,
one save/load path for every saved kind (each failure one FormatError naming the file)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conceptlab.errors import ConceptlabError, FormatError, MissingFileError, UnknownNameError
from conceptlab.utils.registry import Registry, RegistryError
from conceptlab.utils.saved import SavedKind, read_json_checked, read_saved, write_saved


def _f() -> int:
    return 1


def _g() -> int:
    return 2


def test_duplicates_are_refused_and_unknown_names_suggest_close_ones() -> None:
    reg: Registry[object] = Registry("widget")
    reg.register("sobol")(_f)
    reg.add("occlusion", _g)
    reg.add("sobol", _f)  # the same entry again (a module reload) is fine
    with pytest.raises(RegistryError, match="'sobol' is already registered"):
        reg.add("sobol", _g)
    with pytest.raises(RegistryError, match="non-empty name"):
        reg.add("", _g)
    with pytest.raises(UnknownNameError, match=r"unknown widget 'sobl'; did you mean sobol\?"):
        reg.lookup("sobl")
    with pytest.raises(UnknownNameError, match=r"\(known: occlusion, sobol\)"):
        reg.lookup("zzz")
    assert reg.names() == ["sobol", "occlusion"] and reg.lookup("occlusion") is _g
    assert "sobol" in reg and dict(reg) == {"sobol": _f, "occlusion": _g}

    class WidgetError(ConceptlabError, ValueError):
        pass

    typed: Registry[object] = Registry("widget", WidgetError)
    with pytest.raises(WidgetError, match="unknown widget"):
        typed.lookup("x")


def _package_registries() -> dict[str, Registry]:
    from conceptlab.baselines import TEMPLATE_SETS
    from conceptlab.bottleneck.concept_model import CONCEPT_MODELS, concept_model_kinds
    from conceptlab.bottleneck.heads import SOLVERS
    from conceptlab.bottleneck.layers import LAYERS
    from conceptlab.bottleneck.objectives import OBJECTIVES
    from conceptlab.data import base as data_base
    from conceptlab.data import known_datasets
    from conceptlab.discover import base as disc_base
    from conceptlab.discover.base import known_dictionaries
    from conceptlab.discover.naming import NAMING_VOCABULARIES
    from conceptlab.encoders import base as enc_base
    from conceptlab.encoders import known_encoders
    from conceptlab.importance import IMPORTANCE
    from conceptlab.lm.directions import ESTIMATORS
    from conceptlab.lm.model import ARCHITECTURES, MODEL_TYPES
    from conceptlab.tcav import CAV_METHODS

    known_datasets(), known_dictionaries(), known_encoders(), concept_model_kinds()  # built-ins
    return {"objectives": OBJECTIVES, "importance": IMPORTANCE, "cav": CAV_METHODS,
            "datasets": vars(data_base)["_REGISTRY"],
            "dictionaries": vars(disc_base)["_REGISTRY"],
            "encoders": vars(enc_base)["_REGISTRY"], "layers": LAYERS, "solvers": SOLVERS,
            "template_sets": TEMPLATE_SETS, "lm_directions": ESTIMATORS,
            "concept_models": CONCEPT_MODELS, "naming": NAMING_VOCABULARIES,
            "lm_architectures": ARCHITECTURES, "lm_model_types": MODEL_TYPES}


@pytest.mark.parametrize("which", ["objectives", "importance", "cav", "datasets",
                                   "dictionaries", "encoders", "layers", "solvers",
                                   "template_sets", "lm_directions", "concept_models",
                                   "naming", "lm_architectures", "lm_model_types"])
def test_every_package_registry_is_a_registry(which: str) -> None:
    reg = _package_registries()[which]
    assert isinstance(reg, Registry) and len(reg) >= 2
    first = reg.names()[0]
    with pytest.raises(ConceptlabError, match="did you mean"):
        reg.lookup(first + "x")
    with pytest.raises(RegistryError, match="already registered"):
        reg.add(first, object())


KIND = SavedKind("widget_state", (1, 2), "widget")


def test_round_trip_and_the_sidecar_records_kind_and_format(tmp_path) -> None:
    w = np.arange(6, dtype=np.float32).reshape(2, 3)
    write_saved(tmp_path, KIND, {"names": ["a", "b"]}, {"w": w})
    meta, arrays = read_saved(tmp_path, KIND, required=("w",))
    assert meta == {"kind": "widget_state", "format": 2, "names": ["a", "b"]}
    np.testing.assert_array_equal(arrays["w"], w)
    with pytest.raises(FormatError, match=r"widget\.safetensors: lacks tensor\(s\) \['v'\]"):
        read_saved(tmp_path, KIND, required=("w", "v"))


@pytest.mark.parametrize("content, message", [
    ({"kind": "concept_bottleneck_model", "format": 2}, "holds a 'concept_bottleneck_model', "
                                                        "not a 'widget_state'"),
    ({"kind": "widget_state", "format": 3}, "widget_state format 3 is not one this version"),
    ({"kind": "widget_state", "format": True}, "format True is not one"),
    ({"format": 1}, "no 'kind' field"),
    ([1, 2], "expected a JSON object, got a list"),
])
def test_wrong_kind_version_or_shape_names_the_file(tmp_path, content, message) -> None:
    write_saved(tmp_path, KIND, {}, {"w": np.zeros(1, np.float32)})
    (tmp_path / "widget.json").write_text(json.dumps(content))
    with pytest.raises(FormatError, match=r"widget\.json: ") as err:
        read_saved(tmp_path, KIND)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_malformed_and_deeply_nested_json_name_the_file(tmp_path) -> None:
    p = tmp_path / "widget.json"
    p.write_text('{"kind": "widget_state", "format": 1,')
    with pytest.raises(FormatError, match=r"widget\.json: not valid JSON"):
        read_json_checked(p)
    p.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(FormatError, match=r"widget\.json: JSON nested too deeply"):
        read_saved(tmp_path, KIND)
    p.write_bytes(b"\xff\xfe{}")
    with pytest.raises(FormatError, match="not UTF-8"):
        read_saved(tmp_path, KIND)
    with pytest.raises(MissingFileError, match="no such file"):
        read_saved(tmp_path / "nowhere", KIND)


def test_a_saved_kind_keeps_its_family_error_and_legacy_sidecars(tmp_path) -> None:
    from conceptlab.concepts.bank import ConceptBank, ConceptBankError

    bank = ConceptBank(np.eye(2, dtype=np.float32), ["a", "b"])
    bank.save(tmp_path / "b")
    meta = json.loads((tmp_path / "b" / "bank.json").read_text())
    assert meta["kind"] == "concept_bank"
    del meta["kind"]  # written before kind was recorded: still read
    (tmp_path / "b" / "bank.json").write_text(json.dumps(meta))
    assert ConceptBank.load(tmp_path / "b").names == ["a", "b"]
    (tmp_path / "b" / "bank.json").write_text("[" * 100_000)
    with pytest.raises(ConceptBankError, match=r"bank\.json: JSON nested too deeply") as err:
        ConceptBank.load(tmp_path / "b")
    assert isinstance(err.value, FormatError)
    (tmp_path / "b" / "bank.safetensors").write_bytes(b"not a tensor file")
    (tmp_path / "b" / "bank.json").write_text(json.dumps(meta))
    with pytest.raises(FormatError, match=r"bank\.safetensors: unreadable tensors"):
        ConceptBank.load(tmp_path / "b")
