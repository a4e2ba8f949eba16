"""Every saved kind goes through ``utils.saved``: for each one (CBM, CEM, DN-CBM, concept bank,
discovered dictionary, linear map, matcher, neuron map, a discover run's decision probe) a
deeply nested JSON sidecar, a sidecar of another ``kind`` and a truncated tensor file each give
one FormatError line that names the damaged file, never a RecursionError, a safetensors
traceback or a wrong-format message. Each kind is saved once from a tiny object, then damaged
in a copy."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conceptlab.errors import FormatError


def _cbm(folder: Path) -> Callable[[Path], Any]:
    from conceptlab.bottleneck.model import ConceptBottleneckModel
    from tests.report.tiny_explorer import fit_tiny

    model, _, _ = fit_tiny(n_train=200)
    model.save(folder)
    return ConceptBottleneckModel.load


def _cem(folder: Path) -> Callable[[Path], Any]:
    from conceptlab.bottleneck.cem import CEMConfig, ConceptEmbeddingModel

    rng = np.random.default_rng(0)
    C = rng.integers(0, 2, (60, 2)).astype(np.float32)
    X = (C @ rng.normal(size=(2, 6)) + 0.1 * rng.normal(size=(60, 6))).astype(np.float32)
    y = C[:, 0].astype(np.int64)
    ConceptEmbeddingModel(["a", "b"], ["0", "1"], CEMConfig(emb_size=2, max_epochs=2),
                          seed=0).fit(X, y, C, X, y).save(folder)
    return ConceptEmbeddingModel.load


def _dncbm(folder: Path) -> Callable[[Path], Any]:
    from conceptlab.discover.dncbm import DNCBM, fit_dncbm

    rng = np.random.default_rng(0)
    Z = np.abs(rng.normal(size=(80, 6))).astype(np.float32)
    y = (Z[:, 0] > Z[:, 1]).astype(np.int64)
    E = np.eye(6, dtype=np.float32)
    fit_dncbm(Z, y, Z, y, n_classes=2, vocab=list("abcdef"), vocab_embeddings=E,
              n_concepts=4, nec=None, seed=0, sae_options={"min_steps": 20}).save(folder)
    return DNCBM.load


def _bank(folder: Path) -> Callable[[Path], Any]:
    from conceptlab.concepts.bank import ConceptBank

    ConceptBank(np.eye(3, dtype=np.float32), ["a", "b", "c"]).save(folder)
    return ConceptBank.load


def _dictionary(folder: Path) -> Callable[[Path], Any]:
    from conceptlab.concepts.bank import ConceptBank
    from conceptlab.discover.bank import DiscoveredConcepts
    from conceptlab.discover.base import build_dictionary

    X = np.abs(np.random.default_rng(0).normal(size=(20, 4))).astype(np.float32)
    d = build_dictionary("pca", 2, seed=0).fit(X)
    DiscoveredConcepts(d, ConceptBank(np.eye(2, 4, dtype=np.float32), ["u", "v"])).save(folder)
    return DiscoveredConcepts.load


def _linear_map(folder: Path) -> Callable[[Path], Any]:
    from conceptlab.encoders.linear import LinearMap, load_map, write_map

    lm = LinearMap(np.eye(3, 2), np.zeros(2), np.zeros(3), np.ones(3), method="lstsq")
    write_map(folder, lm, {"dim": 3}, {"dim": 2})
    return load_map


def _matcher(folder: Path) -> Callable[[Path], Any]:
    from conceptlab.concepts.bank import ConceptBank
    from conceptlab.match.model import ExplicitMatcher

    ExplicitMatcher(ConceptBank(np.eye(3, dtype=np.float32), ["a", "b", "c"])).save(folder)
    return ExplicitMatcher.load


def _neurons(folder: Path) -> Callable[[Path], Any]:
    from conceptlab.lm.neurons import NeuronMap

    n = np.arange(2, dtype=np.int32)
    NeuronMap(layer=n, neuron=n, top_ids=np.zeros((2, 1), np.int32),
              top_logits=np.ones((2, 1), np.float32), score=np.ones(2, np.float32),
              tokens=["x"], info={"d_mlp": 2}).save(folder)
    return NeuronMap.load


def _probe(folder: Path) -> Callable[[Path], Any]:
    from conceptlab.discover.bank import load_probe, save_probe

    save_probe(folder, np.eye(2, 3, dtype=np.float32), np.zeros(2, np.float32))
    return load_probe


#: kind -> (writer of a tiny saved object returning its loader, file stem)
KINDS: dict[str, tuple[Callable[[Path], Callable[[Path], Any]], str]] = {
    "cbm": (_cbm, "model"), "cem": (_cem, "model"), "dn-cbm": (_dncbm, "model"),
    "concept_bank": (_bank, "bank"), "dictionary": (_dictionary, "dictionary"),
    "linear_map": (_linear_map, "map"), "matcher": (_matcher, "matcher"),
    "neuron_map": (_neurons, "neurons"), "decision_probe": (_probe, "probe"),
}


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Any]]:
    root = tmp_path_factory.mktemp("saved")
    out = {}
    for kind, (write, _) in KINDS.items():
        loader = write(root / kind)
        loader(root / kind)  # the intact folder loads
        out[kind] = (root / kind, loader)
    return out


def _nested(path: Path) -> None:
    path.write_text("[" * 100_000 + "]" * 100_000)


def _other_kind(path: Path) -> None:
    meta = json.loads(path.read_text())
    path.write_text(json.dumps({**meta, "kind": "not_this_kind"}))


def _truncated(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


DAMAGES: dict[str, tuple[Callable[[Path], None], str, str]] = {
    "nested json": (_nested, "json", "nested too deeply"),
    "another kind": (_other_kind, "json", "'not_this_kind'"),
    "truncated tensors": (_truncated, "safetensors", "truncated"),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
@pytest.mark.parametrize("kind", list(KINDS))
def test_damaged_files_give_one_format_error_naming_the_file(
        saved: dict[str, tuple[Path, Any]], tmp_path: Path, kind: str, damage: str) -> None:
    folder, loader = saved[kind]
    copy = tmp_path / kind
    shutil.copytree(folder, copy)
    spoil, suffix, words = DAMAGES[damage]
    target = copy / f"{KINDS[kind][1]}.{suffix}"
    assert target.is_file()
    spoil(target)
    with pytest.raises(FormatError) as err:
        loader(copy)
    message = str(err.value)
    assert str(target) in message and words in message, message
    assert "\n" not in message.strip()


def test_a_cem_saved_before_format_was_recorded_still_loads(
        saved: dict[str, tuple[Path, Any]], tmp_path: Path) -> None:
    folder, loader = saved["cem"]
    copy = tmp_path / "cem"
    shutil.copytree(folder, copy)
    meta = json.loads((copy / "model.json").read_text())
    assert (meta["kind"], meta["format"]) == ("cem", 1)
    del meta["format"]
    (copy / "model.json").write_text(json.dumps(meta))
    assert loader(copy).concept_names == ["a", "b"]
    (copy / "model.json").write_text(json.dumps({**meta, "format": 2}))
    with pytest.raises(FormatError, match="format 2 is not one this version reads"):
        loader(copy)


def test_an_older_cbm_format_says_to_re_fit_it(saved: dict[str, tuple[Path, Any]],
                                               tmp_path: Path) -> None:
    from conceptlab.bottleneck.model import ModelFormatError

    folder, loader = saved["cbm"]
    copy = tmp_path / "cbm"
    shutil.copytree(folder, copy)
    meta = json.loads((copy / "model.json").read_text())
    (copy / "model.json").write_text(json.dumps({**meta, "format": 1}))
    with pytest.raises(ModelFormatError, match="older conceptlab; re-create it"):
        loader(copy)
    (copy / "model.json").write_text(json.dumps({**meta, "kind": "dn-cbm"}))
    with pytest.raises(ModelFormatError, match="load_concept_model reads every registered"):
        loader(copy)


@pytest.mark.parametrize("damage", ["nested json", "truncated tensors"])
def test_a_saelens_folder_keeps_its_layout_and_the_same_checks(tmp_path: Path,
                                                               damage: str) -> None:
    """SAELens' folder is SAELens' layout (no kind / format), read by the same checked
    readers: a damaged file is one LMError line (also a FormatError) naming it."""
    from conceptlab.discover.base import build_dictionary
    from conceptlab.lm.model import LMError
    from conceptlab.lm.saelens_format import load_saelens, save_saelens

    X = np.abs(np.random.default_rng(0).normal(size=(40, 4))).astype(np.float32)
    d = build_dictionary("topk-sae", 4, k=2, min_steps=10, seed=0).fit(X)
    save_saelens(d, tmp_path / "s", hook_name="h", model_name="m")
    assert "kind" not in json.loads((tmp_path / "s" / "cfg.json").read_text())
    spoil, _, words = DAMAGES[damage]
    target = tmp_path / "s" / ("cfg.json" if damage == "nested json"
                               else "sae_weights.safetensors")
    spoil(target)
    with pytest.raises(LMError) as err:
        load_saelens(tmp_path / "s")
    assert isinstance(err.value, FormatError)
    assert str(target) in str(err.value) and words in str(err.value)


def test_a_probe_saved_before_its_sidecar_still_loads(saved: dict[str, tuple[Path, Any]],
                                                      tmp_path: Path) -> None:
    folder, loader = saved["decision_probe"]
    copy = tmp_path / "probe"
    shutil.copytree(folder, copy)
    (copy / "probe.json").unlink()  # discover runs written before the sidecar existed
    W, b = loader(copy)
    np.testing.assert_array_equal(W, np.eye(2, 3))
    np.testing.assert_array_equal(b, np.zeros(2))
    assert loader(tmp_path / "no-probe") is None


def test_the_plain_json_reader_names_a_file_nested_too_deeply(tmp_path: Path) -> None:
    from conceptlab.utils.io import read_json

    p = tmp_path / "metrics.json"
    p.write_text("[" * 100_000)
    with pytest.raises(FormatError, match=r"metrics\.json: JSON nested too deeply"):
        read_json(p)
