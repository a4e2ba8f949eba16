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
from safetensors.numpy import load_file, save_file

from conceptlab.concepts.bank import ConceptBank
from conceptlab.discover.base import Dictionary, build_dictionary
from conceptlab.discover.metrics import dictionary_report
from conceptlab.discover.naming import (
    name_by_exemplars,
    name_by_head,
    strong_activation,
    unique_names,
)
from conceptlab.discover.sources import Activations, SourceError, TappedModel, extract
from conceptlab.errors import MissingFileError
from conceptlab.utils.io import atomic_dir, read_json, write_json_atomic

FORMAT = 1


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
            save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()},
                      str(tmp / "dictionary.safetensors"))
            write_json_atomic(tmp / "dictionary.json", {"format": FORMAT, **meta})
        return Path(folder)

    @classmethod
    def load(cls, folder: str | Path) -> DiscoveredConcepts:
        folder = Path(folder)
        if not (folder / "dictionary.json").is_file():
            raise MissingFileError(f"{folder}: no discovered concepts here (dictionary.json "
                                    "missing; write them with `conceptlab discover`)")
        meta = read_json(folder / "dictionary.json")
        arrays = load_file(str(folder / "dictionary.safetensors"))
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
             options: dict[str, Any] | None = None) -> tuple[DiscoveredConcepts, np.ndarray,
                                                             dict[str, Any]]:
    """Fit ``method`` on ``acts``, name the concepts (head + exemplars) and build the bank.

    Returns (concepts, training codes U, report: reconstruction metrics and names with scores).
    ``labels``: one label per input (``acts.item`` indexes it), for the exemplar namer.
    """
    d = build_dictionary(method, n_concepts, seed=seed, **(options or {}))
    U = d.fit_encode(acts.rows)
    quality = dictionary_report(acts.rows, U, d.decode(U))
    exemplars = name_by_exemplars(U, top=top, labels=labels, item=acts.item)
    head_names: list[dict[str, Any]] = []
    if tapped.head is not None and tapped.class_names is not None:
        head_names = name_by_head(d.dictionary, tapped.head, tapped.class_names,
                                  scale=strong_activation(U), base=d.bias)
    names = [h["name"] for h in head_names] if head_names else \
        [e.get("name", "concept") for e in exemplars]
    metadata: dict[str, list[Any]] = {
        "exemplar_rows": [e["rows"] for e in exemplars],
        "exemplar_values": [e["values"] for e in exemplars]}
    if head_names:
        metadata["head_name"] = [h["name"] for h in head_names]
        metadata["head_score"] = [h["score"] for h in head_names]
    if labels is not None:
        metadata["exemplar_label"] = [e["name"] for e in exemplars]
        metadata["exemplar_label_share"] = [e["score"] for e in exemplars]
    prov = {**acts.provenance, "model_fingerprint": tapped.fingerprint(), "method": method,
            "seed": seed, "n_concepts": n_concepts, "dictionary": d.params(),
            "rows": len(acts)}
    vectors = d.dictionary.copy()
    zero = np.linalg.norm(vectors, axis=1) == 0
    vectors[zero, 0] = 1e-6  # a dead atom stays in the bank (flagged by dead_units)
    bank = ConceptBank(vectors, unique_names(names), provenance=prov, metadata=metadata)
    report = {"quality": quality, "names": [
        {"concept": bank.names[k], "head": head_names[k] if head_names else None,
         "exemplars": {kk: v for kk, v in exemplars[k].items() if kk != "values"}}
        for k in range(n_concepts)]}
    return DiscoveredConcepts(d, bank), U, report
