"""Parity of each reference with the arithmetic of its repository, on a tiny fixed problem.

Each test transcribes the reference's loss and update in a few lines of plain torch (from the
code: Andron00e/SparseCBM ``bottlenecks/cbm.py`` + ``trainer_utils.py``; Label-free-CBM
``train_cbm.py`` + ``similarity.py``; VLG-CBM ``model/cbm.py``; the SparseCBM CMS notebook),
never calling conceptlab for it, and checks conceptlab's step against it: loss value,
gradients and the weights after one Adam step (Adam's first step written out by hand), to
1e-6 (absolute + relative, float32).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conceptlab.bottleneck.cms import cms_rowsum_predict
from conceptlab.bottleneck.model import ConceptBottleneckModel
from conceptlab.bottleneck.objectives import get_objective
from conceptlab.bottleneck.references import (
    lfcbm_loss,
    raw_layer,
    sparsecbm_backward,
    sparsecbm_optimizers,
)
from conceptlab.bottleneck.training import TrainConfig, TrainData
from conceptlab.concepts.bank import ConceptBank

TOL = {"rtol": 1e-6, "atol": 1e-6}
N, K, C, D = 8, 5, 3, 6
SEED = 11


def close(a: torch.Tensor, b: torch.Tensor) -> None:
    torch.testing.assert_close(a.detach().float(), b.detach().float(), **TOL)


def adam_first_step(w: torch.Tensor, g: torch.Tensor, lr: float) -> torch.Tensor:
    """Adam (betas 0.9, 0.999, eps 1e-8) from zero moments: one step, by hand."""
    m = (1 - 0.9) * g
    v = (1 - 0.999) * g * g
    m_hat, v_hat = m / (1 - 0.9), v / (1 - 0.999)
    return w - lr * m_hat / (v_hat.sqrt() + 1e-8)


@pytest.fixture(scope="module")
def problem() -> dict[str, torch.Tensor]:
    rng = np.random.default_rng(0)
    S = torch.tensor(rng.uniform(0.05, 0.35, (N, K)), dtype=torch.float32)  # cosines
    X = torch.tensor(rng.normal(size=(N, D)), dtype=torch.float32)
    y = torch.tensor(rng.integers(0, C, N), dtype=torch.long)
    y[:C] = torch.arange(C)
    W0 = torch.tensor(rng.uniform(-0.4, 0.4, (K, K)), dtype=torch.float32)
    H0 = torch.tensor(rng.uniform(-0.4, 0.4, (C, K)), dtype=torch.float32)
    P0 = torch.tensor(rng.uniform(-0.4, 0.4, (K, D)), dtype=torch.float32)
    return {"S": S, "X": X, "y": y, "W0": W0, "H0": H0, "P0": P0}


# ------------------------------------------------------------------------------ Sparse-CBM


def ref_cbl_loss(method: str, cbl_logits: torch.Tensor, W: torch.Tensor,
                 tau: float = 1.0) -> torch.Tensor:
    """bottlenecks/cbm.py, as written there (the gumbel draws from the global RNG)."""
    if method == "l1":  # criterion_l1(net, 1e-3) / cbl_logits.squeeze().shape[1]
        return torch.norm(W, p=1) * 1e-3 / cbl_logits.shape[1]
    if method == "contrastive":  # criterion_contrastive
        caption = -torch.diag(F.log_softmax(cbl_logits, dim=0)).mean()
        image = -torch.diag(F.log_softmax(cbl_logits, dim=1)).mean()
        return (caption + image) / 2.0
    first = -torch.log(F.gumbel_softmax(cbl_logits, tau=tau, dim=0, hard=False)).mean()
    second = -torch.log(F.gumbel_softmax(cbl_logits, tau=tau, dim=1, hard=False)).mean()
    return (first + second) / 2.0  # criterion_gumbel


def ref_sparsecbm_step(method: str, S, y, W0, H0, lr=3e-4, tau=1.0):
    """BottleneckTrainer.train, one step: cbl_loss.backward(retain_graph), ce.backward(),
    both Adam steps (the head in its optimiser: the one fixed bug)."""
    W = W0.clone().requires_grad_(True)
    H = H0.clone().requires_grad_(True)
    cbl_logits = (100.0 * S) @ W.T  # cbl(logits_per_image), logits_per_image = 100 cos
    logits = cbl_logits @ H.T
    cbl_loss = ref_cbl_loss(method, cbl_logits, W, tau)
    cbl_loss.backward(retain_graph=True)
    ce = F.cross_entropy(logits, y)
    ce.backward()
    assert W.grad is not None and H.grad is not None
    return (cbl_loss, ce, W.grad, H.grad, adam_first_step(W0, W.grad, lr),
            adam_first_step(H0, H.grad, lr))


@pytest.mark.parametrize(("method", "params"), [("l1", {}), ("contrastive", {}), ("gumbel", {}),
                                                ("gumbel", {"tau": 0.5})])
def test_sparsecbm_step_matches_the_reference(method: str, params: dict, problem) -> None:
    p = problem
    obj = get_objective(f"ref:sparsecbm-{method}", **params)
    gen = torch.Generator().manual_seed(SEED)
    cbl = raw_layer("scores", K, K, bias=False, generator=gen, scale=100.0)
    head = nn.Linear(K, C, bias=False)
    with torch.no_grad():
        cbl.linear.weight.copy_(p["W0"])
        head.weight.copy_(p["H0"])
    opt_cbl, opt_head = sparsecbm_optimizers(cbl, head, 3e-4)
    gen = torch.Generator().manual_seed(SEED)
    loss_c, ce = sparsecbm_backward(obj.cbl_loss, cbl, head, p["S"], p["y"], gen)  # type: ignore[attr-defined]
    torch.manual_seed(SEED)
    r_loss, r_ce, r_gw, r_gh, r_w, r_h = ref_sparsecbm_step(method, p["S"], p["y"], p["W0"],
                                                           p["H0"], tau=params.get("tau", 1.0))
    close(loss_c, r_loss)
    close(ce, r_ce)
    assert cbl.linear.weight.grad is not None and head.weight.grad is not None
    close(cbl.linear.weight.grad, r_gw)
    close(head.weight.grad, r_gh)
    opt_cbl.step()
    opt_head.step()
    close(cbl.linear.weight, r_w)
    close(head.weight, r_h)


@pytest.mark.parametrize("method", ["l1", "contrastive", "gumbel"])
def test_sparsecbm_loop_is_the_reference_from_initialisation(method: str, problem) -> None:
    """The whole loop for one step (one epoch, one full batch): nn.Linear's default
    initialisation after torch.manual_seed, the shuffle, the noise and the update."""
    p = problem
    obj = get_objective(f"ref:sparsecbm-{method}")
    data = TrainData(p["S"].numpy(), p["y"].numpy(), p["S"].numpy(), p["S"].numpy(),
                     p["y"].numpy(), p["S"].numpy())
    fit = obj.train_reference(data, kind="scores", n_classes=C, seed=SEED,
                              config=TrainConfig(max_epochs=1, batch_size=N,
                                                 show_progress=False))
    torch.manual_seed(SEED)
    cbl0 = nn.Linear(K, K, bias=False)
    head0 = nn.Linear(K, C, bias=False)
    perm = torch.randperm(N)
    *_, r_w, r_h = ref_sparsecbm_step(method, p["S"][perm], p["y"][perm],
                                      cbl0.weight.detach(), head0.weight.detach())
    assert fit.joint_head is not None and fit.steps == 1
    close(fit.cbl.linear.weight, r_w)
    close(fit.joint_head.weight, r_h)


def test_sparsecbm_epochs_walk_the_same_batches(problem) -> None:
    """data_utils.prepared_dataloaders preprocesses the shuffled loader once into a list of
    batches; BottleneckTrainer.train walks that list every epoch: one shuffle, the same
    batches (the last one partial) in the same order, two epochs, Adam carried over."""
    p = problem
    obj = get_objective("ref:sparsecbm-contrastive")
    data = TrainData(p["S"].numpy(), p["y"].numpy(), p["S"].numpy(), p["S"].numpy(),
                     p["y"].numpy(), p["S"].numpy())
    fit = obj.train_reference(data, kind="scores", n_classes=C, seed=SEED,
                              config=TrainConfig(max_epochs=2, batch_size=3,
                                                 show_progress=False))
    torch.manual_seed(SEED)
    cbl = nn.Linear(K, K, bias=False)
    head = nn.Linear(K, C, bias=False)
    batches = [b.tolist() for b in torch.randperm(N).split(3)]  # [3, 3, 2] rows, fixed
    opt_cbl = torch.optim.Adam(cbl.parameters(), lr=3e-4)
    opt_head = torch.optim.Adam(head.parameters(), lr=3e-4)
    for _ in range(2):
        for rows in batches:
            cbl_logits = cbl(100.0 * p["S"][rows])
            ref_cbl_loss("contrastive", cbl_logits, cbl.weight).backward(retain_graph=True)
            F.cross_entropy(head(cbl_logits), p["y"][rows]).backward()
            opt_cbl.step()
            opt_cbl.zero_grad()
            opt_head.step()
            opt_head.zero_grad()
    assert fit.joint_head is not None and fit.steps == 6
    close(fit.cbl.linear.weight, cbl.weight)
    close(fit.joint_head.weight, head.weight)


# ------------------------------------------------------------------------------ LF-CBM


def ref_cos3(clip_feats: torch.Tensor, target_feats: torch.Tensor) -> torch.Tensor:
    """similarity.py, cos_similarity_cubed_single."""
    a = (clip_feats - clip_feats.mean(0, keepdim=True)) ** 3
    b = (target_feats - target_feats.mean(0, keepdim=True)) ** 3
    return ((b / b.norm(dim=0, keepdim=True)) * (a / a.norm(dim=0, keepdim=True))).sum(0)


def test_lfcbm_step_matches_the_reference(problem) -> None:
    p = problem
    gen = torch.Generator().manual_seed(SEED)
    proj = raw_layer("features", D, K, bias=False, generator=gen)
    with torch.no_grad():
        proj.linear.weight.copy_(p["P0"])
    opt = torch.optim.Adam(proj.parameters(), lr=1e-3)
    loss = lfcbm_loss(proj, p["X"], p["S"])
    loss.backward()
    P = p["P0"].clone().requires_grad_(True)
    r_loss = torch.mean(-ref_cos3(p["S"], p["X"] @ P.T))  # train_cbm.py: loss, full batch
    r_loss.backward()
    assert P.grad is not None and proj.linear.weight.grad is not None
    close(loss, r_loss)
    close(proj.linear.weight.grad, P.grad)
    opt.step()
    close(proj.linear.weight, adam_first_step(p["P0"], P.grad, 1e-3))


def test_lfcbm_loop_from_initialisation_and_its_stopping_rule(problem) -> None:
    p = problem
    obj = get_objective("ref:lfcbm", val_every=1)
    data = TrainData(p["X"].numpy(), p["y"].numpy(), p["S"].numpy(), p["X"].numpy() * 0.5,
                     p["y"].numpy(), p["S"].numpy()[::-1].copy())
    one = obj.train_reference(data, kind="features", n_classes=C, seed=SEED,
                              config=TrainConfig(max_epochs=1, show_progress=False))
    torch.manual_seed(SEED)
    P0 = nn.Linear(D, K, bias=False).weight.detach()
    P = P0.clone().requires_grad_(True)
    torch.mean(-ref_cos3(p["S"], p["X"] @ P.T)).backward()
    assert P.grad is not None
    close(one.cbl.linear.weight, adam_first_step(P0, P.grad, 1e-3))
    # validation every step: the run stops at the first check that does not improve, and
    # keeps the weights of the best check
    fit = obj.train_reference(data, kind="features", n_classes=C, seed=SEED,
                              config=TrainConfig(max_epochs=300, show_progress=False))
    losses = [h["val_loss"] for h in fit.history]
    assert all(b < a for a, b in itertools.pairwise(losses[:-1]))
    assert len(losses) < 300 and losses[-1] >= losses[-2]
    assert fit.best_epoch == len(losses) - 1
    with torch.no_grad():
        best = torch.mean(-ref_cos3(torch.as_tensor(data.scores_val),
                                    torch.as_tensor(data.inputs_val) @ fit.cbl.linear.weight.T))
    assert float(best) == pytest.approx(losses[-2], abs=1e-6)


def test_lfcbm_clip_cutoff_is_the_top5_filter(problem) -> None:
    """clip_cutoff: mean of each concept's top-5 training scores > 0.25 (strict)."""
    S = problem["S"].clone()
    S[:, 1] *= 0.5
    S[:, 3] *= 0.7
    obj = get_objective("ref:lfcbm")
    keep, _ = obj.preselect_units(S.numpy())
    highest = torch.mean(torch.topk(S, dim=0, k=5)[0], dim=0)
    assert keep.tolist() == torch.nonzero(highest > 0.25).flatten().tolist()
    assert 0 < len(keep) < K  # the fixture has concepts on both sides of the cutoff


