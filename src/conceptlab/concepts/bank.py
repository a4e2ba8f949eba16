"""ConceptBank: K named unit directions in one representation space, with their provenance.

A concept is a named direction. Banks come from a text vocabulary through a text encoder,
from probes on labelled examples, or from a dictionary fitted on activations; whatever the
source, they save as safetensors + JSON (never pickle) and record where they came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from conceptlab.errors import ConceptlabError
from conceptlab.utils.io import atomic_dir
from conceptlab.utils.saved import SavedKind, read_saved, write_saved

BANK_FORMAT = 1


class ConceptBankError(ConceptlabError, ValueError):
    """Raised for an empty or malformed bank, or one that does not fit the data it meets."""


#: ``bank.json`` (names, provenance, metadata) + ``bank.safetensors`` (``vectors``); files
#: written before ``kind`` was recorded are read too
SAVED_BANK = SavedKind("concept_bank", (BANK_FORMAT,), "bank", legacy=True,
                       error=ConceptBankError)


@dataclass
class ConceptBank:
    """Unit concept directions (``vectors``: K x D float32) with names and provenance.

    ``provenance`` records the space: ``encoder`` (spec), ``encoder_fingerprint``,
    ``hook_point`` (for raw activations), ``data_fingerprint`` and ``method`` (``"text"``,
    ``"probe"``, ``"nmf"``, ...). ``metadata`` holds per-concept lists (length K), e.g.
    ``"classes"``: the class names each concept was generated for.
    """

    vectors: np.ndarray
    names: list[str]
    provenance: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, list[Any]] = field(default_factory=dict)
    normalize: bool = True

    def __post_init__(self) -> None:
        vec = np.asarray(self.vectors, dtype=np.float32)
        if vec.ndim != 2:
            raise ConceptBankError(f"concept vectors must be 2-D (K x D), got shape {vec.shape}")
        if vec.shape[0] == 0 or not self.names:
            raise ConceptBankError("a concept bank needs at least one concept")
        if vec.shape[0] != len(self.names):
            raise ConceptBankError(f"{vec.shape[0]} vectors but {len(self.names)} names")
        if len(set(self.names)) != len(self.names):
            dupes = sorted({n for n in self.names if self.names.count(n) > 1})
            raise ConceptBankError(f"duplicate concept names: {dupes[:5]}")
        if not np.isfinite(vec).all():
            raise ConceptBankError("concept vectors contain NaN or infinity")
        if self.normalize:
            norms = np.linalg.norm(vec, axis=1, keepdims=True)
            if (norms == 0).any():
                zero = [self.names[i] for i in np.flatnonzero(norms[:, 0] == 0)[:5]]
                raise ConceptBankError(f"zero-length concept vectors: {zero}")
            vec = vec / norms
        self.vectors = vec
        self.names = [str(n) for n in self.names]
        for key, values in self.metadata.items():
            if len(values) != len(self.names):
                raise ConceptBankError(f"metadata {key!r} has {len(values)} entries, "
                                       f"expected {len(self.names)}")

    @classmethod
    def from_texts(cls, encoder: Any, names: Any, *, classes: Any = None,
                   template: str = "{}") -> ConceptBank:
        """Concept names through a text encoder (``encoder.encode_texts``), one unit vector each.

        ``classes`` (optional, one list of class names per concept) becomes the class-concept
        association. Provenance records the encoder's spec and fingerprint and the template.
        """
        from conceptlab.concepts.vocab import Vocabulary

        texts = [names] if isinstance(names, str) else list(names)
        if not texts:
            raise ConceptBankError("a concept bank needs at least one concept name")
        if classes is not None and len(classes) != len(texts):
            raise ConceptBankError(f"classes has {len(classes)} entries for {len(texts)} names")
        per = [[] for _ in texts] if classes is None else [
            [c] if isinstance(c, str) else list(c) for c in classes]
        vocab = Vocabulary.from_items(list(zip(texts, per, strict=True)), source="texts")
        return vocab.to_bank(encoder, template=template)

    def __len__(self) -> int:
        return len(self.names)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def index(self, name: str) -> int:
        """Position of a concept by name, with a clear error for unknown names."""
        try:
            return self.names.index(name)
        except ValueError:
            raise ConceptBankError(f"unknown concept {name!r}") from None

    def scores(self, activations: np.ndarray, normalize_inputs: bool = True) -> np.ndarray:
        """Concept activations U = activations . bank^T (N x K), cosine if ``normalize_inputs``."""
        acts = np.asarray(activations, dtype=np.float32)
        if acts.ndim != 2 or acts.shape[1] != self.dim:
            raise ConceptBankError(f"activations of shape {acts.shape} do not match bank dimension "
                                   f"{self.dim}")
        if normalize_inputs:
            acts = acts / np.maximum(np.linalg.norm(acts, axis=1, keepdims=True), 1e-12)
        return acts @ self.vectors.T

    def select(self, keep: list[int] | np.ndarray) -> ConceptBank:
        """A bank holding only the concepts at positions ``keep`` (order kept)."""
        idx = [int(i) for i in keep]
        return ConceptBank(
            vectors=self.vectors[idx], names=[self.names[i] for i in idx],
            provenance=dict(self.provenance),
            metadata={k: [v[i] for i in idx] for k, v in self.metadata.items()},
            normalize=False,
        )

    def save(self, folder: str | Path) -> Path:
        """Write ``bank.safetensors`` + ``bank.json`` into ``folder`` atomically."""
        with atomic_dir(folder) as tmp:
            write_saved(tmp, SAVED_BANK, {"names": self.names, "provenance": self.provenance,
                                          "metadata": self.metadata}, {"vectors": self.vectors})
        return Path(folder)

    @classmethod
    def load(cls, folder: str | Path) -> ConceptBank:
        """Read a bank written by ``save`` (a FormatError naming the file when malformed)."""
        meta, arrays = read_saved(folder, SAVED_BANK, required=("vectors",))
        vectors = arrays["vectors"]
        return cls(vectors=vectors, names=meta["names"], provenance=meta.get("provenance", {}),
                   metadata=meta.get("metadata", {}), normalize=False)
