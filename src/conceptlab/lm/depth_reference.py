"""The Concept Depth reference protocol, as its code does it, for a row beside ours.

Jin et al. (2024), "Exploring Concept Depth", repository ``Luckfort/CD``:

* hook point: ``utils.py``, ``ModelAndTokenizer`` (``self.layer_names``) traces
  ``model.layers.{i}.post_attention_layernorm`` and ``get_hidden_states`` stacks the traced
  outputs: the *normalised input of block i's MLP* (residual after attention, through the
  post-attention RMSNorm), not the block output; ``main.py`` keeps the last token
  (``hs_i[-1, :]``);
* split and probe: ``main.py``, per layer, ``train_test_split(X, y, test_size=0.4,
  random_state=42)`` (item-level, not stratified, no groups), ``LogisticRegression(penalty=
  'l2')`` with sklearn's defaults (lbfgs, C = 1, max_iter = 100, no standardisation), scored on
  the 40% by ``accuracy_score``, ``f1_score(average='binary')`` and ``roc_auc_score`` on
  ``predict_proba[:, 1]``; one split, no interval.

Here the same on this adapter's models (the MLP-input norm is ``post_attention_layernorm`` for
Llama-family models, ``pre_feedforward_layernorm`` for Gemma 2/3, ``ln_2`` for GPT-2).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from conceptlab.hooks import HookError, get_module
from conceptlab.lm.datasets import PromptSet
from conceptlab.lm.model import CausalLM, LMError

MLP_INPUT_NORM = {"llama": "post_attention_layernorm", "gemma": "pre_feedforward_layernorm",
                  "gpt2": "ln_2"}


def mlp_input_states(lm: CausalLM, texts: Sequence[str], layers: Sequence[int],
                     batch_size: int = 16) -> dict[int, np.ndarray]:
    """Last real token's output of each block's MLP-input norm, ``{layer: (N, d_model)}``."""
    name = MLP_INPUT_NORM[lm.arch.family]
    try:
        mods = {i: get_module(lm.blocks[i], name) for i in layers}
    except HookError as err:
        raise LMError(f"no {name} in this model's blocks: {err}") from err
    out: dict[int, list[np.ndarray]] = {i: [] for i in layers}
    seen: dict[int, torch.Tensor] = {}

    def keep(i: int) -> Any:
        def hook(_m: Any, _a: Any, o: torch.Tensor) -> None:
            seen[i] = o.detach()
        return hook

    for s in range(0, len(texts), batch_size):
        b = lm.batch(list(texts[s:s + batch_size]))
        seen.clear()
        handles = [m.register_forward_hook(keep(i)) for i, m in mods.items()]
        try:
            with torch.inference_mode():
                lm.forward(b)
        finally:
            for h in handles:
                h.remove()
        last = b.last_index()
        for i in layers:
            out[i].append(seen[i][torch.arange(len(last)), last].float().cpu().numpy())
    return {i: np.concatenate(v) for i, v in out.items()}


def reference_rows(lm: CausalLM, prompts: PromptSet, layers: Sequence[int],
                   ) -> list[dict[str, Any]]:
    """Per layer: the reference's single 60/40 split scores (accuracy, F1, ROC AUC)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score
    from sklearn.model_selection import train_test_split

    prompts.require_binary("the Concept Depth reference protocol")
    states = mlp_input_states(lm, prompts.texts, layers)
    rows = []
    for i in layers:
        X_train, X_test, y_train, y_test = train_test_split(
            states[i], prompts.labels, test_size=0.4, random_state=42)
        with warnings.catch_warnings():  # the reference's max_iter=100 often stops early
            warnings.simplefilter("ignore")
            clf = LogisticRegression(penalty="l2").fit(X_train, y_train)
        pred = clf.predict(X_test)
        rows.append({"layer": int(i), "point": f"blocks.{i}.{MLP_INPUT_NORM[lm.arch.family]}",
                     "accuracy": float(accuracy_score(y_test, pred)),
                     "f1": float(f1_score(y_test, pred, average="binary")),
                     "auc": float(roc_auc_score(y_test, clf.predict_proba(X_test)[:, 1]))})
    return rows
