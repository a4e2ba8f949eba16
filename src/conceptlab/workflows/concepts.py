"""Pick the concept vocabulary of a run and turn it into a ConceptBank in the encoder's space.

``auto`` means: the dataset's own ground-truth concept names when it has them (CUB, robot
texts), else a shipped reviewed vocabulary for the dataset (Fashion-MNIST, CIFAR-10/100),
else one generated from the class names. A path means a vocabulary file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from conceptlab.bottleneck.concept_model import AuditInputs
from conceptlab.concepts import ConceptBank, Vocabulary, builtin_vocabulary, load_vocabulary
from conceptlab.concepts.builtin import builtin_vocabulary_names
from conceptlab.concepts.generate import generate_vocabulary
from conceptlab.concepts.vocab import VocabularyError
from conceptlab.workflows.prepare import Prepared

_BUILTIN_FOR_DATA = {"fashion-mnist": "fashion-mnist", "cifar10": "cifar10",
                     "cifar100": "cifar100"}


@dataclass
class ConceptSource:
    """The vocabulary used, its bank, and (when the data has them) ground-truth labels."""

    vocabulary: Vocabulary
    bank: ConceptBank
    origin: str
    concept_labels: dict[str, np.ndarray] | None = None  # split name -> (N, K) 0/1

    def association(self, class_names: list[str]) -> np.ndarray:
        return self.vocabulary.association_matrix(class_names)


def _ground_truth_vocabulary(prep: Prepared) -> Vocabulary:
    """Concepts named after the dataset's labelled concepts; a concept belongs to a class
    when most training items of that class have it."""
    train = prep.splits.train
    names = list(train.concept_names or [])
    labels = np.asarray(train.concept_labels)
    items = []
    for k, name in enumerate(names):
        classes = [c for i, c in enumerate(prep.class_names)
                   if (train.labels == i).any() and labels[train.labels == i, k].mean() > 0.5]
        items.append((name, classes))
    return Vocabulary.from_items(items, source=f"ground-truth concepts of {prep.config.data}")


def named_vocabulary(concepts: str) -> tuple[Vocabulary, str]:
    """The vocabulary of a file path or a built-in name (anything but ``auto``)."""
    if Path(concepts).exists():
        return load_vocabulary(concepts), f"file:{concepts}"
    if concepts in builtin_vocabulary_names():
        return builtin_vocabulary(concepts), f"builtin:{concepts}"
    raise VocabularyError(f"--concepts {concepts!r}: no such file, and not a built-in "
                          f"vocabulary ({', '.join(builtin_vocabulary_names())}) nor 'auto'")


def check_concepts(concepts: str) -> None:
    """Fail fast, before any data is encoded, on a missing, empty or malformed vocabulary."""
    if concepts != "auto":
        named_vocabulary(concepts)


def choose_vocabulary(prep: Prepared, concepts: str) -> tuple[Vocabulary, str]:
    """The vocabulary named by ``concepts`` (``auto``, a built-in name, or a file path)."""
    if concepts != "auto":
        return named_vocabulary(concepts)
    if prep.splits.train.concept_names and prep.splits.train.concept_labels is not None:
        return _ground_truth_vocabulary(prep), "ground-truth"
    family = prep.config.data.partition(":")[0]
    if family in _BUILTIN_FOR_DATA:
        return builtin_vocabulary(_BUILTIN_FOR_DATA[family]), f"builtin:{family}"
    return generate_vocabulary(prep.class_names), "generated"


def concept_source(prep: Prepared, concepts: str = "auto") -> ConceptSource:
    """Vocabulary + bank (+ ground-truth concept labels per split when the data has them)."""
    vocab, origin = choose_vocabulary(prep, concepts)
    bank = vocab.to_bank(prep.encoder)
    labels = None
    if origin == "ground-truth":
        labels = {name: np.asarray(split.concept_labels, dtype=np.float32)
                  for name, split in prep.splits.as_dict().items()}
    return ConceptSource(vocab, bank, origin, labels)


def describe_source(src: ConceptSource) -> dict[str, Any]:
    return {"origin": src.origin, "n_concepts": len(src.bank), "source": src.vocabulary.source,
            "warnings": list(src.vocabulary.warnings)}


def audit_inputs_of(prep: Prepared, src: ConceptSource, *, seed: int, controls: bool = True,
                    F: dict[str, np.ndarray] | None = None, examples: Any = None
                    ) -> AuditInputs:
    """What a concept model's audit may use, from a prepared run: its test split, its
    vocabulary (names and text embeddings), ground-truth concept labels where the data has
    them, the cached train/val embeddings, the encoder, backbone features and example sets."""
    return AuditInputs(
        X_test=prep.X["test"], y_test=prep.y["test"], vocab_names=list(src.bank.names),
        vocab_vectors=src.bank.vectors, X_train=prep.X["train"], y_train=prep.y["train"],
        X_val=prep.X["val"], y_val=prep.y["val"], concept_labels=src.concept_labels,
        encoder=prep.encoder, class_embeddings=None, features=F, examples=examples,
        seed=seed, controls=controls)
