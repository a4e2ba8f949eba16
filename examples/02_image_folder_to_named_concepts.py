# %% [markdown]
# # My image folder -> discovered, named concepts and their importance
#
# CRAFT-style discovery: crops of each class's images through EfficientNet-Lite0 (packaged,
# offline), factorised into k concepts per class (NMF), each named from the network's head and
# shown by its top crops; then each concept's importance for the class on held-out images
# (gradient x input and occlusion here; Sobol with the `discover` extra). Run:
# `python examples/02_image_folder_to_named_concepts.py [--small]`.

# %%
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from conceptlab.workflows.discover import run_discover, run_importance

SMALL = globals().get("SMALL", "--small" in sys.argv)
OUT = Path(globals().get("OUT", "runs/examples/02"))

# %% [markdown]
# ## Your folder: `PATH/train/<class>/*.png` and `PATH/test/<class>/*.png` (docs/formats.md).
# Here: drawn discs and bars, so the example runs anywhere.

# %%
def draw(kind: str, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    im = Image.new("RGB", (64, 64), tuple(int(v) for v in rng.integers(150, 255, 3)))
    d = ImageDraw.Draw(im)
    x, y = (int(v) for v in rng.integers(12, 40, 2))
    color = tuple(int(v) for v in rng.integers(0, 120, 3))
    if kind == "disc":
        d.ellipse([x - 10, y - 10, x + 14, y + 14], fill=color)
    else:
        d.rectangle([x - 12, y - 3, x + 16, y + 5], fill=color)
    return im


root = OUT / "images"
n = 4 if SMALL else 30
for split, offset in (("train", 0), ("test", 1000)):
    for kind in ("disc", "bar"):
        (root / split / kind).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            draw(kind, offset + i + (0 if kind == "disc" else 500)).save(
                root / split / kind / f"{i:03d}.png")

# %% [markdown]
# ## Discover k concepts per class; each is named and shown by its top crops

# %%
found = run_discover(f"folder:{root}", OUT / "discover", method="nmf", k=3,
                     image_size=48 if SMALL else 128, n_per_class=n, n_crops=2 if SMALL else 8)
for cls, entry in found["per_class"].items():
    print(cls, "->", [c["concept"] for c in entry["concepts"]], "gallery:", entry["gallery"])

# %% [markdown]
# ## How much does each concept matter for the class? (held-out test images)

# %%
imp = run_importance(OUT / "discover", "disc", n_images=3 if SMALL else 20,
                     methods=("gradient_input",) if SMALL else ("gradient_input", "occlusion"))
for method, ranking in imp["ranking"].items():
    print(f"{method:>15}:", ranking)
