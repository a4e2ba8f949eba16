"""The small labelled text set the examples share (in real use: your own CSV)."""

from __future__ import annotations

import csv
from pathlib import Path

TOPICS = {
    "sport": ["the striker scored a late goal", "the keeper saved a penalty",
              "a hat trick in the derby", "the coach praised the defence",
              "extra time settled the cup final", "the runner finished the marathon"],
    "cooking": ["simmer the sauce with garlic", "bake the bread for an hour",
                "whisk the eggs with sugar", "knead the pizza dough",
                "season the soup with salt", "fry the onions in butter"],
    "computers": ["the laptop needs more memory", "install the system update",
                  "the programmer fixed a bug", "the server disk was full",
                  "the graphics card speeds up rendering", "reboot the router"],
}
CONCEPTS = """\
# source: written by hand for the example
[sport]
a ball game
athletes competing
[cooking]
food and recipes
a kitchen stove
[computers]
software and code
a computer machine
"""


def write_texts(folder: Path, small: bool = False) -> tuple[Path, Path]:
    """``folder/texts.csv`` (text,label,split) and ``folder/concepts.txt``."""
    folder.mkdir(parents=True, exist_ok=True)
    suffixes = ("", " today", " again") if small else ("", " today", " again", " now", " here")
    with open(folder / "texts.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "label", "split"])
        for label, sentences in TOPICS.items():
            for s in sentences:
                for j, suffix in enumerate(suffixes):
                    w.writerow([s + suffix, label, "test" if j == len(suffixes) - 1 else "train"])
    (folder / "concepts.txt").write_text(CONCEPTS, encoding="utf-8")
    return folder / "texts.csv", folder / "concepts.txt"
