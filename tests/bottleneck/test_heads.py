"""Final-layer heads: NEC control, dense fitting, standardisation, saving, input errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file, save_file

from conceptlab import metrics
from conceptlab.bottleneck.heads import LinearHead, fit_dense_head, fit_sparse_head

K, C = 40, 4


def _split(Z: np.ndarray, y: np.ndarray, n_train: int, n_val: int):
    n_train, n_val = n_train * len(Z) // 3000, n_val * len(Z) // 3000
    return (Z[:n_train], y[:n_train], Z[n_train:n_train + n_val], y[n_train:n_train + n_val],
            Z[n_train + n_val:], y[n_train + n_val:])


def concentrated_task(n: int = 3000, seed: int = 0):
    """Class c raises concepts 3c..3c+2 by 2 sd; the other concepts are noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, C, n)
    Z = rng.normal(size=(n, K)).astype(np.float32)
    for c in range(C):
        Z[y == c, 3 * c:3 * c + 3] += 2.0
    return _split(Z * 3.0 + 1.5, y, 1500, 500)  # not standardised on purpose


def spread_task(n: int = 3000, seed: int = 1):
    """Every concept carries a little information about every class (random +-0.35 sd shifts)."""
    rng = np.random.default_rng(seed)
    means = rng.choice([-0.35, 0.35], size=(C, K))
    y = rng.integers(0, C, n)
    Z = (means[y] + rng.normal(size=(n, K))).astype(np.float32)
    return _split(Z, y, 1500, 500)


@pytest.mark.parametrize("nec", [1, 2, 5])
def test_sparse_head_has_exactly_nec_times_classes_weights(nec: int) -> None:
    Zt, yt, Zv, yv, Zs, ys = concentrated_task()
    head = fit_sparse_head(Zt, yt, Zv, yv, n_classes=C, nec=nec)
    assert int((head.weight != 0).sum()) == nec * C
    assert head.nec == pytest.approx(nec)
    assert head.info["nnz"] == nec * C and head.info["target_nnz"] == nec * C
    acc = metrics.accuracy(ys, head.predict(Zs))
    assert acc > 0.6, acc  # chance is 0.25
    json.dumps(head.info)  # JSON-able


def test_fractional_nec_rounds_total_weights() -> None:
    Zt, yt, Zv, yv, _, _ = concentrated_task()
    head = fit_sparse_head(Zt, yt, Zv, yv, n_classes=C, nec=2.5)
    assert int((head.weight != 0).sum()) == 10
    head = fit_sparse_head(Zt, yt, Zv, yv, n_classes=np.int64(C), nec=np.float64(1.125))
    assert int((head.weight != 0).sum()) == 5  # 4.5 rounds up


def test_fits_restore_the_torch_thread_setting() -> None:
    Zt, yt, Zv, yv, _, _ = concentrated_task(n=1200)
    before = torch.get_num_threads()
    head = fit_dense_head(Zt, yt, Zv, yv, n_classes=C)
    assert head.info["threads"] == 1  # small problem: one thread
    assert torch.get_num_threads() == before
    fit_sparse_head(Zt, yt, Zv, yv, n_classes=C, nec=1, num_threads=1)
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="num_threads"):
        fit_dense_head(Zt, yt, Zv, yv, n_classes=C, num_threads=0)


def test_more_effective_concepts_help_when_information_is_spread() -> None:
    Zt, yt, Zv, yv, Zs, ys = spread_task()
    accs = {}
    for nec in (1, 5):
        head = fit_sparse_head(Zt, yt, Zv, yv, n_classes=C, nec=nec)
        accs[nec] = metrics.accuracy(ys, head.predict(Zs))
    assert accs[5] >= accs[1] + 0.05, accs


def test_refit_does_not_lose_accuracy_over_truncation() -> None:
    Zt, yt, Zv, yv, _, _ = spread_task()
    info = fit_sparse_head(Zt, yt, Zv, yv, n_classes=C, nec=2).info
    assert info["val_accuracy"] >= info["truncated_val_accuracy"] - 0.01, info