def test_lfcbm_model_drops_the_filtered_concepts() -> None:
    rng = np.random.default_rng(1)
    V = np.eye(6, 8, dtype=np.float32)
    X = rng.normal(size=(300, 8)).astype(np.float32)
    X[:, 5] *= 0.01  # concept 5's scores never exceed ~0.05: below the clip cutoff
    y = (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0)
    bank = ConceptBank(V, [f"c{k}" for k in range(6)])
    model = ConceptBottleneckModel.from_options(
        bank, ["a", "b", "c"], method="ref:lfcbm", nec=1.0,
        options={"max_epochs": 300, "lr": 0.05, "show_progress": False})
    model.fit(X[:200], y[:200], X[200:], y[200:])
    dropped = {d["concept"]: d for d in model.dropped_concepts_}
    assert "c5" in dropped and "c5" not in model.concept_names
    assert dropped["c5"]["preselection_score"] <= 0.25
    assert model.head_ is not None and model.head_.info["refit"] is False


# ------------------------------------------------------------------------------ random CBL


def test_random_cbl_is_vlg_cbms_untrained_layer(problem) -> None:
    p = problem
    obj = get_objective("random-cbl")
    data = TrainData(p["X"].numpy(), p["y"].numpy(), p["S"].numpy(), p["X"].numpy(),
                     p["y"].numpy(), p["S"].numpy())
    fit = obj.train_reference(data, kind="features", n_classes=C, seed=SEED,
                              config=TrainConfig(show_progress=False))
    torch.manual_seed(SEED)
    ref = nn.Linear(D, K)  # ConceptLayer(D, K, num_hidden=0, bias=True), untrained
    close(fit.cbl.linear.weight, ref.weight)
    close(fit.cbl.linear.bias, ref.bias)
    with torch.no_grad():
        close(fit.cbl(p["X"]), ref(p["X"]))
    assert fit.steps == 0 and not any(fit.moved.values())


