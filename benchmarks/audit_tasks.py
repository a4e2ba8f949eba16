"""Held-out tasks for the audit's acceptance checks: data the project's methods were never
tuned on, with concept vocabularies whose meaning is known (real texts, random strings).

* ``topic_sentences``: an easy text task, 3 topics (animal / food / tool), sentences built
  from small word lists (deterministic for a seed);
* ``TOPIC_CONCEPTS``: 12 real concept texts with the topic each belongs to;
* ``nonsense_concepts``: the same count of random letter strings.
"""

from __future__ import annotations

import numpy as np

TOPICS = ("animal", "food", "tool")

_SUBJECTS = {
    "animal": ["the fox", "a wolf", "the old elephant", "a young deer", "the tiger", "a rabbit",
               "the bear", "a hawk", "the lion", "a squirrel", "the zebra", "an owl"],
    "food": ["the soup", "a loaf of bread", "the pasta", "a ripe mango", "the cheese pizza",
             "a bowl of rice", "the chocolate cake", "a fresh salad", "the roast chicken",
             "a plate of noodles", "the apple pie", "a warm pancake"],
    "tool": ["the hammer", "a screwdriver", "the saw", "a wrench", "the drill", "a chisel",
             "the pliers", "a shovel", "the axe", "a tape measure", "the sander", "a crowbar"],
}
_PREDICATES = {
    "animal": ["ran through the forest", "hunted at dawn", "slept in its den",
               "drank from the river", "chased its prey across the plain",
               "hid from the hunters", "fed its cubs", "roamed the wild hills"],
    "food": ["tasted sweet and rich", "was served hot for dinner", "smelled delicious",
             "was cooked with garlic", "was eaten at lunch", "came out of the oven",
             "was seasoned with salt", "filled the hungry guests"],
    "tool": ["lay on the workbench", "was used to fix the shelf", "cut through the plank",
             "tightened the loose bolt", "hung in the garage", "built the wooden fence",
             "was sharpened in the workshop", "loosened the rusty nail"],
}

#: 12 real concept texts, 4 per topic
TOPIC_CONCEPTS: tuple[tuple[str, str], ...] = (
    ("a wild animal", "animal"), ("fur and claws", "animal"), ("a predator hunting", "animal"),
    ("a creature in the forest", "animal"), ("something to eat", "food"),
    ("a tasty meal", "food"), ("cooking in a kitchen", "food"), ("a sweet dessert", "food"),
    ("a tool for cutting", "tool"), ("a workshop", "tool"), ("repairing something", "tool"),
    ("a metal instrument", "tool"),
)


def topic_sentences(n_per_topic: int = 40, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """``n_per_topic`` distinct sentences per topic (subject + predicate), shuffled; labels
    index ``TOPICS``."""
    rng = np.random.default_rng(seed)
    texts: list[str] = []
    labels: list[int] = []
    for t, topic in enumerate(TOPICS):
        pairs = [(s, p) for s in _SUBJECTS[topic] for p in _PREDICATES[topic]]
        pick = rng.choice(len(pairs), size=min(n_per_topic, len(pairs)), replace=False)
        texts += [f"{pairs[i][0]} {pairs[i][1]}" for i in pick]
        labels += [t] * len(pick)
    order = rng.permutation(len(texts))
    return [texts[i] for i in order], np.asarray(labels, dtype=np.int64)[order]


def nonsense_concepts(n: int, seed: int = 0, length: int = 8) -> list[str]:
    """``n`` distinct random lower-case letter strings."""
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    out: list[str] = []
    while len(out) < n:
        s = "".join(rng.choice(letters, size=length))
        if s not in out:
            out.append(s)
    return out
