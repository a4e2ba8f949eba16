"""Where a concept is: concept attribution maps over the input.

For spatial codes (one code vector per position of a feature map, ``discover.sources``) the map
of concept ``k`` is its code at each position, upsampled to the input's size (CRAFT's concept
attribution maps, Fel et al., CVPR 2023, fig. 6, read at the factorised layer). For a crop
source, ``crop_attribution`` spreads each crop's code over the pixels it covers and averages;
``unit_maps_by_crops`` does the same for any model's units (a fitted CBM's concepts).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from conceptlab.errors import ConceptlabValueError


def upsample_map(code_map: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A ``(h, w)`` map bilinearly resized to ``size`` = (height, width)."""
    t = torch.as_tensor(np.asarray(code_map, np.float32))[None, None]
    return F.interpolate(t, size=size, mode="bilinear", align_corners=False)[0, 0].numpy()


def concept_maps(codes: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Spatial codes ``(h, w, K)`` of one input -> maps ``(K, H, W)`` at the input's size."""
    c = np.asarray(codes, np.float32)
    if c.ndim != 3:
        raise ConceptlabValueError(f"spatial codes must be (h, w, K), got shape {c.shape}")
    t = torch.from_numpy(np.ascontiguousarray(c.transpose(2, 0, 1)))[None]
    return F.interpolate(t, size=size, mode="bilinear", align_corners=False)[0].numpy()


def crop_attribution(codes: np.ndarray, boxes: np.ndarray, size: tuple[int, int]
                     ) -> np.ndarray:
    """Crop codes ``(R, K)`` with boxes ``(R, 3)`` = (left, top, side) of one input -> ``(K, H,
    W)``: each pixel's mean code over the crops covering it (0 where none does)."""
    H, W = size
    K = codes.shape[1]
    total = np.zeros((K, H, W))
    count = np.zeros((H, W))
    for (x, y, s), u in zip(np.asarray(boxes), np.asarray(codes), strict=True):
        total[:, y:y + s, x:x + s] += u[:, None, None]
        count[y:y + s, x:x + s] += 1
    return total / np.maximum(count, 1)


def unit_maps_by_crops(image: Any, embed: Callable[[list[Any]], np.ndarray],
                       unit_values: Callable[[np.ndarray], np.ndarray], *, n_crops: int = 48,
                       min_frac: float = 0.3, max_frac: float = 0.6, seed: int = 0
                       ) -> np.ndarray:
    """Where a fitted CBM's units fire in one image (which pixels make "laces" fire): units
    read on random crops, each pixel the mean over the crops that cover it (``(K, H, W)``).

    ``embed``: PIL crops -> embeddings (e.g. ``encoder.encode_images``); ``unit_values``:
    embeddings -> unit activations (e.g. ``ConceptBottleneckModel.concept_activations``).
    """
    from conceptlab.discover.sources import crop_boxes

    w, h = image.size
    boxes = crop_boxes([(w, h)], n_crops, min_frac, max_frac, seed)[0]
    crops = [image.crop((int(x), int(y), int(x + s), int(y + s))) for x, y, s in boxes]
    values = np.asarray(unit_values(embed(crops)), np.float64)
    if values.ndim != 2 or len(values) != len(crops):
        raise ConceptlabValueError(f"unit_values gave shape {values.shape} for {len(crops)} crops")
    return crop_attribution(values, boxes, (h, w))


def _positions(length: int, side: int, step: int) -> list[int]:
    """Patch starts every ``step`` pixels, plus the last one, so every pixel is covered."""
    last = max(0, length - side)
    return sorted({*range(0, last + 1, step), last})


def unit_maps_by_occlusion(image: Any, embed: Callable[[list[Any]], np.ndarray],
                           unit_values: Callable[[np.ndarray], np.ndarray], *,
                           patch_frac: float = 0.25, stride_frac: float = 0.125,
                           fill: tuple[int, ...] | None = None) -> np.ndarray:
    """Where a fitted CBM's units fire, by occlusion (Zeiler & Fergus, ECCV 2014, sec. 4.2):
    each square patch is painted ``fill`` (default: the image's per-channel median, the
    background of a mostly plain image) and each pixel gets the mean drop of each unit over the
    patches that cover it (``(K, H, W)``; positive where hiding the pixels lowers the unit).

    Unlike crops, every occluded image keeps the input's framing and scale, so a unit is not
    read on inputs unlike any it was fitted on.
    """
    from PIL import ImageDraw

    if not 0 < stride_frac <= patch_frac <= 1:
        raise ConceptlabValueError(f"need 0 < stride_frac <= patch_frac <= 1, got {stride_frac}, "
                         f"{patch_frac}")
    rgb = image.convert("RGB")
    w, h = rgb.size
    side = max(1, round(patch_frac * min(w, h)))
    step = max(1, round(stride_frac * min(w, h)))
    colour = fill or tuple(int(v) for v in np.median(np.asarray(rgb).reshape(-1, 3), axis=0))
    boxes, images = [], []
    for top in _positions(h, side, step):
        for left in _positions(w, side, step):
            hidden = rgb.copy()
            ImageDraw.Draw(hidden).rectangle((left, top, left + side - 1, top + side - 1),
                                             fill=colour)
            boxes.append((left, top, side))
            images.append(hidden)
    values = np.asarray(unit_values(embed([rgb, *images])), np.float64)
    if values.ndim != 2 or len(values) != len(images) + 1:
        raise ConceptlabValueError(f"unit_values gave shape {values.shape} for {len(images) + 1} "
                                   f"images")
    return crop_attribution(values[0] - values[1:], np.asarray(boxes), (h, w))