def test_nec_at_least_number_of_inputs_gives_dense_head() -> None:
    Zt, yt, Zv, yv, _, _ = concentrated_task()
    head = fit_sparse_head(Zt, yt, Zv, yv, n_classes=C, nec=K)
    assert head.info["dense"] is True
    assert head.nec == pytest.approx(K)


def test_saga_solver_finds_the_same_support_on_a_small_problem() -> None:
    Zt, yt, Zv, yv, _, _ = concentrated_task(n=1600)
    prox = fit_sparse_head(Zt[:800], yt[:800], Zv, yv, n_classes=C, nec=2)
    saga = fit_sparse_head(Zt[:800], yt[:800], Zv, yv, n_classes=C, nec=2, solver="saga",
                           max_iter_per_lambda=30)
    overlap = ((prox.weight != 0) & (saga.weight != 0)).sum()
    assert overlap >= 6, (prox.weight != 0).astype(int)  # of 8


def test_dense_head_recovers_a_linear_rule() -> None:
    rng = np.random.default_rng(3)
    W_true = rng.normal(size=(C, K))
    Z = rng.normal(size=(3000, K)).astype(np.float32) * 5 + 7
    y = (Z @ W_true.T).argmax(1)
    Zt, yt, Zv, yv, Zs, ys = _split(Z, y, 1500, 500)
    head = fit_dense_head(Zt, yt, Zv, yv, n_classes=C)
    assert metrics.accuracy(ys, head.predict(Zs)) > 0.95
    assert head.weight.shape == (C, K) and head.weight.dtype == np.float32
    grid = head.info["grid"]
    assert head.info["weight_decay"] in [g["weight_decay"] for g in grid]
    assert head.info["val_accuracy"] == max(g["val_accuracy"] for g in grid)
    json.dumps(head.info)