# ------------------------------------------------------------------------------ CMS


def test_cms_rule_ref_is_the_notebooks_row_normalised_form() -> None:
    """additional_evaluations/cms_scores.ipynb, get_dot_prods_matrix + both accuracy rules."""
    rng = np.random.default_rng(3)
    img = torch.tensor(rng.normal(size=(40, 7)), dtype=torch.float32)
    cls = torch.tensor(rng.normal(size=(4, 7)), dtype=torch.float32)
    con = torch.tensor(rng.normal(size=(9, 7)), dtype=torch.float32) + 2.0

    def dot_prods(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        m = a @ b.T
        m /= torch.sqrt((a.norm(dim=-1, keepdim=True) ** 2) @ (b.norm(dim=-1, keepdim=True) ** 2).T)
        return m / (m.sum(1, keepdim=True) + 1e-8)

    Vr, Tr = dot_prods(img, con), dot_prods(cls, con)
    sim = (Vr @ Tr.T) / (Vr.norm(dim=-1)[:, None] * Tr.norm(dim=-1)[None, :])
    ref_cos = sim.argmax(1).numpy()
    ref_top = Tr[:, Vr.argmax(1)].argmax(0).numpy()
    V = F.normalize(img, dim=1) @ F.normalize(con, dim=1).T
    T = F.normalize(cls, dim=1) @ F.normalize(con, dim=1).T
    assert np.array_equal(cms_rowsum_predict(V.numpy(), T.numpy(), rule="cosine"), ref_cos)
    assert np.array_equal(cms_rowsum_predict(V.numpy(), T.numpy(), rule="top-concept"),
                          ref_top)


# ------------------------------------------------------------------------------ settings


def _bank_model(method: str) -> ConceptBottleneckModel:
    bank = ConceptBank(np.eye(K, D, dtype=np.float32), [f"c{k}" for k in range(K)])
    return ConceptBottleneckModel.from_options(bank, ["a", "b", "c"], method=method)


@pytest.mark.parametrize("method", ["l1", "contrastive", "gumbel"])
def test_sparsecbm_fit_runs_with_the_demos_settings(method: str) -> None:
    """What ``fit --method ref:sparsecbm-*`` trains with (the path ``fit`` takes), transcribed
    from demo_notebooks/demo.ipynb (``lrs = cbl_lrs = 3e-4``, ``batch_size=128``,
    ``num_epochs=10``) and BottleneckTrainer's defaults (``gumbel_tau=1.0``,
    ``l1_lambda=1e-3``); logits_per_image = 100 * cos."""
    model = _bank_model(f"ref:sparsecbm-{method}")
    cfg = model.train_config
    assert (cfg.lr, cfg.batch_size, cfg.max_epochs) == (3e-4, 128, 10)
    assert model.objective.logit_scale == 100.0  # type: ignore[attr-defined]
    if method == "l1":
        assert model.objective.lam == 1e-3  # type: ignore[attr-defined]
    if method == "gumbel":
        assert model.objective.tau == 1.0  # type: ignore[attr-defined]


def test_lfcbm_fit_runs_with_train_cbm_py_defaults() -> None:
    """train_cbm.py's argparse defaults: ``proj_batch_size`` 50000, ``proj_steps`` 1000, Adam
    lr 1e-3, ``clip_cutoff`` 0.25, ``interpretability_cutoff`` 0.45, validation every 50
    steps; the projection has no bias."""
    model = _bank_model("ref:lfcbm")
    cfg = model.train_config
    assert (cfg.lr, cfg.batch_size, cfg.max_epochs) == (1e-3, 50000, 1000)
    obj = model.objective
    assert (obj.clip_cutoff, obj.interpretability_cutoff,  # type: ignore[attr-defined]
            obj.val_every) == (0.25, 0.45, 50)  # type: ignore[attr-defined]
    rng = np.random.default_rng(5)
    X = rng.normal(size=(120, D)).astype(np.float32)
    S = X[:, :K] @ rng.normal(size=(K, K)).astype(np.float32)  # reachable by a linear map
    y = rng.integers(0, C, 120)
    fit = obj.train_reference(TrainData(X, y, S, X, y, S), kind="features", n_classes=C,
                              seed=SEED, config=TrainConfig(max_epochs=120, lr=1e-3,
                                                            show_progress=False))
    assert fit.cbl.linear.bias is None
    # validation = train: the loss keeps falling, so every check is recorded: steps 0, 50,
    # 100 and the last (i = 119)
    assert [h["epoch"] for h in fit.history] == [1, 51, 101, 120]


def test_lfcbm_cutoffs_are_strict_and_top5() -> None:
    """``highest > clip_cutoff`` with ``highest`` the mean of the top 5 (a concept exactly at
    the cutoff is deleted); ``sim > interpretability_cutoff`` likewise."""
    obj = get_objective("ref:lfcbm")
    S = np.zeros((10, 3), np.float32)
    S[:5, 0] = 0.25                    # top-5 mean exactly 0.25: deleted (strict)
    S[:5, 1] = 0.26                    # kept
    S[:3, 2], S[3:5, 2] = 0.4, 0.01    # top-3 mean 0.4, top-5 mean 0.244: deleted
    keep, _ = obj.preselect_units(S)
    assert keep.tolist() == [1]
    rng = np.random.default_rng(2)
    units = torch.tensor(rng.normal(size=(30, 2)), dtype=torch.float32)
    concepts = torch.tensor(rng.normal(size=(30, 2)), dtype=torch.float32) + units
    sims = ref_cos3(concepts, units)
    exact = get_objective("ref:lfcbm", interpretability_cutoff=float(sims[0]))
    keep, _ = exact.select_units(units.numpy(), concepts.numpy())
    assert keep.tolist() == ([1] if sims[1] > sims[0] else [])  # unit 0 sits on the cutoff


def test_a_diverging_reference_is_one_conceptlab_error() -> None:
    """-log(gumbel_softmax(z)) is inf once a softmax entry underflows (the reference's own
    arithmetic, kept); fit says so as a ComputeError (one line at the CLI), not a traceback."""
    from conceptlab.errors import ComputeError

    rng = np.random.default_rng(4)
    X = rng.normal(size=(60, D)).astype(np.float32)
    y = np.arange(60) % C
    bank = ConceptBank(rng.normal(size=(K, D)).astype(np.float32), [f"c{k}" for k in range(K)])
    model = ConceptBottleneckModel.from_options(
        bank, ["a", "b", "c"], method="ref:sparsecbm-gumbel",
        options={"logit_scale": 1e5, "max_epochs": 1, "show_progress": False})
    with pytest.raises(ComputeError, match="loss became inf"):
        model.fit(X[:40], y[:40], X[40:], y[40:])
