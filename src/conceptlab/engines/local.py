"""The local engine: this process encodes batch after batch (the default)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from conceptlab.data.base import DataSplit
from conceptlab.encoders.base import Encoder, Views


def encode_positions(encoder: Encoder, split: DataSplit, positions: np.ndarray,
                     batch_size: int | None = None) -> Iterator[Views]:
    """Views of ``split`` items at ``positions``, one encoder batch at a time."""
    step = int(batch_size or encoder.batch_size)
    for b in range(0, len(positions), step):
        items = [split[int(i)] for i in positions[b:b + step]]
        yield encoder.encode_batch(items, split.modality)


class LocalEngine:
    """Encode in this process, in the encoder's own batches."""

    name = "local"

    def __init__(self, batch_size: int | None = None) -> None:
        self.batch_size = batch_size

    def rows(self, encoder: Encoder, split: DataSplit, positions: np.ndarray
             ) -> Iterator[Views]:
        return encode_positions(encoder, split, positions, self.batch_size)
