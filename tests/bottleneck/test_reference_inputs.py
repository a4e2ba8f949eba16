"""References that read raw backbone outputs (LF-CBM, VLG-CBM's random layer) see the embedding
as the encoder returned it; our own embedding CBLs see unit-norm rows. The portable export
keeps the difference, and the comparison rows pair each reference with its own family."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conceptlab.bottleneck import CBLConfig, HeadConfig, TrainConfig
from conceptlab.bottleneck.model import ConceptBottleneckModel
from conceptlab.bottleneck.objectives import get_objective
from conceptlab.bottleneck.portable import export_portable
from conceptlab.bottleneck.portable_module import ConceptBottleneck
from conceptlab.concepts.bank import ConceptBank
from conceptlab.errors import UnknownNameError
from conceptlab.workflows.variants import (
    ALL_VARIANTS,
    OURS,
    REDESIGNS,
    REFERENCES,
    counterparts,
    for_inputs,
)
from tests.planted import PLANTED

CLASSES = ["a", "b", "c", "d"]


def _fit(method: str) -> tuple[ConceptBottleneckModel, np.ndarray]:
    Xt, yt, V, _, _ = PLANTED.data(600, 1)
    Xv, yv, _, _, _ = PLANTED.data(200, 2)
    bank = ConceptBank(V, [f"concept {k}" for k in range(PLANTED.K)])
    obj = get_objective(method)
    train = (TrainConfig(**{**obj.train_defaults, "show_progress": False,
                            "max_epochs": min(int(obj.train_defaults.get("max_epochs", 10)),
                                              150)})
             if obj.reference else
             TrainConfig(max_epochs=6, patience=3, show_progress=False, finetune_epochs=2))
    model = ConceptBottleneckModel(bank, CLASSES, objective=obj,
                                   cbl=CBLConfig(input="embedding"), train=train,
                                   head=HeadConfig(nec=2.0), seed=0)
    return model.fit(Xt, yt, Xv, yv), Xv


@pytest.mark.parametrize("method", ["ref:lfcbm", "random-cbl"])
def test_a_raw_reading_reference_sees_the_scale_of_the_embedding(method: str) -> None:
    model, X = _fit(method)
    U, U2 = model.unit_values(X), model.unit_values(2 * X)
    assert np.abs(U2 - U).max() > 0.1  # a unit-norm input would make these equal
    if method == "ref:lfcbm":  # Linear(D -> K, bias=False) on raw rows: exactly homogeneous
        np.testing.assert_allclose(U2, 2 * U, atol=1e-5)


def test_our_embedding_cbl_reads_unit_norm_rows() -> None:
    model, X = _fit("l1")
    np.testing.assert_allclose(model.unit_values(2 * X), model.unit_values(X), atol=1e-5)


def test_the_portable_module_of_a_raw_reading_reference_gives_its_logits(tmp_path: Path
                                                                        ) -> None:
    import torch

    model, X = _fit("random-cbl")
    folder = export_portable(model, tmp_path / "m")
    net = ConceptBottleneck.from_folder(folder)
    assert net.config["normalise_input"] is False
    with torch.no_grad():
        got = net(torch.from_numpy(3 * X)).numpy()
    assert model.head_ is not None
    np.testing.assert_allclose(got, model.head_.logits(model.concept_activations(3 * X)),
                               atol=1e-4, rtol=1e-4)


def test_each_reference_is_paired_with_its_own_family() -> None:
    by_label = {v.label: v for v in REFERENCES}
    l1 = counterparts(by_label["Sparse-CBM l1 (reference)"], ALL_VARIANTS)
    assert l1 and {v.objective for v in l1} == {"l1"}
    assert {v.objective for v in counterparts(by_label["LF-CBM (reference)"],
                                              ALL_VARIANTS)} == {"cos3"}
    control = counterparts(by_label["random CBL (VLG-CBM baseline)"], ALL_VARIANTS)
    labels = {v.label for v in control}
    assert {v.label for v in OURS} <= labels and not any(v.reproduces for v in control)
    assert all(v.is_cbm for v in control)  # the ungrounded low-rank probe is not a CBM
    with pytest.raises(UnknownNameError):
        counterparts(OURS[0], ALL_VARIANTS)


def test_rows_that_need_features_read_the_embedding_when_there_are_none() -> None:
    assert for_inputs(ALL_VARIANTS, True) == ALL_VARIANTS
    moved = [v for v in for_inputs(ALL_VARIANTS, False) if v.label.endswith("on the embedding")]
    assert {v.objective for v in moved} == {"ref:lfcbm", "random-cbl", "cos3"}
    assert all(v.options["cbl.input"] == "embedding" and not v.needs_features for v in moved)
    assert all(v.formerly for v in REDESIGNS)
