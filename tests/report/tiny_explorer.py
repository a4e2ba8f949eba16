"""A tiny fitted CBM on synthetic embeddings, with solid-colour images as its raw inputs, for
the explorer's tests (API, browser) and the serve benchmark's smoke run.

Class c's items are drawn as a solid image of ``COLOURS[c]``; the stand-in encoder maps an
image to the mean training embedding of the class whose colour is nearest its mean colour,
so an uploaded red square is explained like a typical class-0 item.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from PIL import Image

from conceptlab.bottleneck.model import ConceptBottleneckModel
from conceptlab.concepts.bank import ConceptBank
from conceptlab.report.app import ExplorerData
from tests.planted import PLANTED

CLASSES = ["cat", "dog", "car", "ship"]
COLOURS = np.array([(220, 30, 30), (30, 180, 40), (30, 40, 210), (200, 200, 40)], float)
FAST = {"max_epochs": 8, "patience": 3, "show_progress": False}
C, K = PLANTED.C, PLANTED.K


def solid(c: int, size: int = 24, jitter: int = 0) -> Image.Image:
    rgb = np.clip(COLOURS[c] + jitter, 0, 255).astype(np.uint8)
    return Image.fromarray(np.tile(rgb, (size, size, 1)))


def png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def fit_tiny(method: str = "l1", nec: float | None = 2.0, n_train: int = 400
             ) -> tuple[ConceptBottleneckModel, ExplorerData, Any]:
    """(model, explorer data, encode function); fits in about a second."""
    Xt, yt, V, _, _ = PLANTED.data(n_train, 1)
    Xv, yv, _, _, _ = PLANTED.data(150, 2)
    Xs, ys, _, _, _ = PLANTED.data(120, 3)
    names = [f"{CLASSES[k // (K // C)]} concept {k % (K // C)}" for k in range(K)]
    bank = ConceptBank(V, names, provenance={"encoder": "synthetic",
                                             "encoder_fingerprint": "fp-tiny"},
                       metadata={"classes": [CLASSES[k // (K // C)] for k in range(K)]})
    model = ConceptBottleneckModel.from_options(bank, CLASSES, method=method, nec=nec,
                                                options=FAST, seed=0)
    model.fit(Xt, yt, Xv, yv)
    centroids = np.stack([Xt[yt == c].mean(0) for c in range(C)]).astype(np.float32)

    def encode(images: list[Any]) -> np.ndarray:
        means = np.stack([np.asarray(im.convert("RGB"), float).reshape(-1, 3).mean(0)
                          for im in images])
        nearest = np.argmin(((means[:, None, :] - COLOURS[None]) ** 2).sum(-1), axis=1)
        return centroids[nearest]

    data = ExplorerData(X_test=Xs, y_test=ys, X_train=Xt, y_train=yt, modality="image",
                        test_items=[solid(int(c)) for c in ys],
                        train_items=[solid(int(c)) for c in yt], title="tiny explorer")
    return model, data, encode
