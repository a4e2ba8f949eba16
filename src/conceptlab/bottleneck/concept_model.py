"""``ConceptModel``: the one protocol every concept model of conceptlab implements, and the
registry that picks a saved model's class from its ``model.json`` ``kind``.

Why: ``predict``, ``explain``, ``intervene``, ``serve``, ``report`` and ``audit`` read saved
models of several kinds (the concept bottleneck model, DN-CBM, the concept embedding model).
They use nothing but this protocol, so a new concept model is one class that implements it
and one ``register_concept_model`` call; no command grows a branch per kind.

The vocabulary of the protocol (all arrays numpy, one row per input):

* ``unit_values(X)``: N x K values an intervention sets (a CBM's CBL units before its
  activation map, a DN-CBM's SAE codes, a CEM's concept probabilities);
* ``activations_from_units(U)``: what the head reads, N x K;
* ``head_at(X)``: the head as an affine map on those activations at each input, ``(W, b)`` of
  shapes N x C x K and N x C, so ``logits[i] = W[i] @ H[i] + b[i]`` *exactly*. A CBM's and a
  DN-CBM's head is the same for every input (``effective_head()`` gives it once, C x K); a
  CEM's head reads concept embeddings whose positive and negative halves depend on the input,
  so its head on the probabilities is input-dependent and ``effective_head()`` is None;
* ``unit_range()``: per concept the unit value that means "absent" and the one that means
  "present" (the words every output uses; ``high`` / ``low`` are accepted as input aliases);
  ``unit_limits``: the interval any set value must lie in (refused with one line otherwise);
* ``explain``, ``intervene``, ``predict``, ``predict_proba``: the decisions;
* ``save`` / ``load``: safetensors + JSON, kind recorded in ``model.json``;
* ``audit_profile(AuditInputs)``: the faithfulness profile the model's kind measures.

``explain_units`` and ``intervention_rows`` below are the shared arithmetic (the explorer and
the saved-model workflows call them, never re-implement them).
"""

from __future__ import annotations

import difflib
import importlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from conceptlab.errors import ConceptlabValueError, FormatError, UnknownNameError
from conceptlab.utils.registry import Registry
from conceptlab.utils.saved import SavedKind, read_json_checked, read_saved

#: the words for a concept's two states, in every output (library, CLI, explorer)
PRESENT, ABSENT = "present", "absent"
#: input aliases of the two states (older command lines said high / low)
STATE_WORDS: dict[str, str] = {"present": PRESENT, "high": PRESENT, "on": PRESENT,
                               "absent": ABSENT, "low": ABSENT, "off": ABSENT}
#: no unit value set by hand may exceed this in magnitude (far beyond any trained unit; keeps
#: the activation map and the head finite)
MAX_UNIT_MAGNITUDE = 1e6
MODEL_META = "model.json"
MODEL_WEIGHTS = "model.safetensors"


class ConceptModelError(FormatError):
    """A saved model folder that no registered concept model can read (named with the
    reason)."""


def saved_model_kind(kind: str, formats: tuple[int, ...], *, unversioned: bool = False,
                     error: type[FormatError] = ConceptModelError) -> SavedKind:
    """The ``utils.saved`` description of a concept model's folder: ``model.json`` +
    ``model.safetensors`` holding ``kind``; another kind is answered with where every kind
    is read."""
    return SavedKind(kind, formats, "model", error=error, unversioned=unversioned,
                     see="conceptlab.bottleneck.concept_model.load_concept_model reads every "
                         "registered kind")


@dataclass
class AuditInputs:
    """What a concept model's audit may use, gathered once by the caller (``fit`` and
    ``audit``): held-out test data, the run's vocabulary (names and their text embeddings),
    ground-truth concept labels per split (columns named by ``vocab_names``), the training
    and validation arrays (control refits, leakage), the encoder (its text side for the
    controls and class links), backbone features, a user's concept example sets and the
    seed. Each kind reads what its measurements need and says what it could not measure."""

    X_test: np.ndarray
    y_test: np.ndarray
    vocab_names: list[str]
    vocab_vectors: np.ndarray
    X_train: np.ndarray | None = None
    y_train: np.ndarray | None = None
    X_val: np.ndarray | None = None
    y_val: np.ndarray | None = None
    concept_labels: dict[str, np.ndarray] | None = None
    encoder: Any = None
    class_embeddings: np.ndarray | None = None
    features: dict[str, np.ndarray] | None = None
    examples: Any = None
    seed: int = 0
    controls: bool = True


