"""Sparse autoencoders as dictionaries, written in torch (overcomplete's SAEs need import-time
patching beside torch 2.13 and matplotlib 3.11, see OFFLINE.md).

All share one encoder/decoder (Bricken et al. 2023, "Towards Monosemanticity"): inputs are
scaled by ``s`` (the root mean squared distance to the mean is 1, so penalties do not depend on
the layer's scale or width), ``b_dec`` starts at the mean;
``z = act((x - b_dec) W_enc + b_enc)``, ``x_hat = z W_dec + b_dec`` with unit-norm decoder
rows (renormalised after every step). The variants differ only in ``act`` and the penalty:

* ``sae``: ReLU + ``l1 * sum|z|`` (Bricken et al. 2023; DN-CBM, Rao et al. ECCV 2024, eq. 2);
* ``topk-sae``: keep the ``k`` largest pre-activations per row, no penalty (Gao et al. 2024,
  "Scaling and evaluating sparse autoencoders", eq. 2);
* ``batchtopk-sae``: keep the ``k * B`` largest over a batch of ``B`` rows while training and a
  learned threshold at inference (Bussmann et al. 2024, "BatchTopK Sparse Autoencoders"); the
  first 20% of steps use per-row TopK (a warm-up of ours: without it one planted atom in eight
  was often left uncovered, see tests/discover/test_dictionaries.py).

Units silent for a whole window early in training are restarted at the residuals of the
worst-reconstructed rows (Bricken et al. 2023's resampling, simplified).

Initialisation (``init``): ``rows`` starts the atoms at random data rows (the image default:
fewer dead units than noise on non-negative features); ``random`` starts them
at random unit directions (Gao et al. 2024, section 2.4; Anthropic's April 2024 circuits update;
SAELens ``TrainingSAE.initialize_weights``, ``sae_lens/saes/sae.py``), both with
``W_enc = W_dec^T`` and ``b_enc = 0``. With ``calibrate=True`` (a step of ours, off by
default so image dictionaries train as before; the language-model recipe turns it on) the
encoder is then *calibrated*: ``W_enc`` is multiplied by the least-squares
``alpha = <x_hat, x> / <x_hat, x_hat>`` of the first block's centred rows, which rescales the
codes exactly (every activation here is positively homogeneous when ``b_enc = 0``). Why: with
TopK and data-row atoms, each row's ``k`` chosen atoms are near copies of it, so the first
reconstruction is ~k times too long; on SmolLM2's block-6 residual stream (k=32, width 2304)
the first loss was ~100x the variance, every bias was driven down, and 92% of the features
died. SAELens avoids the same overshoot with small decoder norms at the start
(``decoder_init_norm=0.1``); the decoder here stays unit-norm, so the encoder is shrunk instead.

The dictionary in input units is ``s * W_dec``; the bias is ``s * b_dec``: the normalisation
is stored (``scale`` in the state) and undone at decode, so reconstructions are in the input's
units, as SAELens' trainer folds its ``expected_average_only_in`` factor into the weights at
the end of training (``SAE.fold_activation_norm_scaling_factor``, ``sae_lens/saes/sae.py``,
called from ``SAETrainer.fit``, ``sae_lens/training/sae_trainer.py``). SAELens scales raw
activations to ``E||x|| = sqrt(d_in)`` (``ActivationScaler.estimate_scaling_factor``,
``sae_lens/training/activation_scaler.py``); here the scale is taken about the mean, because a
residual stream's mean can carry half of its squared norm (48% at SmolLM2's block 6).

Streaming: ``partial_fit(chunk)`` runs the same steps over chunks of a stream (a language
model's token activations, which are never all held): the first chunk sets the centre, scale
and atoms, and the optimiser state carries over between chunks.

``frozen_decoder=True`` keeps the atoms at random unit directions and trains only the encoder
and biases with the same activation and sparsity: the random-direction baseline a trained
dictionary has to beat.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from conceptlab.device import resolve_device
from conceptlab.discover.base import (
    Dictionary,
    DictionaryError,
    check_activations,
    register_dictionary,
)
from conceptlab.utils.progress import progress

#: how atoms start: random data rows, or random unit directions
INITS = ("rows", "random")


@dataclass
class _Train:
    """What an SAE's optimiser carries between steps (and between ``partial_fit`` calls)."""

    W_enc: torch.Tensor
    b_enc: torch.Tensor
    W_dec: torch.Tensor
    b_dec: torch.Tensor
    opt: torch.optim.Optimizer
    gen: torch.Generator
    scale: float
    steps: int  # planned optimiser steps (schedules: resampling, warm-up)
    window: int
    fired: torch.Tensor
    step: int = 0