def test_standardisation_uses_training_statistics_only() -> None:
    Zt, yt, Zv, yv, Zs, ys = concentrated_task()
    shifted_val, shifted_test = Zv + 100.0, Zs * 10.0 - 50.0
    for fit in (fit_dense_head, lambda *a, **k: fit_sparse_head(*a, nec=2, **k)):
        head = fit(Zt, yt, shifted_val, yv, n_classes=C)
        np.testing.assert_allclose(head.mean, Zt.mean(0), rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(head.std, Zt.std(0), rtol=1e-4)
        # the test inputs go through the train map, so shifted inputs are standardised wrongly
        np.testing.assert_allclose(head.standardize(shifted_test),
                                   (shifted_test - head.mean) / head.std, rtol=1e-5)
        assert metrics.accuracy(ys, head.predict(Zs)) > 0.6


def test_constant_feature_is_standardised_safely_and_never_chosen() -> None:
    Zt, yt, Zv, yv, _, _ = concentrated_task()
    Zt, Zv = Zt.copy(), Zv.copy()
    Zt[:, 5] = 4.0
    head = fit_sparse_head(Zt, yt, Zv, yv, n_classes=C, nec=5)
    assert head.std[5] == 1.0
    assert (head.weight[:, 5] == 0).all()


def test_state_round_trip_gives_identical_logits(tmp_path) -> None:
    Zt, yt, Zv, yv, Zs, _ = concentrated_task()
    head = fit_sparse_head(Zt, yt, Zv, yv, n_classes=C, nec=2)
    save_file(head.state(), str(tmp_path / "head.safetensors"))
    (tmp_path / "head.json").write_text(json.dumps(head.info))
    back = LinearHead.from_state(load_file(str(tmp_path / "head.safetensors")),
                                 json.loads((tmp_path / "head.json").read_text()))
    np.testing.assert_array_equal(back.logits(Zs), head.logits(Zs))
    assert back.info == head.info
    with pytest.raises(ValueError, match="lacks"):
        LinearHead.from_state({"weight": head.weight}, {})


def test_contributions_sum_to_logit_minus_bias() -> None:
    Zt, yt, Zv, yv, Zs, _ = concentrated_task()
    head = fit_dense_head(Zt, yt, Zv, yv, n_classes=C)
    contrib = head.contributions(Zs)
    pred = head.predict(Zs)
    logits = head.logits(Zs)
    np.testing.assert_allclose(contrib.sum(1), logits[np.arange(len(Zs)), pred] - head.bias[pred],
                               rtol=1e-4, atol=1e-4)
    other = head.contributions(Zs, classes=np.zeros(len(Zs), dtype=np.int64))
    np.testing.assert_allclose(other.sum(1), logits[:, 0] - head.bias[0], rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="classes must lie"):
        head.contributions(Zs, classes=np.full(len(Zs), C))


def test_fits_are_deterministic() -> None:
    Zt, yt, Zv, yv, _, _ = spread_task()
    a = fit_sparse_head(Zt, yt, Zv, yv, n_classes=C, nec=2, seed=7)
    b = fit_sparse_head(Zt, yt, Zv, yv, n_classes=C, nec=2, seed=7)
    np.testing.assert_array_equal(a.weight, b.weight)
    np.testing.assert_array_equal(a.bias, b.bias)


@pytest.mark.parametrize("fit", ["dense", "sparse"])
def test_input_errors_name_the_problem(fit: str) -> None:
    Zt, yt, Zv, yv, _, _ = concentrated_task(n=1200)

    def call(Z_train=Zt, y_train=yt, Z_val=Zv, y_val=yv, n_classes=C, **kw):
        if fit == "dense":
            return fit_dense_head(Z_train, y_train, Z_val, y_val, n_classes=n_classes, **kw)
        kw.setdefault("nec", 2)
        return fit_sparse_head(Z_train, y_train, Z_val, y_val, n_classes=n_classes, **kw)

    with pytest.raises(ValueError, match="train labels must be 1-D with 600 entries"):
        call(y_train=yt[:-1])
    with pytest.raises(ValueError, match="validation inputs: 39 columns, expected 40"):
        call(Z_val=Zv[:, :-1])
    with pytest.raises(ValueError, match="2-D"):
        call(Z_train=Zt[:, 0])
    bad = Zt.copy()
    bad[3, 4] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        call(Z_train=bad)
    with pytest.raises(ValueError, match=r"train labels: labels in \[1, 4\] but there are 4"):
        call(y_train=np.where(yt == 0, C, yt))
    with pytest.raises(ValueError, match=r"validation labels: labels in \[-1, 2\]"):
        call(y_val=yv - 1)
    with pytest.raises(ValueError, match="at least 2 classes"):
        call(n_classes=1, y_train=np.zeros_like(yt), y_val=np.zeros_like(yv))
    with pytest.raises(ValueError, match="fewer than 2 distinct classes"):
        call(y_train=np.zeros_like(yt))
    with pytest.raises(ValueError, match="must hold integer class indices"):
        call(y_train=yt + 0.5)


@pytest.mark.parametrize("nec", [0, -1, float("nan"), float("inf"), "5"])
def test_bad_nec_is_rejected(nec) -> None:
    Zt, yt, Zv, yv, _, _ = concentrated_task(n=1200)
    with pytest.raises(ValueError, match="nec"):
        fit_sparse_head(Zt, yt, Zv, yv, n_classes=C, nec=nec)


def test_head_rejects_wrong_inputs() -> None:
    head = LinearHead(np.ones((2, 3)), np.zeros(2), np.zeros(3), np.ones(3))
    with pytest.raises(ValueError, match="do not match a head over 3 features"):
        head.predict(np.ones((5, 4)))
    with pytest.raises(ValueError, match="NaN"):
        head.predict(np.full((1, 3), np.nan))
    with pytest.raises(ValueError, match="bias"):
        LinearHead(np.ones((2, 3)), np.zeros(3), np.zeros(3), np.ones(3))
    with pytest.raises(ValueError, match="std must be positive"):
        LinearHead(np.ones((2, 3)), np.zeros(2), np.zeros(3), np.zeros(3))
