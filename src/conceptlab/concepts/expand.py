"""Larger vocabularies from a reviewed base: generated candidates, the Label-free CBM filters,
then a class-balanced cut to the size asked for.

A small vocabulary caps every scores-based concept bottleneck (66 Fashion-MNIST concepts: a
probe on their scores reaches 0.772 against 0.832 on the embedding). ``expanded_vocabulary``
keeps every concept of the base, adds candidates from ``generate_vocabulary`` (ImageNet
descriptions of matched classes and WordNet) and, when those run out, general visual phrases
from every ImageNet class's description (no class association), runs ``apply_filters``
(length, too close to a class name, duplicates, inactive on the training embeddings) on the
union, and cuts to ``size`` taking the
generated concepts round-robin over classes so that no class crowds out the others. The
filters are the review: every removal is in the returned report.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from conceptlab.concepts.filters import FilterReport, apply_filters
from conceptlab.concepts.generate import generate_vocabulary
from conceptlab.concepts.imagenet import imagenet_vocabulary
from conceptlab.concepts.vocab import TextEncoder, Vocabulary, VocabularyError


def expanded_vocabulary(base: Vocabulary, class_names: Sequence[str], size: int, *,
                        text_encoder: TextEncoder,
                        train_embeddings: np.ndarray | None = None
                        ) -> tuple[Vocabulary, FilterReport]:
    """``base`` grown to ``size`` concepts (or fewer when the candidates run out: say so)."""
    if size < 1:
        raise VocabularyError(f"size must be >= 1, got {size}")
    if size <= len(base):
        return base.select(list(range(size))), FilterReport(n_input=len(base),
                                                             n_output=size)
    per_class = math.ceil(3 * (size - len(base)) / max(1, len(class_names))) + 4
    generated = generate_vocabulary(class_names, per_class=per_class,
                                    text_encoder=text_encoder)
    union = base.merged(generated)
    if len(union) < 2 * size:  # the class-matched candidates run out: add general visual ones
        general = imagenet_vocabulary(per_class=max(1, math.ceil(3 * size / 1000)))
        union = union.merged(Vocabulary.from_items([(c, []) for c in general.concepts],
                                                   source=general.source))
    kept, report = apply_filters(union, text_encoder=text_encoder, class_names=class_names,
                                 train_embeddings=train_embeddings)
    base_set = set(base.concepts)
    order = [i for i, c in enumerate(kept.concepts) if c in base_set]
    by_class: dict[str, list[int]] = {c: [] for c in class_names}
    for i, (c, cl) in enumerate(zip(kept.concepts, kept.classes, strict=True)):
        if c not in base_set:
            by_class[cl[0] if cl else class_names[i % len(class_names)]].append(i)
    queues = [list(v) for v in by_class.values()]
    while len(order) < size and any(queues):
        for q in queues:
            if q and len(order) < size:
                order.append(q.pop(0))
    out = kept.select(sorted(order))
    if len(out) < size:
        out.warnings.append(f"asked for {size} concepts; only {len(out)} survived the filters")
    return out, report