@register_dictionary
class SAEDictionary(Dictionary):
    """ReLU sparse autoencoder with an l1 penalty (``l1`` relative to unit-norm inputs)."""

    name = "sae"

    def __init__(self, n_concepts: int, seed: int = 0, l1: float = 0.1, k: int = 4,
                 epochs: int = 5, min_steps: int = 1500, batch_size: int = 256,
                 lr: float = 5e-3, frozen_decoder: bool = False, init: str = "rows",
                 calibrate: bool = False) -> None:
        super().__init__(n_concepts, seed)
        if l1 < 0 or batch_size < 1 or lr <= 0 or k < 1:
            raise DictionaryError(f"{self.name}: need l1 >= 0, batch_size >= 1, lr > 0, k >= 1")
        if init not in INITS:
            raise DictionaryError(f"{self.name}: init must be one of {', '.join(INITS)}, "
                                  f"got {init!r}")
        self.init, self.calibrate = init, bool(calibrate)
        self.l1, self.k = float(l1), int(min(k, n_concepts))
        self.epochs, self.min_steps = int(epochs), int(min_steps)
        self.batch_size, self.lr = int(batch_size), float(lr)
        self.frozen_decoder = bool(frozen_decoder)
        self._enc: dict[str, np.ndarray] = {}
        self._train: _Train | None = None
        self.last_loss = float("nan")

    def params(self) -> dict[str, Any]:
        return {**super().params(), "l1": self.l1, "k": self.k, "epochs": self.epochs,
                "min_steps": self.min_steps, "batch_size": self.batch_size, "lr": self.lr,
                "init": self.init, "calibrate": self.calibrate,
                **({"frozen_decoder": True} if self.frozen_decoder else {})}

    # --- what the variants change ---------------------------------------------------------
    def _activate(self, pre: torch.Tensor, training: bool) -> torch.Tensor:
        return torch.relu(pre)

    def _penalty(self, z: torch.Tensor) -> torch.Tensor:
        return self.l1 * z.abs().sum(1).mean()

    def _after_step(self, pre: torch.Tensor, z: torch.Tensor) -> None:
        """Hook for variants that track statistics while training (BatchTopK's threshold)."""

    # --- shared machinery -----------------------------------------------------------------
    def _begin(self, A: np.ndarray, steps: int) -> tuple[_Train, torch.Tensor]:
        """Training state from a first block of rows ``A`` (centre, scale, atoms) for a run of
        ``steps`` optimiser steps; returns the state and ``A`` in scaled units."""
        gen = torch.Generator().manual_seed(self.seed)
        mu = A.mean(0)
        scale = float(np.sqrt(((A - mu) ** 2).sum(1).mean())) or 1.0
        X = torch.from_numpy(A / scale)
        n, d = X.shape
        centre = torch.from_numpy(mu / scale)
        if self.frozen_decoder or self.init == "random" or n < self.n_concepts:
            # random unit directions (the random-direction baseline's atoms never move)
            W_dec = torch.randn(self.n_concepts, d, generator=gen)
        else:  # atoms start at random (unit-norm) data rows: fewer dead units than noise
            pick = torch.randperm(n, generator=gen)[: self.n_concepts]
            W_dec = X[pick].clone()
            W_dec += 1e-3 * torch.randn(W_dec.shape, generator=gen)
        W_dec /= W_dec.norm(dim=1, keepdim=True).clamp_min(1e-8)
        W_enc = W_dec.T.clone()
        if self.calibrate:
            W_enc *= self._calibration(X[:8192] - centre, W_enc, W_dec)
        b_enc = torch.zeros(self.n_concepts, requires_grad=True)
        b_dec = centre.clone()
        dev = resolve_device(None)  # drawn on the CPU above: the same start on every device
        W_enc, b_enc, b_dec, X = (t.detach().to(dev) for t in (W_enc, b_enc, b_dec, X))
        W_dec = W_dec.detach().to(dev).requires_grad_(not self.frozen_decoder)
        for t in (W_enc, b_enc, b_dec):
            t.requires_grad_(True)
        params = [W_enc, b_enc, b_dec] + ([] if self.frozen_decoder else [W_dec])
        st = _Train(W_enc, b_enc, W_dec, b_dec, torch.optim.Adam(params, lr=self.lr), gen,
                    scale, steps, max(100, steps // 8),
                    torch.zeros(self.n_concepts, dtype=torch.bool, device=dev))
        return st, X

    def _calibration(self, Xc: torch.Tensor, W_enc: torch.Tensor, W_dec: torch.Tensor
                     ) -> float:
        """Least-squares factor ``alpha`` for the initial codes of centred rows ``Xc``:
        ``argmin_a ||a z W_dec - Xc||^2`` with ``z = act(Xc W_enc)`` (at least 1e-3, so no unit
        starts silent)."""
        with torch.no_grad():
            self._progress = 0.0
            r = self._activate(Xc @ W_enc, training=True) @ W_dec
            den = float((r * r).sum())
            alpha = float((r * Xc).sum()) / den if den > 0 else 1.0
        return max(alpha, 1e-3)

    def _train_step(self, st: _Train, xb: torch.Tensor) -> float:
        """One optimiser step on a batch of scaled rows; returns the batch loss."""
        W_enc, b_enc, W_dec, b_dec = st.W_enc, st.b_enc, st.W_dec, st.b_dec
        pre = (xb - b_dec) @ W_enc + b_enc
        self._progress = st.step / st.steps
        z = self._activate(pre, training=True)
        loss = ((z @ W_dec + b_dec - xb) ** 2).sum(1).mean() + self._penalty(z)
        st.opt.zero_grad(set_to_none=True)
        loss.backward()
        st.opt.step()
        with torch.no_grad():
            if not self.frozen_decoder:
                W_dec /= W_dec.norm(dim=1, keepdim=True).clamp_min(1e-8)
            self._after_step(pre, z)
            st.fired |= (z > 0).any(0)
            if (st.step + 1) % st.window == 0 and st.step < 0.6 * st.steps:
                if not self.frozen_decoder:
                    self._resample(st.fired, xb, z @ W_dec + b_dec, W_enc, b_enc, W_dec,
                                   small=self.calibrate)
                st.fired[:] = False
        st.step += 1
        return float(loss.detach())

    def _publish(self, st: _Train) -> None:
        """Copy the training state into the arrays ``encode`` / ``decode`` / ``state`` use."""
        self._enc = {"W_enc": st.W_enc.detach().cpu().numpy().copy(),
                     "b_enc": st.b_enc.detach().cpu().numpy().copy(),
                     "b_dec": st.b_dec.detach().cpu().numpy().copy(),
                     "scale": np.array([st.scale], np.float32),
                     **self._extra_state()}
        self._set(st.W_dec.detach().cpu().numpy() * st.scale,
                  st.scale * st.b_dec.detach().cpu().numpy())

    def fit(self, A: np.ndarray) -> SAEDictionary:
        A = check_activations(A)
        n = A.shape[0]
        bs = min(self.batch_size, n)
        per_epoch = math.ceil(n / bs)
        steps = max(self.min_steps, self.epochs * per_epoch)
        st, X = self._begin(A, steps)
        order = torch.randperm(n, generator=st.gen).to(X.device)
        for step in progress(range(steps), total=steps, desc=f"fit {self.name}"):
            i = step % per_epoch
            if i == 0 and step:
                order = torch.randperm(n, generator=st.gen).to(X.device)
            self._train_step(st, X[order[i * bs:(i + 1) * bs]])
        self._publish(st)
        return self

    streaming = True

    def partial_fit(self, A: np.ndarray, total_rows: int | None = None) -> SAEDictionary:
        """One pass of minibatch steps over a chunk of a stream, rows shuffled within it.

        The first chunk sets the centre and scale (so the first chunk should be a few
        thousand rows) and the atoms; ``total_rows`` sizes the schedule (resampling windows,
        BatchTopK's warm-up), defaulting to ten chunks like this one.
        """
        A = check_activations(A, dim=None if self._train is None else self._train.W_enc.shape[0])
        bs = min(self.batch_size, A.shape[0])
        if self._train is None:
            planned = total_rows if total_rows else 10 * A.shape[0]
            self._train, X = self._begin(A, max(1, math.ceil(planned / bs)))
        else:
            X = torch.from_numpy(A / self._train.scale).to(self._train.W_enc.device)
        st = self._train
        order = torch.randperm(len(X), generator=st.gen).to(X.device)
        losses = [self._train_step(st, X[order[s:s + bs]]) for s in range(0, len(X), bs)]
        self.last_loss = float(np.mean(losses))
        self._publish(st)
        return self

    def _extra_state(self) -> dict[str, np.ndarray]:
        return {}

    @staticmethod
    def _resample(fired: torch.Tensor, xb: torch.Tensor, x_hat: torch.Tensor,
                  W_enc: torch.Tensor, b_enc: torch.Tensor, W_dec: torch.Tensor,
                  small: bool = False) -> None:
        """Restart units silent for a whole window at the worst-reconstructed rows' residuals
        (Bricken et al. 2023, "neuron resampling"), so few units stay dead. With ``small``
        (calibrated encoders) the restarted encoder columns get 0.2 times the alive columns'
        mean norm, as in Bricken et al. (a unit-norm column would overshoot after the
        calibration shrank the others); otherwise unit norm, as before."""
        dead = torch.nonzero(~fired).flatten()
        if not len(dead):
            return
        alive = W_enc[:, fired].norm(dim=0)
        enc_norm = 0.2 * float(alive.mean()) if small and len(alive) else 1.0
        resid = xb - x_hat
        worst = resid.norm(dim=1).argsort(descending=True)[: len(dead)]
        new = resid[worst]
        new = new / new.norm(dim=1, keepdim=True).clamp_min(1e-8)
        dead = dead[: len(new)]
        W_dec[dead] = new
        W_enc[:, dead] = enc_norm * new.T
        b_enc[dead] = 0.0

    def encode(self, A: np.ndarray) -> np.ndarray:
        A = check_activations(A, dim=self.dim)
        if not self._enc:
            raise DictionaryError(f"{self.name}: fit the dictionary first")
        e = self._enc
        x = torch.from_numpy(A / e["scale"][0])
        with torch.no_grad():
            pre = (x - torch.from_numpy(e["b_dec"])) @ torch.from_numpy(e["W_enc"]) \
                + torch.from_numpy(e["b_enc"])
            z = self._activate(pre, training=False)
        # codes in input units: decode(U) = U @ (s W_dec) + bias reproduces x_hat exactly
        return z.numpy().astype(np.float32)

    def arrays(self) -> dict[str, np.ndarray]:
        if not self._enc:
            raise DictionaryError(f"{self.name}: fit the dictionary first")
        return {**super().arrays(), **{f"enc.{k}": v for k, v in self._enc.items()}}

    def load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        super().load_arrays(arrays)
        self._enc = {k[4:]: np.asarray(v, np.float32) for k, v in arrays.items()
                     if k.startswith("enc.")}


@register_dictionary
class TopKSAEDictionary(SAEDictionary):
    """TopK SAE: ``z = ReLU(TopK_k(pre))`` per row, no penalty (Gao et al. 2024, eq. 2)."""

    name = "topk-sae"

    def _activate(self, pre: torch.Tensor, training: bool) -> torch.Tensor:
        vals, idx = pre.topk(self.k, dim=1)
        return torch.zeros_like(pre).scatter(1, idx, torch.relu(vals))

    def _penalty(self, z: torch.Tensor) -> torch.Tensor:
        return z.new_zeros(())


@register_dictionary
class BatchTopKSAEDictionary(TopKSAEDictionary):
    """BatchTopK SAE: the ``k * B`` largest pre-activations of a batch while training; at
    inference ``pre > theta``, ``theta`` the running mean of the smallest kept value per batch
    (Bussmann et al. 2024, section 3)."""

    name = "batchtopk-sae"

    #: share of training run with per-row TopK first (stabilises which units cover which rows)
    warmup = 0.2

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._theta: float | None = None

    def _activate(self, pre: torch.Tensor, training: bool) -> torch.Tensor:
        r = torch.relu(pre)
        if training and getattr(self, "_progress", 1.0) < self.warmup:
            return TopKSAEDictionary._activate(self, pre, training)
        if training:
            flat = r.flatten()
            keep = min(self.k * r.shape[0], flat.numel())
            vals, idx = flat.topk(keep)
            return torch.zeros_like(flat).scatter(0, idx, vals).view_as(r)
        theta = self._theta if self._theta is not None else 0.0
        return r * (r > theta)

    def _after_step(self, pre: torch.Tensor, z: torch.Tensor) -> None:
        kept = z[z > 0]
        if kept.numel():
            low = float(kept.min())
            self._theta = low if self._theta is None else 0.99 * self._theta + 0.01 * low

    def _extra_state(self) -> dict[str, np.ndarray]:
        return {"theta": np.array([self._theta or 0.0], np.float32)}

    def load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        super().load_arrays(arrays)
        self._theta = float(self._enc["theta"][0])
