"""A concept dictionary for Concept Lancet: each concept's vector is the mean embedding of many
texts that describe it (as CoLan-150K gives many stimuli per concept), grouped so that an edit
can be judged against the concept's rivals (colour against colours, shape against shapes).

File format (``--dictionary FILE``): a line ``[group/concept]`` starts a concept; the lines
below it are its stimulus texts until the next header. ``auto`` for ``idsprites``: every
ground-truth colour, size, shape, position and tilt plus distractor colours and shapes the data
never shows, five stimuli each (:func:`sprite_dictionary_texts`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from conceptlab.errors import ConceptlabValueError


class DictionaryError(ConceptlabValueError):
    """A malformed or empty concept dictionary."""


@dataclass
class ConceptDictionary:
    """K concepts: names, groups, stimulus texts and (once encoded) unit mean vectors."""

    names: list[str]
    groups: list[str]
    stimuli: list[list[str]]
    vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.names:
            raise DictionaryError("a concept dictionary needs at least one concept")
        if not (len(self.names) == len(self.groups) == len(self.stimuli)):
            raise DictionaryError("names, groups and stimuli must have one entry per concept")
        if len(set(self.names)) != len(self.names):
            raise DictionaryError("duplicate concept names in the dictionary")
        empty = [n for n, s in zip(self.names, self.stimuli, strict=True) if not s]
        if empty:
            raise DictionaryError(f"concepts without stimulus texts: {empty[:5]}")

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise DictionaryError(f"unknown concept {name!r} (known: "
                                  f"{', '.join(self.names[:12])}...)") from None

    def group_members(self, group: str) -> list[int]:
        return [k for k, g in enumerate(self.groups) if g == group]

    def encode(self, encode_texts: Any) -> ConceptDictionary:
        """Each concept's vector: the mean of its unit-normalised stimulus embeddings,
        normalised (texts embedded once, in one batch)."""
        flat = [t for s in self.stimuli for t in s]
        emb = np.asarray(encode_texts(flat), dtype=np.float32)
        emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        out, start = [], 0
        for s in self.stimuli:
            v = emb[start:start + len(s)].mean(0)
            out.append(v / max(float(np.linalg.norm(v)), 1e-12))
            start += len(s)
        self.vectors = np.stack(out).astype(np.float32)
        return self


def parse_dictionary(text: str, source: str = "") -> ConceptDictionary:
    """Read the ``[group/concept]`` + stimulus lines format."""
    names: list[str] = []
    groups: list[str] = []
    stimuli: list[list[str]] = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            group, sep, name = line[1:-1].partition("/")
            if not sep or not group.strip() or not name.strip():
                raise DictionaryError(f"{source or 'dictionary'} line {n}: a header must be "
                                      f"[group/concept], got {line!r}")
            names.append(name.strip())
            groups.append(group.strip())
            stimuli.append([])
        elif not names:
            raise DictionaryError(f"{source or 'dictionary'} line {n}: stimulus text before "
                                  "the first [group/concept] header")
        else:
            stimuli[-1].append(line)
    return ConceptDictionary(names, groups, stimuli, provenance={"source": source})


def read_dictionary(path: str | Path) -> ConceptDictionary:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise DictionaryError(f"--dictionary {path}: cannot read ({err})") from err
    return parse_dictionary(text, source=str(p))


SPRITE_GROUPS: dict[str, list[str]] = {
    "colour": ["red", "orange", "yellow", "green", "blue", "purple", "pink", "brown",
               "white", "black"],
    "shape": ["square", "circle", "triangle", "star", "hexagon", "heart", "cross"],
    "size": ["large", "small"],
    "horizontal": ["left", "right"],
    "vertical": ["top", "bottom"],
    "tilt": ["tilted", "upright"],
}

_STIMULI: dict[str, list[str]] = {
    "colour": ["a {} shape", "something {}", "a {} object", "the colour {}", "a {} thing"],
    "shape": ["a {}", "a {} shape", "the shape is a {}", "one {}", "a drawn {}"],
    "size": ["a {} shape", "something {}", "a {} object", "it is {}", "a {} thing"],
    "horizontal": ["a shape on the {}", "on the {} side", "at the {}", "placed {}",
                   "something on the {}"],
    "vertical": ["a shape near the {}", "at the {}", "in the {} half", "near the {} edge",
                 "something at the {}"],
    "tilt": ["a {} shape", "{}", "a {} object", "the shape is {}", "something {}"],
}


def sprite_dictionary_texts() -> str:
    """The ``auto`` dictionary for idsprites in the file format (25 concepts x 5 stimuli)."""
    lines: list[str] = []
    for group, words in SPRITE_GROUPS.items():
        for w in words:
            lines.append(f"[{group}/{w}]")
            lines += [t.format(w) for t in _STIMULI[group]]
    return "\n".join(lines) + "\n"


#: ground-truth idsprites concept column -> dictionary concept
SPRITE_TRUTH = {"a red shape": "red", "an orange shape": "orange", "a yellow shape": "yellow",
                "a green shape": "green", "a blue shape": "blue", "a purple shape": "purple",
                "a large shape": "large", "a small shape": "small",
                "a shape on the left": "left", "a shape on the right": "right",
                "a shape near the top": "top", "a shape near the bottom": "bottom",
                "a square": "square", "a circle": "circle", "a triangle": "triangle",
                "a star": "star", "a tilted shape": "tilted", "an upright shape": "upright"}