@runtime_checkable
class ConceptModel(Protocol):
    """What every concept model offers (see the module docstring for the vocabulary)."""

    kind: str
    class_names: list[str]
    encoder_spec: str
    encoder_fingerprint: str
    unit_limits: tuple[float, float]

    @property
    def concept_names(self) -> list[str]: ...

    def unit_values(self, X: Any) -> np.ndarray: ...

    def activations_from_units(self, U: np.ndarray) -> np.ndarray: ...

    def head_at(self, X: Any) -> tuple[np.ndarray, np.ndarray]: ...

    def effective_head(self) -> tuple[np.ndarray, np.ndarray] | None: ...

    def unit_range(self) -> tuple[np.ndarray, np.ndarray]: ...

    def predict(self, X: Any) -> np.ndarray: ...

    def predict_proba(self, X: Any) -> np.ndarray: ...

    def explain(self, X: Any, top: int = ...) -> list[dict[str, Any]]: ...

    def intervene(self, X: Any, interventions: Mapping[str, Any], *,
                  return_proba: bool = False) -> np.ndarray: ...

    def save(self, folder: str | Path) -> Path: ...

    def audit_profile(self, inputs: AuditInputs) -> dict[str, Any]: ...


# ------------------------------------------------------------------------------------------------
# the registry: model.json's kind -> a loader
# ------------------------------------------------------------------------------------------------

Loader = Callable[[Path], ConceptModel]
#: model.json's ``kind`` -> the loader of that kind (``register_concept_model`` adds to it)
CONCEPT_MODELS: Registry[Loader] = Registry("concept model kind", ConceptModelError)
#: modules whose import registers the built-in kinds
_BUILTIN = ("conceptlab.bottleneck.model", "conceptlab.discover.dncbm",
            "conceptlab.bottleneck.cem")


def register_concept_model(kind: str, loader: Loader) -> None:
    """Register the loader of saved models whose ``model.json`` says ``"kind": kind``; a kind
    registered twice is refused with a ``RegistryError`` (two classes cannot both read one
    format)."""
    CONCEPT_MODELS.add(kind, loader)


def concept_model_kinds() -> list[str]:
    """Every registered kind."""
    for module in _BUILTIN:
        importlib.import_module(module)
    return sorted(CONCEPT_MODELS)


def read_meta(folder: Path) -> dict[str, Any]:
    """``model.json`` of a model folder as a dict (any kind; the kind's own loader checks
    ``kind`` and ``format`` through ``utils.saved``); a FormatError naming the file otherwise
    (also for JSON nested too deep to read)."""
    path = folder / MODEL_META
    if not path.is_file():
        raise ConceptModelError(f"{folder}: missing {MODEL_META}")
    return read_json_checked(path, ConceptModelError)


