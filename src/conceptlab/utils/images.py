"""Images of any bit depth as 8-bit RGB, the input every image encoder expects."""

from __future__ import annotations

import numpy as np
from PIL import Image


def to_rgb(im: Image.Image) -> Image.Image:
    """An RGB image with the full range of any bit depth mapped onto 0..255.

    Why: PIL's ``convert("RGB")`` clips 16-bit greyscale (modes ``I;16*``, ``I``) at 255,
    which turned 99.6% of a 16-bit ramp white. 16-bit values are divided by 257 (65535 ->
    255); 32-bit integer images (``I``) are read as 16-bit (clipped to 0..65535, what PNG
    and TIFF store there); float images (``F``) as 0..1.
    """
    if im.mode.startswith("I;16") or im.mode == "I":
        arr = np.asarray(im, dtype=np.float64)
        grey = np.clip(arr, 0, 65535) / 257.0
    elif im.mode == "F":
        grey = np.clip(np.asarray(im, dtype=np.float64), 0.0, 1.0) * 255.0
    else:
        return im.convert("RGB")
    return Image.fromarray(np.round(grey).astype(np.uint8), mode="L").convert("RGB")
