"""Edits of a representation: CoLan's concept transplant beside a fixed-strength direction.

CoLan (Luo et al. 2025, sec. 3.3) edits with the strength the decomposition measured: to
*replace* concept s by t, the source coefficient moves from s's atom to t's,
``x' = x + w_s (d_t - d_s)``; to *remove* s, ``x' = x - w_s d_s``; to *add* t,
``x' = x + w_t^ref d_t`` (here ``w_t^ref``: the mean coefficient t has in training inputs
where it is present, our choice). The usual alternative moves every input by one fixed
strength along the edit direction, ``x' = x + alpha (d_t - d_s)``, and needs alpha tuned:
too weak fails the edit, too strong damages what should stay. Both act in the lancet's
centred coordinates on its centred atoms; results are unit-normalised back in the space.
"""

from __future__ import annotations

import numpy as np

from conceptlab.errors import ConceptlabValueError
from conceptlab.lancet.decompose import Lancet

EDITS = ("replace", "remove", "add")


def transplant(lancet: Lancet, X: np.ndarray, kind: str, source: str | None = None,
               target: str | None = None, W: np.ndarray | None = None,
               add_strength: float | None = None) -> np.ndarray:
    """CoLan's edit of every row of ``X``; ``W`` (coefficients) is computed when not given."""
    D = lancet.dictionary
    Xc = lancet.centred(X)
    coef = lancet.coefficients(X) if W is None else np.asarray(W, dtype=np.float64)
    if kind == "replace":
        s, t = D.index(_need(source, "source")), D.index(_need(target, "target"))
        Xc = Xc + coef[:, [s]] * (lancet.atoms[t] - lancet.atoms[s])
    elif kind == "remove":
        s = D.index(_need(source, "source"))
        Xc = Xc - coef[:, [s]] * lancet.atoms[s]
    elif kind == "add":
        t = D.index(_need(target, "target"))
        if add_strength is None:
            raise ConceptlabValueError("an add transplant needs the reference strength")
        Xc = Xc + float(add_strength) * lancet.atoms[t]
    else:
        raise ConceptlabValueError(f"unknown edit {kind!r}; choose from {', '.join(EDITS)}")
    return lancet.uncentre(Xc)


def fixed_edit(lancet: Lancet, X: np.ndarray, kind: str, alpha: float,
               source: str | None = None, target: str | None = None) -> np.ndarray:
    """The same edit with one fixed strength ``alpha`` for every input."""
    D = lancet.dictionary
    Xc = lancet.centred(X)
    direction = np.zeros(lancet.atoms.shape[1])
    if kind in ("replace", "add"):
        direction += lancet.atoms[D.index(_need(target, "target"))]
    if kind in ("replace", "remove"):
        direction -= lancet.atoms[D.index(_need(source, "source"))]
    if kind not in EDITS:
        raise ConceptlabValueError(f"unknown edit {kind!r}; choose from {', '.join(EDITS)}")
    return lancet.uncentre(Xc + float(alpha) * direction)


def add_reference_strength(W_train: np.ndarray, k: int) -> float:
    """Mean coefficient of concept ``k`` over training inputs where it is present (> 0)."""
    col = np.asarray(W_train)[:, k]
    present = col[col > 0]
    return float(present.mean()) if len(present) else 0.0


def group_predictions(lancet: Lancet, X: np.ndarray, members: list[int]) -> np.ndarray:
    """Zero-shot choice among ``members`` (dictionary rows): the highest cosine of each
    unit-normalised input with the concepts' own (uncentred) vectors."""
    V = np.asarray(lancet.dictionary.vectors, dtype=np.float64)[members]
    x = np.asarray(X, dtype=np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return np.asarray(members)[np.argmax(x @ V.T, axis=1)]


def _need(name: str | None, what: str) -> str:
    if not name:
        raise ConceptlabValueError(f"this edit needs a {what} concept")
    return name