def read_saved_model(folder: Path, kind: SavedKind, required: tuple[str, ...] = ()
                     ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """``(checked model.json, tensors)`` of a saved concept model of ``kind``: a missing file
    is the kind's error (a model folder is damaged, not a path mistyped), every other failure
    the ``utils.saved`` FormatError naming the file."""
    for name in (kind.json_name, kind.tensors_name):
        if not (folder / name).is_file():
            raise kind.fail(f"{folder}: missing {name}")
    return read_saved(folder, kind, required)


def model_folder(path: str | Path) -> Path:
    """The model folder of a run folder (``RUN/model``) or of a model folder itself."""
    p = Path(path)
    if (p / "model" / MODEL_META).is_file():
        return p / "model"
    return p


def load_concept_model(folder: str | Path,
                       expected_encoder_fingerprint: str | None = None) -> ConceptModel:
    """The saved concept model in ``folder`` (a model folder or a run folder), of whatever
    registered kind its ``model.json`` names; refused when the kind is unknown or the model
    was fitted on another encoder's embeddings than ``expected_encoder_fingerprint``."""
    path = model_folder(folder)
    if not path.is_dir():
        raise ConceptModelError(f"{path}: no such model folder")
    meta = read_meta(path)
    kind = meta.get("kind")
    kinds = concept_model_kinds()
    if not isinstance(kind, str) or kind not in CONCEPT_MODELS:
        raise ConceptModelError(f"{path}: model.json kind {kind!r} is not a concept model "
                                f"conceptlab reads (known kinds: {', '.join(kinds)})")
    model = CONCEPT_MODELS[kind](path)
    if expected_encoder_fingerprint is not None:
        check_encoder(model, expected_encoder_fingerprint, path)
    return model


def check_encoder(model: ConceptModel, fingerprint: str, where: str | Path = "") -> None:
    """Refuse inputs from an encoder other than the one the model was fitted on."""
    fp = str(getattr(model, "encoder_fingerprint", "") or "")
    if fp and fp != fingerprint:
        spec = getattr(model, "encoder_spec", "") or "unknown encoder"
        raise ConceptModelError(
            f"{where}: the model was fitted on embeddings from encoder fingerprint {fp!r} "
            f"({spec}), but the inputs come from fingerprint {fingerprint!r}; use the same "
            f"encoder or re-fit the model")


# ------------------------------------------------------------------------------------------------
# shared arithmetic
# ------------------------------------------------------------------------------------------------


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64."""
    z = np.asarray(logits, np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=1, keepdims=True))


def broadcast_head(W: np.ndarray, b: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """A head shared by every input as ``head_at``'s per-input shapes (views, no copy)."""
    return (np.broadcast_to(W, (n, *W.shape)), np.broadcast_to(b, (n, *b.shape)))


def logits_from_units(model: ConceptModel, X: Any, U: np.ndarray) -> np.ndarray:
    """Logits (N x C) when the units of inputs ``X`` are ``U`` (set or not)."""
    H = np.asarray(model.activations_from_units(U), np.float64)
    W, b = model.head_at(X)
    return np.einsum("nck,nk->nc", np.asarray(W, np.float64), H) + np.asarray(b, np.float64)


def used_concepts(model: ConceptModel) -> np.ndarray:
    """Indices of the concepts the head reads (every concept for an input-dependent head)."""
    head = model.effective_head()
    k = len(model.concept_names)
    if head is None:
        return np.arange(k)
    used = np.flatnonzero(np.abs(np.asarray(head[0])).sum(0) > 0)
    return used if len(used) else np.arange(k)


def concept_state(value: float, absent: float, present: float) -> str:
    """``present`` or ``absent``: the state a unit value is nearer to."""
    return PRESENT if abs(value - present) <= abs(value - absent) else ABSENT


def explain_units(model: ConceptModel, X: Any, U: np.ndarray, *, top: int | None = None,
                  keep: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """The decision of each row when its units are ``U``: ``prediction``, ``class_index``,
    ``probability``, ``logit`` (= ``intercept`` + the sum of every contribution, exactly),
    ``probabilities`` (every class, largest first) and ``concepts``: per concept its
    ``unit`` value, ``activation``, ``weight`` for the predicted class, ``contribution``
    (activation x weight) and ``state`` (present / absent), largest |contribution| first;
    concepts with zero contribution are left out unless in ``keep``; at most ``top``."""
    Uf = np.asarray(U, np.float32)
    H = np.asarray(model.activations_from_units(Uf), np.float64)
    W, b = model.head_at(X)
    W64, b64 = np.asarray(W, np.float64), np.asarray(b, np.float64)
    logits = np.einsum("nck,nk->nc", W64, H) + b64
    proba = softmax(logits)
    low, high = model.unit_range()
    names, classes = model.concept_names, model.class_names
    keep_set = set(int(k) for k in (keep if keep is not None else []))
    rows = []
    for i in range(len(H)):
        c = int(logits[i].argmax())
        contrib = W64[i, c] * H[i]
        order = np.argsort(-np.abs(contrib), kind="stable")
        ranked = [int(k) for k in order if contrib[k] != 0 or int(k) in keep_set]
        if top is not None:
            ranked = ranked[:top]
        by_p = np.argsort(-proba[i], kind="stable")
        rows.append({
            "prediction": classes[c], "class_index": c, "probability": float(proba[i, c]),
            "logit": float(logits[i, c]), "intercept": float(b64[i, c]),
            "probabilities": [{"class": classes[int(j)], "p": float(proba[i, j])}
                              for j in by_p],
            "concepts": [{"concept": names[k], "unit": float(Uf[i, k]),
                          "activation": float(H[i, k]), "weight": float(W64[i, c, k]),
                          "contribution": float(contrib[k]),
                          "state": concept_state(float(Uf[i, k]), float(low[k]),
                                                 float(high[k]))}
                         for k in ranked]})
    return rows


def concept_index(model: ConceptModel, name: str) -> int:
    """Position of a concept by name; an unknown one is answered with the close names."""
    names = list(model.concept_names)
    if name in names:
        return names.index(name)
    close = difflib.get_close_matches(str(name), names, n=3)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise UnknownNameError(f"unknown concept {name!r}{hint} ({len(names)} concepts)")


def check_unit_value(model: ConceptModel, name: str, value: float) -> float:
    """A hand-set unit value as a float, refused (one line) when not finite, beyond
    ``MAX_UNIT_MAGNITUDE`` or outside the model's ``unit_limits``."""
    v = float(value)
    lo, hi = model.unit_limits
    lo, hi = max(lo, -MAX_UNIT_MAGNITUDE), min(hi, MAX_UNIT_MAGNITUDE)
    if not math.isfinite(v):
        raise ConceptlabValueError(f"value for {name!r} must be a finite number, got {value!r}")
    if not lo <= v <= hi:
        raise ConceptlabValueError(f"value for {name!r} must lie in [{lo:g}, {hi:g}] for this "
                                   f"model, got {value!r}")
    return v


def resolve_settings(model: ConceptModel, settings: Mapping[str, Any]
                     ) -> tuple[dict[str, float], dict[str, str]]:
    """``{concept: unit value}`` and ``{concept: state word or "value"}`` of a user's settings:
    each value is ``present`` / ``absent`` (or the aliases ``high`` / ``low``) or a number;
    every name and value is checked before anything runs."""
    if not isinstance(settings, Mapping) or not settings:
        raise ConceptlabValueError("give at least one CONCEPT=VALUE setting")
    low, high = model.unit_range()
    values: dict[str, float] = {}
    how: dict[str, str] = {}
    for name, raw in settings.items():
        k = concept_index(model, str(name))
        word = STATE_WORDS.get(raw.strip().lower()) if isinstance(raw, str) else None
        if word is not None:
            v = float((high if word == PRESENT else low)[k])
            if not math.isfinite(v):
                raise ConceptlabValueError(f"{name!r}: this model records no {word!r} value; "
                                           f"give a number")
            values[str(name)], how[str(name)] = v, word
            continue
        if isinstance(raw, bool):
            raise ConceptlabValueError(f"value for {name!r} must be a number, 'present' or "
                                       f"'absent', got {raw!r}")
        try:
            number = float(raw)
        except (TypeError, ValueError):
            raise ConceptlabValueError(f"value for {name!r} must be a number, 'present' or "
                                       f"'absent', got {raw!r}") from None
        values[str(name)] = check_unit_value(model, str(name), number)
        how[str(name)] = "value"
    return values, how


def set_units(model: ConceptModel, U: np.ndarray, values: Mapping[str, float]) -> np.ndarray:
    """A copy of ``U`` with the named concepts' units set (names and values already
    checked by ``resolve_settings``)."""
    out = np.array(U, dtype=np.float32, copy=True)
    for name, v in values.items():
        out[:, concept_index(model, name)] = v
    return out


def intervention_rows(model: ConceptModel, X: Any, settings: Mapping[str, Any],
                      labels: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Per input: the decision and every class probability before and after setting the
    named concepts (``set``: the unit values used; ``set_as``: ``present`` / ``absent`` or
    ``value`` per concept)."""
    values, how = resolve_settings(model, settings)
    U = np.asarray(model.unit_values(X), np.float32)
    before = softmax(logits_from_units(model, X, U))
    after = softmax(logits_from_units(model, X, set_units(model, U, values)))
    classes = model.class_names
    rows = []
    for i in range(len(U)):
        b, a = int(before[i].argmax()), int(after[i].argmax())
        row: dict[str, Any] = {
            "set": dict(values), "set_as": dict(how),
            "before": classes[b], "after": classes[a],
            "probability_before": float(before[i, b]), "probability_after": float(after[i, a]),
            "probabilities_before": {c: float(before[i, j]) for j, c in enumerate(classes)},
            "probabilities_after": {c: float(after[i, j]) for j, c in enumerate(classes)}}
        if labels is not None:
            row = {"input": labels[i], **row}
        rows.append(row)
    return rows


__all__ = [
    "ABSENT",
    "CONCEPT_MODELS",
    "MAX_UNIT_MAGNITUDE",
    "PRESENT",
    "STATE_WORDS",
    "AuditInputs",
    "ConceptModel",
    "ConceptModelError",
    "check_encoder",
    "check_unit_value",
    "concept_index",
    "concept_model_kinds",
    "explain_units",
    "intervention_rows",
    "load_concept_model",
    "logits_from_units",
    "model_folder",
    "read_meta",
    "read_saved_model",
    "register_concept_model",
    "resolve_settings",
    "saved_model_kind",
    "set_units",
    "softmax",
    "used_concepts",
]
