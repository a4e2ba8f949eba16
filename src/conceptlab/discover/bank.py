"""Discovered concepts: a fitted dictionary + a ``ConceptBank`` with provenance, that applies to
new inputs later (``conceptlab concepts apply``).

The bank's vectors are the dictionary's atoms (unit rows), its names come from the namers, and
its provenance records the model, hook point, activation source, data fingerprint, method and
seed. Codes of new inputs use the dictionary's own ``encode`` (not a cosine), so applying a
saved bank reproduces the codes the concepts were found with.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from conceptlab.concepts.bank import ConceptBank
from conceptlab.discover.base import Dictionary, build_dictionary
from conceptlab.discover.metrics import dictionary_report
from conceptlab.discover.naming import (
    ConceptNamer,
    head_probabilities,
    name_by_exemplars,
    names_from_probabilities,
    strong_activation,
    unique_names,
)
from conceptlab.discover.sources import Activations, SourceError, TappedModel, extract
from conceptlab.errors import MissingFileError
from conceptlab.utils.io import atomic_dir
from conceptlab.utils.saved import SavedKind, read_meta, read_saved, read_tensors, write_saved

FORMAT = 1
#: ``dictionary.json`` (the method's fields) + ``dictionary.safetensors`` (its arrays)
SAVED_DICTIONARY = SavedKind("discovered_dictionary", (FORMAT,), "dictionary", legacy=True,
                             error=SourceError)
#: ``probe.json`` + ``probe.safetensors`` (``weight`` C x D, ``bias`` C): the decision probe a
#: discover run fits when the model's head does not know the data's classes
SAVED_PROBE = SavedKind("decision_probe", (1,), "probe", error=SourceError)


def save_probe(folder: str | Path, weight: np.ndarray, bias: np.ndarray) -> Path:
    """Write the decision probe into ``folder`` (inside a staged run)."""
    W = np.asarray(weight, np.float32)
    write_saved(folder, SAVED_PROBE, {"n_classes": int(W.shape[0]), "dim": int(W.shape[1])},
                {"weight": W, "bias": np.asarray(bias, np.float32)})
    return Path(folder)


def load_probe(folder: str | Path) -> tuple[np.ndarray, np.ndarray] | None:
    """``(weight, bias)`` of the probe in ``folder``, None when there is none; a damaged
    file is one ``SourceError`` (a ``FormatError``) naming it. Runs written before the probe
    had a sidecar (``probe.safetensors`` only) are read too."""
    d = Path(folder)
    if not (d / SAVED_PROBE.tensors_name).is_file():
        return None
    if (d / SAVED_PROBE.json_name).is_file():
        read_meta(d, SAVED_PROBE)
    t = read_tensors(d, SAVED_PROBE, ("weight", "bias"))
    W, b = t["weight"], t["bias"]
    if W.ndim != 2 or b.shape != (W.shape[0],):
        raise SAVED_PROBE.fail(f"{d / SAVED_PROBE.tensors_name}: weight {W.shape} and bias "
                               f"{b.shape} do not form a probe")
    return W, b


@dataclass
class DiscoveredConcepts:
    """A fitted dictionary and its named bank (see the module docstring)."""

    dictionary: Dictionary
    bank: ConceptBank

    @property
    def provenance(self) -> dict[str, Any]:
        return self.bank.provenance

    def save(self, folder: str | Path) -> Path:
        """``folder/{bank.safetensors, bank.json, dictionary.safetensors, dictionary.json}``."""
        meta, arrays = self.dictionary.state()
        with atomic_dir(folder) as tmp:
            self.bank.save(tmp / "bank")
            for f in (tmp / "bank").iterdir():
                f.rename(tmp / f.name)
            (tmp / "bank").rmdir()
            write_saved(tmp, SAVED_DICTIONARY, meta, arrays)
        return Path(folder)

    @classmethod
    def load(cls, folder: str | Path) -> DiscoveredConcepts:
        folder = Path(folder)
        if not (folder / "dictionary.json").is_file():
            raise MissingFileError(f"{folder}: no discovered concepts here (dictionary.json "
                                    "missing; write them with `conceptlab discover`)")
        meta, arrays = read_saved(folder, SAVED_DICTIONARY)
        return cls(Dictionary.from_state(meta, arrays), ConceptBank.load(folder))

    def check_model(self, tapped: TappedModel) -> None:
        """The bank only applies to the model and hook point it was found at."""
        want = self.provenance.get("model_fingerprint")
        if want and want != tapped.fingerprint():
            raise SourceError(f"these concepts were found on {self.provenance.get('model')} at "
                              f"{self.provenance.get('layer')!r} (fingerprint {want}); the "
                              f"model given is {tapped.name} at {tapped.layer!r} "
                              f"({tapped.fingerprint()})")

    def apply(self, tapped: TappedModel, images: list[Any], batch_size: int = 32
              ) -> dict[str, np.ndarray]:
        """Codes of new inputs: ``codes`` (N x K) per input; for spatial banks also ``maps``
        (N x h x w x K). Whole inputs are read as the bank's source reads them, except crops:
        a crop bank is applied to the whole input (CRAFT's use at test time)."""
        self.check_model(tapped)
        kind = self.provenance.get("source", "embeddings")
        if kind == "spatial":
            acts = extract(tapped, images, "spatial", batch_size=batch_size)
            U = self.dictionary.encode(acts.rows)
            maps = U.reshape(len(images), *(acts.grid or (1, 1)), -1)
            return {"codes": maps.mean(axis=(1, 2)), "maps": maps}
        acts = extract(tapped, images, "embeddings", batch_size=batch_size)
        return {"codes": self.dictionary.encode(acts.rows)}


def discover(tapped: TappedModel, acts: Activations, method: str, n_concepts: int, *,
             seed: int = 0, labels: list[str] | None = None, top: int = 8,
             options: dict[str, Any] | None = None, namer: ConceptNamer | None = None
             ) -> tuple[DiscoveredConcepts, np.ndarray, dict[str, Any]]:
    """Fit ``method`` on ``acts``, name the concepts and build the bank.

    Names: from ``namer``'s vocabulary when given (``run_discover`` passes the parts
    vocabulary by default), else the model head's classes, else (no head) the majority label
    of the exemplars. Every name records the vocabulary it came from (``vocabulary``).
    Returns (concepts, training codes U, report: reconstruction metrics and names with scores).
    ``labels``: one label per input (``acts.item`` indexes it), for the exemplar namer.
    """
    d = build_dictionary(method, n_concepts, seed=seed, **(options or {}))
    U = d.fit_encode(acts.rows)
    quality = dictionary_report(acts.rows, U, d.decode(U))
    exemplars = name_by_exemplars(U, top=top, labels=labels, item=acts.item)
    head_names: list[dict[str, Any]] = []
    chosen: list[dict[str, Any]] = []
    naming: dict[str, Any] = {"vocabulary": "exemplar labels",
                              "source": "the majority data label among each concept's top "
                                        "exemplars"}
    if tapped.head is not None and tapped.class_names is not None:
        probs = head_probabilities(d.dictionary, tapped.head, scale=strong_activation(U),
                                   base=d.bias)
        head_names = names_from_probabilities(probs, tapped.class_names)
        if namer is not None:
            chosen = namer.name(probs, tapped.class_names)
            naming = namer.record()
        else:
            chosen = [{**h, "vocabulary": "head classes"} for h in head_names]
            naming = {"vocabulary": "head classes", "source": "the model's output head"}
    elif namer is not None and not namer.vocabulary.uses_head:
        naming = {**namer.record(), "fallback": "no output head at this hook point: names are "
                  "exemplar labels"}
    if not chosen:
        chosen = [{"name": e.get("name", "concept"), "score": e.get("score"),
                   "vocabulary": "exemplar labels"} for e in exemplars]
    names = [c["name"] for c in chosen]
    metadata: dict[str, list[Any]] = {
        "exemplar_rows": [e["rows"] for e in exemplars],
        "exemplar_values": [e["values"] for e in exemplars],
        "name_vocabulary": [c["vocabulary"] for c in chosen],
        "name_score": [c.get("score") for c in chosen]}
    if head_names:
        metadata["head_name"] = [h["name"] for h in head_names]
        metadata["head_score"] = [h["score"] for h in head_names]
    if labels is not None:
        metadata["exemplar_label"] = [e["name"] for e in exemplars]
        metadata["exemplar_label_share"] = [e["score"] for e in exemplars]
    prov = {**acts.provenance, "model_fingerprint": tapped.fingerprint(), "method": method,
            "seed": seed, "n_concepts": n_concepts, "dictionary": d.params(),
            "rows": len(acts), "naming": naming}
    vectors = d.dictionary.copy()
    zero = np.linalg.norm(vectors, axis=1) == 0
    vectors[zero, 0] = 1e-6  # a dead atom stays in the bank (flagged by dead_units)
    bank = ConceptBank(vectors, unique_names(names), provenance=prov, metadata=metadata)
    report = {"quality": quality, "naming": naming, "names": [
        {"concept": bank.names[k], "vocabulary": chosen[k]["vocabulary"],
         "name_score": chosen[k].get("score"),
         "name_alternatives": chosen[k].get("alternatives"),
         "head": head_names[k] if head_names else None,
         "exemplars": {kk: v for kk, v in exemplars[k].items() if kk != "values"}}
        for k in range(n_concepts)]}
    return DiscoveredConcepts(d, bank), U, report
