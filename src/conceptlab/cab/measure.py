"""The concept association bias of an image-text space: pure functions of embeddings.

Yamada et al. ("When are Lemons Purple? The Concept Association Bias of Vision-Language
Models", EMNLP 2023): asked for the colour of one object in an image that holds two, a CLIP-like
space often answers the *other* object's colour, as if the image were a bag of concepts. Here
every object of every scene is asked about in turn: the candidates are the texts "a {colour}
{shape}" for every colour, and the answer is the candidate with the highest cosine with the
image. Reported:

* ``other_rate``: on two-object scenes, the share of answers that are the other object's
  colour (the bias), and ``correct_rate`` their accuracy;
* ``single_wrong_per_colour``: on one-object scenes, the share of answers equal to one given
  wrong colour, ``(1 - accuracy) / (colours - 1)``: the rate at which a colour is named with no
  object of that colour in view, the baseline the bias is read against;
* ``cab``: ``other_rate - single_wrong_per_colour``;
* for an associated pair (shape A, colour c): ``other_rate_assoc`` when the other object is A
  in colour c, and ``fill_rate``: asked about an A that is *not* c, the share answering c when
  no object of colour c is in view (the association filling in a colour the image lacks),
  beside ``fill_rate_single`` on one-object scenes of A.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from conceptlab.errors import ConceptlabValueError

Obj = tuple[str, str]


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def answers(image_emb: np.ndarray, scenes: Sequence[Sequence[Obj]], colours: Sequence[str],
            embed_prompt: Callable[[list[str]], np.ndarray],
            prompt: Callable[[str, str], str]) -> list[list[str]]:
    """For every object of every scene, the colour whose prompt best matches the image."""
    X = _unit(image_emb)
    if len(X) != len(scenes):
        raise ConceptlabValueError(f"{len(X)} image embeddings for {len(scenes)} scenes")
    shapes = sorted({s for scene in scenes for s, _ in scene})
    texts = [prompt(c, s) for s in shapes for c in colours]
    T = _unit(embed_prompt(texts)).reshape(len(shapes), len(colours), -1)
    out = []
    for x, scene in zip(X, scenes, strict=True):
        out.append([colours[int(np.argmax(T[shapes.index(s)] @ x))] for s, _ in scene])
    return out


def cab_rates(scenes: Sequence[Sequence[Obj]], said: Sequence[Sequence[str]],
              n_colours: int, assoc: Obj | None = None) -> dict[str, Any]:
    """The rates of the module docstring from scenes and the colours answered."""
    two_other = two_correct = two_n = 0
    single_correct = single_n = 0
    assoc_other = assoc_n = 0
    fill = fill_n = fill_single = fill_single_n = 0
    for scene, ans in zip(scenes, said, strict=True):
        if len(scene) == 1:
            (s, c), a = scene[0], ans[0]
            single_n += 1
            single_correct += a == c
            if assoc and s == assoc[0] and c != assoc[1]:
                fill_single_n += 1
                fill_single += a == assoc[1]
            continue
        for q in (0, 1):
            (s, c), (so, co), a = scene[q], scene[1 - q], ans[q]
            two_n += 1
            two_correct += a == c
            two_other += a == co
            if assoc and (so, co) == assoc:
                assoc_n += 1
                assoc_other += a == co
            if assoc and s == assoc[0] and c != assoc[1] and co != assoc[1]:
                fill_n += 1
                fill += a == assoc[1]
    if not two_n or not single_n:
        raise ConceptlabValueError("the probe needs one-object and two-object scenes")

    def rate(k: int, n: int) -> float:
        return k / n if n else float("nan")

    wrong = (1 - single_correct / single_n) / max(n_colours - 1, 1)
    out: dict[str, Any] = {
        "other_rate": two_other / two_n, "correct_rate": two_correct / two_n,
        "single_accuracy": single_correct / single_n, "single_wrong_per_colour": wrong,
        "cab": two_other / two_n - wrong, "n_two_object_queries": two_n,
        "n_single": single_n}
    if assoc:
        out.update({"other_rate_assoc": rate(assoc_other, assoc_n), "n_assoc": assoc_n,
                    "fill_rate": rate(fill, fill_n), "n_fill": fill_n,
                    "fill_rate_single": rate(fill_single, fill_single_n)})
    return out
